"""launch_testing test: ``rviz:=true`` where rviz2 is not installed, and the default (relative) camera topic.

The launch file must not start a node it cannot pair with rviz2 and then fail: it warns and runs the node
alone, which answers frames on ``/<namespace>/camera/image_raw`` (the default image_topic is relative, so it
moves into the namespace with the outputs). Skipped where launch_testing is missing, and where rviz2 is
installed (the test must not open a window).
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

from launch_fixtures import ClientNodeTestCase, launch_description, rviz2_installed  # noqa: E402

NAMESPACE = "no_rviz"

if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in os.environ:  # not already isolated by conftest's fixture
    isolated_ros_environment()


@pytest.mark.launch_test
@pytest.mark.skipif(rviz2_installed(), reason="rviz2 is installed: this test is about launching without it")
@launch_testing.markers.keep_alive
def generate_test_description():
    return launch_description(namespace=NAMESPACE, rviz="true")


class TestLaunchWithoutRviz2(ClientNodeTestCase):
    def test_the_node_alone_answers_on_the_namespaced_default_topic(self, proc_info, proc_output):
        self.first_masks(proc_info, proc_output, {f"/{NAMESPACE}/camera/image_raw": f"/{NAMESPACE}/liteseg/mask"})
        launched = [action.process_details["name"] for action in proc_output.processes()]
        self.assertEqual(len(launched), 1, f"only the node runs, rviz2 is not started: {launched}")
        self.assertTrue(launched[0].startswith("segmentation_node-"), launched)


@launch_testing.post_shutdown_test()
class TestLaunchWithoutRviz2Shutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
