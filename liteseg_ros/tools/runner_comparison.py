"""The CPU runners and precisions side by side: speed (interleaved), pixel agreement with fp32 and class-mIoU
change on unseen synthetic frames. Used by ``liteseg-bench --runners``.

Variants, each a Segmenter except the last:
- ``0.2 auto``: the 0.2 release's default (fp32 onnxruntime, pre/post-processing in one piece on one thread),
  the baseline every ratio is taken against;
- ``fp32 onnxruntime``, ``fp32 openvino``, ``bf16 openvino``, ``bf16 torchscript``, ``int8 openvino``,
  ``int8 onnxruntime`` (INT8: quantized here from synthetic frames that are neither trained on nor scored);
- ``auto``: what ``precision=auto, optimize=auto`` picks on this machine;
- ``openvino fp32 pipeline``: OpenVINO's own way: normalisation (PrePostProcessor), network, final upsampling
  and argmax in one compiled graph; palette by NumPy indexing and blend by OpenCV.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from liteseg_ros.inference.config import SegmenterConfig
from liteseg_ros.inference.export import PreUpsampleLogits, export_onnx_bytes, prepared_module
from liteseg_ros.inference.onnx_runners import openvino_config, openvino_core
from liteseg_ros.inference.plan import Machine, Request, make_plan
from liteseg_ros.inference.runners import EXPORT_PACKAGE, package_available
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.logs import get_logger
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model import CheckpointMeta, load_weights
from liteseg_ros.tools.calibration import Frame
from liteseg_ros.tools.synthetic.scenes import CALIBRATION_SEED, unseen_frames

LOG = get_logger(__name__)
BASELINE = "0.2 auto"


@dataclass
class Variant:
    """One way to segment a frame: ``segment(image) -> (mask, color, overlay)``, and its network alone."""

    name: str
    runner: str
    precision: str
    segment: Callable[[np.ndarray], tuple]
    network: Callable[[], object]


def segmenter_variant(name: str, checkpoint: Path, size: tuple[int, int], **options: Any) -> Variant:
    segmenter = Segmenter(checkpoint, SegmenterConfig(device="cpu", input_size=size, **options))
    example = segmenter.example_input()

    def segment(image: np.ndarray) -> tuple:
        result = segmenter.segment(image, outputs=("mask", "color", "overlay"))
        return result.mask, result.color, result.overlay

    runner = ", ".join(tag for tag in segmenter.options.tags() if tag != "bn-folded") or "eager"
    return Variant(name, runner, segmenter.precision, segment, lambda: segmenter.network(example))


def openvino_pipeline_variant(checkpoint: Path, size: tuple[int, int], alpha: float = 0.5) -> Variant:
    """OpenVINO's own fp32 pipeline (see the module docstring); the image must have the input's size."""
    import cv2
    import openvino
    from openvino.preprocess import PrePostProcessor

    network, meta = prepared_network(checkpoint, size, pre_upsample=False)
    core = openvino_core()
    graph = core.read_model(export_onnx_bytes(_ArgmaxNetwork(network), torch.zeros(1, 3, *size)))
    ppp = PrePostProcessor(graph)
    ppp.input().tensor().set_element_type(openvino.Type.u8).set_layout(openvino.Layout("NHWC"))
    ppp.input().model().set_layout(openvino.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(openvino.Type.f32).mean([m * 255 for m in meta.mean]).scale(
        [s * 255 for s in meta.std])
    compiled = core.compile_model(ppp.build(), "CPU", openvino_config("fp32"))
    request = compiled.create_infer_request()
    example = np.zeros((1, *size, 3), dtype=np.uint8)
    palette = meta.classes.palette()

    def segment(image: np.ndarray) -> tuple:
        mask = request.infer({0: image[None]})[0][0].astype(np.uint8)
        color = palette[mask]
        return mask, color, cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0)

    return Variant("openvino fp32 pipeline", "openvino (whole graph)", "fp32", segment,
                   lambda: request.infer({0: example}))


def prepared_network(checkpoint: Path, size: tuple[int, int], *, pre_upsample: bool = True
                     ) -> tuple[nn.Module, CheckpointMeta]:
    """The checkpoint's network as a Segmenter prepares it for an ONNX runner (BatchNorm folded), before the final
    upsampling when ``pre_upsample``; and the checkpoint's metadata."""
    model, meta = load_weights(checkpoint)
    plan = make_plan(Request(device="cpu", precision="fp32", optimize="fold_bn,onnxruntime"), Machine.detect())
    network, _ = prepared_module(PreUpsampleLogits(model) if pre_upsample else model, plan, size)
    return network, meta


class _ArgmaxNetwork(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).argmax(dim=1).to(torch.uint8)


def quantized_model(checkpoint: Path, size: tuple[int, int], workdir: Path, frames: int = 16) -> Path | None:
    """An INT8 model of ``checkpoint`` calibrated on synthetic frames of CALIBRATION_SEED (None: not possible)."""
    from liteseg_ros.tools.quantize import QuantizationRefused, quantize_checkpoint

    out = workdir / "bench.int8.onnx"
    calibration = iter(unseen_frames(frames + 1, *size, seed=CALIBRATION_SEED))
    try:
        quantize_checkpoint(checkpoint, calibration, calibration=frames, holdout=1, input_size=size, out=out,
                            min_speedup=0.0, min_agreement=0.0)
    except QuantizationRefused:
        return None
    return out


def build_variants(checkpoint: Path, size: tuple[int, int], workdir: Path) -> list[Variant]:
    """Every variant this machine can run (a missing runner is left out with a log line)."""
    variants = [
        segmenter_variant(BASELINE, checkpoint, size, precision="fp32", optimize="auto", postprocess_threads=1),
        segmenter_variant("auto", checkpoint, size),
        segmenter_variant("fp32 onnxruntime", checkpoint, size, precision="fp32", optimize="fold_bn,onnxruntime"),
        segmenter_variant("bf16 torchscript", checkpoint, size, precision="bf16",
                          optimize="fold_bn,channels_last,torchscript_freeze"),
    ]
    if package_available("openvino"):
        variants += [
            segmenter_variant("fp32 openvino", checkpoint, size, precision="fp32", optimize="fold_bn,openvino"),
            segmenter_variant("bf16 openvino", checkpoint, size, precision="bf16", optimize="fold_bn,openvino"),
            openvino_pipeline_variant(checkpoint, size),
        ]
    else:
        LOG.info("OpenVINO is not installed: its variants are left out")
    int8 = quantized_model(checkpoint, size, workdir) if package_available(EXPORT_PACKAGE) else None
    if int8 is not None:
        runners = ("openvino", "onnxruntime") if package_available("openvino") else ("onnxruntime",)
        variants += [segmenter_variant(f"int8 {runner}", int8, size, optimize=runner, cache=False)
                     for runner in runners]
    return variants


def accuracy(variants: list[Variant], frames: list[Frame], reference: str = "fp32 onnxruntime") -> dict[str, dict]:
    """Per variant: pixels equal to the reference's masks, class mIoU against ground truth and its change."""
    masks = {variant.name: [variant.segment(frame.image)[0] for frame in frames] for variant in variants}
    results = {}
    for variant in variants:
        confusion = ConfusionMatrix()
        for frame, mask in zip(frames, masks[variant.name]):
            confusion.update(frame.train_ids, mask)
        equal = sum(int((a == b).sum()) for a, b in zip(masks[variant.name], masks[reference]))
        results[variant.name] = {"agreement": equal / sum(m.size for m in masks[reference]),
                                 "miou": confusion.scores().miou}
    for values in results.values():
        values["miou_change"] = values["miou"] - results[reference]["miou"]
    return results


def run_comparison(checkpoint: Path, size: tuple[int, int], *, frames: int, warmup: int, iters: int,
                   rounds: int) -> tuple[list[Variant], dict[str, dict], dict[str, dict[str, list[float]]]]:
    """Build the variants, score them on ``frames`` unseen frames and time them interleaved (network alone and
    end to end on the first frame)."""
    from liteseg_ros.inference.timing import time_interleaved

    evaluation = unseen_frames(frames, *size)
    with tempfile.TemporaryDirectory(prefix="liteseg-bench.") as workdir:
        variants = build_variants(checkpoint, size, Path(workdir))
        scores = accuracy(variants, evaluation)
        image = evaluation[0].image
        with torch.inference_mode():
            timings = {
                "network": time_interleaved({v.name: v.network for v in variants}, warmup=warmup, iters=iters,
                                            rounds=rounds, synchronize=lambda: None),
                "end_to_end": time_interleaved({v.name: (lambda v=v: v.segment(image)) for v in variants},
                                               warmup=warmup, iters=iters, rounds=rounds, synchronize=lambda: None),
            }
    return variants, scores, timings


COLUMNS = ("variant", "runner", "prec.", "network med/p95 ms", "end-to-end med/p95 ms", "e2e vs 0.2 auto",
           "pixels equal to fp32", "class mIoU (change)")


def comparison_rows(variants: list[Variant], scores: dict[str, dict],
                    timings: dict[str, dict[str, list[float]]]) -> list[list[str]]:
    """The table's cells, one row per variant, the baseline first."""
    def stats(seconds: list[float]) -> tuple[float, float]:
        return float(np.median(seconds)) * 1e3, float(np.percentile(seconds, 95)) * 1e3

    baseline = stats(timings["end_to_end"][BASELINE])[0]
    rows = []
    for variant in variants:
        network, end_to_end = stats(timings["network"][variant.name]), stats(timings["end_to_end"][variant.name])
        score = scores[variant.name]
        rows.append([variant.name, variant.runner, variant.precision, f"{network[0]:.1f} / {network[1]:.1f}",
                     f"{end_to_end[0]:.1f} / {end_to_end[1]:.1f}", f"{baseline / end_to_end[0]:.2f}x",
                     f"{score['agreement']:.2%}", f"{score['miou']:.4f} ({score['miou_change']:+.4f})"])
    return rows
