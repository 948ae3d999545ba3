"""launch_testing test: managed:=true autostart:=true cameras:=[front, rear] through launch/segment.launch.py.

The lifecycle node is configured and activated by the launch file (as Nav2's launch files do), serves both
cameras from one model, and exits 0 at shutdown. Skipped where launch_testing / launch_ros are missing.
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

NAMESPACE = "managed_launch"

if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:  # not already isolated by conftest's fixture
    isolated_ros_environment()


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    return launch_description(namespace=NAMESPACE, managed="true", autostart="true", cameras="[front, rear]")


class TestManagedLaunch(ClientNodeTestCase):
    def test_the_autostarted_node_answers_each_camera(self, proc_info, proc_output):
        self.first_masks(proc_info, proc_output, {f"/{NAMESPACE}/{camera}/image": f"/{NAMESPACE}/liteseg/{camera}/mask"
                                                  for camera in ("front", "rear")})


@launch_testing.post_shutdown_test()
class TestManagedLaunchShutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
