"""The outputs, written once (:data:`OUTPUT_TABLE`): their names (``publish_<name>`` parameters, Segmenter
results), the topics the node publishes them on (``~/<topic>``, ``~/<camera>/<topic>``), their kind (an image, or
the labelled point cloud made from a depth image) and encodings; and the node's name (replay writes the outputs under
``/<NODE_NAME>/<topic>``, as the node publishes them). Only the standard library is imported."""

from dataclasses import dataclass

NODE_NAME = "liteseg"
NODE_NAMESPACE = f"/{NODE_NAME}"  # where a node of the default name publishes its outputs


@dataclass(frozen=True)
class Output:
    """One output of the node: ``kind`` ``image`` (a sensor_msgs/Image the Segmenter makes, in ``encoding``) or
    ``cloud`` (the sensor_msgs/PointCloud2 made from a depth image and the mask at its resolution)."""

    name: str
    topic: str
    kind: str
    encoding: str | None = None
    description: str = ""

    @property
    def message_type(self) -> str:
        """The ROS message type, as bags name it."""
        return "sensor_msgs/msg/Image" if self.kind == "image" else "sensor_msgs/msg/PointCloud2"


OUTPUT_TABLE = (
    Output("mask", "mask", "image", "mono8", "class ids of the model's class set, or of class_map's"),
    Output("color", "color_mask", "image", "rgb8", "the class set's colours"),
    Output("overlay", "overlay", "image", "rgb8", "the image blended with the colour mask"),
    Output("confidence", "confidence", "image", "mono8", "the probability of each pixel's class x 255"),
    Output("points", "points", "cloud", None, "x, y, z, rgb (class colour), label and confidence of each depth "
           "pixel, from a registered depth image"),
)
OUTPUTS_BY_NAME = {output.name: output for output in OUTPUT_TABLE}
NODE_OUTPUTS = tuple(output.name for output in OUTPUT_TABLE)  # every publish_<name> parameter
OUTPUTS = tuple(o.name for o in OUTPUT_TABLE if o.kind == "image")  # SegmentationResult fields, Segmenter outputs
CLOUD_OUTPUTS = tuple(o.name for o in OUTPUT_TABLE if o.kind == "cloud")
DEFAULT_OUTPUTS = ("mask", "color", "overlay")  # Segmenter.segment's default: the confidence costs, asked for
OUTPUT_TOPICS = {output.name: output.topic for output in OUTPUT_TABLE}
OUTPUT_ENCODINGS = {output.name: output.encoding for output in OUTPUT_TABLE if output.kind == "image"}
OUTPUT_QOS_DEPTH = 5  # the reliable outputs' keep-last depth (output_qos_depth's default; replay's bags offer it)
LABEL_INFO_TOPIC = "label_info"  # vision_msgs/LabelInfo of the published class set (``~/<camera>/label_info``)


def replay_topic(output: str) -> str:
    """The topic of ``output`` in a replayed bag: where a node with the default name publishes it."""
    return f"{NODE_NAMESPACE}/{OUTPUT_TOPICS[output]}"
