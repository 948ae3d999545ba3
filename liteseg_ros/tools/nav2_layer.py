"""A Nav2 ``semantic_segmentation_layer`` configuration for the node's topics and a model's published classes
(``liteseg-info --nav2-layer``).

The layer (ros-navigation/semantic_segmentation_layer) takes a mono8 mask, its confidence, a vision_msgs/LabelInfo
and a pixel-aligned PointCloud2 of the mask's size, synchronised by stamp; it walks the mask's pixels and the
cloud's points in step. The node gives all four: ``~/mask``, ``~/confidence``, ``~/label_info`` and ``~/points`` with
``output_size: depth`` (or a depth image of the camera's resolution), ``points_stride`` 1 and no ``points_classes``.

Classes go into two class types by name: ``traversable`` (ground a robot may drive on: road, sidewalk, terrain,
drivable, walkable, floor, ...) with cost 0, and ``obstacle`` (the rest) with cost 254, which takes a tile at once
(``dominant_priority``); sky and background-like classes are left out (the layer ignores classes it is not given).
Review the groups for your robot: they are a starting point, printed as YAML to paste.
"""

from __future__ import annotations

import yaml

from liteseg_ros.classes import ClassSet
from liteseg_ros.outputs import LABEL_INFO_TOPIC, NODE_NAME, OUTPUT_TOPICS

TRAVERSABLE_WORDS = ("road", "sidewalk", "terrain", "drivable", "walkable", "floor", "ground", "grass", "path",
                     "free", "parking", "lane", "track")
LEFT_OUT_WORDS = ("sky", "background", "void", "unlabeled", "unlabelled", "ignore")
COSTS = {"traversable": dict(base_cost=0, max_cost=0, mark_confidence=0, samples_to_max_cost=0,
                             dominant_priority=False),
         "obstacle": dict(base_cost=254, max_cost=254, mark_confidence=0, samples_to_max_cost=0,
                          dominant_priority=True)}


def class_types(classes: ClassSet) -> dict[str, list[str]]:
    """Class type -> the published class names in it (see the module docstring); types without classes omitted."""
    groups: dict[str, list[str]] = {"traversable": [], "obstacle": []}
    for name in classes.names:
        lowered = name.lower()
        if any(word in lowered for word in LEFT_OUT_WORDS):
            continue
        groups["traversable" if any(word in lowered for word in TRAVERSABLE_WORDS) else "obstacle"].append(name)
    return {kind: names for kind, names in groups.items() if names}


def node_topics(namespace: str = "", camera: str = "") -> dict[str, str]:
    """The node's output topics the layer reads, for a node named liteseg in ``namespace`` serving ``camera``."""
    prefix = "/".join(part for part in (namespace.strip("/"), NODE_NAME, camera) if part)
    return {"segmentation_topic": f"/{prefix}/{OUTPUT_TOPICS['mask']}",
            "confidence_topic": f"/{prefix}/{OUTPUT_TOPICS['confidence']}",
            "labels_topic": f"/{prefix}/{LABEL_INFO_TOPIC}",
            "pointcloud_topic": f"/{prefix}/{OUTPUT_TOPICS['points']}"}


def nav2_layer_yaml(classes: ClassSet, namespace: str = "", camera: str = "", depth_slop: float = 0.0,
                    source: str = "liteseg") -> str:
    """The layer's configuration (YAML with a comment saying where it goes and what the node needs)."""
    types = class_types(classes)
    observation = {**node_topics(namespace, camera), "observation_persistence": 0.0, "expected_update_rate": 0.0,
                   "max_obstacle_distance": 5.0, "min_obstacle_distance": 0.3, "tile_map_decay_time": 5.0,
                   "use_cost_selection": True, "class_types": list(types)}
    observation.update({kind: {"classes": names, **COSTS[kind]} for kind, names in types.items()})
    layer = {"plugin": "semantic_segmentation_layer::SemanticSegmentationLayer", "enabled": True,
             "observation_sources": source, "use_approximate_time_sync": depth_slop > 0, source: observation}
    left_out = [name for name in classes.names if not any(name in names for names in types.values())]
    header = [
        "# Nav2 semantic_segmentation_layer for the liteseg node: add 'semantic_segmentation_layer' to a costmap's",
        "# plugins and paste this under that costmap's ros__parameters. The node must publish ~/points of the mask's",
        "# size (output_size: depth, points_stride: 1, no points_classes) from a registered depth image (launch",
        "# argument depth_topic), and ~/confidence (auto: the layer subscribes). Stamps are synchronised exactly",
        "# unless the node pairs depth within a depth_slop.",
        f"# Classes left out (the layer ignores them): {', '.join(left_out) or 'none'}. Review the class types.",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump({"semantic_segmentation_layer": layer}, sort_keys=False)
