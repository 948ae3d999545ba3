"""The ``liteseg`` ROS 2 node: camera images in, segmentation masks out.

Subscribes ``image`` (sensor_msgs/Image) or ``image/compressed`` (sensor_msgs/CompressedImage), or
``<camera>/image`` for each name of the ``cameras`` parameter, and publishes ``~/mask`` (mono8 trainIds),
``~/color_mask`` and ``~/overlay`` (rgb8; ``~/<camera>/...`` with cameras) at the input's resolution with the
input's header, plus ``/diagnostics`` at 1 Hz. The subscription callbacks only store the newest frame; a
worker thread segments it (:mod:`liteseg_ros.ros.runtime`), so latency never piles up.

Run: ``ros2 run liteseg_ros segmentation_node --ros-args --params-file config/liteseg.yaml``.
The managed (lifecycle) variant is :mod:`liteseg_ros.ros.lifecycle_node`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from liteseg_ros.errors import LiteSegError
from liteseg_ros.outputs import NODE_NAME
from liteseg_ros.ros.channels import steady_timer
from liteseg_ros.ros.parameters import NodeConfig, declare_parameters
from liteseg_ros.ros.runtime import SegmentationRuntime

DIAGNOSTICS_PERIOD_S = 1.0


class RosLogHandler(logging.Handler):
    """Forwards the core's ``logging`` records (liteseg_ros.*) to the node's ROS logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        else:
            self.ros_logger.info(text)


def forward_core_logs(node: Node) -> None:
    """Send the core's log records (model loading, optimisation fallbacks) to ``node``'s ROS logger."""
    core_logger = logging.getLogger("liteseg_ros")
    core_logger.handlers = [h for h in core_logger.handlers if not isinstance(h, RosLogHandler)]
    core_logger.addHandler(RosLogHandler(node.get_logger()))
    core_logger.setLevel(logging.INFO)
    core_logger.propagate = False


def build_segmenter(config: NodeConfig) -> Any:
    """The Segmenter of the parameters' weights and configuration; raises LiteSegError with clear text."""
    from liteseg_ros.inference.segmenter import Segmenter

    return Segmenter(config.weights_file(), config.segmenter_config())


def model_status(node: Node, state: str, runtime: SegmentationRuntime | None) -> DiagnosticStatus:
    """The model's diagnostics status: lifecycle state, device, model, cameras."""
    segmenter = runtime.segmenter if runtime is not None else None
    values = {"lifecycle state": state, "device": segmenter.device if segmenter else "none",
              "model": segmenter.description if segmenter else "not loaded",
              "cameras": ", ".join(runtime.channels) if runtime and runtime.config.cameras else "image",
              "classes": ", ".join(segmenter.classes.names) if segmenter else "none",
              "plan": segmenter.plan.summary() if segmenter else "none"}
    if segmenter:  # each decision of the plan with its reason, and where a pending switch stands
        values.update({f"plan {name}": f"{value} ({reason})" if reason else value
                       for name, value, reason in segmenter.plan.decisions()})
        if segmenter.pending:
            values["plan pending"] = segmenter.pending
    level = DiagnosticStatus.OK if state == "active" else DiagnosticStatus.WARN
    return DiagnosticStatus(level=level, name=f"{node.get_fully_qualified_name()}: model", message=state,
                            hardware_id=values["device"], values=[KeyValue(key=k, value=v) for k, v in values.items()])


def publish_diagnostics(node: Node, publisher: Any, state: str, runtime: SegmentationRuntime | None) -> None:
    """One DiagnosticArray: the model's status and, when configured, one status per camera."""
    statuses = [model_status(node, state, runtime)]
    if runtime is not None:
        statuses += runtime.camera_statuses(node.get_fully_qualified_name())
    array = DiagnosticArray(status=statuses)
    array.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(array)


def overlay_alpha_update(node: Node, runtime: SegmentationRuntime | None, parameters: list[Any],
                         others_allowed: bool = False) -> SetParametersResult:
    """Apply a valid overlay_alpha at run time (the worker uses it from its next frame); reject other changes
    unless ``others_allowed`` (a managed node that is not configured yet)."""
    for parameter in parameters:
        if parameter.name != "overlay_alpha":
            if others_allowed:
                continue
            return SetParametersResult(successful=False, reason=f"{parameter.name} cannot change at run time")
        if runtime is None:
            continue
        try:
            runtime.config = replace(runtime.config, overlay_alpha=parameter.value).validated()
        except LiteSegError as error:
            return SetParametersResult(successful=False, reason=str(error))
        node.get_logger().info(f"overlay_alpha set to {runtime.config.overlay_alpha}")
    return SetParametersResult(successful=True)


class SegmentationNode(Node):
    """ROS adapter around the Segmenter: converts messages, calls it, publishes, reports."""

    def __init__(self, **node_kwargs: Any) -> None:
        """Create the (named, still idle) node; :meth:`start` configures it, loads the model and subscribes."""
        super().__init__(NODE_NAME, **node_kwargs)
        self.runtime: SegmentationRuntime | None = None

    def start(self) -> None:
        """Declare and validate the parameters, build the Segmenter, subscribe and advertise.

        Raises LiteSegError or rclpy's ParameterException with a one-line reason.
        """
        forward_core_logs(self)
        config = NodeConfig.from_parameters(declare_parameters(self))
        segmenter = build_segmenter(config)
        self.runtime = SegmentationRuntime(self, config, segmenter, self.create_publisher)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        steady_timer(self, DIAGNOSTICS_PERIOD_S,
                     lambda: publish_diagnostics(self, self._diagnostics, "active", self.runtime))
        self.add_on_set_parameters_callback(lambda parameters: overlay_alpha_update(self, self.runtime, parameters))
        self.runtime.activate()
        self.get_logger().info(f"segmenting with {segmenter.description}; plan {segmenter.plan.summary()}; "
                               f"outputs {self.runtime.describe_outputs()}")

    def close(self) -> None:
        """Stop the stages (waits for the frames in progress) and what runs beside the model; a no-op before
        :meth:`start` finished."""
        if self.runtime is not None:
            self.runtime.deactivate()
            self.runtime.segmenter.close()


def _interrupt(signum: int, frame: Any) -> None:
    """SIGINT/SIGTERM while starting: a KeyboardInterrupt, which ends the start-up cleanly; inside an import the
    process ends at once with 0 instead, since an exception raised in a C extension's initialisation (torch and
    OpenVINO initialise through pybind11) aborts the process."""
    name = signal.Signals(signum).name
    if _importing(frame):
        _log(None, "info", interrupted_message(name))
        os._exit(0)
    raise KeyboardInterrupt(name)


def interrupted_message(signal_name: str) -> str:
    """The one line a start-up ended by a signal logs, wherever the signal landed."""
    return f"interrupted by {signal_name} while starting; stopped"


def _importing(frame: Any) -> bool:
    """Whether ``frame`` runs inside an import (an importlib frame below it)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def run_node(create: Callable[[], Node], start: Callable[[Node], None] | None, argv: list[str] | None) -> int:
    """Create (and start) a node, spin it until SIGINT/SIGTERM; exit 0 then, 1 on a start-up error.

    SIGINT and SIGTERM interrupt the start-up too (loading a large model can take seconds, and launch escalates
    to SIGKILL after a few), ending the process with 0 at once.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    stop = threading.Event()
    node: Node | None = None
    try:
        rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
        node = create()
        if start is not None:
            start(node)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    except KeyboardInterrupt as interrupt:
        _log(node, "info", interrupted_message(str(interrupt)))
        _shut_down(node)
        return 0
    except (LiteSegError, ParameterException) as error:
        _log(node, "error", f"cannot start: {error}")
        _shut_down(node)
        return 1
    except Exception as error:  # a bug or an unforeseen environment: still one line, and a non-zero exit
        _log(node, "error", f"cannot start: unexpected {type(error).__name__}: {error} (please report this)")
        _shut_down(node)
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.get_logger().info("stopped")
        executor.shutdown()
        _shut_down(node)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script ``segmentation_node``: exit 0 on SIGINT/SIGTERM, 1 on a start-up error."""
    return run_node(SegmentationNode, SegmentationNode.start, argv)


def _log(node: Node | None, level: str, text: str) -> None:
    """Log with the node's own (namespaced) logger, or the plain node name before the node exists."""
    logger = node.get_logger() if node is not None else rclpy.logging.get_logger(NODE_NAME)
    getattr(logger, level)(text)


def _shut_down(node: Node | None) -> None:
    if node is not None:
        node.close()  # both segmentation nodes: stop the worker, release the model
        node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
