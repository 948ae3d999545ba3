"""Where a Segmenter's network comes from: a bare network, a weights file (ours or the authors') or an INT8 model,
with its normalisation and class set; and the settings an INT8 model can run with."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.arguments import check_input_size
from liteseg_ros.inference.optimize import OptimizeOptions, resolve_optimize
from liteseg_ros.inference.quantized import QuantizedModel, is_quantized_model, read_quantized_model
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD

LOG = logging.getLogger("liteseg_ros.inference.segmenter")


def load_source(
    source: nn.Module | str | os.PathLike, backbone: str | None
) -> tuple[nn.Module | QuantizedModel, tuple, tuple, ClassSet | None]:
    """The network, its normalisation and its class set (None for a bare network: decided by its outputs)."""
    if isinstance(source, nn.Module):
        return source, IMAGENET_MEAN, IMAGENET_STD, None
    if isinstance(source, (str, os.PathLike)):
        if is_quantized_model(source):
            quantized = read_quantized_model(source, backbone=backbone)
            return quantized, quantized.meta.mean, quantized.meta.std, quantized.meta.classes
        from liteseg_ros.model import load_weights

        model, meta = load_weights(source, backbone=backbone)
        return model, meta.mean, meta.std, meta.classes
    raise ConfigError(f"Segmenter needs an nn.Module or a weights path, got {type(source).__name__}")


def quantized_settings(quantized: QuantizedModel, device: str, precision: str, input_size: Any) -> str:
    """The device an INT8 model runs on (the CPU); ConfigError for settings it cannot honour."""
    if precision not in ("auto", "int8"):
        raise ConfigError(f"{quantized.path.name} is an INT8 model: use precision auto (or the fp32 checkpoint "
                          f"for precision={precision})")
    if device not in ("auto", "cpu"):
        raise ConfigError(f"{quantized.path.name} is an INT8 model, which runs on the CPU: use device cpu or auto")
    if tuple(check_input_size(input_size, None)) != quantized.input_size:
        height, width = quantized.input_size
        raise ConfigError(f"{quantized.path.name} was quantized for input size {height}x{width}: use that input size "
                          f"or run liteseg-quantize --input-size for this one")
    return "cpu"


def quantized_options(optimize: Any) -> OptimizeOptions:
    """An INT8 model's options: its runtime (``openvino`` or ``onnxruntime`` named in ``optimize``, else the
    fastest installed) and the warm-up; the other optimisations are already in the file or do not apply."""
    base = OptimizeOptions(fold_bn=False, channels_last=False)
    if optimize in (None, False, True, "auto", "none"):
        return base
    chosen = resolve_optimize(optimize, "cpu", torch.float32)
    return replace(base, warmup=chosen.warmup, openvino=chosen.openvino, onnxruntime=chosen.onnxruntime)


def log_quantized_report(model: QuantizedModel, options: OptimizeOptions) -> None:
    """The INT8 model's report; a warning when it runs on another runtime than the one it was timed with."""
    LOG.info("INT8 model %s: %s", model.path.name, model.report.get("summary", "no report"))
    timed_with = model.report.get("int8_runtime")
    runtime = "openvino" if options.openvino else "onnxruntime"
    if timed_with and timed_with != runtime:
        LOG.warning("INT8 model %s was timed with %s by liteseg-quantize but runs on %s here, where INT8 can be "
                    "slower than fp32: check with liteseg-quantize --runtime %s", model.path.name, timed_with,
                    runtime, runtime)
