"""precision=auto on a CPU without native bf16 (the class of most x86 robot computers; tests get it with
LITESEG_CPU_FLAGS where the machine has bf16): the bundled model's INT8 twin runs when it is faster here, with the
masks of fp32; a twin that its check refuses is not used, said once, and remembered; weights without a twin are
calibrated on the frames they segment, switched to INT8 once the check passed (or kept fp32 when it failed), and the
verdict is kept under a key that other weights never match."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from liteseg_ros.inference.cache import NetworkCache
from liteseg_ros.inference.plan import Machine
from liteseg_ros.inference.runners import package_available
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.model import CheckpointMeta, load_weights, save_checkpoint
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import random_weights
from segmenter_fixtures import core_log

AVX2 = "avx2 fma sse4_2"  # Zen 3 / Intel Core without AVX-512: no native bf16
SMALL, FULL = (180, 320), (360, 640)
pytestmark = pytest.mark.skipif(
    not all(package_available(name) for name in ("openvino", "onnx", "onnxruntime")) or not Machine.detect().x86_64,
    reason="INT8 runs on OpenVINO on x86-64 (and calibrating needs onnx and onnxruntime)")


@pytest.fixture
def without_bf16(monkeypatch):
    """This machine seen as a CPU without native bf16 (this process and the helpers it starts)."""
    monkeypatch.setenv("LITESEG_CPU_FLAGS", AVX2)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def test_the_bundled_twin_runs_with_fp32s_masks_where_bf16_is_not_native(without_bf16, tmp_path):
    int8 = Segmenter(bundled_model_path(), device="cpu", cache=tmp_path / "cache")
    fp32 = Segmenter(bundled_model_path(), device="cpu", precision="fp32", cache=tmp_path / "cache")
    assert (int8.precision, int8.plan.runner, int8.input_size) == ("int8", "openvino", (360, 640))
    assert "the INT8 twin liteseg_mobilenetv2_synthetic.int8.onnx" in int8.plan.reasons["precision"]
    assert int8.preparation["speedup"] > 1.0 and int8.preparation["fp32_runner"] == "onnxruntime"
    assert (fp32.precision, fp32.plan.runner) == ("fp32", "onnxruntime")
    frames = unseen_frames(3, 360, 640)
    equal = [agreement(int8.segment(f.image).mask, fp32.segment(f.image).mask) for f in frames]
    assert min(equal) >= 0.98, equal  # the bar; the twin's own check: 99.40 % on 32 held-out frames


def test_a_twin_its_check_refuses_is_not_used_said_once_and_remembered(without_bf16, tmp_path):
    """The bundled model's twin beside other weights was not made from them: refused, fp32 runs, and the next
    start plans fp32 at once (no helper, no second check)."""
    weights = random_weights(tmp_path / "other.pt")
    shutil.copyfile(bundled_model_path().with_suffix(".int8.onnx"), tmp_path / "other.int8.onnx")
    cache = tmp_path / "cache"
    with core_log(level=20) as logged:
        first = Segmenter(weights, device="cpu", input_size=(360, 640), cache=cache)
    refused = [line for line in logged if line.startswith("INT8 refused")]
    assert len(refused) == 1 and "other.int8.onnx was made from other weights" in refused[0], logged
    assert (first.precision, first.plan.runner) == ("fp32", "onnxruntime")
    assert first.plan.history == ("openvino int8 -> onnxruntime fp32: other.int8.onnx was made from other weights "
                                  "(its source digest differs)",)
    with core_log(level=20) as logged:
        second = Segmenter(weights, device="cpu", input_size=(360, 640), cache=cache)
    assert second.precision == "fp32" and second.plan.history == ()
    assert "other.int8.onnx of these weights (checked against fp32 on this CPU) was refused here: other.int8.onnx " \
           "was made from other weights" in second.plan.reasons["precision"]
    assert not any("helper process" in line or line.startswith("INT8 refused") for line in logged), logged


def _segment_until_decided(segmenter: Segmenter, frames: list[np.ndarray], timeout: float = 240.0) -> list[str]:
    """Segment ``frames`` in a loop until the pending switch is decided; the pending states seen."""
    seen, start, index = [], time.monotonic(), 0
    while segmenter.pending is not None:
        assert time.monotonic() - start < timeout, f"still {segmenter.pending} after {timeout} s"
        if not seen or seen[-1] != segmenter.pending:
            seen.append(segmenter.pending)
        result = segmenter.segment(frames[index % len(frames)])
        assert result.mask is not None  # every frame is segmented meanwhile
        index += 1
    return seen


def test_weights_without_a_twin_are_calibrated_on_their_frames_and_switched(without_bf16, tmp_path):
    """The bundled model's weights without their twin, on unseen scenes at its size (99.4 % of pixels agree here;
    at 180x320, where boundaries are a larger share of the pixels, 98.5-98.9 %: too close to the bar for a test)."""
    weights = tmp_path / "robot.pt"
    shutil.copyfile(bundled_model_path(), weights)
    cache = tmp_path / "cache"
    frames = [frame.image for frame in unseen_frames(40, *FULL)]
    fp32 = Segmenter(weights, device="cpu", input_size=FULL, precision="fp32", cache=cache)
    segmenter = Segmenter(weights, device="cpu", input_size=FULL, cache=cache, calibrate=True)
    assert segmenter.precision == "fp32" and segmenter.plan.pending == "int8: calibrating on the first frames"
    seen = _segment_until_decided(segmenter, frames)
    assert seen[0].startswith("int8: collecting calibration frames (0/32)") and "int8: quantizing" in seen
    assert any(state.startswith("int8: checking against fp32") for state in seen), seen
    assert (segmenter.precision, segmenter.plan.runner) == ("int8", "openvino"), segmenter.plan.describe()
    assert segmenter.plan.reasons["precision"].startswith("switched to INT8 at ")
    assert "calibrated on 32 frames" in segmenter.plan.history[0], segmenter.plan.history
    assert min(agreement(segmenter.segment(f).mask, fp32.segment(f).mask) for f in frames[:4]) >= 0.98
    restarted = Segmenter(weights, device="cpu", input_size=FULL, cache=cache, calibrate=True)
    assert restarted.precision == "int8" and restarted.pending is None  # the verdict was kept
    assert "an INT8 model calibrated on this robot's frames" in restarted.plan.reasons["precision"]
    model, meta = load_weights(weights)
    changed = save_checkpoint(tmp_path / "robot_v2.pt", model, CheckpointMeta(**{**meta.to_dict(), "origin": "v2"}))
    other = Segmenter(changed, device="cpu", input_size=FULL, cache=cache, calibrate=True)
    assert other.precision == "fp32" and other.pending is not None  # other weights: a calibration of their own
    other.close()
    entries = [entry["key"]["int8"] for entry in NetworkCache(cache).entries()]
    assert entries.count("calibrated") == 1


def test_a_calibrated_model_that_fails_its_check_stays_fp32_and_is_remembered(without_bf16, tmp_path):
    """Random weights whose classes tie everywhere: INT8 rounding moves too many pixels, so the check refuses it."""
    weights = random_weights(tmp_path / "untrained.pt")
    cache = tmp_path / "cache"
    frames = [frame.image for frame in unseen_frames(6, *SMALL)]
    with core_log(level=20) as logged:
        segmenter = Segmenter(weights, device="cpu", input_size=SMALL, cache=cache, calibrate=True)
        _segment_until_decided(segmenter, frames)
    assert segmenter.precision == "fp32" and segmenter.plan.runner == "onnxruntime"
    decided = [line for line in logged if line.startswith("precision: ")]
    assert len(decided) == 1 and "stays fp32: INT8 refused: only" in decided[0], logged
    assert "of its pixels equal fp32's over 16 frames (required 98%)" in decided[0]
    again = Segmenter(weights, device="cpu", input_size=SMALL, cache=cache, calibrate=True)
    assert again.precision == "fp32" and again.pending is None
    assert "was refused here: INT8 refused: only" in again.plan.reasons["precision"]


def test_precision_fp32_keeps_fp32_and_nothing_is_calibrated(without_bf16, tmp_path):
    segmenter = Segmenter(Path(bundled_model_path()), device="cpu", precision="fp32", calibrate=True,
                          cache=tmp_path / "cache")
    assert (segmenter.precision, segmenter.pending) == ("fp32", None)
    assert segmenter.plan.reasons["precision"] == "asked for"
