"""Tensor operations behind the Segmenter (:mod:`liteseg_ros.inference.segmenter`): resampling maps, resize +
argmax, colour, blend.

The CPU post-processing avoids upsampling all class logits to the image's resolution. Bilinear interpolation
is a convex combination of source pixels, so wherever every source pixel (tap) of an output pixel has the
same argmax class, the interpolated logits have that argmax too. Only the pixels whose taps disagree (class
boundaries, a few percent of the image) need their logits interpolated. :func:`resize_argmax` does exactly
that, and gives the argmax of the densely resized logits (up to float rounding at near-ties).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from liteseg_ros.inference.bands import BandPool


@dataclass(frozen=True)
class AxisMap:
    """A 1-D linear resampling: output position ``o`` = sum over k of ``weight[o, k] * input[index[o, k]]``.

    Taps with weight 0 repeat the first tap's index, so they never widen the set of contributing pixels.
    """

    index: torch.Tensor  # n_out x K int64
    weight: torch.Tensor  # n_out x K float32
    in_size: int

    @property
    def out_size(self) -> int:
        return self.index.shape[0]

    @property
    def taps(self) -> int:
        return self.index.shape[1]

    def is_identity(self) -> bool:
        return self.taps == 1 and self.in_size == self.out_size and bool(
            torch.equal(self.index[:, 0], torch.arange(self.in_size))
        )


def identity_map(size: int) -> AxisMap:
    return AxisMap(torch.arange(size).unsqueeze(1), torch.ones(size, 1), size)


def bilinear_map(in_size: int, out_size: int, *, align_corners: bool) -> AxisMap:
    """The taps and weights ``F.interpolate(mode="bilinear")`` uses along one axis.

    float32, as PyTorch's CPU kernel computes them."""
    if in_size == out_size:
        return identity_map(in_size)
    dst = torch.arange(out_size, dtype=torch.float32)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * torch.tensor(scale, dtype=torch.float32)
    else:
        scale = torch.tensor(in_size / out_size, dtype=torch.float32)
        src = ((dst + 0.5) * scale - 0.5).clamp_(min=0.0)
    first = src.to(torch.int64).clamp_(max=in_size - 1)
    second = torch.where(first < in_size - 1, first + 1, first)
    frac = (src - first.to(torch.float32)).clamp_(0.0, 1.0)
    index = torch.stack((first, torch.where(frac > 0, second, first)), dim=1)
    return AxisMap(index, torch.stack((1.0 - frac, frac), dim=1), in_size)


def nearest_map(in_size: int, out_size: int) -> AxisMap:
    """``F.interpolate(mode="nearest-exact")`` along one axis: the input pixel whose centre is nearest."""
    if in_size == out_size:
        return identity_map(in_size)
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    dst = torch.arange(out_size, dtype=torch.float32)
    index = torch.floor((dst + 0.5) * scale).to(torch.int64).clamp_(max=in_size - 1)
    return AxisMap(index.unsqueeze(1), torch.ones(out_size, 1), in_size)


def compose(inner: AxisMap, outer: AxisMap) -> AxisMap:
    """The map of ``outer(inner(x))``: taps of the two maps multiplied out, duplicates merged, zero taps dropped."""
    if inner.is_identity():
        return outer
    if outer.is_identity():
        return inner
    index = inner.index[outer.index].reshape(outer.out_size, -1).numpy()
    weight = (outer.weight.unsqueeze(2) * inner.weight[outer.index]).reshape(outer.out_size, -1).numpy()
    merged = [_merge_taps(index[row], weight[row]) for row in range(outer.out_size)]
    taps = max(len(row_index) for row_index, _ in merged)
    out_index = np.empty((outer.out_size, taps), dtype=np.int64)
    out_weight = np.zeros((outer.out_size, taps), dtype=np.float32)
    for row, (row_index, row_weight) in enumerate(merged):
        out_index[row] = row_index[0]
        out_index[row, : len(row_index)] = row_index
        out_weight[row, : len(row_weight)] = row_weight
    return AxisMap(torch.from_numpy(out_index), torch.from_numpy(out_weight), inner.in_size)


def _merge_taps(index: np.ndarray, weight: np.ndarray) -> tuple[list[int], list[float]]:
    totals: dict[int, float] = {}
    for i, w in zip(index.tolist(), weight.tolist()):
        if w != 0.0:
            totals[i] = totals.get(i, 0.0) + w
    if not totals:
        return [int(index[0])], [0.0]
    return list(totals), list(totals.values())


def resize_argmax(logits: torch.Tensor, rows: AxisMap, cols: AxisMap) -> torch.Tensor:
    """argmax over classes of ``logits`` (C x h x w) resampled by ``rows`` x ``cols``, as an H x W uint8 tensor.

    Equal to ``argmax(resample(logits))`` wherever no two classes tie after resampling (see module docstring).
    At most 255 classes: 255 marks "taps disagree" internally.
    """
    return ResizeArgmax(logits, rows, cols).band(0, rows.out_size)


class ResizeArgmax:
    """:func:`resize_argmax` for any band of output rows: the low-resolution class map is computed once, then
    each :meth:`band` depends only on it and the logits, so bands can run on different threads."""

    def __init__(self, logits: torch.Tensor, rows: AxisMap, cols: AxisMap, bands: BandPool | None = None):
        classes, height, width = logits.shape
        self.pixels_last = torch.empty((height, width, classes), dtype=logits.dtype)  # one row of logits per pixel
        self.low = torch.empty((height, width), dtype=torch.uint8)

        def low_rows(first: int, end: int) -> None:
            self.pixels_last[first:end] = logits[:, first:end].permute(1, 2, 0)
            self.low[first:end] = self.pixels_last[first:end].argmax(dim=2)

        bands.run(low_rows, height) if bands is not None else low_rows(0, height)
        self.rows, self.cols = rows, cols
        self.identity = rows.is_identity() and cols.is_identity()

    def band(self, first: int, end: int) -> torch.Tensor:
        """Output rows ``first:end`` as an (end - first) x W uint8 tensor."""
        if self.identity:
            return self.low[first:end]
        rows = AxisMap(self.rows.index[first:end], self.rows.weight[first:end], self.rows.in_size)
        row_classes = _uniform_or_mixed(self.low.numpy(), rows.index.numpy(), axis=0)
        result = torch.from_numpy(_uniform_or_mixed(row_classes, self.cols.index.numpy(), axis=1))
        ys, xs = torch.nonzero(result == _MIXED, as_tuple=True)
        if ys.numel():
            result[ys, xs] = _interpolated_argmax(self.pixels_last, rows, self.cols, ys, xs).to(torch.uint8)
        return result


_MIXED = 255


def _uniform_or_mixed(classes: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """Resample ``classes`` along ``axis`` by taps: the common class of all taps, or _MIXED where they differ."""
    first = np.take(classes, index[:, 0], axis=axis)
    for k in range(1, index.shape[1]):
        first[np.take(classes, index[:, k], axis=axis) != first] = _MIXED
    return first


def _interpolated_argmax(
    pixels_last: torch.Tensor, rows: AxisMap, cols: AxisMap, ys: torch.Tensor, xs: torch.Tensor
) -> torch.Tensor:
    """The argmax of the bilinearly resampled logits at the listed output pixels only: for each column tap the
    row taps' weighted sum, then the column taps' (the order of F.interpolate's separable passes)."""
    width, classes = pixels_last.shape[1], pixels_last.shape[2]
    flat = pixels_last.view(-1, classes)  # (h * w) x C: one contiguous row of logits per position
    row_start, row_weight = rows.index[ys] * width, rows.weight[ys]
    col_index = cols.index[xs]
    total = None
    for j in range(cols.taps):
        column = None
        for k in range(rows.taps):
            term = flat.index_select(0, row_start[:, k] + col_index[:, j]).mul_(row_weight[:, k].unsqueeze(1))
            column = term if column is None else column.add_(term)
        column.mul_(cols.weight[xs, j].unsqueeze(1))
        total = column if total is None else total.add_(column)
    return total.max(dim=1).indices


class PreUpsampleLogits(nn.Module):
    """A copy of a LiteSeg that returns its decoder's logits before the final bilinear upsampling (1/s_low size).

    A forward hook on ``last_conv`` keeps its output. The final upsampling still runs in eager mode (its result
    is dropped); TorchScript freezing, Inductor and the ONNX export remove it as dead code. The caller does that
    upsampling fused with the argmax (:func:`resize_argmax`).
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


class NearestBands:
    """Rows of a class map resampled by nearest neighbour (``upsample="mask"``), band by band like
    :class:`ResizeArgmax`."""

    def __init__(self, classes: torch.Tensor, rows: AxisMap, cols: AxisMap):
        self.classes, self.rows, self.cols = classes, rows, cols
        self.identity = rows.is_identity() and cols.is_identity()

    def band(self, first: int, end: int) -> torch.Tensor:
        """Output rows ``first:end`` as an (end - first) x W uint8 tensor."""
        if self.identity:
            return self.classes[first:end]
        return self.classes.index_select(0, self.rows.index[first:end, 0]).index_select(1, self.cols.index[:, 0])
