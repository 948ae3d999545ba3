"""Your own classes through real node processes, as a ROS client sees them: ~/label_info (vision_msgs/LabelInfo,
generated from its 4.1.1 message text) for a late subscriber, the colour mask in the class set's colours,
~/confidence, a class map, and the node without vision_msgs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from sensor_msgs.msg import Image
from test_lifecycle_node import call
from test_node_io import raw_message

from liteseg_ros.classes import ClassSet
from liteseg_ros.images.conversions import image_msg_to_array
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.outputs import OUTPUT_TOPICS
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import ROOT, node_environment, random_weights, spawn_node, wait_until_ready

pytestmark = pytest.mark.ros

# vision_msgs/msg/LabelInfo of vision_msgs 4.1.1 (Jazzy), computed from its message text by rosbags' independent
# implementation of REP-2011, which gives the real std_msgs/Header's hash too (test_the_hash_reference_is_sound).
LABEL_INFO_HASH = "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783"
ROBOT = ClassSet(("free space", "straße à", "obstacle", "végétation", "sky"),
                 ((128, 64, 128), (244, 35, 232), (220, 20, 60), (107, 142, 35), (70, 130, 180)))
NODE_SIZE = {"device": "cpu", "input_height": 96, "input_width": 160, "summary_period": 0.0}
CLASS_MAP = """classes:
  - {name: drivable, color: [128, 64, 128], from: [road, sidewalk]}
  - {name: "obstacle à", color: [220, 20, 60], from: [person, rider, car, truck, bus, motorcycle, bicycle, train]}
other: {name: background, color: [0, 0, 0]}
"""


@pytest.fixture(scope="module")
def robot_weights(tmp_path_factory) -> Path:
    return random_weights(tmp_path_factory.mktemp("robot") / "robot.pt", ROBOT)


def listen(topic: str, environment: dict[str, str], timeout: float = 60.0) -> dict:
    """Run the LabelInfo listener process (started now: a late subscriber) and return what it saw."""
    run = subprocess.run([sys.executable, str(ROOT / "test" / "ros_clients" / "label_info_listener.py"), topic,
                          str(timeout)], env={**node_environment(), **environment}, capture_output=True,
                         timeout=timeout + 60, text=True)
    assert run.stdout.strip(), run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_hash_reference_is_sound():
    """The reference hash comes from rosbags, which computes the real Header's hash (shipped in std_msgs' wheel)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    shipped = json.loads(Path(sys.prefix, "share/std_msgs/msg/Header.json").read_text())
    assert store.hash_rihs01("std_msgs/msg/Header") == shipped["type_hashes"][0]["hash_string"]
    for name in ("VisionClass", "LabelInfo"):
        text = (ROOT / "test" / "data" / "vision_msgs" / "msg" / f"{name}.msg").read_text()
        store.register(get_types_from_msg(text, f"vision_msgs/msg/{name}"))
    assert store.hash_rihs01("vision_msgs/msg/LabelInfo") == LABEL_INFO_HASH


def test_a_late_subscriber_gets_the_class_set_as_label_info(ros_client, tmp_path, robot_weights,
                                                            vision_msgs_environment):
    node = spawn_node(tmp_path, "/labels", {**NODE_SIZE, "weights": robot_weights}, env=vision_msgs_environment)
    try:
        wait_until_ready(ros_client, node, "/labels/image")
        seen = listen("/labels/liteseg/label_info", vision_msgs_environment)
    finally:
        node.stop(signal.SIGINT)
    assert seen["received"] == 1
    assert seen["names"] == list(ROBOT.names) and seen["ids"] == [0, 1, 2, 3, 4] and seen["threshold"] == 0.0
    assert seen["type_hashes"] == [LABEL_INFO_HASH]
    assert seen["durability"] == ["TRANSIENT_LOCAL"]


def test_each_camera_has_its_label_info(ros_client, tmp_path, robot_weights, vision_msgs_environment):
    parameters = {**NODE_SIZE, "weights": robot_weights, "cameras": "[front, rear]"}
    node = spawn_node(tmp_path, "/two", parameters, env=vision_msgs_environment)
    try:
        ros_client.wait_for(lambda: ros_client.node.count_subscribers("/two/rear/image")
                            and ros_client.node.count_publishers("/two/liteseg/rear/confidence"), 60, "the node")
        seen = {camera: listen(f"/two/liteseg/{camera}/label_info", vision_msgs_environment)
                for camera in ("front", "rear")}
    finally:
        node.stop(signal.SIGINT)
    assert all(result["names"] == list(ROBOT.names) for result in seen.values()), seen


def test_the_managed_node_sends_label_info_at_configure_and_again_for_a_new_class_set(
        ros_client, tmp_path, tiny_weights, vision_msgs_environment):
    class_map = tmp_path / "robot_map.yaml"
    class_map.write_text(CLASS_MAP, encoding="utf-8")
    parameters = {**NODE_SIZE, "weights": tiny_weights, "class_map": class_map}
    node = spawn_node(tmp_path, "/managed_labels", parameters, env=vision_msgs_environment,
                      executable="segmentation_lifecycle_node")
    try:
        change = "/managed_labels/liteseg/change_state"
        configure = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
        assert call(ros_client, ChangeState, change, configure, timeout=60).success
        merged = listen("/managed_labels/liteseg/label_info", vision_msgs_environment)  # inactive, not active
        cleanup = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CLEANUP))
        assert call(ros_client, ChangeState, change, cleanup).success
        assert ros_client.set_parameters("/managed_labels/liteseg", {"class_map": ""})[0].successful
        assert call(ros_client, ChangeState, change, configure, timeout=60).success
        own = listen("/managed_labels/liteseg/label_info", vision_msgs_environment)  # the class set changed
    finally:
        node.stop(signal.SIGINT)
    assert merged["names"] == ["drivable", "obstacle à", "background"] and merged["ids"] == [0, 1, 2]
    assert own["names"] == list(CITYSCAPES.names) and own["ids"] == list(range(19))


def outputs_from_node(client, log_dir: Path, namespace: str, parameters: dict, image: np.ndarray,
                      outputs: tuple[str, ...] = ("mask", "color", "confidence"), env: dict | None = None,
                      while_running=None) -> dict:
    """Start a node that publishes ``outputs`` always; send ``image`` until all of them come back for it; call
    ``while_running`` (if given) before stopping the node; return the outputs as arrays (and its result under
    ``"while_running"``, the node's log under ``"log"``)."""
    switches = {f"publish_{name}": "always" for name in outputs}
    node = spawn_node(log_dir, namespace, {**parameters, **switches}, env=env)
    try:
        wait_until_ready(client, node, f"{namespace}/image")
        collectors = {name: client.collector(Image, f"{namespace}/liteseg/{OUTPUT_TOPICS[name]}") for name in outputs}
        publisher = client.publisher(Image, f"{namespace}/image")
        sent = raw_message(image, "rgb8")

        def answers():
            publisher.publish(sent)
            found = {name: c.find(lambda m: m.header.stamp == sent.header.stamp) for name, c in collectors.items()}
            return found if all(found.values()) else None

        found = client.wait_for(answers, 60, ", ".join(outputs))
        extra = while_running() if while_running else None
    finally:
        node.stop(signal.SIGINT)
    assert found["confidence"].encoding == "mono8" and found["confidence"].header.frame_id == sent.header.frame_id
    return {**{name: image_msg_to_array(message) for name, message in found.items()}, "while_running": extra,
            "log": node.stderr() + node.stdout()}


def test_the_node_publishes_its_own_classes_colours_and_confidence(ros_client, tmp_path, robot_weights):
    image = unseen_frames(1, 180, 320)[0].image
    published = outputs_from_node(ros_client, tmp_path, "/own", {**NODE_SIZE, "weights": robot_weights}, image)
    expected = Segmenter(robot_weights, device="cpu", input_size=(96, 160)).segment(
        image, outputs=("mask", "color", "confidence"))
    assert np.mean(published["mask"] == expected.mask) >= 0.999
    assert set(np.unique(published["mask"])) <= set(range(len(ROBOT)))
    assert np.array_equal(published["color"], ROBOT.palette()[published["mask"]])
    assert np.mean(np.abs(published["confidence"].astype(int) - expected.confidence)) <= 0.5
    assert published["confidence"].min() >= 255 // len(ROBOT)  # the winner's probability is at least 1/N


def test_a_class_map_merges_the_published_classes_in_the_node(ros_client, tmp_path, tiny_weights):
    class_map = tmp_path / "map.yaml"
    class_map.write_text(CLASS_MAP, encoding="utf-8")
    image = unseen_frames(1, 180, 320)[0].image
    published = outputs_from_node(ros_client, tmp_path, "/merged",
                                  {**NODE_SIZE, "weights": tiny_weights, "class_map": class_map}, image)
    expected = Segmenter(tiny_weights, device="cpu", input_size=(96, 160), class_map=class_map).segment(
        image, outputs=("mask", "confidence"))
    assert np.mean(published["mask"] == expected.mask) >= 0.999
    assert set(np.unique(published["mask"])) <= {0, 1, 2}
    assert np.array_equal(published["color"], np.array([(128, 64, 128), (220, 20, 60), (0, 0, 0)],
                                                       np.uint8)[published["mask"]])


def test_a_managed_node_with_a_bad_class_map_fails_configure_and_says_why(ros_client, tmp_path, tiny_weights):
    class_map = tmp_path / "other_model.yaml"
    class_map.write_text("classes:\n  - {name: free, color: [0, 255, 0], from: [floor]}\n", encoding="utf-8")
    node = spawn_node(tmp_path, "/managed_bad_map", {**NODE_SIZE, "weights": tiny_weights, "class_map": class_map},
                      executable="segmentation_lifecycle_node")
    try:
        request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
        result = call(ros_client, ChangeState, "/managed_bad_map/liteseg/change_state", request, timeout=60)
        assert not result.success
        assert node.process.poll() is None  # still there, unconfigured, for a corrected configure
    finally:
        node.stop(signal.SIGINT)
    errors = [line for line in node.stderr().splitlines() if "cannot configure" in line]
    assert len(errors) == 1 and "'floor', which the model does not have" in errors[0], node.stderr()


def test_live_replay_scores_with_the_class_set_of_the_node_label_info(ros_client, tmp_path, robot_weights,
                                                                      vision_msgs_environment):
    from bag_factory import write_bag
    from conftest import installed_script

    bag = write_bag(tmp_path / "in", frames=3, gt=True)
    node = spawn_node(tmp_path / "node", "/live", {**NODE_SIZE, "weights": robot_weights, "publish_mask": "always"},
                      extra_args=("-r", "image:=/camera/image_raw"), env=vision_msgs_environment)
    try:
        run = subprocess.run([installed_script("liteseg-replay"), bag, "--out", tmp_path / "out", "--live",
                              "--node-namespace", "/live/liteseg", "--gt-topic", "/camera/labels",
                              "--gt-encoding", "trainids", "--json"], capture_output=True, text=True, timeout=180,
                             env={**node_environment(), **vision_msgs_environment})
        with_labelids = subprocess.run([installed_script("liteseg-replay"), bag, "--out", tmp_path / "out2", "--live",
                                        "--node-namespace", "/live/liteseg", "--gt-topic", "/camera/labels"],
                                       capture_output=True, text=True, timeout=180,
                                       env={**node_environment(), **vision_msgs_environment})
    finally:
        node.stop(signal.SIGINT)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["classes"]["names"] == list(ROBOT.names) and list(report["per_class"]) == list(ROBOT.names)
    assert report["frames"] == 3 and report["per_category"] == {}
    assert with_labelids.returncode == 2 and "--gt-encoding trainids" in with_labelids.stderr


def test_without_vision_msgs_the_node_says_so_once_and_works(ros_client, tmp_path, tiny_weights):
    image = unseen_frames(1, 90, 160)[0].image
    node = spawn_node(tmp_path, "/plain_labels", {**NODE_SIZE, "weights": tiny_weights, "publish_mask": "always"})
    try:
        wait_until_ready(ros_client, node, "/plain_labels/image")
        masks = ros_client.collector(Image, "/plain_labels/liteseg/mask")
        publisher = ros_client.publisher(Image, "/plain_labels/image")
        sent = raw_message(image, "rgb8")
        ros_client.wait_for(lambda: publisher.publish(sent) or masks.find(
            lambda m: m.header.stamp == sent.header.stamp), 60, "a mask")
    finally:
        node.stop(signal.SIGINT)
    log = node.stderr() + node.stdout()
    assert log.count("vision_msgs is not installed") == 1, log
    if not Path("/opt/ros").is_dir():  # the pip road: no apt to advise
        assert "vision_msgs is not on PyPI" in log and "sudo apt" not in log, log
    assert "/plain_labels/liteseg/label_info" not in ros_client.node.get_topic_names_and_types().__repr__()


@pytest.mark.parametrize("text, message", [
    ("classes:\n  - {name: drivable, color: [128, 64, 128], from: [runway]}\n", "'runway', which the model does not"),
    ("classes:\n  - {name: a, color: [1, 2, 3], from: [road]}\n  - {name: b, color: [1, 2, 4], from: [road]}\n"
     "other: {name: c, color: [0, 0, 0]}\n", "'road' is listed twice"),
    ("classes:\n  - {name: a, color: [1, 2, 3]}\n", "needs 'from:'"),
    ("classes:\n  - {name: a, color: [1, 2, 300], from: [road]}\n", "integers 0..255"),
])
def test_a_bad_class_map_is_a_one_line_start_up_error(tmp_path, tiny_weights, text, message):
    class_map = tmp_path / "bad.yaml"
    class_map.write_text(text, encoding="utf-8")
    node = spawn_node(tmp_path, "/bad_map", {**NODE_SIZE, "weights": tiny_weights, "class_map": class_map})
    try:
        code = node.process.wait(timeout=120)
    finally:
        node.stop(signal.SIGINT)
    errors = [line for line in node.stderr().splitlines() if "cannot start" in line]
    assert code == 1 and len(errors) == 1 and message in errors[0] and str(class_map) in errors[0], node.stderr()
    assert "Traceback" not in node.stderr()


def test_the_missing_vision_msgs_line_advises_apt_only_with_a_ros_install(monkeypatch, tmp_path):
    from liteseg_ros.ros import label_info

    monkeypatch.setattr(label_info, "ROS_ROOT", tmp_path)
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    assert "sudo" not in label_info.missing_text() and "docs/ros.md" in label_info.missing_text()
    (tmp_path / "jazzy").mkdir()
    assert label_info.missing_text().endswith("install it with: sudo apt install ros-jazzy-vision-msgs")
