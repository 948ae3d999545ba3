"""The segmentation node in its own process: encodings, compressed input, headers, bad input, parameters, signals.

Two node processes (raw and compressed input) serve the whole module; outputs are compared with the
Segmenter run in this process on the same weights, the same decoded image and one torch thread. The raw
node runs the default optimisations (optimize=auto), the compressed node plain eager PyTorch (optimize=none).
"""

from __future__ import annotations

import itertools
import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from liteseg_ros.images import conversions
from liteseg_ros.labels import colorize
from liteseg_ros.ros import messages

from conftest import spawn_node, wait_until_ready

pytestmark = pytest.mark.ros

INPUT_SIZE = (64, 128)  # network input (H, W): small to keep CPU time low
HEIGHT, WIDTH = 48, 80  # camera frames
OUTPUTS = ("mask", "color_mask", "overlay")
_stamps = itertools.count(1)


def scene(height: int = HEIGHT, width: int = WIDTH, seed: int = 1) -> np.ndarray:
    """A smooth RGB scene with a few blocks: varied enough that the masks are not constant."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([255 * x / width, 255 * y / height, 128 + 100 * np.sin(x / 7.0)], axis=2)
    for _ in range(4):
        top, left = rng.integers(0, height - 8), rng.integers(0, width - 8)
        image[top:top + 12, left:left + 16] = rng.integers(0, 256, size=3)
    return image.clip(0, 255).astype(np.uint8)


def header(frame_id: str = "camera_optical") -> Header:
    """A header with a unique stamp near the current time."""
    now = time.time()
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = int(now), (int((now % 1) * 1e9) // 1000) * 1000 + next(_stamps) % 1000
    return msg


def raw_message(pixels: np.ndarray, encoding: str, padding: int = 0, frame_id: str = "camera_optical") -> Image:
    """An Image message with ``padding`` extra bytes per row (exercises ``step``)."""
    rows = np.ascontiguousarray(pixels).reshape(pixels.shape[0], -1)
    padded = np.zeros((rows.shape[0], rows.shape[1] + padding), dtype=np.uint8)
    padded[:, : rows.shape[1]] = rows
    return Image(header=header(frame_id), height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                 is_bigendian=0, step=padded.shape[1], data=padded.tobytes())


def same_stamp(a: Header, b: Header) -> bool:
    return a.stamp.sec == b.stamp.sec and a.stamp.nanosec == b.stamp.nanosec


class NodeUnderTest:
    """One node process with a publisher on its input and collectors on its outputs."""

    def __init__(self, client, process, input_type, input_topic):
        self.client, self.process = client, process
        self.publisher = client.publisher(input_type, input_topic)
        self.outputs = {}

    def subscribe_outputs(self):
        self.outputs = {name: self.client.collector(Image, f"{self.process.name}/{name}") for name in OUTPUTS}

    def send(self, msg, timeout: float = 20.0) -> dict[str, Image]:
        """Publish ``msg``; return the three outputs carrying its stamp."""
        self.publisher.publish(msg)
        return self.client.wait_for(lambda: self._outputs_for(msg.header), timeout, f"outputs of {msg.header.stamp}")

    def _outputs_for(self, msg_header):
        found = {name: c.find(lambda m: same_stamp(m.header, msg_header)) for name, c in self.outputs.items()}
        return found if all(found.values()) else None

    def warm_up(self, make_msg, timeout: float = 60.0) -> None:
        """Publish until all outputs flow (discovery of the output subscriptions takes a moment)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = make_msg()
            self.publisher.publish(msg)
            try:
                self.client.wait_for(lambda: self._outputs_for(msg.header), 1.0, "warm-up outputs")
                return
            except AssertionError:
                continue
        raise AssertionError(f"no outputs from {self.process.name}:\n{self.process.stderr()}")


@pytest.fixture(scope="module")
def diagnostics(ros_client):
    return ros_client.collector(DiagnosticArray, "/diagnostics", depth=100)


def latest_status(diagnostics, node: NodeUnderTest, newer_than: float = 0.0,
                  part: str = "segmentation") -> dict[str, str] | None:
    with diagnostics._lock:
        pairs = list(zip(diagnostics.messages, diagnostics.arrival))
    for array, arrived in reversed(pairs):
        for status in array.status:
            if status.name == f"{node.process.name}: {part}" and arrived > newer_than:
                return {kv.key: kv.value for kv in status.values} | {"_level": status.level, "_message": status.message}
    return None


def wait_for_counter(ros_client, diagnostics, node, key: str, at_least: int, timeout: float = 10.0) -> dict:
    return ros_client.wait_for(
        lambda: (s := latest_status(diagnostics, node)) and int(s[key]) >= at_least and s, timeout,
        f"{key} >= {at_least} in /diagnostics")


@pytest.fixture(scope="module")
def nodes(ros_client, tiny_weights, tmp_path_factory, diagnostics):
    """Start the raw and the compressed node together; subscribe to the raw node's outputs."""
    common = {"weights": str(tiny_weights), "input_height": INPUT_SIZE[0], "input_width": INPUT_SIZE[1],
              "device": "cpu", "summary_period": 2.0}
    logs = tmp_path_factory.mktemp("node_io")
    raw_process = spawn_node(logs / "raw", "/io_raw", common)
    compressed_process = spawn_node(logs / "compressed", "/io_compressed", {**common, "input_transport": "compressed",
                                                                                  "optimize": "none"})
    raw = NodeUnderTest(ros_client, raw_process, Image, "/io_raw/image")
    compressed = NodeUnderTest(ros_client, compressed_process, CompressedImage, "/io_compressed/image/compressed")
    wait_until_ready(ros_client, raw_process, "/io_raw/image")
    wait_until_ready(ros_client, compressed_process, "/io_compressed/image/compressed")
    raw.subscribe_outputs()
    raw.warm_up(lambda: raw_message(scene(), "rgb8"))
    yield {"raw": raw, "compressed": compressed}
    for process in (raw_process, compressed_process):
        if process.process.poll() is None:
            process.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def reference(tiny_weights):
    """The Segmenter the node runs, in this process."""
    import torch

    from liteseg_ros.inference.segmenter import Segmenter

    torch.set_num_threads(1)
    return Segmenter(str(tiny_weights), device="cpu", input_size=INPUT_SIZE, overlay_alpha=0.5)


@pytest.fixture(scope="module")
def eager_reference(tiny_weights):
    """The Segmenter the compressed node (optimize=none) runs, in this process."""
    from liteseg_ros.inference.segmenter import Segmenter

    return Segmenter(str(tiny_weights), device="cpu", input_size=INPUT_SIZE, overlay_alpha=0.5, optimize="none")


def assert_outputs_match(outputs, sent: Image | CompressedImage, expected, height=HEIGHT, width=WIDTH):
    for name, msg in outputs.items():
        assert msg.header.frame_id == sent.header.frame_id, name
        assert same_stamp(msg.header, sent.header), name
        assert (msg.height, msg.width) == (height, width), name
    mask = conversions.image_msg_to_array(outputs["mask"])
    colour = conversions.image_msg_to_array(outputs["color_mask"])
    overlay = conversions.image_msg_to_array(outputs["overlay"])
    assert outputs["mask"].encoding == "mono8" and outputs["color_mask"].encoding == "rgb8"
    assert outputs["overlay"].encoding == "rgb8"
    np.testing.assert_array_equal(mask, expected.mask)
    np.testing.assert_array_equal(colour, colorize(mask))
    np.testing.assert_array_equal(overlay, expected.overlay)


def test_outputs_are_skipped_without_subscribers(nodes, ros_client, diagnostics):
    node = nodes["compressed"]  # nobody subscribes to its outputs yet
    ros_client.wait_for(lambda: node.publisher.get_subscription_count(), 10, "the node to hear us")
    node.publisher.publish(messages.array_to_compressed_msg(scene(), "png", header()))
    status = wait_for_counter(ros_client, diagnostics, node, "skipped frames (no subscribers)", 1)
    assert status["processed frames"] == "0"


def test_the_scene_separates_channel_orders(reference):
    """Precondition of the encoding tests: a swapped channel order would change the mask."""
    image = scene()
    mask = reference.segment(image, encoding="rgb8").mask
    assert len(np.unique(mask)) > 1
    assert not np.array_equal(mask, reference.segment(image[..., ::-1].copy(), encoding="rgb8").mask)


@pytest.mark.parametrize("encoding, padding", [("rgb8", 0), ("bgr8", 4), ("rgba8", 0), ("bgra8", 8), ("mono8", 3)])
def test_each_raw_encoding_gives_the_segmenter_mask(nodes, reference, encoding, padding):
    rgb = scene(seed=2)
    alpha = np.full(rgb.shape[:2] + (1,), 200, dtype=np.uint8)
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.concatenate([rgb, alpha], 2),
              "bgra8": np.concatenate([rgb[..., ::-1], alpha], 2), "mono8": rgb[..., 1]}[encoding]
    msg = raw_message(pixels, encoding, padding, frame_id=f"cam_{encoding}")
    outputs = nodes["raw"].send(msg)
    if encoding == "mono8":
        expected = reference.segment(rgb[..., 1].copy(), encoding="mono8")
    else:
        expected = reference.segment(rgb)
    assert_outputs_match(outputs, msg, expected)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_input_gives_the_segmenter_mask(nodes, eager_reference, fmt):
    node = nodes["compressed"]
    if not node.outputs:
        node.subscribe_outputs()
        node.warm_up(lambda: messages.array_to_compressed_msg(scene(), "png", header()))
    msg = messages.array_to_compressed_msg(scene(seed=3), fmt, header(f"cam_{fmt}"))
    decoded, encoding = conversions.decode_compressed(msg.data)
    assert_outputs_match(node.send(msg), msg, eager_reference.segment(decoded, encoding=encoding))


def test_resolution_change_is_followed(nodes, reference, ros_client, diagnostics):
    node = nodes["raw"]
    before = int(wait_for_counter(ros_client, diagnostics, node, "resolution changes", 0)["resolution changes"])
    for height, width in ((30, 50), (HEIGHT, WIDTH)):
        rgb = scene(height, width, seed=4)
        msg = raw_message(rgb, "rgb8")
        assert_outputs_match(node.send(msg), msg, reference.segment(rgb), height, width)
    wait_for_counter(ros_client, diagnostics, node, "resolution changes", before + 2)


def _bad_raw(kind: str) -> Image:
    good = raw_message(scene(), "rgb8")
    if kind == "step shorter than a row":
        good.step = WIDTH * 3 - 1
    elif kind == "data shorter than step x height":
        good.data = bytes(good.data)[: good.step * (HEIGHT - 1)]
    elif kind == "unsupported encoding":
        good.encoding = "32FC1"  # a depth image: not a camera encoding the node reads
    elif kind == "zero size":
        good.height, good.width, good.step, good.data = 0, 0, 0, b""
    return good


@pytest.mark.parametrize(
    "kind", ["step shorter than a row", "data shorter than step x height", "unsupported encoding", "zero size"]
)
def test_bad_raw_frame_is_rejected_and_the_next_good_one_processed(nodes, reference, ros_client, diagnostics, kind):
    node = nodes["raw"]
    before = int(wait_for_counter(ros_client, diagnostics, node, "rejected frames", 0)["rejected frames"])
    node.publisher.publish(_bad_raw(kind))
    status = wait_for_counter(ros_client, diagnostics, node, "rejected frames", before + 1)
    assert int(status["rejected frames"]) == before + 1
    rgb = scene(seed=5)
    msg = raw_message(rgb, "rgb8")
    assert_outputs_match(node.send(msg), msg, reference.segment(rgb))
    assert node.process.process.poll() is None


def test_corrupt_compressed_frame_is_rejected_and_the_next_good_one_processed(
    nodes, eager_reference, ros_client, diagnostics
):
    node = nodes["compressed"]
    test_compressed_input_gives_the_segmenter_mask(nodes, eager_reference, "png")  # outputs subscribed
    before = int(wait_for_counter(ros_client, diagnostics, node, "rejected frames", 0)["rejected frames"])
    good = messages.array_to_compressed_msg(scene(seed=6), "jpeg", header())
    corrupt = CompressedImage(header=header(), format="jpeg", data=bytes(good.data)[: len(good.data) // 3])
    node.publisher.publish(corrupt)
    status = wait_for_counter(ros_client, diagnostics, node, "rejected frames", before + 1)
    assert "cannot decode compressed image" in status["_message"]
    decoded, encoding = conversions.decode_compressed(good.data)
    assert_outputs_match(node.send(good), good, eager_reference.segment(decoded, encoding=encoding))


def test_overlay_alpha_changes_at_run_time_and_bad_values_are_rejected(nodes, reference, ros_client):
    node = nodes["raw"]
    accepted = ros_client.set_parameters(node.process.name, {"overlay_alpha": 0.25})
    assert accepted[0].successful, accepted[0].reason
    too_big = ros_client.set_parameters(node.process.name, {"overlay_alpha": 1.5})[0]
    assert not too_big.successful and "overlay_alpha out of range" in too_big.reason
    wrong_type = ros_client.set_parameters(node.process.name, {"overlay_alpha": "half"})[0]
    assert not wrong_type.successful and "type" in wrong_type.reason
    read_only = ros_client.set_parameters(node.process.name, {"backbone": "shufflenet"})[0]
    assert not read_only.successful and "read-only" in read_only.reason
    rgb = scene(seed=7)
    msg = raw_message(rgb, "rgb8")
    outputs = node.send(msg)
    reference.overlay_alpha = 0.25
    try:
        expected = reference.segment(rgb)
    finally:
        reference.overlay_alpha = 0.5
        assert ros_client.set_parameters(node.process.name, {"overlay_alpha": 0.5})[0].successful
    assert_outputs_match(outputs, msg, expected)
    assert not np.array_equal(expected.overlay, reference.segment(rgb).overlay)  # 0.25 really differs from 0.5


def test_diagnostics_report_the_model_and_figures(nodes, ros_client, diagnostics):
    status = wait_for_counter(ros_client, diagnostics, nodes["raw"], "processed frames", 1)
    assert status["device"] == "cpu"
    assert "mobilenetv2" in status["model"]
    assert float(status["processing latency p50 (ms)"]) > 0
    assert float(status["end-to-end latency p95 (ms)"]) > 0
    assert status["input topic"] == "/io_raw/image"
    from liteseg_ros.inference.plan import Machine, Request, make_plan

    plan = make_plan(Request(device="cpu"), Machine.detect())  # precision, runner, fallbacks: the node's, here
    tag = {"torchscript_freeze": "torchscript"}.get(plan.runner, plan.runner)
    assert f" {plan.precision} cpu " in status["model"], status["model"]
    assert status["model"].endswith(f"(bn-folded, {tag})"), status["model"]  # optimize=auto on a CPU
    model = ros_client.wait_for(lambda: latest_status(diagnostics, nodes["raw"], part="model"), 10.0, "model status")
    assert model["plan"].startswith(f"cpu {plan.precision} {plan.runner} (")
    assert model["plan device"] == "cpu (asked for)"
    assert model["plan runner"].startswith(f"{plan.runner} (auto: ") and model["plan threads"].startswith(
        "1 (torch's count")  # the test environment's OMP_NUM_THREADS=1
    assert model["plan fallbacks"].startswith(" -> ".join(f"{r} {p}" for r, p in plan.fallbacks) or "none")
    eager = wait_for_counter(ros_client, diagnostics, nodes["compressed"], "processed frames", 0)
    assert eager["model"].endswith("(eager)")  # optimize=none


def test_input_qos_follows_a_best_effort_publisher(nodes, reference, ros_client):
    """qos_reliability auto: a best-effort camera is heard; when it leaves, the node goes back to reliable."""
    node = nodes["raw"]
    best_effort = ros_client.publisher(Image, "/io_raw/image", reliable=False)
    try:
        rgb = scene(seed=8)
        deadline = time.monotonic() + 15.0
        outputs = None
        while outputs is None and time.monotonic() < deadline:  # the node re-checks publishers every second
            msg = raw_message(rgb, "rgb8", frame_id="best_effort_camera")
            best_effort.publish(msg)
            time.sleep(0.3)
            outputs = node._outputs_for(msg.header)
        assert outputs is not None, node.process.stderr()
        assert_outputs_match(outputs, msg, reference.segment(rgb))
        assert "subscribed to /io_raw/image (best_effort, depth 1)" in node.process.stderr()
    finally:
        ros_client.node.destroy_publisher(best_effort)
    ros_client.wait_for(
        lambda: node.process.stderr().count("subscribed to /io_raw/image (reliable, depth 1)") >= 2,
        10.0,
        "the node to return to a reliable subscription",
    )
    rgb = scene(seed=9)
    msg = raw_message(rgb, "rgb8")
    assert_outputs_match(node.send(msg), msg, reference.segment(rgb))


@pytest.mark.parametrize("node_key, signum", [("raw", signal.SIGINT), ("compressed", signal.SIGTERM)])
def test_signal_exits_cleanly(nodes, node_key, signum):
    process = nodes[node_key].process
    assert process.stop(signum) == 0, process.stderr()
    stderr = process.stderr()
    assert "Traceback" not in stderr
    assert "stopped" in stderr
    assert "processed" in stderr  # the periodic one-line summary was logged
