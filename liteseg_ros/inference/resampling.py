"""1-D linear resampling maps (taps and weights per output position): bilinear as ``F.interpolate`` computes it,
nearest neighbour, and compositions of two maps. :mod:`liteseg_ros.inference.resize_argmax` resamples class
logits with them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

BANDED_BLOCK = 64  # output positions per block of AxisMap.banded


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

    @cached_property
    def tap_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Each output position's first input and the length of the input range its taps span (numpy int64)."""
        index = self.index.numpy()
        first = index.min(axis=1)
        return first, index.max(axis=1) - first + 1

    @cached_property
    def banded(self) -> BlockBanded:
        """This map as a block-banded matrix (:func:`block_banded`), built once."""
        return block_banded(self, BANDED_BLOCK)

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


@dataclass(frozen=True)
class BlockBanded:
    """A map as a block-diagonal matrix product: output positions in blocks of ``block``, block ``b`` reading
    the ``span`` consecutive inputs from ``index[b * span]``, so
    ``out[b * block + i] = sum over s of weights[b, s, i] * in[index[b * span + s]]``.

    Positions past ``out_size`` (the last block's padding) have weight 0."""

    index: torch.Tensor  # (blocks * span) int64
    weights: torch.Tensor  # blocks x span x block float32
    block: int
    span: int
    out_size: int

    @property
    def blocks(self) -> int:
        return self.weights.shape[0]


def block_banded(axis: AxisMap, block: int) -> BlockBanded:
    """``axis`` as a :class:`BlockBanded` matrix with blocks of ``block`` output positions."""
    index, weight = axis.index.numpy(), axis.weight.numpy()
    count = -(-axis.out_size // block)
    edges = [(b * block, min(axis.out_size, (b + 1) * block)) for b in range(count)]
    span = min(axis.in_size, max(int(index[lo:hi].max() - index[lo:hi].min()) + 1 for lo, hi in edges))
    starts = [min(int(index[lo:hi].min()), axis.in_size - span) for lo, hi in edges]
    weights = np.zeros((count, span, block), dtype=np.float32)
    for b, ((lo, hi), start) in enumerate(zip(edges, starts)):
        for k in range(axis.taps):
            np.add.at(weights[b], (index[lo:hi, k] - start, np.arange(hi - lo)), weight[lo:hi, k])
    window = np.asarray(starts)[:, None] + np.arange(span)[None, :]
    return BlockBanded(torch.from_numpy(window.reshape(-1)), torch.from_numpy(weights), block, span, axis.out_size)
