"""Where a Segmenter's network comes from: a bare network, a weights file (ours or the authors') or an INT8 model,
with its normalisation and class set."""

from __future__ import annotations

import os

from torch import nn

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.quantized import QuantizedModel, is_quantized_model, read_quantized_model
from liteseg_ros.logs import get_logger
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD

LOG = get_logger(__name__)


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


def check_int8_input_size(model: QuantizedModel, input_size: tuple[int, int]) -> None:
    """ConfigError unless ``input_size`` is the one the INT8 model was quantized for."""
    if tuple(input_size) != model.input_size:
        height, width = model.input_size
        raise ConfigError(f"{model.path.name} was quantized for input size {height}x{width}: use that input size "
                          f"or run liteseg-quantize --input-size for this one")


def log_quantized_report(model: QuantizedModel, runtime: str) -> None:
    """The INT8 model's report; a warning when it runs on another runtime than the one it was timed with."""
    LOG.info("INT8 model %s: %s", model.path.name, model.report.get("summary", "no report"))
    timed_with = model.report.get("int8_runtime")
    if timed_with and timed_with != runtime:
        LOG.warning("INT8 model %s was timed with %s by liteseg-quantize but runs on %s here, where INT8 can be "
                    "slower than fp32: check with liteseg-quantize --runtime %s", model.path.name, timed_with,
                    runtime, runtime)
