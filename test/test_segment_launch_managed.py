"""launch_testing test: managed:=true autostart:=true cameras:=[front, rear] through launch/segment.launch.py.

The lifecycle node is configured and activated by the launch file (as Nav2's launch files do), serves both
cameras from one model, and exits 0 at shutdown. Skipped where launch_testing / launch_ros are missing.
"""

import os
import sys
import time
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_testing")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # launch_fixtures, also when run by `launch_test`
pytest.importorskip("launch_ros")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from liteseg_ros.ros_env import isolated_ros_environment  # noqa: E402

from launch_fixtures import exit_report, exited_processes, launch_file, tiny_weights  # noqa: E402

NAMESPACE = "managed_launch"
CAMERAS = ("front", "rear")
HEIGHT, WIDTH = 48, 80

if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:  # not already isolated by conftest's fixture
    isolated_ros_environment()


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(launch_file())),
        launch_arguments={"weights": tiny_weights(), "input_width": "128", "input_height": "64", "device": "cpu",
                          "namespace": NAMESPACE, "managed": "true", "autostart": "true",
                          "cameras": "[front, rear]"}.items(),
    )
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class TestManagedLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("segment_launch_managed_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_autostarted_node_answers_each_camera(self, proc_info, proc_output):
        masks = {camera: [] for camera in CAMERAS}
        for camera in CAMERAS:
            self.node.create_subscription(Image, f"/{NAMESPACE}/liteseg/{camera}/mask", masks[camera].append, 10)
        publishers = {camera: self.node.create_publisher(Image, f"/{NAMESPACE}/{camera}/image", 10)
                      for camera in CAMERAS}
        deadline = time.monotonic() + 120.0
        while not all(masks.values()) and time.monotonic() < deadline:
            exited = exited_processes(proc_info)
            if exited:
                self.fail(exit_report(exited, proc_output))
            for camera, publisher in publishers.items():
                frame = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3,
                              data=bytes(HEIGHT * WIDTH * 3))
                frame.header.frame_id = f"{camera}_optical"
                publisher.publish(frame)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        for camera in CAMERAS:
            self.assertTrue(masks[camera], f"no mask on /{NAMESPACE}/liteseg/{camera}/mask: not activated?")
            self.assertEqual(masks[camera][0].header.frame_id, f"{camera}_optical")


@launch_testing.post_shutdown_test()
class TestManagedLaunchShutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
