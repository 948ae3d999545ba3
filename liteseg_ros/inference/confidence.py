"""The confidence output on the CPU: each output pixel's class's probability x 255, band by band.

The probabilities are the softmax of the network's logits at their own (low) resolution, resampled to the
output pixels by the same maps as the logits (:mod:`liteseg_ros.inference.resampling`), and read at the class
the mask gives the pixel. Only that one class is resampled along columns, so the cost is a few gathers per
pixel whatever the class count. Where two classes meet, both taps' probabilities mix and the confidence drops.
"""

from __future__ import annotations

import torch

from liteseg_ros.inference.resampling import AxisMap
from liteseg_ros.inference.resize_argmax import along_rows


def to_uint8(probability: torch.Tensor) -> torch.Tensor:
    """Probabilities in [0, 1] -> round(p x 255) as uint8."""
    return probability.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)


class ConfidenceRows:
    """The confidence of any band of output rows, given the band's classes (the mask's rows)."""

    def __init__(self, logits: torch.Tensor, rows: AxisMap, cols: AxisMap):
        self.probabilities = torch.softmax(logits.float(), dim=0)  # C x h x w
        self.rows, self.cols = rows, cols

    def band(self, first: int, end: int, classes: torch.Tensor) -> torch.Tensor:
        """Rows ``first:end`` as an (end - first) x W uint8 tensor; ``classes`` are the mask's same rows."""
        rows = AxisMap(self.rows.index[first:end], self.rows.weight[first:end], self.rows.in_size)
        resampled = along_rows(self.probabilities, rows, dim=1)  # C x band rows x w
        band_rows, width = resampled.shape[1], resampled.shape[2]
        start = classes.long() * (band_rows * width) + (torch.arange(band_rows) * width).unsqueeze(1)
        flat = resampled.view(-1)
        total = None
        for tap in range(self.cols.taps):
            term = flat[start + self.cols.index[:, tap]].mul_(self.cols.weight[:, tap])
            total = term if total is None else total.add_(term)
        return to_uint8(total)
