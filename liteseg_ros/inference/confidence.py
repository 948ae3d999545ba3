"""The confidence output on the CPU: each output pixel's class's probability x 255, band by band.

The probability is the softmax, at the pixel, of the same resampled logits whose argmax is the mask
(:mod:`liteseg_ros.inference.resize_argmax`): ``1 / sum_c exp(l_c - l_class)``. Every class's logits are
resampled at every pixel of the band, by the dense way's batched matrix product, so this output costs about as
much as the dense argmax of a fully fragmented frame; it is computed only when asked for.
"""

from __future__ import annotations

import torch

from liteseg_ros.inference.resampling import AxisMap
from liteseg_ros.inference.resize_argmax import ResizeArgmax, dense_values
from liteseg_ros.inference.stages import probability_to_uint8


class ConfidenceRows:
    """The confidence of any band of output rows of a :class:`ResizeArgmax` (same logits and maps, whose column
    windows it shares), given the band's classes (the mask's rows)."""

    def __init__(self, classes: ResizeArgmax):
        self.rows, self.cols, self.classes = classes.rows, classes.cols, classes

    def band(self, first: int, end: int, classes: torch.Tensor) -> torch.Tensor:
        """Rows ``first:end`` as an (end - first) x W uint8 tensor; ``classes`` are the mask's same rows."""
        rows = AxisMap(self.rows.index[first:end], self.rows.weight[first:end], self.rows.in_size)
        windows = self.classes.column_windows.float()  # a no-op for float32 logits
        values = dense_values(windows, rows, self.cols.banded)  # blocks x C x rows x block
        blocks, count, height, block = values.shape
        values = values.permute(1, 2, 0, 3).reshape(count, height, blocks * block)[:, :, : self.cols.out_size]
        winner = values.gather(0, classes.long().unsqueeze(0))
        total = values.sub_(winner).exp_().sum(dim=0)  # 1 for the winner, plus the others
        return probability_to_uint8(total.reciprocal_())
