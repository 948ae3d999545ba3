"""launch_testing test: ``rviz:=true`` where rviz2 is not installed, and the default (relative) camera topic.

The launch file must not start a node it cannot pair with rviz2 and then fail: it warns and runs the node
alone, which answers frames on ``/<namespace>/camera/image_raw`` (the default image_topic is relative, so it
moves into the namespace with the outputs). Skipped where launch_testing is missing, and where rviz2 is
installed (the test must not open a window).
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

from launch_fixtures import exit_report, exited_processes, launch_file, rviz2_installed, tiny_weights  # noqa: E402

NAMESPACE = "no_rviz"
HEIGHT, WIDTH = 48, 80

if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:  # not already isolated by conftest's fixture
    isolated_ros_environment()


@pytest.mark.launch_test
@pytest.mark.skipif(rviz2_installed(), reason="rviz2 is installed: this test is about launching without it")
@launch_testing.markers.keep_alive
def generate_test_description():
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(launch_file())),
        launch_arguments={"weights": tiny_weights(), "input_width": "128", "input_height": "64", "device": "cpu",
                          "namespace": NAMESPACE, "rviz": "true"}.items(),
    )
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class TestLaunchWithoutRviz2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("segment_launch_without_rviz2_test")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_the_node_alone_answers_on_the_namespaced_default_topic(self, proc_info, proc_output):
        masks = []
        self.node.create_subscription(Image, f"/{NAMESPACE}/liteseg/mask", masks.append, 10)
        publisher = self.node.create_publisher(Image, f"/{NAMESPACE}/camera/image_raw", 10)
        deadline = time.monotonic() + 120.0
        while not masks and time.monotonic() < deadline:
            exited = exited_processes(proc_info)
            if exited:
                self.fail(exit_report(exited, proc_output))
            frame = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=bytes(HEIGHT * WIDTH * 3))
            frame.header.frame_id = "no_rviz_camera"
            publisher.publish(frame)
            rclpy.spin_once(self.node, timeout_sec=0.5)
        self.assertTrue(masks, f"no mask on /{NAMESPACE}/liteseg/mask for frames on /{NAMESPACE}/camera/image_raw")
        self.assertEqual(masks[0].header.frame_id, "no_rviz_camera")
        launched = [action.process_details["name"] for action in proc_output.processes()]
        self.assertEqual(len(launched), 1, f"only the node runs, rviz2 is not started: {launched}")
        self.assertTrue(launched[0].startswith("segmentation_node-"), launched)


@launch_testing.post_shutdown_test()
class TestLaunchWithoutRviz2Shutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
