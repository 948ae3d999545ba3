"""launch_testing test of launch/segment.launch.py, for ROS users' ``colcon test``.

Skipped where launch_testing / launch_ros are not installed (this repository's virtualenv).
It launches the file with a namespace and a remapped camera topic, publishes frames and expects
a mono8 mask with the frame's header on /<namespace>/liteseg/mask; a launched process that exits
meanwhile fails the test at once, with its last output lines. After shutdown every process must
have exited with 0.
"""

import os
import sys
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_testing")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # launch_fixtures, also when run by `launch_test`
pytest.importorskip("launch_ros")

import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402

from liteseg_ros.ros.environment import isolated_ros_environment  # noqa: E402

from launch_fixtures import ClientNodeTestCase, launch_description  # noqa: E402

NAMESPACE = "launch_test"
CAMERA_TOPIC = "/launch_test_camera/image_raw"

if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:  # not already isolated by conftest's fixture
    isolated_ros_environment()


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    return launch_description(image_topic=CAMERA_TOPIC, namespace=NAMESPACE, rviz="false")


class TestSegmentLaunch(ClientNodeTestCase):
    def test_mask_is_published_for_a_camera_frame(self, proc_info, proc_output):
        self.first_masks(proc_info, proc_output, {CAMERA_TOPIC: f"/{NAMESPACE}/liteseg/mask"})


@launch_testing.post_shutdown_test()
class TestSegmentLaunchShutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
