"""The argmax over classes of bilinearly resized logits, at the image's resolution, for a bounded cost (CPU).

Bilinear interpolation is a convex combination of source pixels (taps), so wherever every tap of an output
pixel has the same argmax class, the interpolated logits have that argmax too: such a pixel takes it without
interpolation. The other pixels ("mixed": class boundaries) need their logits interpolated, which is done
separably, first along rows for every class at the logits' columns (a small array), then along columns. Each
chunk of rows does the column pass in one of two ways, whichever its share of mixed pixels makes cheaper:

- **sparse**, at the mixed pixels only: the float operations of a separable bilinear resize (row taps summed in
  order, times the column weight, column taps summed in order), so the classes are those of that resize;
- **dense**, where many pixels are mixed (a fragmented scene): the whole chunk as one batched matrix product per
  block of output columns that holds mixed pixels (:attr:`~liteseg_ros.inference.resampling.AxisMap.banded`),
  then the argmax. Its sums run in another order, so a pixel can take the other class where two classes tie
  to float rounding (docs/benchmarks.md gives the count). Only mixed pixels take its result.

The cost of a frame is then bounded by the dense way's, whatever the scene.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from liteseg_ros.inference.bands import BandPool
from liteseg_ros.inference.resampling import AxisMap, BlockBanded

MIXED = 255  # "the taps disagree" in the class map under construction (so at most 255 classes)
# A chunk whose share of mixed pixels exceeds this takes the dense way. At 1280x720 on one thread the sparse way
# costs 65-100 ns per mixed pixel, the dense way about 18 ns per pixel of the chunk; post-processing times with
# shares of 0.1 to 0.45 were equal within the noise (360x640 to 1920x1080, street and fragmented frames).
DENSE_SHARE = 0.2
CHUNK_ROWS = 96  # rows of a band decided and computed together (bigger pieces: more ops wait for the GIL)


def resize_argmax(logits: torch.Tensor, rows: AxisMap, cols: AxisMap) -> torch.Tensor:
    """argmax over classes of ``logits`` (C x h x w) resampled by ``rows`` x ``cols``, as an H x W uint8 tensor.

    Equal to ``argmax(resample(logits))`` wherever no two classes tie to float rounding (module docstring).
    """
    return ResizeArgmax(logits, rows, cols).band(0, rows.out_size)


class ResizeArgmax:
    """:func:`resize_argmax` for any band of output rows: the low-resolution class map is computed once, then
    each :meth:`band` depends only on it and the logits, so bands can run on different threads.

    ``ways`` lists the way ("sparse" or "dense") each chunk with mixed pixels took."""

    def __init__(self, logits: torch.Tensor, rows: AxisMap, cols: AxisMap, bands: BandPool | None = None,
                 dense_share: float = DENSE_SHARE):
        classes, height, width = logits.shape
        self.logits = logits
        self.pixels_last = torch.empty((height, width, classes), dtype=logits.dtype)  # one row of logits per pixel
        self.low = torch.empty((height, width), dtype=torch.uint8)

        def low_rows(first: int, end: int) -> None:
            self.pixels_last[first:end] = logits[:, first:end].permute(1, 2, 0)
            self.low[first:end] = first_argmax(logits[:, first:end], dim=0)

        bands.run(low_rows, height) if bands is not None else low_rows(0, height)
        self.rows, self.cols, self.dense_share = rows, cols, dense_share
        self.identity = rows.is_identity() and cols.is_identity()
        self.row_runs = _runs(self.low.numpy(), int(rows.tap_range[1].max()), dim=0)
        self.ways: list[str] = []

    @functools.cached_property
    def column_windows(self) -> torch.Tensor:
        """The dense way's input, C x h x (blocks * span): the logits' columns each column block reads. Made on the
        first dense chunk or confidence band (two band threads may both make it: the same tensor)."""
        return self.logits.index_select(2, self.cols.banded.index)

    def band(self, first: int, end: int) -> torch.Tensor:
        """Output rows ``first:end`` as an (end - first) x W uint8 tensor."""
        if self.identity:
            return self.low[first:end]
        chunks = [self._chunk(start, min(end, start + CHUNK_ROWS)) for start in range(first, end, CHUNK_ROWS)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def _chunk(self, first: int, end: int) -> torch.Tensor:
        rows = AxisMap(self.rows.index[first:end], self.rows.weight[first:end], self.rows.in_size)
        first_row, row_span = (part[first:end] for part in self.rows.tap_range)
        row_classes = _uniform_or_mixed(self.row_runs, self.low.shape[0], first_row, row_span, dim=0)
        column_runs = _runs(row_classes, int(self.cols.tap_range[1].max()), dim=1)
        result = torch.from_numpy(_uniform_or_mixed(column_runs, self.low.shape[1], *self.cols.tap_range, dim=1))
        mixed = result == MIXED
        count = int(mixed.sum())
        if count == 0:
            return result
        if count > self.dense_share * result.numel():
            self.ways.append("dense")
            return torch.where(mixed, dense_argmax(self.column_windows, rows, self.cols.banded,
                                                   _blocks_with(mixed, self.cols.banded)), result)
        self.ways.append("sparse")
        pixels = torch.nonzero(mixed.view(-1)).squeeze(1)
        ys, xs = pixels // result.shape[1], pixels % result.shape[1]
        return result.masked_scatter_(mixed, sparse_argmax(self.pixels_last, rows, self.cols, ys, xs))


def _blocks_with(mixed: torch.Tensor, cols: BlockBanded) -> torch.Tensor | None:
    """The column blocks of ``cols`` that hold a True of ``mixed`` (rows x W), or None for all of them."""
    columns = torch.zeros(cols.blocks * cols.block, dtype=torch.bool)
    columns[: mixed.shape[1]] = mixed.any(dim=0)
    active = torch.nonzero(columns.view(cols.blocks, cols.block).any(dim=1)).squeeze(1)
    return None if len(active) == cols.blocks else active


def _runs(classes: np.ndarray, longest: int, dim: int) -> np.ndarray:
    """``classes`` with, for each run length s = 1 .. ``longest`` (concatenated along ``dim``), the class common
    to positions i .. i + s - 1 at i (clipped to the end), or MIXED."""
    size = classes.shape[dim]
    runs = [classes]
    for length in range(2, longest + 1):
        last = np.take(classes, np.minimum(np.arange(size) + length - 1, size - 1), axis=dim)
        run = runs[-1].copy()
        run[last != run] = MIXED
        runs.append(run)
    return np.concatenate(runs, axis=dim)


def _uniform_or_mixed(runs: np.ndarray, size: int, first: np.ndarray, span: np.ndarray, dim: int) -> np.ndarray:
    """Resample a class map of ``size`` positions along ``dim``, given its :func:`_runs`: each output takes the
    class common to the input range its taps span (``first``, ``span``: :attr:`AxisMap.tap_range`), or MIXED.
    The range is a superset of the taps, so a uniform range means uniform taps."""
    return np.take(runs, (span - 1) * size + first, axis=dim)


def along_rows(source: torch.Tensor, rows: AxisMap, dim: int) -> torch.Tensor:
    """``source`` resampled along ``dim`` by ``rows``: the taps' weighted values summed in tap order."""
    shape = [1] * source.dim()
    shape[dim] = -1
    total = None
    for k in range(rows.taps):
        term = source.index_select(dim, rows.index[:, k]).mul_(rows.weight[:, k].view(shape))
        total = term if total is None else total.add_(term)
    return total


def sparse_argmax(pixels_last: torch.Tensor, rows: AxisMap, cols: AxisMap, ys: torch.Tensor,
                  xs: torch.Tensor) -> torch.Tensor:
    """The class of the resampled logits at output pixels (``ys`` in ``rows``' band, ``xs``) only, uint8."""
    return sparse_values(pixels_last, rows, cols, ys, xs).max(dim=1).indices.to(torch.uint8)


def sparse_values(pixels_last: torch.Tensor, rows: AxisMap, cols: AxisMap, ys: torch.Tensor,
                  xs: torch.Tensor) -> torch.Tensor:
    """The resampled logits (N x C) at output pixels (``ys`` in ``rows``' band, ``xs``) of ``pixels_last``
    (h x w x C): rows first (every class, at the logits' columns), then the column taps."""
    resampled_rows = along_rows(pixels_last, rows, dim=0)  # band rows x w x C
    width, classes = resampled_rows.shape[1], resampled_rows.shape[2]
    flat = resampled_rows.view(-1, classes)
    start = ys * width
    total = None
    for j in range(cols.taps):
        index, weight = cols.index[:, j].index_select(0, xs), cols.weight[:, j].index_select(0, xs)
        column = flat.index_select(0, start + index).mul_(weight.unsqueeze(1))
        total = column if total is None else total.add_(column)
    return total


def dense_values(column_windows: torch.Tensor, rows: AxisMap, cols: BlockBanded,
                 active: torch.Tensor | None = None) -> torch.Tensor:
    """The resampled logits of every class at every pixel of ``rows``' band, as blocks x C x band rows x block.

    ``column_windows`` are the logits' columns each column block reads (C x h x (blocks * span)): resampled
    along rows first, then each block's columns by its matrix, in one batched product. With ``active`` (column
    block indices) only those blocks are computed and returned."""
    classes = column_windows.shape[0]
    resampled_rows = along_rows(column_windows, rows, dim=1)  # C x band rows x (blocks * span)
    height = resampled_rows.shape[1]
    windows = resampled_rows.view(classes, height, cols.blocks, cols.span)
    weights = cols.weights.to(windows.dtype)
    if active is not None:
        windows, weights = windows.index_select(2, active), weights.index_select(0, active)
    windows = windows.reshape(classes * height, -1, cols.span).transpose(0, 1)
    return torch.bmm(windows, weights).view(-1, classes, height, cols.block)  # blocks x C x rows x block


def dense_argmax(column_windows: torch.Tensor, rows: AxisMap, cols: BlockBanded,
                 active: torch.Tensor | None = None) -> torch.Tensor:
    """The class of the resampled logits at every pixel of ``rows``' band, uint8 (band rows x W), from
    :func:`dense_values`; blocks left out of ``active`` are 0."""
    best = first_argmax(dense_values(column_windows, rows, cols, active), dim=1)  # blocks x rows x block
    height = best.shape[1]
    if active is not None:
        computed, best = best, torch.zeros((cols.blocks, height, cols.block), dtype=torch.uint8)
        best.index_copy_(0, active, computed)
    return best.permute(1, 0, 2).reshape(height, -1)[:, : cols.out_size]


def first_argmax(values: torch.Tensor, dim: int) -> torch.Tensor:
    """``values.argmax(dim)`` (the first maximum) as uint8, for at most 256 classes along ``dim``: the maximum,
    then the first index that reaches it (NumPy's broadcast comparison is 2.5x faster than torch's here, and
    torch's argmax over a dimension that is not the last is slower still)."""
    array = values.numpy() if values.dtype in (torch.float32, torch.float64) else values.float().numpy()
    classes = array.shape[dim]
    shape = [1] * array.ndim
    shape[dim] = classes
    reaches = np.greater_equal(array, array.max(axis=dim, keepdims=True)).view(np.uint8)
    reaches *= np.arange(classes - 1, -1, -1, dtype=np.uint8).reshape(shape)
    return torch.from_numpy((classes - 1) - reaches.max(axis=dim))
