"""Tensor operations behind the Segmenter (:mod:`liteseg_ros.inference.segmenter`): the network up to its last
upsampling, normalisation, image resizing, nearest-neighbour class maps, blend. The CPU's resize + argmax is
:mod:`liteseg_ros.inference.resize_argmax`, on the maps of :mod:`liteseg_ros.inference.resampling`.
"""

from __future__ import annotations

import copy
import functools
import warnings

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from liteseg_ros.inference.resampling import AxisMap


class PreUpsampleLogits(nn.Module):
    """A copy of a LiteSeg that returns its decoder's logits before the final bilinear upsampling (1/s_low size).

    A forward hook on ``last_conv`` keeps its output. The final upsampling still runs in eager mode (its result
    is dropped); TorchScript freezing, Inductor and the ONNX export remove it as dead code. The caller does that
    upsampling fused with the argmax (:mod:`liteseg_ros.inference.resize_argmax`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model)
        self._kept: list[torch.Tensor] = []
        self.model.last_conv.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._kept.append(output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._kept.clear()
        self.model(x)
        return self._kept[-1]


def normalization_constants(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), 1 x 3 x 1 x 1, such that ``uint8 * scale + shift == (uint8 / 255 - mean) / std``."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32, device=device)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=torch.float32, device=device)
    return scale.view(1, 3, 1, 1), shift.view(1, 3, 1, 1)


def image_to_batch(image: torch.Tensor, encoding: str) -> torch.Tensor:
    """H x W x C uint8 (C = 3 or 1) -> 1 x C x H x W view in RGB order (channels_last strides, no copy for rgb8)."""
    batch = image.permute(2, 0, 1).unsqueeze(0)
    if encoding == "bgr8":
        batch = batch.flip(1)
    return batch


def rgb_view(image: torch.Tensor, encoding: str) -> torch.Tensor:
    """H x W x C uint8 image -> H x W x 3 RGB (a view for rgb8 and mono8)."""
    if encoding == "bgr8":
        return image.flip(2)
    if encoding == "mono8":
        return image.expand(-1, -1, 3)
    return image


def resize_image(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (half-pixel centres) to ``size``; antialiased when shrinking, as PIL's BILINEAR does."""
    if tuple(batch.shape[2:]) == tuple(size):
        return batch
    shrinking = size[0] < batch.shape[2] or size[1] < batch.shape[3]
    return F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def blend(image: torch.Tensor, color: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """``round((1 - alpha) * image + alpha * color)`` as uint8 (float32 arithmetic)."""
    mixed = image.to(torch.float32).mul_(1.0 - alpha)
    mixed.add_(color.to(torch.float32).mul_(alpha))
    return mixed.round_().to(torch.uint8)


def opencv_blend(image: np.ndarray, color: np.ndarray, alpha: float, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`blend` by ``cv2.addWeighted`` (7x faster on the CPU); its bytes equal blend's only for some alphas
    (:func:`opencv_blend_is_exact`)."""
    return cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0, dst=out)


@functools.lru_cache(maxsize=32)
def opencv_blend_is_exact(alpha: float) -> bool:
    """Whether :func:`opencv_blend` gives :func:`blend`'s bytes (with a float32 ``alpha`` tensor, as the
    pipeline calls it) for all 65,536 (image, colour) value pairs, in OpenCV's vectorised code (one long row) and
    in its scalar code (one value per row). True for 0, 0.25, 0.4, 0.5, 0.6, 1; false for 0.3, 0.7, 0.9."""
    values = np.arange(256, dtype=np.uint8)
    image, color = np.repeat(values, 256), np.tile(values, 256)
    expected = blend(torch.from_numpy(image), torch.from_numpy(color), torch.tensor(alpha)).numpy()
    for layout in (lambda a: a.reshape(1, -1), lambda a: np.stack([a, a], axis=1)[:, :1]):
        if not np.array_equal(opencv_blend(layout(image), layout(color), alpha).reshape(-1), expected):
            return False
    return True


class NearestBands:
    """Rows of a class map resampled by nearest neighbour (``upsample="mask"``), band by band like
    :class:`ResizeArgmax`."""

    def __init__(self, classes: torch.Tensor, rows: AxisMap, cols: AxisMap):
        self.classes, self.rows, self.cols = classes, rows, cols
        self.identity = rows.is_identity() and cols.is_identity()

    def band(self, first: int, end: int, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Output rows ``first:end`` as an (end - first) x W uint8 tensor (``classes``, the mask's rows, are not
        needed: the map is already per pixel)."""
        if self.identity:
            return self.classes[first:end]
        return self.classes.index_select(0, self.rows.index[first:end, 0]).index_select(1, self.cols.index[:, 0])


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """A torch view of a (possibly read-only) uint8 array."""
    with warnings.catch_warnings():  # read-only arrays (ROS buffers) are never written to
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(pixels)
