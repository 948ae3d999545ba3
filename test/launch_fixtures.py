"""Helpers of the launch_testing tests (no launch import here, so the rest of the suite can import it)."""

from __future__ import annotations

import tempfile
import time
import unittest
from pathlib import Path


def launch_file() -> Path:
    """The installed launch file (ament index), else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("liteseg_ros")) / "launch" / "segment.launch.py"
    except Exception:
        return Path(__file__).resolve().parent.parent / "launch" / "segment.launch.py"


def rviz2_installed() -> bool:
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory("rviz2")
        return True
    except Exception:
        return False


def tiny_weights() -> str:
    """A random-weight mobilenetv2 checkpoint in a temporary folder (quick to load)."""
    import torch

    from liteseg_ros.model import build_liteseg, save_checkpoint

    torch.manual_seed(0)
    path = Path(tempfile.mkdtemp(prefix="liteseg_launch_test_")) / "liteseg_mobilenetv2.pt"
    save_checkpoint(path, build_liteseg("mobilenetv2").eval())
    return str(path)


def exited_processes(proc_info) -> list:
    """launch_testing's ProcessExited events so far (its proc_info also holds ProcessStarted events)."""
    return [event for event in proc_info if getattr(event, "returncode", None) is not None]


def exit_report(exited, proc_output, lines: int = 15) -> str:
    """Which launched processes exited (ProcessExited events), with the last lines each printed."""
    parts = []
    for event in exited:
        name = event.action.process_details["name"]
        try:
            text = b"".join(io.text for io in proc_output[event.action]).decode(errors="replace")
        except Exception:  # launch_testing raises when a process printed nothing
            text = ""
        tail = "\n".join(text.splitlines()[-lines:]) or "(no output)"
        parts.append(f"{name} exited with {event.returncode} before a mask arrived; its last output:\n{tail}")
    return "\n".join(parts)


def launch_description(**arguments: str):
    """launch/segment.launch.py included with ``arguments`` (tiny random weights, CPU, 64x128 unless given),
    then ReadyToTest."""
    import launch
    import launch_testing.actions
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    defaults = {"weights": tiny_weights(), "input_width": "128", "input_height": "64", "device": "cpu"}
    segment = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(launch_file())),
                                       launch_arguments={**defaults, **arguments}.items())
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class ClientNodeTestCase(unittest.TestCase):
    """A test case with an rclpy client node (``self.node``) for the class's tests."""

    @classmethod
    def setUpClass(cls):
        import rclpy

        rclpy.init()
        cls.node = rclpy.create_node(f"{cls.__name__.lower()}_client")

    @classmethod
    def tearDownClass(cls):
        import rclpy

        cls.node.destroy_node()
        rclpy.shutdown()

    def first_masks(self, proc_info, proc_output, cameras: dict[str, str], height: int = 48, width: int = 80,
                    timeout: float = 120.0) -> dict[str, object]:
        """Publish black rgb8 frames on each input topic of ``cameras`` (input topic -> output mask topic), with
        frame_id = the input topic, until every output has a mask; fail at once if a launched process exits."""
        import rclpy
        from sensor_msgs.msg import Image

        masks = {topic: [] for topic in cameras}
        for input_topic, mask_topic in cameras.items():
            self.node.create_subscription(Image, mask_topic, masks[input_topic].append, 10)
        publishers = {topic: self.node.create_publisher(Image, topic, 10) for topic in cameras}
        deadline = time.monotonic() + timeout
        while not all(masks.values()) and time.monotonic() < deadline:
            exited = exited_processes(proc_info)
            if exited:
                self.fail(exit_report(exited, proc_output))
            for topic, publisher in publishers.items():
                frame = Image(height=height, width=width, encoding="rgb8", step=width * 3,
                              data=bytes(height * width * 3))
                frame.header.frame_id = topic
                publisher.publish(frame)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        for topic, received in masks.items():
            self.assertTrue(received, f"no mask on {cameras[topic]} for frames on {topic}")
            self.assertEqual((received[0].height, received[0].width, received[0].encoding), (height, width, "mono8"))
            self.assertEqual(received[0].header.frame_id, topic)
        return {topic: received[0] for topic, received in masks.items()}
