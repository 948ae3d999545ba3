"""liteseg-quantize and INT8 model files: the tool on a Cityscapes-layout tree, a folder and a bag; its report
and refusal; the file's checks; the Segmenter, liteseg-replay and a node process loading it like weights."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from liteseg_ros.errors import ConfigError, IncompatibleWeightsError, WeightsError
from liteseg_ros.inference.int8.models import METADATA_KEY, read_quantized_model
from liteseg_ros.inference.runners import package_available
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import write_cityscapes_tree
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import installed_script, mask_from_node
from segmenter_fixtures import core_log

SIZE = (360, 640)
# quantizing exports the network to ONNX, and INT8 files are read with the onnx package (no rosdep key)
pytestmark = pytest.mark.skipif(not package_available("onnx"), reason="liteseg-quantize needs the onnx package")


def quantize(*args, timeout=600):
    return subprocess.run([str(installed_script("liteseg-quantize")), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Cityscapes-layout frames of a seed the demo model never trained on (3)."""
    root = tmp_path_factory.mktemp("quantize") / "tree"
    write_cityscapes_tree(root, train=8, val=4, height=SIZE[0], width=SIZE[1], seed=3, coarse=False)
    return root


@pytest.fixture(scope="module")
def int8_model(tree, tmp_path_factory):
    """The bundled model quantized with 8 calibration frames, checked on 4 (the tool's JSON report too)."""
    folder = tmp_path_factory.mktemp("int8")
    checkpoint = folder / "demo.pt"
    checkpoint.write_bytes(bundled_model_path().read_bytes())
    run = quantize(checkpoint, "--frames", tree, "--calibration", 8, "--holdout", 4, "--min-speedup", 0, "--json")
    assert run.returncode == 0, run.stderr
    return folder / "demo.int8.onnx", json.loads(run.stdout)


def test_the_report_measures_agreement_miou_and_speed(int8_model):
    path, report = int8_model
    assert report["calibration_frames"] == 8 and report["holdout_frames"] == 4
    assert report["pixel_agreement"] >= 0.99 and abs(report["miou_change"]) <= 0.01
    assert report["miou_fp32"] > 0.5 and report["fp32_ms"] > 0 and report["int8_ms"] > 0
    assert report["int8_runner"] == ("openvino" if package_available("openvino") else "onnxruntime")
    int8_plan = {line.split()[0]: line.split()[1] for line in report["plans"]["int8"].splitlines()}
    fp32_plan = {line.split()[0]: line.split()[1] for line in report["plans"]["fp32"].splitlines()}
    assert (int8_plan["device"], int8_plan["precision"], int8_plan["runner"]) == ("cpu", "int8", report["int8_runner"])
    assert (fp32_plan["precision"], fp32_plan["runner"]) == ("fp32", report["fp32_runner"])
    stored = read_quantized_model(path)
    assert stored.report == report and stored.input_size == SIZE and stored.backbone == "mobilenetv2"
    assert oct(path.stat().st_mode & 0o777) != "0o600" and not list(path.parent.glob(".*part"))


def test_the_segmenter_runs_it_close_to_fp32_on_unseen_frames(int8_model):
    int8 = Segmenter(int8_model[0], device="cpu", input_size=SIZE)
    fp32 = Segmenter(bundled_model_path(), device="cpu", input_size=SIZE, precision="fp32")
    assert int8.precision == "int8" and int8.description.startswith("mobilenetv2 int8 cpu 360x640 (")
    for frame in unseen_frames(2, *SIZE):
        result = int8.segment(frame.image)
        assert np.mean(result.mask == fp32.segment(frame.image).mask) >= 0.99
        assert result.color.shape == (*SIZE, 3) and result.overlay.shape == (*SIZE, 3)
    with core_log() as logged:
        onnxruntime = Segmenter(int8_model[0], device="cpu", input_size=SIZE, optimize="onnxruntime")
    assert onnxruntime.description.endswith("(onnxruntime)")
    if package_available("openvino"):  # timed with OpenVINO by liteseg-quantize: the user is told
        assert len(logged) == 1 and "was timed with openvino by liteseg-quantize but runs on onnxruntime" in logged[0]


def test_an_int8_model_carries_its_class_set_and_takes_a_class_map_and_confidence(int8_model, tmp_path):
    class_map = tmp_path / "map.yaml"
    class_map.write_text("classes:\n  - {name: drivable, color: [128, 64, 128], from: [road]}\n"
                         "other: {name: rest, color: [0, 0, 0]}\n")
    int8 = Segmenter(int8_model[0], device="cpu", input_size=SIZE, class_map=class_map)
    fp32 = Segmenter(bundled_model_path(), device="cpu", input_size=SIZE, precision="fp32", class_map=class_map)
    assert int8.model_classes == CITYSCAPES and int8.classes.names == ("drivable", "rest")
    frame = unseen_frames(1, *SIZE)[0]
    merged, reference = (s.segment(frame.image, outputs=("mask", "confidence")) for s in (int8, fp32))
    assert set(np.unique(merged.mask)) == {0, 1} and np.mean(merged.mask == reference.mask) >= 0.99
    assert np.median(np.abs(merged.confidence.astype(int) - reference.confidence)) <= 3


def test_an_int8_file_refuses_what_it_cannot_do(int8_model, tmp_path):
    path = int8_model[0]
    for options, message in (({"input_size": (180, 320)}, "was quantized for input size 360x640"),
                             ({"precision": "fp32"}, "is an INT8 model: use precision auto"),
                             ({"device": "cuda"}, "runs on the CPU: use device cpu or auto")):
        with pytest.raises(ConfigError, match=message):
            Segmenter(path, **{"input_size": SIZE, **options})
    with pytest.raises(IncompatibleWeightsError, match="use backbone=mobilenetv2"):
        Segmenter(path, input_size=SIZE, backbone="shufflenet")
    foreign = tmp_path / "foreign.onnx"
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    with pytest.raises(WeightsError, match="no liteseg_ros metadata: make INT8 models with liteseg-quantize"):
        Segmenter(foreign, input_size=SIZE)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="not a readable ONNX file"):
        Segmenter(truncated, input_size=SIZE)
    assert METADATA_KEY == "liteseg_ros"


@pytest.mark.parametrize("limit, message", [(("--min-speedup", 1000, "--min-agreement", 0),
                                             "its network is not 1000x as fast as fp32's here"),
                                            (("--min-agreement", 1.01), "of its pixels equal fp32's over 1 frames")])
def test_it_refuses_a_model_too_slow_or_too_far_from_fp32_and_writes_nothing(tree, tmp_path, limit, message):
    """The refusal prints the figures that were measured (--json gives them; it once printed 25000.0 ms for 25 ms)."""
    out = tmp_path / "refused.int8.onnx"
    run = quantize(bundled_model_path(), "--frames", tree, "--calibration", 2, "--holdout", 1, "--out", out,
                   "--input-size", "96x160", "--json", *limit)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("liteseg-quantize: error:")]
    assert len(errors) == 1 and message in errors[0], run.stderr
    assert "Traceback" not in run.stderr and list(tmp_path.iterdir()) == []
    measured = json.loads(run.stdout)
    assert measured["refused"] in errors[0] and 0 < measured["int8_ms"] < 1000 and 0 < measured["fp32_ms"] < 1000
    assert abs(measured["speedup"] - measured["fp32_ms"] / measured["int8_ms"]) < 1e-9
    if "--min-speedup" in limit:
        figures = f"({measured['int8_ms']:.1f} ms vs {measured['fp32_ms']:.1f} ms, {measured['speedup']:.2f}x)"
        assert figures in errors[0], (figures, errors[0])


def test_the_int8_rule_prints_the_times_it_was_given_in_milliseconds():
    """One rule (the twin's check, liteseg-quantize and the node's switch use it): seconds in, milliseconds out."""
    from liteseg_ros.inference.int8.check import Int8Check

    check = Int8Check()
    check.add_times([0.025, 0.024, 0.026], [0.020, 0.021, 0.019])
    assert (round(check.fp32_ms, 6), round(check.int8_ms, 6), round(check.speedup, 6)) == (25.0, 20.0, 1.25)
    assert check.refusal() is None and check.summary() == "network 20.0 ms vs fp32 25.0 ms (1.25x)"
    assert check.refusal(min_speedup=2) == "its network is not 2x as fast as fp32's here (20.0 ms vs 25.0 ms, 1.25x)"
    slower = Int8Check(fp32_seconds=[0.020], int8_seconds=[0.025])
    assert slower.refusal() == "its network is not faster than fp32's here (25.0 ms vs 20.0 ms, 0.80x)"
    masks = Int8Check()
    masks.add(np.zeros((2, 5), np.uint8), np.array([[0] * 5, [0, 0, 0, 1, 1]], np.uint8), 0.01, 0.005)
    assert masks.refusal() == "only 80.00% of its pixels equal fp32's over 1 frames (required 98%)"
    assert masks.refusal(min_agreement=0.8) is None


def test_a_folder_of_images_works_without_ground_truth(tree, tmp_path):
    out = tmp_path / "folder.int8.onnx"
    run = quantize(bundled_model_path(), "--frames", tree / "leftImg8bit" / "val", "--calibration", 2,
                   "--holdout", 2, "--out", out, "--min-speedup", 0, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["miou_change"] is None and report["miou_int8_vs_fp32"] > 0.9 and "no ground truth" in report[
        "summary"]


def test_usage_errors_are_one_line(tree, tmp_path):
    for args, message in (((tmp_path / "nothing",), "is neither a folder of images"),
                          ((tree, "--calibration", 50), "the source has 12 frames; --calibration asks for 50"),
                          ((tree, "--out", tmp_path / "x.pt"), "--out must end in .onnx")):
        run = quantize(bundled_model_path(), "--frames", *args)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.ros
def test_the_node_loads_it_like_any_weights_file(int8_model, ros_client, tmp_path):
    path, _ = int8_model
    image = unseen_frames(1, *SIZE)[0].image
    expected = Segmenter(path, device="cpu", input_size=SIZE).segment(image).mask
    mask, log = mask_from_node(ros_client, tmp_path, "/int8", {"weights": str(path), "device": "cpu"}, image)
    assert np.mean(mask == expected) >= 0.999
    assert "mobilenetv2 int8 cpu 360x640" in log


def test_a_bag_with_ground_truth_gives_the_miou_change_and_liteseg_replay_runs_the_model(tmp_path):
    bag = tmp_path / "drive"
    run = subprocess.run([str(installed_script("liteseg-synth")), "--bag", str(bag), "--frames", "4", "--height",
                          str(SIZE[0]), "--width", str(SIZE[1]), "--seed", "4"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "bag.int8.onnx"
    run = quantize(bundled_model_path(), "--frames", bag, "--gt-topic", "/camera/labels", "--calibration", 2,
                   "--holdout", 2, "--out", out, "--min-speedup", 0, "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["holdout_frames"] == 2 and report["miou_fp32"] > 0.5 and report["miou_change"] is not None
    replay = subprocess.run([str(installed_script("liteseg-replay")), str(bag), "--out", str(tmp_path / "replay"),
                             "--weights", str(out), "--gt-topic", "/camera/labels", "--json"], capture_output=True,
                            text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    replayed = json.loads(replay.stdout)
    assert replayed["frames"] == 4 and replayed["miou"] > 0.5 and "int8 cpu 360x640" in replay.stderr


def test_unseen_frames_are_the_val_frames_the_generator_writes(tree):
    """The benchmarks' "unseen" frames are exactly the val frames of write_cityscapes_tree for the same seed."""
    from liteseg_ros.datasets.cityscapes import read_rgb, read_train_ids, scan_split
    from liteseg_ros.tools.synthetic.cityscapes_writer import frame_stem

    first = next(sample for sample in scan_split(tree, "val") if sample.frame == frame_stem("val", 0)[1])
    frame = unseen_frames(1, *SIZE, seed=3)[0]
    assert np.array_equal(frame.image, read_rgb(first.image))
    assert np.array_equal(frame.train_ids, read_train_ids(first.label))
