"""Training losses: cross-entropy ignoring trainId 255, plain or with online hard example mining (OHEM).

OHEM (as in PSPNet / HRNet's ``OhemCrossEntropy``) averages the cross-entropy over the hard pixels only:
those whose predicted probability of the true class is below ``threshold``, and never fewer than the
``min_kept`` fraction of the valid pixels (the hardest ones). Easy pixels (most of road, sky, building)
stop diluting the gradient, which goes to object boundaries and thin or small classes instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from liteseg_ros.classes import IGNORE_INDEX
from liteseg_ros.training.config import OptimSection


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, optim: OptimSection) -> torch.Tensor:
    """The configured loss of N x C x H x W logits against N x H x W trainIds (255 ignored)."""
    if optim.loss == "ohem":
        return ohem_cross_entropy(logits, labels, threshold=optim.ohem_threshold, min_kept=optim.ohem_min_kept)
    return cross_entropy(logits, labels, optim.loss_reduction)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """``sum`` = summed over pixels / batch size (authors), ``mean`` = over valid pixels."""
    if reduction == "sum":
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum") / logits.shape[0]
    if not (labels != IGNORE_INDEX).any():
        return _zero_loss(logits)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="mean")


def ohem_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, *, threshold: float, min_kept: float
) -> torch.Tensor:
    """Mean cross-entropy of the pixels with p(true class) < ``threshold``, at least ``min_kept`` of the valid ones.

    Ties at the cut-off are all kept, so the mean never depends on the order of equal losses.
    """
    pixel_losses = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none").flatten()
    valid_losses = pixel_losses[(labels != IGNORE_INDEX).flatten()]
    if valid_losses.numel() == 0:
        return _zero_loss(logits)
    kept_at_least = max(1, min(valid_losses.numel(), math.ceil(min_kept * valid_losses.numel())))
    kth_hardest = torch.topk(valid_losses.detach(), kept_at_least, sorted=True).values[-1]
    cutoff = torch.clamp(kth_hardest, max=-math.log(threshold))  # hard = loss above -log(threshold)
    hard = valid_losses.detach() >= cutoff
    return valid_losses[hard].mean()


def _zero_loss(logits: torch.Tensor) -> torch.Tensor:
    """The loss of a batch without valid pixels: 0, still in the graph (DDP needs every rank to backpropagate)
    and without the NaN that a mean over no pixels gives."""
    return logits.sum() * 0.0
