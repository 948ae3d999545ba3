"""Where a Segmenter's network comes from: a bare network, a weights file (ours or the authors') or an INT8 model,
with its normalisation, class set and training size; and the INT8 version of fp32 weights that ``precision=auto``
may run (a twin file beside them, or one the node calibrated earlier, from the network cache)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.cache import NetworkCache, file_digest
from liteseg_ros.inference.plan import Int8Option
from liteseg_ros.inference.prepare import cache_key
from liteseg_ros.inference.quantized import QuantizedModel, is_quantized_model, read_quantized_model, twin_path
from liteseg_ros.logs import get_logger
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD
from liteseg_ros.model.checkpoint import CheckpointMeta

LOG = get_logger(__name__)
CALIBRATED = "calibrated"  # the cache key's int8 for an INT8 model the node made from its frames


@dataclass
class Source:
    """A loaded network source. ``kind``: ``module`` (a network object), ``weights`` (an fp32 weights file) or
    ``int8`` (an INT8 model file). ``trained_size`` is the (height, width) the weights were trained at (an INT8
    model's: the one it was made for), None when unknown."""

    kind: str
    path: Path | None
    mean: tuple
    std: tuple
    classes: ClassSet | None
    backbone: str
    trained_size: tuple[int, int] | None = None
    module: nn.Module | None = None
    int8_model: QuantizedModel | None = None
    meta: CheckpointMeta | None = None  # a file's metadata
    int8_key: str = ""  # how the INT8 version of fp32 weights is keyed in the cache: twin:<sha256> or calibrated
    twin: Path | None = None
    _digest: str | None = None

    def digest(self) -> str:
        """SHA-256 of the weights file (computed once)."""
        if self._digest is None:
            self._digest = file_digest(self.path)
        return self._digest

    @property
    def architecture(self) -> Any:
        """What checks an input size: the module, or a weights file's architecture (its metadata)."""
        return self.module if self.module is not None or self.meta is None else self.meta.model_config()

    def model(self) -> nn.Module:
        """The network as a module (a weights file's is read when first asked for, and again after
        :meth:`release`)."""
        if self.module is None:
            from liteseg_ros.model import load_weights

            self.module = load_weights(self.path)[0]
        return self.module

    def release(self) -> None:
        """Drop a weights file's module once a runner that does not need it runs (it is read again on demand)."""
        if self.kind == "weights":
            self.module = None


def load_source(source: nn.Module | str | os.PathLike, backbone: str | None,
                cache: NetworkCache | None = None) -> Source:
    """The network source, its normalisation, class set (None for a bare network: decided by its outputs) and
    training size. A weights file's metadata is read from ``cache`` when it keeps it (under the file's digest).
    Raises WeightsError / IncompatibleWeightsError for a file that cannot be used."""
    if isinstance(source, nn.Module):
        name = getattr(getattr(source, "config", None), "backbone", type(source).__name__)
        return Source("module", None, IMAGENET_MEAN, IMAGENET_STD, None, name, module=source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if is_quantized_model(path):
            model = read_quantized_model(path, backbone=backbone)
            return Source("int8", path, model.meta.mean, model.meta.std, model.meta.classes, model.backbone,
                          model.input_size, int8_model=model, meta=model.meta)
        meta, digest = _weights_meta(path, backbone, cache)  # the weights are read only if a runner needs them
        return Source("weights", path, meta.mean, meta.std, meta.classes, meta.backbone, meta.input_size, meta=meta,
                      _digest=digest)
    raise ConfigError(f"Segmenter needs an nn.Module or a weights path, got {type(source).__name__}")


def _weights_meta(path: Path, backbone: str | None, cache: NetworkCache | None) -> tuple[CheckpointMeta, str | None]:
    from liteseg_ros.errors import IncompatibleWeightsError
    from liteseg_ros.model.checkpoint import read_weights_meta

    if cache is None:
        return read_weights_meta(path, backbone=backbone), None
    digest = file_digest(path)
    kept = cache.weights_meta(digest)
    if kept is None:
        meta = read_weights_meta(path, backbone=backbone)
        cache.keep_weights_meta(digest, meta.to_dict())
        return meta, digest
    meta = CheckpointMeta.from_dict(kept, f"weights file {path}")
    if backbone is not None and meta.backbone != backbone:
        raise IncompatibleWeightsError(f"weights file {path} has keys for {meta.backbone}, but backbone={backbone}: "
                                       f"use backbone={meta.backbone}")
    return meta, digest


def int8_option(source: Source, input_size: tuple[int, int], cache: NetworkCache | None) -> Int8Option | None:
    """The INT8 version of ``source``'s fp32 weights for ``input_size``, for ``precision=auto``: its twin file
    beside them (checked against fp32 on this CPU before it runs), else one the node calibrated on its frames
    earlier; with the refusal its check recorded here, if any. None for other sources and without either."""
    if source.kind != "weights":
        return None
    twin = twin_path(source.path)
    if twin.is_file():
        source.int8_key, source.twin = f"twin:{file_digest(twin)}", twin
        refused = _recorded_refusal(source, input_size, cache)
        return Int8Option(f"the INT8 twin {twin.name} of these weights (checked against fp32 on this CPU)", refused)
    source.int8_key = CALIBRATED
    entry = cache.lookup(cache_key(source.digest(), "openvino", "int8", input_size, int8=CALIBRATED)) if cache \
        else None
    if entry is None:
        return None
    made = entry.report.get("made", "earlier")
    return Int8Option(f"an INT8 model calibrated on this robot's frames ({made}; {entry.report.get('check', '')})",
                      entry.report.get("refused"))


def _recorded_refusal(source: Source, input_size: tuple[int, int], cache: NetworkCache | None) -> str | None:
    if cache is None:
        return None
    entry = cache.lookup(cache_key(source.digest(), "openvino", "int8", input_size, int8=source.int8_key))
    return entry.report.get("refused") if entry is not None else None


def check_int8_input_size(model: QuantizedModel, input_size: tuple[int, int]) -> None:
    """ConfigError unless ``input_size`` is the one the INT8 model was quantized for."""
    if tuple(input_size) != model.input_size:
        height, width = model.input_size
        raise ConfigError(f"{model.path.name} was quantized for input size {height}x{width}: use that input size "
                          f"or run liteseg-quantize --input-size for this one")


def log_quantized_report(model: QuantizedModel, runner: str) -> None:
    """The INT8 model's report; a warning when it runs on another runner than the one it was timed with."""
    LOG.info("INT8 model %s: %s", model.path.name, model.report.get("summary", "no report"))
    timed_with = model.report.get("int8_runner") or model.report.get("int8_runtime")  # older files: runtime
    if timed_with and timed_with != runner:
        LOG.warning("INT8 model %s was timed with %s by liteseg-quantize but runs on %s here, where INT8 can be "
                    "slower than fp32: check with liteseg-quantize --runner %s", model.path.name, timed_with,
                    runner, runner)
