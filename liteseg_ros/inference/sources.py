"""Where a Segmenter's network comes from, read once: a bare network, a weights file (ours or the authors') or an INT8
model, with its normalisation, class set and training size; the network input size (asked for, else the one the
weights were trained at) checked against the architecture; and, for fp32 weights, the INT8 version of them that
``precision=auto`` may run at that size (:mod:`.int8.twin`). The plan is made from it, the network built from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError, IncompatibleWeightsError
from liteseg_ros.inference.cache import NetworkCache, file_digest
from liteseg_ros.inference.config import SegmenterConfig
from liteseg_ros.inference.int8.models import QuantizedModel, is_quantized_model, read_quantized_model
from liteseg_ros.inference.int8.twin import int8_version
from liteseg_ros.inference.plan import Int8Option, Request
from liteseg_ros.inference.validation import check_input_size
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD
from liteseg_ros.model.bundled import DEFAULT_INPUT_SIZE
from liteseg_ros.model.checkpoint import CheckpointMeta, read_weights_meta


@dataclass
class Source:
    """A loaded network source. ``kind``: ``module`` (a network object), ``weights`` (an fp32 weights file) or
    ``int8`` (an INT8 model file). ``trained_size`` is the (height, width) the weights were trained at (an INT8
    model's: the one it was made for), None when unknown; ``input_size`` the network input, ``size_reason`` where
    it came from; ``int8`` the INT8 version of fp32 weights at that size (None: none), keyed in the cache by
    ``int8_key``; ``request`` what the plan is asked: the options with what the source offers."""

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
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    size_reason: str = ""
    int8: Int8Option | None = None
    int8_key: str = ""  # twin:<sha256> or calibrated
    twin: Path | None = None
    request: Request = Request()
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


def load_source(model: nn.Module | str | os.PathLike, config: SegmenterConfig,
                cache: NetworkCache | None = None) -> Source:
    """The source of ``model`` for ``config``: read once (a weights file's metadata from ``cache`` when it keeps it,
    under the file's digest), at the network input size it will run, checked. Raises WeightsError /
    IncompatibleWeightsError for a file that cannot be used, ConfigError (InputSizeError) for a size it cannot
    take."""
    source = read_source(model, config.backbone, cache)
    if config.input_size is not None:
        source.input_size, source.size_reason = tuple(config.input_size), "asked for"
    elif source.trained_size is not None:
        source.input_size, source.size_reason = tuple(source.trained_size), "the size the weights were trained at"
    else:
        source.size_reason = "the default (the weights do not record their training size)"
    check_input_size(source.input_size, source.architecture if source.kind != "int8" else None)
    if source.int8_model is not None and source.input_size != source.int8_model.input_size:
        height, width = source.int8_model.input_size
        raise ConfigError(f"{source.path.name} was quantized for input size {height}x{width}: use that input size "
                          f"or run liteseg-quantize --input-size for this one")
    if source.kind == "weights":
        source.int8, source.int8_key, source.twin = int8_version(source.path, source.digest(), source.input_size,
                                                                 cache)
    source.request = Request(device=config.device, precision=config.precision, optimize=config.optimize,
                             threads=config.threads, postprocess_threads=config.postprocess_threads,
                             int8_model=source.path.name if source.kind == "int8" else None, int8=source.int8,
                             calibrate=config.calibrate and source.kind == "weights")
    return source


def read_source(model: Any, backbone: str | None = None, cache: NetworkCache | None = None) -> Source:
    """The source of ``model`` as its file says (metadata only: no input size, no INT8 version): what
    ``liteseg-info`` and ``liteseg-eval`` read before they plan."""
    if isinstance(model, nn.Module):
        name = getattr(getattr(model, "config", None), "backbone", type(model).__name__)
        return Source("module", None, IMAGENET_MEAN, IMAGENET_STD, None, name, module=model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if is_quantized_model(path):
            int8 = read_quantized_model(path, backbone=backbone)
            return Source("int8", path, int8.meta.mean, int8.meta.std, int8.meta.classes, int8.backbone,
                          int8.input_size, int8_model=int8, meta=int8.meta)
        meta, digest = _weights_meta(path, backbone, cache)  # the weights are read only if a runner needs them
        return Source("weights", path, meta.mean, meta.std, meta.classes, meta.backbone, meta.input_size, meta=meta,
                      _digest=digest)
    raise ConfigError(f"Segmenter needs an nn.Module or a weights path, got {type(model).__name__}")


def _weights_meta(path: Path, backbone: str | None, cache: NetworkCache | None) -> tuple[CheckpointMeta, str | None]:
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
