"""The managed ``liteseg`` node (``segmentation_lifecycle_node``): the same parameters, topics and behaviour as
``segmentation_node``, brought up and down through the ROS 2 lifecycle (Nav2's and Autoware's convention).

- *configure*: read and validate the parameters, load the model. A failure (bad weights, a bad parameter)
  fails the transition, logs the reason, and leaves the node unconfigured: set the parameters and configure
  again.
- *activate*: subscribe to the camera(s) and start segmenting; the outputs are lifecycle publishers.
- *deactivate*: unsubscribe and stop segmenting; the model stays loaded.
- *cleanup*: release the model. *shutdown*: end cleanly from any state.

Parameters can be changed while the node is unconfigured (they are read at *configure*); ``overlay_alpha``
at any time. ``/diagnostics`` reports the lifecycle state.
"""

from __future__ import annotations

import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from liteseg_ros.errors import LiteSegError
from liteseg_ros.outputs import NODE_NAME
from liteseg_ros.ros.channels import steady_timer
from liteseg_ros.ros.node import (
    DIAGNOSTICS_PERIOD_S,
    build_segmenter,
    forward_core_logs,
    overlay_alpha_update,
    publish_diagnostics,
    run_node,
)
from liteseg_ros.ros.parameters import NodeConfig, current_parameters, declare_parameters
from liteseg_ros.ros.runtime import SegmentationRuntime


class SegmentationLifecycleNode(LifecycleNode):
    """A managed segmentation node: the model lives from *configure* to *cleanup*, topics from *activate* to
    *deactivate*."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        forward_core_logs(self)
        declare_parameters(self, changeable=True)
        self.runtime: SegmentationRuntime | None = None
        self.state = "unconfigured"
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        steady_timer(self, DIAGNOSTICS_PERIOD_S,
                     lambda: publish_diagnostics(self, self._diagnostics, self.state, self.runtime))
        self.add_on_set_parameters_callback(
            lambda parameters: overlay_alpha_update(self, self.runtime, parameters,
                                                    others_allowed=self.state == "unconfigured"))

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            config = NodeConfig.from_parameters(current_parameters(self))
            segmenter = build_segmenter(config)
        except LiteSegError as error:
            self.get_logger().error(f"cannot configure: {error}")
            return TransitionCallbackReturn.FAILURE
        except Exception as error:  # rclpy would turn it into a silent failure: say what happened
            self.get_logger().error(f"cannot configure: unexpected {type(error).__name__}: {error}")
            return TransitionCallbackReturn.FAILURE
        self.runtime = SegmentationRuntime(self, config, segmenter, self.create_lifecycle_publisher)
        self.state = "inactive"
        self.get_logger().info(f"configured: {segmenter.description}; plan {segmenter.plan.summary()}; "
                               f"outputs {self.runtime.describe_outputs()}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # activates the lifecycle publishers
        self.runtime.activate()
        self.state = "active"
        self.get_logger().info("active: segmenting")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runtime.deactivate()
        self.state = "inactive"
        self.get_logger().info("inactive: not segmenting (the model stays loaded)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.runtime is not None:
            self.runtime.destroy()
            self.runtime = None
        self.state = "unconfigured"

    def close(self) -> None:
        """Stop the worker and release the model, whatever the state (process exit)."""
        self._release()


def main(argv: list[str] | None = None) -> int:
    """Console script ``segmentation_lifecycle_node``: exit 0 on SIGINT/SIGTERM in any state."""
    return run_node(SegmentationLifecycleNode, None, argv)


if __name__ == "__main__":
    sys.exit(main())
