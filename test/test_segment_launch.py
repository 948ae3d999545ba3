"""launch_testing test of launch/segment.launch.py, for ROS users' ``colcon test``.

Skipped where launch_testing / launch_ros are not installed (this repository's virtualenv).
It launches the file with a namespace and a remapped camera topic, publishes frames and expects
a mono8 mask with the frame's header on /<namespace>/liteseg/mask; a launched process that exits
meanwhile fails the test at once, with its last output lines. After shutdown every process must
have exited with 0.
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

NAMESPACE = "launch_test"
CAMERA_TOPIC = "/launch_test_camera/image_raw"
HEIGHT, WIDTH = 48, 80

if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:  # not already isolated by conftest's fixture
    isolated_ros_environment()


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(launch_file())),
        launch_arguments={
            "weights": tiny_weights(), "input_width": "128", "input_height": "64", "device": "cpu",
            "image_topic": CAMERA_TOPIC, "namespace": NAMESPACE, "rviz": "false",
        }.items(),
    )
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class TestSegmentLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("segment_launch_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_mask_is_published_for_a_camera_frame(self, proc_info, proc_output):
        masks = []
        self.node.create_subscription(Image, f"/{NAMESPACE}/liteseg/mask", masks.append, 10)
        publisher = self.node.create_publisher(Image, CAMERA_TOPIC, 10)
        deadline = time.monotonic() + 120.0
        while not masks and time.monotonic() < deadline:
            exited = exited_processes(proc_info)
            if exited:
                self.fail(exit_report(exited, proc_output))
            frame = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=bytes(HEIGHT * WIDTH * 3))
            frame.header.frame_id = "launch_test_camera"
            frame.header.stamp = self.node.get_clock().now().to_msg()
            publisher.publish(frame)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        self.assertTrue(masks, "no mask on the namespaced output topic")
        mask = masks[0]
        self.assertEqual((mask.height, mask.width, mask.encoding), (HEIGHT, WIDTH, "mono8"))
        self.assertEqual(mask.header.frame_id, "launch_test_camera")


@launch_testing.post_shutdown_test()
class TestSegmentLaunchShutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
