"""liteseg-quantize's work: an INT8 model of a checkpoint, made by the package's one quantizer
(:mod:`liteseg_ros.inference.int8.quantizer`) from frames a user gives, and checked before it is written by the one
INT8 rule (:mod:`liteseg_ros.inference.int8.check`): pixel agreement with fp32 on held-out frames (and their
class-mIoU change) and the network's speed against fp32 on this machine (``min_agreement``, ``min_speedup``)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from liteseg_ros.errors import ConfigError, LiteSegError
from liteseg_ros.inference.bands import single_torch_thread
from liteseg_ros.inference.cache import cache_key, file_digest
from liteseg_ros.inference.config import SegmenterConfig
from liteseg_ros.inference.export import export_prepared
from liteseg_ros.inference.int8.check import MIN_AGREEMENT, MIN_SPEEDUP, Int8Check, time_networks
from liteseg_ros.inference.int8.models import twin_path, write_quantized_model
from liteseg_ros.inference.int8.quantizer import quantize
from liteseg_ros.inference.runners import EXPORT_PACKAGE, package_available
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.inference.stages import as_tensor, image_to_batch
from liteseg_ros.inference.timing import environment
from liteseg_ros.logs import get_logger
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model import load_weights
from liteseg_ros.tools.calibration import Frame

LOG = get_logger(__name__)


class QuantizationRefused(LiteSegError):
    """The INT8 model failed the INT8 rule on this machine; ``report`` holds what was measured."""

    def __init__(self, message: str, report: "QuantizeReport"):
        super().__init__(message)
        self.report = report


@dataclass
class QuantizeReport:
    """What liteseg-quantize measured; stored in the model file and printed."""

    checkpoint: str
    input_size: tuple[int, int]
    calibration_frames: int
    holdout_frames: int
    pixel_agreement: float | None = None  # INT8 mask == fp32 mask, over the held-out frames
    miou_fp32: float | None = None  # class mIoU against ground truth (None without it)
    miou_int8: float | None = None
    miou_int8_vs_fp32: float | None = None  # class mIoU of INT8 taking fp32's masks as the truth
    fp32_ms: float | None = None  # network median, this machine
    int8_ms: float | None = None
    speedup: float | None = None
    int8_runner: str = ""
    fp32_runner: str = ""
    machine: dict = field(default_factory=dict)
    plans: dict = field(default_factory=dict)  # how each network ran here (Plan.describe), by name

    @property
    def miou_change(self) -> float | None:
        if self.miou_fp32 is None or self.miou_int8 is None:
            return None
        return self.miou_int8 - self.miou_fp32

    def summary(self) -> str:
        change = "no ground truth" if self.miou_change is None else f"class mIoU change {self.miou_change:+.4f}"
        return (f"{self.pixel_agreement:.2%} of pixels equal to fp32, {change} on {self.holdout_frames} held-out "
                f"frames; network {self.int8_ms:.1f} ms vs fp32 {self.fp32_ms:.1f} ms ({self.speedup:.2f}x, "
                f"{self.int8_runner})")

    def to_dict(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size), "miou_change": self.miou_change,
                "summary": self.summary()}


def calibration_inputs(segmenter: Segmenter, frames: Iterable[Frame]) -> Iterator[np.ndarray]:
    """The network inputs of ``frames`` exactly as ``segmenter`` prepares them (resize, normalisation)."""
    for frame in frames:
        with torch.inference_mode(), single_torch_thread():
            batch = image_to_batch(as_tensor(np.ascontiguousarray(frame.image)), frame.encoding)
            yield segmenter.stages.network_input(batch).float().contiguous().numpy()


def compare(fp32: Segmenter, int8: Segmenter, frames: Iterable[Frame], report: QuantizeReport) -> Int8Check:
    """Pixel agreement and mIoU of the two Segmenters on ``frames``, into ``report``; the check."""
    classes = fp32.classes  # the model's: ground truth (a Cityscapes tree or labelIds) only fits Cityscapes models
    against_fp32, predicted_fp32, predicted_int8 = (ConfusionMatrix(classes) for _ in range(3))
    check, frames_with_truth = Int8Check(), 0
    for frame in frames:
        mask_fp32 = fp32.segment(frame.image, frame.encoding, outputs=("mask",)).mask
        mask_int8 = int8.segment(frame.image, frame.encoding, outputs=("mask",)).mask
        check.add(mask_fp32, mask_int8)
        against_fp32.update(mask_fp32, mask_int8)
        if frame.train_ids is not None:
            predicted_fp32.update(frame.train_ids, mask_fp32)
            predicted_int8.update(frame.train_ids, mask_int8)
            frames_with_truth += 1
    if check.total == 0:
        raise ConfigError("no held-out frames to check the INT8 model on: give more frames than --calibration")
    report.pixel_agreement = check.agreement
    report.miou_int8_vs_fp32 = against_fp32.scores().miou
    if frames_with_truth:
        report.miou_fp32, report.miou_int8 = predicted_fp32.scores().miou, predicted_int8.scores().miou
    return check


def network_speed(fp32: Segmenter, int8: Segmenter, check: Int8Check, passes: int = 30, rounds: int = 3) -> None:
    """Both Segmenters' networks timed on one network input, interleaved (seconds, into ``check``)."""
    with torch.inference_mode():
        time_networks(fp32.network, int8.network, fp32.example_input(), check, passes=passes, rounds=rounds)


def quantize_checkpoint(checkpoint: Path, frames: Iterator[Frame], *, calibration: int, holdout: int,
                        input_size: tuple[int, int], out: Path, min_speedup: float = MIN_SPEEDUP,
                        min_agreement: float = MIN_AGREEMENT, runner: str = "auto") -> QuantizeReport:
    """Quantize ``checkpoint`` with the first ``calibration`` frames, check it on the next ``holdout`` and write
    it to ``out`` (atomically). Raises QuantizationRefused when its network, run by ``runner`` (``auto``: the
    one the node will use), is not ``min_speedup`` times faster than fp32's here, or when fewer than
    ``min_agreement`` of its pixels equal fp32's; nothing is written then."""
    if not package_available(EXPORT_PACKAGE):
        raise ConfigError("liteseg-quantize needs the onnx package: pip install onnx")
    fp32 = Segmenter(checkpoint, SegmenterConfig(device="cpu", precision="fp32", input_size=input_size))
    calibration_frames = list(_take(frames, calibration))
    if len(calibration_frames) < calibration:
        raise ConfigError(f"the source has {len(calibration_frames)} frames; --calibration asks for {calibration}")
    report = QuantizeReport(checkpoint=checkpoint.name, input_size=input_size,
                            calibration_frames=len(calibration_frames), holdout_frames=0,
                            fp32_runner=fp32.plan.runner,
                            machine=environment(torch.device("cpu"), torch.get_num_threads()))
    _, meta = load_weights(checkpoint)
    digest = file_digest(checkpoint)
    with tempfile.TemporaryDirectory(prefix="liteseg-quantize.") as workdir:
        fp32_onnx = Path(workdir) / "fp32.onnx"
        export_prepared(checkpoint, cache_key(digest, "onnxruntime", "fp32", input_size), fp32_onnx)
        proto = quantize(fp32_onnx, calibration_inputs(fp32, calibration_frames), workdir)
        candidate = write_quantized_model(proto, meta, input_size, {}, Path(workdir) / "candidate.onnx", digest)
        int8 = Segmenter(candidate, SegmenterConfig(device="cpu", input_size=input_size, optimize=runner, cache=False))
        report.int8_runner = int8.plan.runner
        report.plans = {"fp32": fp32.plan.describe(), "int8": int8.plan.describe()}
        held_out = list(_take(frames, holdout))
        report.holdout_frames = len(held_out)
        check = compare(fp32, int8, held_out, report)
        network_speed(fp32, int8, check)
        report.fp32_ms, report.int8_ms, report.speedup = check.fp32_ms, check.int8_ms, check.speedup
        refused = check.refusal(min_agreement, min_speedup)
        if refused:
            raise QuantizationRefused(
                f"INT8 refused: {refused}: nothing written. Calibrate with more frames like the robot's, use fp32 "
                f"(or bf16 where the CPU has it), or --min-agreement 0 / --min-speedup 0 to write it anyway", report)
        write_quantized_model(proto, meta, input_size, report.to_dict(), out, digest)
    return report


def default_output(checkpoint: Path) -> Path:
    """``liteseg_x.pt`` -> ``liteseg_x.int8.onnx`` beside it: the INT8 twin precision=auto finds."""
    return twin_path(checkpoint)


def _take(frames: Iterator[Frame], count: int) -> Iterator[Frame]:
    for _ in range(count):
        frame = next(frames, None)
        if frame is None:
            return
        yield frame
