"""Checks and resolution of the Segmenter's arguments: device, precision, image, outputs, input size."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from liteseg_ros.errors import ConfigError, ImageError
from liteseg_ros.inference.cpu_features import NATIVE_BF16_FLAGS, native_bf16_flags
from liteseg_ros.inference.runtimes import OPENVINO_INSTALL, openvino_available
from liteseg_ros.outputs import OUTPUTS

LOG = logging.getLogger("liteseg_ros.inference.segmenter")

ENCODINGS = ("rgb8", "bgr8", "mono8")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


def auto_cpu_precision(optimize: Any = "auto", flags: frozenset[str] | None = None) -> tuple[str, str]:
    """``precision=auto`` on the CPU: (``bf16`` or ``fp32``, why).

    bf16 where the CPU executes it natively (``flags``, default this CPU's) and OpenVINO, which runs it about
    twice as fast as fp32 there (docs/benchmarks.md), is installed and allowed by ``optimize``; fp32 elsewhere.
    """
    from liteseg_ros.inference.optimize import resolve_optimize

    native = native_bf16_flags(flags)
    if not native:
        return "fp32", f"this CPU has no native bf16 ({' or '.join(NATIVE_BF16_FLAGS)})"
    if not openvino_available():
        return "fp32", (f"the CPU has {', '.join(native)} but OpenVINO, which runs bf16, is not installed: "
                        f"{OPENVINO_INSTALL}")
    try:
        uses_openvino = resolve_optimize(optimize, "cpu", torch.bfloat16).openvino
    except ConfigError:
        uses_openvino = False
    if not uses_openvino:
        return "fp32", f"the CPU has {', '.join(native)} but optimize={optimize!r} does not run OpenVINO"
    return "bf16", f"the CPU has {', '.join(native)}; OpenVINO runs bf16 natively"


def resolve_precision(precision: str, device: torch.device, optimize: Any = "auto") -> tuple[str, torch.dtype, str]:
    """``auto`` -> fp16 on CUDA; on the CPU bf16 or fp32 (:func:`auto_cpu_precision`). Returns (name, dtype,
    why the CPU's auto chose it, else "")."""
    reason = ""
    if precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        else:
            precision, why = auto_cpu_precision(optimize)
            reason = f"precision auto -> {precision}: {why}"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision=bf16 requested but this GPU does not support bfloat16; use fp16")
    if precision == "fp16" and device.type == "cpu":
        LOG.warning("precision=fp16 on the CPU is slow on most processors; fp32 (or bf16) is recommended")
    return precision, PRECISIONS[precision], reason


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


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """A torch view of a (possibly read-only) uint8 array."""
    with warnings.catch_warnings():  # read-only arrays (ROS buffers) are never written to
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(pixels)


def wanted_outputs(outputs: Iterable[str]) -> frozenset[str]:
    """The requested output names, checked against :data:`~liteseg_ros.outputs.OUTPUTS`."""
    wanted = frozenset((outputs,) if isinstance(outputs, str) else outputs)
    unknown = wanted - set(OUTPUTS)
    if unknown or not wanted:
        raise ConfigError(f"outputs must name one or more of {', '.join(OUTPUTS)}, got {tuple(outputs)!r}")
    return wanted


def check_input_size(size: Any, model: nn.Module | None) -> tuple[int, int]:
    """(height, width) as two positive integers the model (when given) accepts; ConfigError otherwise."""
    pair = _positive_pair(size)
    if pair is None:
        raise ConfigError(f"input_size must be two positive integers (height, width), got {size!r}")
    height, width = pair
    check = getattr(model, "check_input_size", None)
    if check is not None:
        check(height, width)
    return height, width


def check_output_size(size: Any, input_size: tuple[int, int]) -> tuple[int, int] | None:
    """The outputs' (height, width): None for the image's own resolution, ``input_size`` for ``"input"``, or two
    positive integers; ConfigError otherwise."""
    if size is None:
        return None
    if size == "input":
        return input_size
    pair = None if isinstance(size, str) else _positive_pair(size)
    if pair is None:
        raise ConfigError(f"output_size must be None (the image's size), 'input' or two positive integers "
                          f"(height, width), got {size!r}")
    return pair


def _positive_pair(size: Any) -> tuple[int, int] | None:
    """``size`` as (height, width) when it is two positive integral numbers, else None."""
    try:
        height, width = (int(v) for v in size)
        valid = all(int(v) == v for v in size)
    except (TypeError, ValueError):
        return None
    return (height, width) if valid and height > 0 and width > 0 else None


def check_threads(threads: Any) -> int:
    """The CPU thread count: ``None`` or 0 -> torch's current count; otherwise a positive integer."""
    if threads is None or threads == 0:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads must be a positive integer (0: all of torch's), got {threads!r}")
    return threads


def small_probe(model: nn.Module, device: torch.device) -> torch.Tensor | None:
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
