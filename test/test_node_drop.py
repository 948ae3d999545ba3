"""Drop-oldest under load: a 60 Hz camera faster than inference never builds up latency.

The node runs a 1024x2048 network input (80-130 ms per frame on 2 CPU cores), far slower than a frame every
17 ms, so most frames must be overwritten before the worker takes them. (At the default 360x640 the node now
keeps up with 30 Hz.)
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from conftest import spawn_node, wait_until_ready

pytestmark = pytest.mark.ros

PUBLISH_HZ = 60.0
NETWORK_INPUT = (1024, 2048)
FRAMES = 90
FRAME_SHAPE = (480, 640, 3)
# Generous: with a FIFO queue instead of drop-oldest, the lag at the end of the burst would be
# FRAMES x inference time - burst length, about 8 s at 1024x2048 on 2 CPU cores.
LATENCY_BOUND_S = 2.0


def counters(diagnostics, node_name: str) -> dict[str, int] | None:
    for array in reversed(diagnostics.snapshot()):
        for status in array.status:
            if status.name == f"{node_name}: segmentation":
                return {kv.key: int(kv.value) for kv in status.values if kv.value.isdigit()}
    return None


def settled(diagnostics, node_name: str, published: int) -> dict[str, int] | None:
    """The node's counters once every one of ``published`` frames is accounted for (received or lost on the way,
    and each received one processed, dropped or rejected), else None."""
    counts = counters(diagnostics, node_name)
    if counts is None or counts["received frames"] + counts["lost frames (before the node)"] != published:
        return None
    handled = counts["processed frames"] + counts["dropped frames"] + counts["rejected frames"]
    return counts if handled == counts["received frames"] else None


def stamped_frame(client, pixels: bytes) -> Image:
    msg = Image(header=Header(frame_id="camera"), height=FRAME_SHAPE[0], width=FRAME_SHAPE[1], encoding="rgb8",
                step=FRAME_SHAPE[1] * 3, data=pixels)
    msg.header.stamp = client.node.get_clock().now().to_msg()
    return msg


@pytest.fixture(scope="module")
def loaded_node(ros_client, tiny_weights, tmp_path_factory):
    process = spawn_node(tmp_path_factory.mktemp("node_drop"), "/drop",
                         {"weights": str(tiny_weights), "device": "cpu", "summary_period": 0.0,
                          "input_height": NETWORK_INPUT[0], "input_width": NETWORK_INPUT[1]})
    wait_until_ready(ros_client, process, "/drop/image")
    yield process
    process.stop(signal.SIGINT)


def test_a_fast_camera_is_thinned_not_queued(loaded_node, ros_client):
    diagnostics = ros_client.collector(DiagnosticArray, "/diagnostics", depth=100)
    masks = ros_client.collector(Image, f"{loaded_node.name}/mask")
    publisher = ros_client.publisher(Image, "/drop/image")
    pixels = np.random.default_rng(0).integers(0, 256, size=FRAME_SHAPE, dtype=np.uint8).tobytes()

    warm_ups, sent_at = [], []

    def answered_warm_up() -> bool:  # one frame at a time, the next once the last one is answered or stale
        if warm_ups and masks.find(lambda m: m.header.stamp == warm_ups[-1].header.stamp):
            return True
        if not warm_ups or time.monotonic() - sent_at[-1] > 1.0:
            warm_ups.append(stamped_frame(ros_client, pixels))
            sent_at.append(time.monotonic())
            publisher.publish(warm_ups[-1])
        return False

    ros_client.wait_for(answered_warm_up, 60.0, f"the first mask ({loaded_node.stderr()})")
    before = ros_client.wait_for(lambda: settled(diagnostics, loaded_node.name, len(warm_ups)), 20.0,
                                 "diagnostics counting the warm-up frames")

    published_at = {}
    start = time.monotonic()
    for i in range(FRAMES):
        time.sleep(max(0.0, start + i / PUBLISH_HZ - time.monotonic()))
        msg = stamped_frame(ros_client, pixels)
        publisher.publish(msg)
        published_at[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()
    last = max(published_at)
    ros_client.wait_for(lambda: masks.find(lambda m: (m.header.stamp.sec, m.header.stamp.nanosec) == last),
                        10.0, "the mask of the newest frame")

    with masks._lock:
        received = [((m.header.stamp.sec, m.header.stamp.nanosec), t) for m, t in zip(masks.messages, masks.arrival)]
    outputs = [(stamp, arrived) for stamp, arrived in received if stamp in published_at]
    lags = [arrived - published_at[stamp] for stamp, arrived in outputs]
    print(f"\n{FRAMES} frames at {PUBLISH_HZ:.0f} Hz -> {len(outputs)} masks; lag max {max(lags):.3f} s, "
          f"median {np.median(lags):.3f} s")
    assert 2 <= len(outputs) < FRAMES
    assert max(lags) < LATENCY_BOUND_S

    after = ros_client.wait_for(lambda: settled(diagnostics, loaded_node.name, len(warm_ups) + FRAMES), 20.0,
                                "diagnostics counting the whole burst")
    delta = {key: after[key] - before[key] for key in after}
    print(delta)
    # Reliable transport: every frame reached the node's DDS reader; a busy executor may find some
    # overwritten in the keep-last queue (counted from sequence gaps), the rest reach the callback.
    assert delta["received frames"] + delta["lost frames (before the node)"] == FRAMES
    assert delta["dropped frames"] > 0
    assert delta["processed frames"] == len(outputs)
    assert delta["processed frames"] + delta["dropped frames"] == delta["received frames"]
    assert delta["rejected frames"] == 0
