"""Console entry points of the nodes: SIGINT/SIGTERM are handled before the heavy imports.

Importing rclpy and the node takes a moment; a launch file that is stopped in that moment (Ctrl-C right after
``ros2 launch``, a launch test that ends early) must not see a KeyboardInterrupt traceback and exit code -2.
Until :func:`liteseg_ros.ros.node.main` installs its own handlers, a signal ends the process at once with 0:
nothing has been started that needs stopping.
"""

import os
import signal


def _exit_while_importing(_signum: int, _frame: object) -> None:
    os._exit(0)


def _exit_quietly_on_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_while_importing)


def main() -> int:
    """``segmentation_node``: install the early signal handlers, then import and run the node."""
    _exit_quietly_on_signals()
    from liteseg_ros.ros.node import main as node_main

    return node_main()


def lifecycle_main() -> int:
    """``segmentation_lifecycle_node``: the same, for the managed node."""
    _exit_quietly_on_signals()
    from liteseg_ros.ros.lifecycle_node import main as lifecycle_node_main

    return lifecycle_node_main()
