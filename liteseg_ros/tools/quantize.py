"""INT8 post-training quantization of a checkpoint (onnxruntime's static QDQ quantizer), checked before it is
written: pixel agreement with fp32 and class-mIoU change on held-out frames, and the network's speed against
fp32 on this machine. A model slower than fp32 here is refused (``min_speedup``)."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from liteseg_ros.errors import ConfigError, LiteSegError
from liteseg_ros.inference.bands import single_torch_thread
from liteseg_ros.inference.networks import prepared_module
from liteseg_ros.inference.plan import Machine, Request, make_plan
from liteseg_ros.inference.quantized import write_quantized_model
from liteseg_ros.inference.runtimes import export_onnx_bytes, onnx_available
from liteseg_ros.inference.segmenter import DEFAULT_INPUT_SIZE, Segmenter
from liteseg_ros.inference.stages import PreUpsampleLogits, as_tensor, image_to_batch
from liteseg_ros.logs import get_logger
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model import CheckpointMeta, load_weights
from liteseg_ros.tools.calibration import Frame
from liteseg_ros.tools.timing import environment, time_interleaved

LOG = get_logger(__name__)


class QuantizationRefused(LiteSegError):
    """The INT8 model would be slower than fp32 on this machine (or failed its checks)."""


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
    int8_runtime: str = ""
    fp32_runtime: str = ""
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
                f"{self.int8_runtime})")

    def to_dict(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size), "miou_change": self.miou_change,
                "summary": self.summary()}


def calibration_inputs(segmenter: Segmenter, frames: Iterable[Frame]) -> Iterator[dict[str, np.ndarray]]:
    """The network inputs of ``frames`` exactly as ``segmenter`` prepares them (resize, normalisation)."""
    for frame in frames:
        with torch.inference_mode(), single_torch_thread():
            batch = image_to_batch(as_tensor(np.ascontiguousarray(frame.image)), frame.encoding)
            yield {"input": segmenter.stages.network_input(batch).float().contiguous().numpy()}


def quantize_onnx(fp32_model: bytes, inputs: Iterable[dict[str, np.ndarray]], workdir: Path):
    """onnxruntime static quantization: QDQ, INT8 weights per channel, uint8 activations (MinMax calibration).
    Returns the quantized ModelProto."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.iterator = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.iterator, None)

    fp32_path, prepared, int8_path = workdir / "fp32.onnx", workdir / "prepared.onnx", workdir / "int8.onnx"
    fp32_path.write_bytes(fp32_model)
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return onnx.load(str(int8_path))


def compare(fp32: Segmenter, int8: Segmenter, frames: Iterable[Frame], report: QuantizeReport) -> None:
    """Pixel agreement and mIoU of the two Segmenters on ``frames``, into ``report``."""
    classes = fp32.classes  # the model's: ground truth (a Cityscapes tree or labelIds) only fits Cityscapes models
    against_fp32, predicted_fp32, predicted_int8 = (ConfusionMatrix(classes) for _ in range(3))
    equal = total = frames_with_truth = 0
    for frame in frames:
        mask_fp32 = fp32.segment(frame.image, frame.encoding, outputs=("mask",)).mask
        mask_int8 = int8.segment(frame.image, frame.encoding, outputs=("mask",)).mask
        equal += int((mask_fp32 == mask_int8).sum())
        total += mask_fp32.size
        against_fp32.update(mask_fp32, mask_int8)
        if frame.train_ids is not None:
            predicted_fp32.update(frame.train_ids, mask_fp32)
            predicted_int8.update(frame.train_ids, mask_int8)
            frames_with_truth += 1
    if total == 0:
        raise ConfigError("no held-out frames to check the INT8 model on: give more frames than --calibration")
    report.pixel_agreement = equal / total
    report.miou_int8_vs_fp32 = against_fp32.scores().miou
    if frames_with_truth:
        report.miou_fp32, report.miou_int8 = predicted_fp32.scores().miou, predicted_int8.scores().miou


def network_speed(segmenters: dict[str, Segmenter], passes: int = 30, rounds: int = 3) -> dict[str, float]:
    """Median network milliseconds of each Segmenter, interleaved in rounds."""
    calls = {name: functools.partial(segmenter.network, segmenter.example_input())
             for name, segmenter in segmenters.items()}
    with torch.inference_mode():
        seconds = time_interleaved(calls, warmup=3, iters=passes, rounds=rounds, synchronize=lambda: None)
    return {name: float(np.median(values)) * 1e3 for name, values in seconds.items()}


def quantize_checkpoint(checkpoint: Path, frames: Iterator[Frame], *, calibration: int, holdout: int,
                        input_size: tuple[int, int], out: Path, min_speedup: float = 1.0,
                        min_agreement: float = 0.98, runtime: str = "auto") -> QuantizeReport:
    """Quantize ``checkpoint`` with the first ``calibration`` frames, check it on the next ``holdout`` and write
    it to ``out`` (atomically). Raises QuantizationRefused when its network, run by ``runtime`` (``auto``: the
    one the node will use), is not ``min_speedup`` times faster than fp32's here, or when fewer than
    ``min_agreement`` of its pixels equal fp32's; nothing is written then."""
    if not onnx_available():
        raise ConfigError("liteseg-quantize needs the onnx package: pip install onnx")
    fp32 = Segmenter(checkpoint, device="cpu", precision="fp32", input_size=input_size)
    calibration_frames = list(_take(frames, calibration))
    if len(calibration_frames) < calibration:
        raise ConfigError(f"the source has {len(calibration_frames)} frames; --calibration asks for {calibration}")
    report = QuantizeReport(checkpoint=checkpoint.name, input_size=input_size,
                            calibration_frames=len(calibration_frames), holdout_frames=0,
                            fp32_runtime=fp32.plan.runner,
                            machine=environment(torch.device("cpu"), torch.get_num_threads()))
    network, meta = prepared_network(checkpoint, input_size=input_size)
    with tempfile.TemporaryDirectory(prefix="liteseg-quantize.") as workdir:
        fp32_onnx = export_onnx_bytes(network, fp32.example_input())
        proto = quantize_onnx(fp32_onnx, calibration_inputs(fp32, calibration_frames), Path(workdir))
        candidate = write_quantized_model(proto, meta, input_size, {}, Path(workdir) / "candidate.onnx")
        int8 = Segmenter(candidate, device="cpu", input_size=input_size, optimize=runtime)
        report.int8_runtime = int8.plan.runner
        report.plans = {"fp32": fp32.plan.describe(), "int8": int8.plan.describe()}
        held_out = list(_take(frames, holdout))
        report.holdout_frames = len(held_out)
        compare(fp32, int8, held_out, report)
        speed = network_speed({"fp32": fp32, "int8": int8})
        report.fp32_ms, report.int8_ms = speed["fp32"], speed["int8"]
        report.speedup = speed["fp32"] / speed["int8"]
        if report.pixel_agreement < min_agreement:
            raise QuantizationRefused(
                f"only {report.pixel_agreement:.2%} of the INT8 model's pixels equal fp32's on the held-out frames "
                f"(required {min_agreement:.2%}): nothing written. Calibrate with more frames like the robot's, "
                f"or --min-agreement 0 to write it anyway")
        if report.speedup < min_speedup:
            raise QuantizationRefused(
                f"the INT8 network is not faster than fp32 on this machine ({report.int8_ms:.1f} ms vs "
                f"{report.fp32_ms:.1f} ms with {report.int8_runtime}; required {min_speedup:.2f}x): nothing written. "
                f"Use fp32 (or bf16 where the CPU has it), or --min-speedup 0 to write it anyway")
        write_quantized_model(proto, meta, input_size, report.to_dict(), out)
    return report


def default_output(checkpoint: Path) -> Path:
    """``liteseg_x.pt`` -> ``liteseg_x.int8.onnx`` beside it."""
    return checkpoint.with_name(checkpoint.stem + ".int8.onnx")


def _take(frames: Iterator[Frame], count: int) -> Iterator[Frame]:
    for _ in range(count):
        frame = next(frames, None)
        if frame is None:
            return
        yield frame


def prepared_network(checkpoint: Path, *, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                     pre_upsample: bool = True) -> tuple[torch.nn.Module, CheckpointMeta]:
    """The checkpoint's network as a Segmenter prepares it for an ONNX runtime (the plan of precision fp32,
    optimize fold_bn on the CPU: BatchNorm folded), before the final upsampling when ``pre_upsample``; and the
    checkpoint's metadata."""
    model, meta = load_weights(checkpoint)
    plan = make_plan(Request(device="cpu", precision="fp32", optimize="fold_bn"), Machine.detect())
    network, _ = prepared_module(PreUpsampleLogits(model) if pre_upsample else model, plan, input_size)
    return network, meta
