"""Parameters of the segmentation node: one table (:class:`NodeConfig`'s fields), from which the ROS declarations,
the validation, the launch arguments, ``config/liteseg.yaml`` and docs/ros.md's table follow (tests check the YAML
and the page against it).

Configuration flows one way: ROS parameters (command line, ``config/liteseg.yaml``) -> :func:`declare_parameters`
-> :meth:`NodeConfig.from_parameters` (validated) -> Segmenter. This module imports no rclpy and no torch, so tests,
tools (``liteseg-info --plan``) and the launch file read :data:`PARAMETERS` and :class:`NodeConfig` cheaply.
Sizes are written HEIGHTxWIDTH here as everywhere in the package (rows first, as torch and the paper write them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.config import SegmenterConfig
from liteseg_ros.inference.plan import AUTO_PRECISION_RULE, DEVICE_CHOICES, PRECISIONS
from liteseg_ros.inference.runners import AUTO_RUNNER_RULE
from liteseg_ros.outputs import NODE_OUTPUTS, OUTPUT_QOS_DEPTH
from liteseg_ros.ros.parameter_specs import (
    INPUT_TRANSPORTS,
    MAX_INPUT_SIDE,
    MAX_QOS_DEPTH,
    OUTPUT_SWITCH_TEXT,
    QOS_RELIABILITIES,
    ParameterSpec,
    check_backbone,
    check_boolean,
    check_camera_names,
    check_class_map,
    check_class_names,
    check_input_side,
    check_optimize,
    check_output_mode,
    check_output_size,
    parameter,
)
from liteseg_ros.sizes import parse_size


@dataclass(frozen=True)
class NodeConfig:
    """Validated configuration of the segmentation node: one field per ROS parameter (field names = parameter
    names, defaults = the parameters' defaults; each field's spec in its metadata)."""

    backbone: str = parameter("mobilenetv2", "Network backbone: mobilenetv2, shufflenet or darknet19. "
                              "Must match the weights file.", check=check_backbone)
    weights: str = parameter("", "Weights file: our checkpoint (.pt), the authors' .pth, an INT8 model (.onnx "
                             "from liteseg-quantize; CPU, its own input size), or 'cityscapes' (the authors' "
                             "Cityscapes model of the backbone, after 'liteseg-weights fetch'). Empty: the bundled "
                             "model models/liteseg_<backbone>_synthetic.pt from share/liteseg_ros (or the source "
                             "tree).")
    input_width: int = parameter(0, "Width the image is resized to for inference (pixels; 32..4096). 0: the width "
                                 "the weights were trained at (their metadata; 640 for the bundled model).",
                                 integer_range=(0, MAX_INPUT_SIDE), check=check_input_side)
    input_height: int = parameter(0, "Height the image is resized to for inference (pixels; 32..4096). 0: the "
                                  "height the weights were trained at (360 for the bundled model).",
                                  integer_range=(0, MAX_INPUT_SIDE), check=check_input_side)
    device: str = parameter("auto", f"Inference device: {DEVICE_CHOICES} (auto: cuda:0 when available, else cpu). "
                            "Asking for CUDA without CUDA is a start-up error.")
    precision: str = parameter("auto", f"Inference precision: {', '.join(PRECISIONS[1:])} or {AUTO_PRECISION_RULE}"
                               "; the start-up plan says which and why (liteseg-info --plan shows it beforehand), "
                               "and /diagnostics when it switched. An INT8 model (.onnx) runs in int8.")
    upsample: str = parameter("logits", "How results reach the input resolution: 'logits' (bilinear logits, "
                              "then argmax) or 'mask' (argmax at the input size, then nearest-neighbour mask).")
    optimize: str = parameter("auto", f"Deployment optimisations: 'auto' ({AUTO_RUNNER_RULE}; with BatchNorm "
                              "folding, and on CUDA channels-last), 'none' (plain eager PyTorch), or a "
                              "comma-separated list such as 'fold_bn,channels_last,torchscript_freeze,warmup=3' (an "
                              "unknown name is a start-up error that lists the valid ones).", check=check_optimize)
    cache: bool = parameter(True, "Keep the network prepared for its runner (the ONNX export, OpenVINO's compiled "
                            "blob, an INT8 model made from the first frames) in $XDG_CACHE_HOME/liteseg_ros/networks "
                            "(else ~/.cache/...), so the next start reads it; false: prepare it in the node's own "
                            "process at every start (liteseg-info --cache lists or clears the cache).",
                            check=check_boolean)
    overlap: bool = parameter(False, "Run the network of a frame on one thread while another post-processes and "
                              "publishes the previous one (frames stay in order). Off: one thread does both, each "
                              "step on every core; on 2 cores that kept as many frames with lower latency "
                              "(docs/benchmarks.md). Try it on robots with more cores.", check=check_boolean)
    output_size: str = parameter("camera", "Resolution of ~/mask, ~/color_mask, ~/overlay and ~/confidence: "
                                 "'camera' (the input image's), 'network' (input_height x input_width), 'depth' (the "
                                 "depth image's, so that Nav2's semantic_segmentation_layer gets a mask and a cloud of "
                                 "one size; the camera's until a depth image arrived) or HEIGHTxWIDTH such as 360x640. "
                                 "Smaller outputs cost less CPU and bandwidth; headers stay the input's.",
                                 check=check_output_size)
    class_map: str = parameter("", "A class map YAML file merging the model's classes into the published ones "
                               "(e.g. road -> drivable; person, car, ... -> obstacle): masks, colours, confidence "
                               "and ~/label_info follow it. Empty: the model's own class set.", check=check_class_map)
    threads: int = parameter(0, "CPU threads for the network and the pre/post-processing (0: all of torch's, by "
                             "default one per core).", integer_range=(0, 256))
    overlay_alpha: float = parameter(0.5, "Weight of the colour mask in ~/overlay (0 = image only, 1 = mask only). "
                                     "Can be changed at run time.", read_only=False, float_range=(0.0, 1.0))
    input_transport: str = parameter("raw", "'raw': subscribe sensor_msgs/Image on 'image'; 'compressed': subscribe "
                                     "sensor_msgs/CompressedImage (JPEG/PNG) on 'image/compressed'.",
                                     choices=INPUT_TRANSPORTS)
    qos_reliability: str = parameter("auto", "Input subscription reliability: 'auto' (best_effort when any publisher "
                                     "of the topic is best-effort, else reliable; re-checked every second), "
                                     "'reliable' or 'best_effort'.", choices=QOS_RELIABILITIES)
    qos_depth: int = parameter(1, "Input subscription history depth (keep-last). The node segments only the newest "
                               "frame anyway.", integer_range=(1, MAX_QOS_DEPTH))
    output_qos_depth: int = parameter(OUTPUT_QOS_DEPTH, "History depth (keep-last) of the reliable output "
                                      "publishers. A large image lost on the wire is re-sent only while it is still in "
                                      "this history: at depth 1 the next frame replaces it and the subscriber never "
                                      "gets it.", integer_range=(1, MAX_QOS_DEPTH))
    publish_mask: str = parameter("auto", "~/mask (mono8 class ids of the model's class set, or of class_map's): "
                                  + OUTPUT_SWITCH_TEXT, check=check_output_mode, dynamic_typing=True)
    publish_color: str = parameter("auto", "~/color_mask (rgb8, the class set's colours): " + OUTPUT_SWITCH_TEXT,
                                   check=check_output_mode, dynamic_typing=True)
    publish_overlay: str = parameter("auto", "~/overlay (rgb8 image blended with the colour mask): "
                                     + OUTPUT_SWITCH_TEXT, check=check_output_mode, dynamic_typing=True)
    publish_confidence: str = parameter("auto", "~/confidence (mono8, the probability of each pixel's class x "
                                        "255): " + OUTPUT_SWITCH_TEXT, check=check_output_mode, dynamic_typing=True)
    publish_points: str = parameter("auto", "~/points (sensor_msgs/PointCloud2: x, y, z, rgb = class colour, label, "
                                    "confidence when computed) from the registered depth image on depth/image and its "
                                    "depth/camera_info. 'auto': while ~/points has subscribers, and only when "
                                    "depth/image is remapped (launch argument depth_topic); 'always' (subscribes "
                                    "depth/image even if not remapped); 'never'. Booleans are accepted.",
                                    check=check_output_mode, dynamic_typing=True)
    depth_slop: float = parameter(0.0, "Largest difference (seconds) between the header stamps of a colour frame and "
                                  "the depth image it is paired with for ~/points: 0 pairs only equal stamps (a "
                                  "driver's aligned depth, depth_image_proc's register); otherwise the nearest "
                                  "within it. Unpaired frames are counted in /diagnostics.", float_range=(0.0, 1.0))
    points_max_range: float = parameter(0.0, "Points of ~/points farther than this (metres, from the camera) are NaN "
                                        "(left out of an unorganised cloud); 0: no limit.",
                                        float_range=(0.0, 1000.0))
    points_stride: int = parameter(1, "Keep every n-th row and column of the depth image in ~/points (1: all; 2 "
                                   "quarters the bandwidth). Nav2's semantic_segmentation_layer needs 1.",
                                   integer_range=(1, 16))
    points_classes: tuple[str, ...] = parameter([], "Publish only the points of these classes (names of the published "
                                                "class set, e.g. [person, car]); the cloud is then unorganised (height "
                                                "1, no invalid points). Empty: every point, organised.",
                                                check=check_class_names)
    cameras: tuple[str, ...] = parameter([], "Names of several cameras served by this one model: each name N "
                                         "subscribes N/image (or N/image/compressed) and publishes ~/N/mask, "
                                         "~/N/color_mask, ~/N/overlay. Empty: one camera on 'image' with outputs "
                                         "~/mask, ~/color_mask, ~/overlay.", check=check_camera_names)
    summary_period: float = parameter(10.0, "Seconds between one-line statistics summaries in the log (0 = never). "
                                      "/diagnostics is published at 1 Hz regardless.", float_range=(0.0, 3600.0))

    @classmethod
    def from_parameters(cls, values: Mapping[str, Any]) -> "NodeConfig":
        """Build and validate a config from parameter values; unknown names are a ConfigError."""
        unknown = sorted(set(values) - set(PARAMETER_NAMES))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETER_NAMES)}")
        return cls(**dict(values)).validated()

    def validated(self) -> "NodeConfig":
        """Return a normalised copy (output switches as strings, cameras as a tuple) or raise ConfigError naming
        the parameter. Device, precision, upsample, the optimisations' fit to the device and the input size's
        fit to the backbone are checked by the Segmenter when it is built."""
        config = replace(self, **{spec.name: spec.validate(getattr(self, spec.name)) for spec in PARAMETERS})
        if (config.input_width == 0) != (config.input_height == 0):
            raise ConfigError("parameters input_width and input_height are set together: both 0 (the size the "
                              f"weights were trained at) or both a size; got {config.input_height}x"
                              f"{config.input_width} (HEIGHTxWIDTH)")
        return config

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) of the network input; None: the size the weights were trained at."""
        return (self.input_height, self.input_width) if self.input_width else None

    @property
    def segmenter_output_size(self) -> tuple[int, int] | str | None:
        """``output_size`` as the Segmenter takes it: None (camera; depth: the node gives each frame's size), "input"
        (network) or (height, width)."""
        if self.output_size in ("camera", "depth"):
            return None
        if self.output_size == "network":
            return "input"
        return parse_size(self.output_size)

    def segmenter_config(self) -> SegmenterConfig:
        """The Segmenter's configuration for these parameters (the node's, and the plan liteseg-info --plan shows)."""
        return SegmenterConfig(backbone=self.backbone, device=self.device, precision=self.precision,
                               input_size=self.input_size, overlay_alpha=self.overlay_alpha, upsample=self.upsample,
                               optimize=self.optimize, threads=self.threads or None,
                               output_size=self.segmenter_output_size, class_map=self.class_map or None,
                               cache=self.cache, calibrate=True)

    def weights_file(self) -> Path:
        """The weights file to load (:func:`~liteseg_ros.model.published.resolve_weights` of ``weights`` and
        ``backbone``); WeightsError when it does not exist (for a published name: how to fetch it)."""
        from liteseg_ros.model.published import resolve_weights

        return resolve_weights(self.weights, self.backbone)

    @property
    def output_modes(self) -> dict[str, str]:
        """Output name (:data:`~liteseg_ros.outputs.NODE_OUTPUTS`) -> 'auto' | 'always' | 'never'."""
        return {output: getattr(self, f"publish_{output}") for output in NODE_OUTPUTS}


PARAMETERS: tuple[ParameterSpec, ...] = tuple(replace(item.metadata["spec"], name=item.name)
                                              for item in fields(NodeConfig))
PARAMETER_NAMES = tuple(spec.name for spec in PARAMETERS)
PARAMETER_SPECS = {spec.name: spec for spec in PARAMETERS}


def declare_parameters(node: Any, *, changeable: bool = False) -> dict[str, Any]:
    """Declare every parameter of :data:`PARAMETERS` on an rclpy node; return name -> value.

    ``changeable``: declare none read-only (a managed node reads them again at each *configure*).
    rclpy raises its own ParameterException subclasses for overrides of the wrong type or out of
    range; the node turns them into one start-up error line. List parameters are string arrays.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.parameter import Parameter

    values = {}
    for spec in PARAMETERS:
        descriptor = ParameterDescriptor(name=spec.name, description=spec.description,
                                         read_only=spec.read_only and not changeable,
                                         dynamic_typing=spec.dynamic_typing)
        if spec.integer_range:
            descriptor.integer_range = [
                IntegerRange(from_value=spec.integer_range[0], to_value=spec.integer_range[1], step=1)]
        if spec.float_range:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=spec.float_range[0], to_value=spec.float_range[1], step=0.0)]
        # an empty list has no type for rclpy: declare a string array without a value (it reads as None)
        default = Parameter.Type.STRING_ARRAY if isinstance(spec.default, list) else spec.default
        values[spec.name] = node.declare_parameter(spec.name, default, descriptor).value
    return values


def current_parameters(node: Any) -> dict[str, Any]:
    """The current values of every declared parameter of :data:`PARAMETERS` (a managed node's *configure*);
    None for a list parameter that was never given a value."""
    from rclpy.exceptions import ParameterUninitializedException

    values = {}
    for spec in PARAMETERS:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = None
    return values
