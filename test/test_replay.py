"""liteseg-replay over sqlite3 and mcap bags made here: output bag, headers, masks, mIoU, bad bags, interruption."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from liteseg_ros.labels import CITYSCAPES, ID_TO_TRAIN_ID, TRAIN_ID_TO_ID
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model import build_liteseg, save_checkpoint
from liteseg_ros.replay.offline import ReplayOptions, run_offline

from bag_factory import needs_rosbags, read_bag, write_bag
from conftest import installed_script, start_process

pytestmark = needs_rosbags

INPUT = "64x96"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(3)
    model = build_liteseg("mobilenetv2").train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 96))  # BatchNorm statistics that make the masks vary
    return save_checkpoint(tmp_path_factory.mktemp("w") / "m.pt", model.eval())


@pytest.fixture(scope="module")
def segmenter(weights):
    from liteseg_ros.inference.segmenter import Segmenter

    return Segmenter(str(weights), device="cpu", input_size=(64, 96))


def replay(bag, out, weights, *extra):
    return subprocess.run(
        [
            installed_script("liteseg-replay"),
            bag,
            "--out",
            out,
            "--weights",
            weights,
            "--input-size",
            INPUT,
            "--device",
            "cpu",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _eval_by_cityscapes_tool(masks_by_stamp, gt_by_stamp, tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt" / "city"
    pred_dir.mkdir()
    gt_dir.mkdir(parents=True)
    for index, stamp in enumerate(sorted(masks_by_stamp)):
        name = f"city_{index:06d}_000019"
        PILImage.fromarray(TRAIN_ID_TO_ID[masks_by_stamp[stamp]]).save(pred_dir / f"{name}_pred.png")
        PILImage.fromarray(gt_by_stamp[stamp]).save(gt_dir / f"{name}_gtFine_labelIds.png")
    run = subprocess.run(
        [installed_script("liteseg-eval"), "--pred-dir", pred_dir, "--gt-dir", tmp_path / "gt", "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _stamp(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


@pytest.mark.parametrize(
    "storage,compressed", [("sqlite3", None), ("mcap", None), ("mcap", "jpeg"), ("sqlite3", "png")]
)
def test_replay_writes_one_mask_per_image_with_its_header_and_the_evaluators_miou(
    tmp_path, weights, segmenter, storage, compressed
):
    bag = write_bag(tmp_path / "in", frames=4, storage=storage, compressed=compressed)
    run = replay(bag, tmp_path / "out", weights, "--gt-topic", "/camera/labels", "--storage", storage)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["frames"] == 4 and report["gt_frames"] == 4 and report["fps"] > 0
    assert (
        set(report["latency_ms"]) == {"p50", "p95", "max"}
        and 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["max"]
    )
    topic_in = "/camera/image_raw"
    out = read_bag(tmp_path / "out" / "bag")
    copied = {topic_in, "/camera/labels", "/camera/camera_info"}  # the camera, its ground truth and camera_info
    assert set(out) == copied | {"/liteseg/mask", "/liteseg/color_mask", "/liteseg/overlay", "/liteseg/confidence"}
    recorded = read_bag(bag)
    for topic in copied:
        assert [(t, _stamp(m)) for t, m in out[topic]] == [(t, _stamp(m)) for t, m in recorded[topic]], topic
    inputs = recorded[topic_in]
    for name in ("/liteseg/mask", "/liteseg/color_mask", "/liteseg/overlay", "/liteseg/confidence"):
        assert [(_stamp(m), m.header.frame_id) for _, m in out[name]] == [(_stamp(m), "camera") for _, m in inputs]
    masks, truths = {}, {}
    for (_, image_msg), (_, mask_msg) in zip(inputs, out["/liteseg/mask"]):
        assert (mask_msg.encoding, mask_msg.height, mask_msg.width) == ("mono8", 64, 96)
        mask = np.asarray(mask_msg.data).reshape(64, 96)
        if compressed:
            rgb = np.asarray(PILImage.open(__import__("io").BytesIO(bytes(image_msg.data))).convert("RGB"))
        else:
            rgb = np.asarray(image_msg.data).reshape(64, 96, 3)
        assert np.array_equal(mask, segmenter.segment(rgb, outputs=("mask",)).mask)
        masks[_stamp(mask_msg)] = mask
    for _, gt_msg in read_bag(bag)["/camera/labels"]:
        truths[_stamp(gt_msg)] = np.asarray(gt_msg.data).reshape(64, 96)
    expected = _eval_by_cityscapes_tool(masks, truths, tmp_path)
    assert report["miou"] == pytest.approx(expected["miou"], abs=1e-12)
    assert report["category_miou"] == pytest.approx(expected["category_miou"], abs=1e-12)
    for name, iou in expected["per_class"].items():
        assert report["per_class"][name] == (None if iou is None else pytest.approx(iou, abs=1e-12))
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["miou"] == report["miou"] and "class mIoU" in (tmp_path / "out" / "report.md").read_text()


def test_replay_with_a_class_map_scores_and_records_the_merged_classes(tmp_path, weights):
    from liteseg_ros.class_map import load_class_map
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.labels import CITYSCAPES

    class_map = tmp_path / "map.yaml"
    class_map.write_text("classes:\n  - {name: drivable, color: [128, 64, 128], from: [road, sidewalk]}\n"
                         "other: {name: rest, color: [0, 0, 0]}\n")
    bag = write_bag(tmp_path / "in", frames=3)
    run = replay(bag, tmp_path / "out", weights, "--gt-topic", "/camera/labels", "--class-map", str(class_map))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["classes"]["names"] == ["drivable", "rest"] and report["class_map"]["path"] == str(class_map)
    assert list(report["per_class"]) == ["drivable", "rest"] and report["per_category"] == {}
    mapping = load_class_map(class_map, CITYSCAPES)
    segmenter = Segmenter(str(weights), device="cpu", input_size=(64, 96), class_map=mapping)
    out, matrix = read_bag(tmp_path / "out" / "bag"), ConfusionMatrix(mapping.classes)
    truths = {_stamp(m): np.asarray(m.data).reshape(64, 96) for _, m in out["/camera/labels"]}
    for (_, image), (_, mask), (_, confidence) in zip(out["/camera/image_raw"], out["/liteseg/mask"],
                                                      out["/liteseg/confidence"]):
        expected = segmenter.segment(np.asarray(image.data).reshape(64, 96, 3), outputs=("mask", "confidence"))
        assert np.array_equal(np.asarray(mask.data).reshape(64, 96), expected.mask)
        assert confidence.encoding == "mono8" and _stamp(confidence) == _stamp(image)
        assert np.array_equal(np.asarray(confidence.data).reshape(64, 96), expected.confidence)
        truth = mapping.mask(torch.from_numpy(ID_TO_TRAIN_ID[truths[_stamp(image)]])).numpy()
        matrix.update(truth, expected.mask)
    assert report["miou"] == pytest.approx(matrix.scores().miou, abs=1e-12)


def test_trainid_ground_truth_and_overlay_pngs(tmp_path, weights):
    bag = write_bag(tmp_path / "in", frames=3, gt=True)
    first = replay(bag, tmp_path / "a", weights, "--gt-topic", "/camera/labels")
    assert first.returncode == 0, first.stderr
    # The same ground truth, mapped to trainIds and declared as such, gives the same scores.
    truths = read_bag(bag)["/camera/labels"]
    from rosbags.rosbag2 import Writer

    from bag_factory import TYPESTORE, image_msg

    trainid_bag = tmp_path / "train_ids"
    with Writer(trainid_bag, version=Writer.VERSION_LATEST) as writer:
        cam = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        lab = writer.add_connection("/camera/labels", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        for (ts, img), (_, gt) in zip(read_bag(bag)["/camera/image_raw"], truths):
            writer.write(cam, ts, TYPESTORE.serialize_cdr(img, "sensor_msgs/msg/Image"))
            train = ID_TO_TRAIN_ID[np.asarray(gt.data).reshape(64, 96)]
            writer.write(
                lab, ts, TYPESTORE.serialize_cdr(image_msg(train, "mono8", gt.header), "sensor_msgs/msg/Image")
            )
    second = replay(
        trainid_bag,
        tmp_path / "b",
        weights,
        "--gt-topic",
        "/camera/labels",
        "--gt-encoding",
        "trainids",
        "--overlays",
        "2",
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["miou"] == json.loads(first.stdout)["miou"]
    assert sorted(p.name for p in (tmp_path / "b" / "overlays").iterdir()) == [
        "overlay_000000.png",
        "overlay_000002.png",
    ]


def _corrupt(path: Path) -> Path:
    data_file = next(p for p in path.iterdir() if p.suffix in (".db3", ".mcap"))
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 3])
    return path


BAD_BAGS = {
    "missing": (lambda tmp: tmp / "nope", "does not exist"),
    "not a bag": (lambda tmp: (tmp / "junk").mkdir() or (tmp / "junk"), "not a readable rosbag2 bag"),
    "truncated sqlite3": (lambda tmp: _corrupt(write_bag(tmp / "t", frames=6, width=256)), "corrupt|not a readable"),
    "truncated mcap": (
        lambda tmp: _corrupt(write_bag(tmp / "t", frames=6, width=256, storage="mcap")),
        "corrupt|not a readable",
    ),
    "no image topic": (lambda tmp: write_bag(tmp / "n", frames=1, gt=False, image_topic="/camera/labels_only"), None),
}


@pytest.mark.parametrize("case", list(BAD_BAGS))
def test_bad_bags_exit_2_with_a_clear_error(tmp_path, weights, case):
    make, message = BAD_BAGS[case]
    bag = make(tmp_path)
    extra = ()
    if case == "no image topic":
        extra, message = ("--image-topic", "/camera/camera_info"), "carries sensor_msgs/msg/CameraInfo, not an Image"
    run = replay(bag, tmp_path / "out", weights, *extra)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert __import__("re").search(message, run.stderr), run.stderr


def test_no_image_topic_at_all_and_unknown_type(tmp_path, weights):
    from rosbags.rosbag2 import Writer

    from bag_factory import TYPESTORE

    path = tmp_path / "strings"
    with Writer(path, version=Writer.VERSION_LATEST) as writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=TYPESTORE)
        writer.write(
            conn, 1, TYPESTORE.serialize_cdr(TYPESTORE.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String")
        )
    run = replay(path, tmp_path / "out", weights)
    assert run.returncode == 2 and "has no Image or CompressedImage topic" in run.stderr
    run = replay(path, tmp_path / "out", weights, "--image-topic", "/chatter")
    assert run.returncode == 2 and "carries std_msgs/msg/String" in run.stderr


def test_ground_truth_of_another_size_is_an_error(tmp_path, weights):
    bag = write_bag(tmp_path / "in", frames=2, gt_size=(32, 48))
    run = replay(bag, tmp_path / "out", weights, "--gt-topic", "/camera/labels")
    assert run.returncode == 2 and "ground truth must have the image's size" in run.stderr


class _InterruptAfter:
    """A Segmenter stand-in that forwards to the real one and raises KeyboardInterrupt (as Ctrl-C does) at frame n."""

    def __init__(self, segmenter, n):
        self.segmenter, self.n, self.calls = segmenter, n, 0
        self.description = segmenter.description

    def __getattr__(self, name):
        return getattr(self.segmenter, name)

    def segment(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return self.segmenter.segment(*args, **kwargs)


def test_interrupted_replay_leaves_a_readable_bag_and_a_report(tmp_path, weights, segmenter):
    bag = write_bag(tmp_path / "in", frames=6, gt=True)
    options = ReplayOptions(
        bag=bag, out=tmp_path / "out", weights=weights, gt_topic="/camera/labels", input_size=(64, 96)
    )
    report = run_offline(options, _InterruptAfter(segmenter, 3))
    assert report.interrupted and report.frames == 3 and report.gt_frames == 3
    out = read_bag(tmp_path / "out" / "bag")
    assert len(out["/liteseg/mask"]) == 3
    assert json.loads((tmp_path / "out" / "report.json").read_text())["interrupted"] is True


def test_sigint_while_waiting_for_a_live_node_closes_the_bag(tmp_path):
    bag = write_bag(tmp_path / "in", frames=2)
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr_file:
        proc = start_process(
            [installed_script("liteseg-replay"), bag, "--out", tmp_path / "out", "--live", "--json"],
            stdout=subprocess.PIPE, stderr=stderr_file, text=True, env=dict(os.environ),
        )
    deadline = time.monotonic() + 60
    while "waiting up to" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    # the output is staged beside OUT (OUT itself appears complete, or not at all), the bag writer's inside it
    assert "waiting up to" in log.read_text() and list(tmp_path.glob(".out.*.partial/out/.bag.*.partial")), \
        log.read_text()
    proc.send_signal(signal.SIGINT)
    try:
        stdout, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"liteseg-replay did not end within 60 s of SIGINT:\n{log.read_text()}") from None
    stderr = log.read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout)
    assert report["interrupted"] and report["frames"] == 0 and report["published_frames"] == 0
    assert read_bag(tmp_path / "out" / "bag") == {}


def test_live_replay_through_a_real_node_reports_every_frame(tmp_path, weights, segmenter):
    from conftest import spawn_node

    bag = write_bag(tmp_path / "in", frames=5, gt=True)
    node = spawn_node(
        tmp_path / "node",
        "/replaytest",
        {
            "weights": str(weights),
            "device": "cpu",
            "input_height": 64,
            "input_width": 96,
            "publish_mask": "always",
            "publish_color": "always",
            "publish_overlay": "always",
        },
        extra_args=("-r", "image:=/camera/image_raw"),
    )
    try:
        run = subprocess.run(
            [
                installed_script("liteseg-replay"),
                bag,
                "--out",
                tmp_path / "out",
                "--live",
                "--rate",
                "0.3",
                "--node-namespace",
                "/replaytest/liteseg",
                "--gt-topic",
                "/camera/labels",
                "--json",
                "--overlays",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env=dict(os.environ),
        )
    finally:
        assert node.stop() == 0, node.stderr()
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["mode"], report["published_frames"], report["frames"], report["dropped_frames"]) == ("live", 5, 5, 0)
    assert report["gt_frames"] == 5 and 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["max"] < 10_000
    assert report["classes"]["names"] == list(CITYSCAPES.names)  # no vision_msgs here: scored as Cityscapes
    out = read_bag(tmp_path / "out" / "bag")
    inputs = read_bag(bag)["/camera/image_raw"]
    assert [_stamp(m) for _, m in out["/liteseg/mask"]] == [_stamp(m) for _, m in inputs]
    matrix = ConfusionMatrix()
    truths = {_stamp(m): np.asarray(m.data).reshape(64, 96) for _, m in read_bag(bag)["/camera/labels"]}
    for (_, image_msg), (_, mask_msg) in zip(inputs, out["/liteseg/mask"]):
        mask = np.asarray(mask_msg.data).reshape(64, 96)
        assert np.array_equal(
            mask, segmenter.segment(np.asarray(image_msg.data).reshape(64, 96, 3), outputs=("mask",)).mask
        )
        matrix.update(ID_TO_TRAIN_ID[truths[_stamp(mask_msg)]], mask)
    assert report["miou"] == pytest.approx(matrix.scores().miou, abs=1e-12)
    assert len(list((tmp_path / "out" / "overlays").iterdir())) == 5


def test_two_models_replayed_and_compared_on_the_bags_ground_truth(tmp_path, weights):
    torch.manual_seed(11)
    other = build_liteseg("mobilenetv2").train()
    with torch.no_grad():
        other(torch.randn(2, 3, 64, 96))
    other = save_checkpoint(tmp_path / "other.pt", other.eval())
    bag = write_bag(tmp_path / "in", frames=3)
    run = replay(bag, tmp_path / "out", weights, "--weights", other, "--gt-topic", "/camera/labels")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert [model["weights"] for model in document["models"]] == [str(weights), str(other)]
    assert document["classes"] == list(CITYSCAPES.names) and document["left_out"] == {}
    for index, (model, path) in enumerate(zip(document["models"], (weights, other)), 1):
        report = json.loads((tmp_path / "out" / f"{index}-{Path(path).stem}" / "report.json").read_text())
        assert model["per_class"] == report["per_class"] and model["frames"] == report["gt_frames"] == 3
        assert model["miou"] == pytest.approx(report["miou"])
        assert (tmp_path / "out" / f"{index}-{Path(path).stem}" / "bag").is_dir()
    table = (tmp_path / "out" / "comparison.md").read_text()
    assert "| mIoU |" in table and "difference is model 2 minus model 1" in table
    refused = replay(bag, tmp_path / "out2", weights, "--weights", other)
    assert refused.returncode == 2 and "comparing models needs the bag's ground truth" in refused.stderr
