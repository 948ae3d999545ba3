"""Checks of what a Segmenter is given: the image and its encoding, the outputs asked for, the input and output
sizes. Each raises a typed error saying what to pass instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from liteseg_ros.errors import ConfigError, ImageError
from liteseg_ros.outputs import OUTPUTS

if TYPE_CHECKING:
    from torch import nn

ENCODINGS = ("rgb8", "bgr8", "mono8")


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


def check_frame_size(name: str, size: Any) -> tuple[int, int] | None:
    """A per-frame size (:meth:`Segmenter.infer`'s ``output_size``, ``label_size``): None or two positive
    integers; ConfigError otherwise."""
    if size is None:
        return None
    pair = _positive_pair(size)
    if pair is None:
        raise ConfigError(f"{name} must be None or two positive integers (height, width), got {size!r}")
    return pair


def _positive_pair(size: Any) -> tuple[int, int] | None:
    """``size`` as (height, width) when it is two positive integral numbers, else None."""
    try:
        height, width = (int(v) for v in size)
        valid = all(int(v) == v for v in size)
    except (TypeError, ValueError):
        return None
    return (height, width) if valid and height > 0 and width > 0 else None
