"""The real-time inference core: uint8 image in, trainId mask / colour image / overlay out. No ROS imports.

>>> seg = Segmenter("liteseg-mobilenetv2.pt", input_size=(360, 640))
>>> res = seg.segment(image, encoding="rgb8", outputs=("mask", "overlay"))
>>> res.mask, res.overlay, res.timings["total"]

The image is resized to ``input_size`` for the network (bilinear, half-pixel centres, antialiased when
shrinking) and the prediction mapped back to the image's resolution: ``upsample="logits"`` resizes the class
logits bilinearly and takes the argmax; ``upsample="mask"`` takes the argmax at the network's resolution and
resizes the mask by nearest neighbour (faster for large images, agreement in docs/benchmarks.md).
A Segmenter is not thread-safe: call ``segment`` from one thread at a time. On CPU, ``segment`` runs its pre- and
post-processing with torch's intra-op thread count set to 1 (restored afterwards; the network uses them all).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from liteseg_ros.errors import ConfigError, ImageError
from liteseg_ros.inference.cuda import CudaPipeline
from liteseg_ros.inference.optimize import OptimizeOptions, prepare_network, resolve_optimize
from liteseg_ros.inference.pipeline import PipelineStages, SegmentationResult
from liteseg_ros.inference.stages import (
    AxisMap,
    PreUpsampleLogits,
    bilinear_map,
    compose,
    identity_map,
    image_to_batch,
    nearest_map,
    normalization_constants,
    resize_argmax,
)
from liteseg_ros.labels import TRAIN_ID_PALETTE
from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD, LiteSeg
from liteseg_ros.outputs import OUTPUTS

LOG = logging.getLogger(__name__)

ENCODINGS = ("rgb8", "bgr8", "mono8")
UPSAMPLE_MODES = ("logits", "mask")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_CACHED_SIZES = 4  # image sizes whose resampling maps are kept
MAX_CLASSES = 255  # trainIds 0..254 fit the uint8 mask (resize_argmax uses 255 internally)


class Segmenter:
    """Runs a LiteSeg network on single images; see the module docstring."""

    def __init__(self, model_or_checkpoint: nn.Module | str | os.PathLike, *, device: str = "auto",
                 precision: str = "auto", input_size: tuple[int, int] = (360, 640), overlay_alpha: float = 0.5,
                 upsample: str = "logits", optimize: Any = "auto", backbone: str | None = None):
        """
        Args:
            model_or_checkpoint: a network (``x -> logits``, e.g. LiteSeg) or a weights file for ``load_weights``;
                a file's metadata (mean/std) sets the normalisation, a bare network is ImageNet-normalised.
            device: ``auto`` (CUDA when present, else CPU with a warning), ``cpu``, ``cuda`` or ``cuda:N``.
            precision: ``auto`` (fp16 on CUDA, fp32 on CPU), ``fp32``, ``fp16`` or ``bf16``.
            input_size: (height, width) of the network input; must suit the backbone.
            overlay_alpha: weight of the colour image in the overlay, in [0, 1] (settable later).
            upsample: ``logits`` or ``mask`` (see the module docstring).
            optimize: ``auto``, ``none``, an :class:`OptimizeOptions`, a mapping or a comma-separated list.
            backbone: with a weights file, refuse one of another backbone (IncompatibleWeightsError).

        Raises ConfigError (InputSizeError for a size the backbone cannot take) and WeightsError for bad weights.
        """
        model, mean, std = _load_model(model_or_checkpoint, backbone)
        self._device = resolve_device(device)
        self._precision, self._dtype = resolve_precision(precision, self._device)
        self.input_size = _check_input_size(input_size, model)
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {upsample!r}")
        self.upsample = upsample
        self.options: OptimizeOptions = resolve_optimize(optimize, self._device, self._dtype)
        self.backbone = getattr(getattr(model, "config", None), "backbone", type(model).__name__)
        self._alpha_tensor = torch.zeros((), dtype=torch.float32, device=self._device)
        self.overlay_alpha = overlay_alpha
        # On CPU a LiteSeg's final bilinear upsampling is fused with the argmax (stages.resize_argmax).
        self._pre_upsample = self._device.type == "cpu" and isinstance(model, LiteSeg)
        network, self._source_maps = self._prepare(model)
        scale, shift = normalization_constants(tuple(mean), tuple(std), self._device)
        self.stages = PipelineStages(
            network=network, input_size=self.input_size, dtype=self._dtype, channels_last=self.options.channels_last,
            scale=scale, shift=shift, palette=torch.from_numpy(TRAIN_ID_PALETTE).to(self._device),
            alpha=self._alpha_tensor, upsample=upsample, float_resize=self._device.type == "cuda",
        )
        self._maps: OrderedDict[tuple[int, int], tuple[AxisMap, AxisMap]] = OrderedDict()
        self._cuda = CudaPipeline(self.stages, self._device, self.options) if self._device.type == "cuda" else None
        LOG.info("segmenter ready: %s", self.description)

    @classmethod
    def from_weights(cls, path: str | os.PathLike, *, backbone: str | None = None, **options: Any) -> "Segmenter":
        """A Segmenter for a weights file (ours or the authors'), normalising with the file's own mean/std.

        This is how the node, liteseg-eval and replay build theirs. ``backbone`` refuses a file of another
        backbone; ``options`` are the constructor's keywords (device, precision, input_size, ...).
        """
        return cls(path, backbone=backbone, **options)

    # ------------------------------------------------------------------------------------------- properties
    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def overlay_alpha(self) -> float:
        return self._overlay_alpha

    @overlay_alpha.setter
    def overlay_alpha(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"overlay_alpha must be a number in [0, 1], got {value!r}")
        self._overlay_alpha = float(value)
        self._alpha_tensor.fill_(self._overlay_alpha)

    @property
    def description(self) -> str:
        """E.g. ``mobilenetv2 fp16 cuda:0 360x640 (bn-folded, channels-last, cuda-graph)``."""
        tags = self.options.tags()
        suffix = f" ({', '.join(tags)})" if tags else " (eager)"
        return f"{self.backbone} {self._precision} {self.device} {self.input_size[0]}x{self.input_size[1]}{suffix}"

    @property
    def network(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The optimised network as ``segment`` runs it: ``x -> logits``, x like :meth:`example_input`.

        On CPU a LiteSeg returns its logits before the final bilinear upsampling, which ``segment`` fuses with the
        argmax.
        """
        return self.stages.network

    def example_input(self, seed: int = 0) -> torch.Tensor:
        """A random network input of the deployed shape, dtype, device and memory format."""
        memory_format = torch.channels_last if self.options.channels_last else torch.contiguous_format
        x = torch.randn(1, 3, *self.input_size, generator=torch.Generator().manual_seed(seed))
        return x.to(device=self._device, dtype=self._dtype).contiguous(memory_format=memory_format)

    # ---------------------------------------------------------------------------------------------- running
    def segment(
        self, image: np.ndarray, encoding: str = "rgb8", outputs: Iterable[str] = OUTPUTS
    ) -> SegmentationResult:
        """Segment one H x W x 3 (rgb8, bgr8) or H x W / H x W x 1 (mono8) uint8 image.

        Raises ImageError for an image of the wrong type, dtype, shape or size, ConfigError for unknown outputs.
        """
        start = time.perf_counter()
        wanted = _wanted_outputs(outputs)
        pixels = validate_image(image, encoding)
        if self._cuda is not None:
            result = self._cuda.run(pixels, encoding, wanted, start)
        else:
            with torch.inference_mode():
                result = self._run_cpu(pixels, encoding, wanted, start)
        result.timings["total"] = time.perf_counter() - start
        return result

    seg = segment  # the name of releases before 0.2; kept for existing code

    def _run_cpu(self, pixels: np.ndarray, encoding: str, wanted: frozenset[str], start: float) -> SegmentationResult:
        # Pre/post-processing are short memory-bound ops: on one thread they do not stall in OpenMP barriers when
        # another process holds the second core (docs/benchmarks.md); the network keeps all threads.
        image = _as_tensor(pixels)
        with single_torch_thread():
            network_input = self.stages.network_input(image_to_batch(image, encoding))
        preprocessed = time.perf_counter()
        logits = self.stages.network(network_input)[0]
        inferred = time.perf_counter()
        with single_torch_thread():
            mask = self._mask(logits, pixels.shape[0], pixels.shape[1])  # the CPU fusion of resize and argmax
            result = SegmentationResult(mask=mask.numpy() if "mask" in wanted else None)
            if wanted & {"color", "overlay"}:
                color = self.stages.colour(mask)
                result.color = color.numpy() if "color" in wanted else None
                if "overlay" in wanted:
                    result.overlay = self.stages.overlay(image, encoding, color).numpy()
        result.timings.update(
            preprocess=preprocessed - start,
            inference=inferred - preprocessed,
            postprocess=time.perf_counter() - inferred,
        )
        return result

    def _mask(self, logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """C x h x w network logits -> H x W uint8 trainIds at the image's resolution (CPU)."""
        if self.upsample == "mask":  # argmax at the network's resolution, then nearest neighbour
            rows, cols = self._resampling_maps(height, width)
            mask = resize_argmax(logits, *self._source_maps)
            if rows.is_identity() and cols.is_identity():
                return mask
            return mask.index_select(0, rows.index[:, 0]).index_select(1, cols.index[:, 0])
        return resize_argmax(logits, *self._resampling_maps(height, width))

    def _resampling_maps(self, height: int, width: int) -> tuple[AxisMap, AxisMap]:
        """Row and column maps to the image's pixels (cached per image size): from the network's logits for
        ``upsample="logits"``; nearest neighbour from the network's resolution for ``"mask"``."""
        key = (height, width)
        if key not in self._maps:
            net_height, net_width = self.input_size
            if self.upsample == "mask":
                self._maps[key] = (nearest_map(net_height, height), nearest_map(net_width, width))
            else:
                source_rows, source_cols = self._source_maps
                self._maps[key] = (
                    compose(source_rows, bilinear_map(net_height, height, align_corners=False)),
                    compose(source_cols, bilinear_map(net_width, width, align_corners=False)),
                )
            if len(self._maps) > MAX_CACHED_SIZES:
                self._maps.popitem(last=False)
        return self._maps[key]

    def _prepare(self, model: nn.Module) -> tuple[Any, tuple[AxisMap, AxisMap]]:
        """The optimised network and the maps from its output to the network input's resolution."""
        height, width = self.input_size
        example = self.example_input()
        probe = _small_probe(model, self._device) if self.options.fold_bn else None
        network_module = PreUpsampleLogits(model) if self._pre_upsample else model
        options = replace(self.options, warmup=1) if self.options.cuda_graphs else self.options  # the capture warms up
        network, applied = prepare_network(network_module, options, example, probe_input=probe)
        self.options = replace(applied, warmup=self.options.warmup)  # without the optimisations that fell back
        with torch.inference_mode():
            classes, low_height, low_width = network(example).shape[1:]
        if classes > MAX_CLASSES:
            raise ConfigError(f"the network predicts {classes} classes; the uint8 mask holds at most {MAX_CLASSES}")
        if not self._pre_upsample:
            return network, (identity_map(height), identity_map(width))
        return network, (
            bilinear_map(low_height, height, align_corners=True),
            bilinear_map(low_width, width, align_corners=True),
        )


# ------------------------------------------------------------------------------------------------- helpers
def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU (logged); ``cuda`` without CUDA -> ConfigError."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        LOG.warning("CUDA is not available: running on the CPU (expect a few frames per second)")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device} requested but CUDA is not available (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'none'}); use device=cpu or auto"
            )
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={device} requested but only {torch.cuda.device_count()} GPU(s) are visible")
        return torch.device("cuda", index)
    if resolved.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> tuple[str, torch.dtype]:
    """``auto`` -> fp16 on CUDA, fp32 on CPU. Returns (name, dtype)."""
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision=bf16 requested but this GPU does not support bfloat16; use fp16")
    if precision == "fp16" and device.type == "cpu":
        LOG.warning("precision=fp16 on the CPU is slow on most processors; fp32 (or bf16) is recommended")
    return precision, PRECISIONS[precision]


def validate_image(image: Any, encoding: str) -> np.ndarray:
    """Check an image and return it as H x W x C (C = 3, or 1 for mono8) uint8 without copying when possible."""
    if encoding not in ENCODINGS:
        raise ImageError(
            f"unsupported encoding {encoding!r}: use one of {', '.join(ENCODINGS)} (convert other encodings first)"
        )
    if not isinstance(image, np.ndarray):
        raise ImageError(f"the image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"{encoding} images must be uint8, got {image.dtype}: convert (e.g. scale to 0..255) first")
    channels = 1 if encoding == "mono8" else 3
    if encoding == "mono8" and image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] != channels:
        expected = "H x W or H x W x 1" if channels == 1 else "H x W x 3"
        raise ImageError(f"{encoding} images must be {expected}, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {image.shape})")
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    return image


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run the enclosed torch CPU ops on one intra-op thread, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only arrays (ROS buffers) are never written to
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(pixels)


def _wanted_outputs(outputs: Iterable[str]) -> frozenset[str]:
    wanted = frozenset((outputs,) if isinstance(outputs, str) else outputs)
    unknown = wanted - set(OUTPUTS)
    if unknown or not wanted:
        raise ConfigError(f"outputs must name one or more of {', '.join(OUTPUTS)}, got {tuple(outputs)!r}")
    return wanted


def _load_model(source: nn.Module | str | os.PathLike, backbone: str | None) -> tuple[nn.Module, tuple, tuple]:
    if isinstance(source, nn.Module):
        return source, IMAGENET_MEAN, IMAGENET_STD
    if isinstance(source, (str, os.PathLike)):
        from liteseg_ros.model import load_weights

        model, meta = load_weights(source, backbone=backbone)
        return model, meta.mean, meta.std
    raise ConfigError(f"Segmenter needs an nn.Module or a weights path, got {type(source).__name__}")


def _check_input_size(size: Any, model: nn.Module) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
        valid = all(int(v) == v for v in size)
    except (TypeError, ValueError):
        valid = False
    if not valid or height <= 0 or width <= 0:
        raise ConfigError(f"input_size must be two positive integers (height, width), got {size!r}")
    check = getattr(model, "check_input_size", None)
    if check is not None:
        check(height, width)
    return height, width


def _small_probe(model: nn.Module, device: torch.device) -> torch.Tensor | None:
    """A small valid fp32 input for finding BatchNorm pairs (64 x 64 suits every LiteSeg backbone), or None."""
    side = 64
    check = getattr(model, "check_input_size", None)
    if check is None:
        return None
    try:
        check(side, side)
    except ConfigError:
        return None
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(1)).to(device)
