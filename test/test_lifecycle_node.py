"""segmentation_lifecycle_node in its own process, driven through the standard lifecycle services
(~/change_state, ~/get_state: lifecycle_msgs), as Nav2's lifecycle manager or launch_ros would."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import Image
from test_node_io import raw_message, same_stamp, scene

from liteseg_ros.images import conversions

from conftest import spawn_node

pytestmark = pytest.mark.ros

NAMESPACE = "/managed"
NODE = f"{NAMESPACE}/liteseg"
INPUT = f"{NAMESPACE}/image"
SIZE = {"input_height": 64, "input_width": 128, "device": "cpu", "summary_period": 0.0}


def call(client, service_type, name: str, request, timeout: float = 30.0):
    service = client.node.create_client(service_type, name)
    try:
        assert service.wait_for_service(timeout_sec=timeout), f"{name} is not available"
        future = service.call_async(request)
        client.wait_for(future.done, timeout, name)
        return future.result()
    finally:
        client.node.destroy_client(service)


def state(client) -> int:
    return call(client, GetState, f"{NODE}/get_state", GetState.Request()).current_state.id


def transition(client, transition_id: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition_id))
    return call(client, ChangeState, f"{NODE}/change_state", request).success


def send_frames(publisher, count: int = 3) -> list:
    """Publish ``count`` frames; return their headers."""
    sent = []
    for _ in range(count):
        msg = raw_message(scene(seed=3), "rgb8")
        sent.append(msg.header)
        publisher.publish(msg)
    return sent


def answers(collector, sent: list) -> list[Image]:
    """The masks that answer frames of ``sent``."""
    return [m for m in collector.snapshot() if any(same_stamp(m.header, h) for h in sent)]


def answered_frame(client, publisher, collector, timeout: float = 30.0) -> Image:
    """Publish a frame every half second until one is answered; return its mask. The node handles frames in
    order, so a frame sent earlier that has no answer by then never gets one."""
    sent, sent_at = [], [0.0]

    def answered():
        if time.monotonic() - sent_at[0] > 0.5:
            sent.extend(send_frames(publisher, 1))
            sent_at[0] = time.monotonic()
        found = answers(collector, sent)
        return found[-1] if found else None

    return client.wait_for(answered, timeout, "a mask answering a frame")


def lifecycle_state_in_diagnostics(client, diagnostics, expected: str) -> None:
    def reported():
        for array in reversed(diagnostics.snapshot()):
            for status in array.status:
                if status.name == f"{NODE}: model":
                    return {kv.key: kv.value for kv in status.values}["lifecycle state"] == expected
        return False
    client.wait_for(reported, 10.0, f"lifecycle state {expected} in /diagnostics")


@pytest.fixture(scope="module")
def managed(ros_client, tmp_path_factory):
    """A lifecycle node whose first weights do not exist (its first configure must fail)."""
    process = spawn_lifecycle(tmp_path_factory.mktemp("managed"), {**SIZE, "weights": "/nonexistent/liteseg.pt"})
    yield process
    if process.process.poll() is None:
        process.stop(signal.SIGKILL)


def spawn_lifecycle(log_dir, parameters, namespace: str = NAMESPACE):
    return spawn_node(log_dir, namespace, parameters, executable="segmentation_lifecycle_node")


def test_the_lifecycle_from_a_failed_configure_to_shutdown(managed, ros_client, tiny_weights):
    from liteseg_ros.inference.segmenter import Segmenter

    diagnostics = ros_client.collector(DiagnosticArray, "/diagnostics", depth=50)
    publisher = ros_client.publisher(Image, INPUT)
    masks = ros_client.collector(Image, f"{NODE}/mask")
    assert state(ros_client) == State.PRIMARY_STATE_UNCONFIGURED
    assert ros_client.node.count_subscribers(INPUT) == 0, "no subscription before activate"
    lifecycle_state_in_diagnostics(ros_client, diagnostics, "unconfigured")

    assert not transition(ros_client, Transition.TRANSITION_CONFIGURE), "configure with missing weights fails"
    ros_client.wait_for(lambda: "cannot configure: weights file /nonexistent/liteseg.pt does not exist"
                        in managed.stderr(), 10.0, "the failure's reason in the log")
    assert state(ros_client) == State.PRIMARY_STATE_UNCONFIGURED and managed.process.poll() is None

    results = ros_client.set_parameters(NODE, {"weights": str(tiny_weights)})
    assert all(result.successful for result in results)
    assert transition(ros_client, Transition.TRANSITION_CONFIGURE), managed.stderr()
    assert state(ros_client) == State.PRIMARY_STATE_INACTIVE
    assert ros_client.node.count_subscribers(INPUT) == 0
    while_inactive = send_frames(publisher)

    assert transition(ros_client, Transition.TRANSITION_ACTIVATE)
    ros_client.wait_for(lambda: ros_client.node.count_subscribers(INPUT), 10.0, "the input subscription")
    lifecycle_state_in_diagnostics(ros_client, diagnostics, "active")
    answer = answered_frame(ros_client, publisher, masks)  # the node's outputs are computed once it hears us
    expected = Segmenter(str(tiny_weights), device="cpu", input_size=(64, 128)).segment(scene(seed=3)).mask
    assert np.array_equal(conversions.image_msg_to_array(answer), expected)
    assert answers(masks, while_inactive) == [], "no masks for frames sent while inactive"

    assert transition(ros_client, Transition.TRANSITION_DEACTIVATE)
    ros_client.wait_for(lambda: ros_client.node.count_subscribers(INPUT) == 0, 10.0, "no input subscription")
    lifecycle_state_in_diagnostics(ros_client, diagnostics, "inactive")
    while_deactivated = send_frames(publisher)
    assert transition(ros_client, Transition.TRANSITION_ACTIVATE)  # a frame answered after this is the barrier
    ros_client.wait_for(lambda: ros_client.node.count_subscribers(INPUT), 10.0, "the input subscription")
    answered_frame(ros_client, publisher, masks)
    assert answers(masks, while_deactivated) == [], "no masks for frames sent after deactivate"
    assert transition(ros_client, Transition.TRANSITION_DEACTIVATE)

    assert transition(ros_client, Transition.TRANSITION_CLEANUP)
    assert state(ros_client) == State.PRIMARY_STATE_UNCONFIGURED
    assert "cleaned up: model released" in managed.stderr()
    assert managed.stop(signal.SIGTERM) == 0, managed.stderr()
    assert "Traceback" not in managed.stderr()


@pytest.mark.parametrize("signum, to_state", [(signal.SIGINT, "unconfigured"), (signal.SIGTERM, "active"),
                                              (signal.SIGINT, "active")])
def test_signals_end_the_managed_node_with_0_in_any_state(ros_client, tiny_weights, tmp_path, signum, to_state):
    namespace = f"/managed_{signum}_{to_state}"
    process = spawn_lifecycle(tmp_path, {**SIZE, "weights": str(tiny_weights)}, namespace)
    node = f"{namespace}/liteseg"
    call(ros_client, GetState, f"{node}/get_state", GetState.Request())
    if to_state == "active":
        for transition_id in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            request = ChangeState.Request(transition=Transition(id=transition_id))
            assert call(ros_client, ChangeState, f"{node}/change_state", request).success
    assert process.stop(signum) == 0, process.stderr()
    assert "Traceback" not in process.stderr()
