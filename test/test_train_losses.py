"""Training losses computed by hand: cross-entropy ignoring 255 and OHEM's choice of hard pixels."""

from __future__ import annotations

import math

import pytest
import torch

from liteseg_ros.training.config import OptimSection
from liteseg_ros.training.losses import cross_entropy, ohem_cross_entropy, segmentation_loss

#: p(true class) of five pixels; the last one is ignored (trainId 255)
P_TRUE = [0.9, 0.5, 0.2, 0.95, 0.6]
LABELS = torch.tensor([[[0, 0, 1, 1, 255]]])


def two_class_logits(p_true: list[float], labels: torch.Tensor) -> torch.Tensor:
    """1 x 2 x 1 x W logits whose softmax gives each pixel's true class the probability ``p_true``."""
    logits = torch.zeros(1, 2, 1, len(p_true))
    for x, p in enumerate(p_true):
        true = int(labels[0, 0, x]) if labels[0, 0, x] != 255 else 0
        logits[0, true, 0, x] = math.log(p)
        logits[0, 1 - true, 0, x] = math.log(1 - p)
    return logits


def nll(*ps: float) -> float:
    return sum(-math.log(p) for p in ps) / len(ps)


LOGITS = two_class_logits(P_TRUE, LABELS)


def test_cross_entropy_mean_and_sum_ignore_255():
    assert cross_entropy(LOGITS, LABELS, "mean").item() == pytest.approx(nll(0.9, 0.5, 0.2, 0.95))
    assert cross_entropy(LOGITS, LABELS, "sum").item() == pytest.approx(4 * nll(0.9, 0.5, 0.2, 0.95))


@pytest.mark.parametrize("threshold, min_kept, expected", [
    (0.7, 0.1, nll(0.5, 0.2)),  # the two pixels below 0.7
    (0.3, 0.1, nll(0.2)),  # only one pixel below 0.3; min_kept (ceil(0.4) = 1) asks for no more
    (0.3, 0.5, nll(0.2, 0.5)),  # min_kept = 2 of 4 valid pixels: the two hardest
    (0.7, 0.75, nll(0.2, 0.5, 0.9)),  # min_kept = 3 beats the threshold's 2
    (1.0, 0.1, nll(0.9, 0.5, 0.2, 0.95)),  # threshold 1: every valid pixel is hard (plain mean CE)
])
def test_ohem_averages_the_hard_pixels(threshold, min_kept, expected):
    assert ohem_cross_entropy(LOGITS, LABELS, threshold=threshold, min_kept=min_kept).item() == pytest.approx(expected)


def test_ohem_gradient_reaches_only_the_hard_pixels():
    logits = LOGITS.clone().requires_grad_(True)
    ohem_cross_entropy(logits, LABELS, threshold=0.7, min_kept=0.1).backward()
    touched = logits.grad.abs().sum(dim=1)[0, 0] > 0
    assert touched.tolist() == [False, True, True, False, False]


def test_all_ignored_gives_a_zero_loss_that_still_backpropagates():
    logits = LOGITS.clone().requires_grad_(True)
    loss = ohem_cross_entropy(logits, torch.full_like(LABELS, 255), threshold=0.7, min_kept=0.1)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_segmentation_loss_follows_the_optim_section():
    ohem = OptimSection(loss="ohem", loss_reduction="mean", ohem_threshold=0.7, ohem_min_kept=0.1)
    assert segmentation_loss(LOGITS, LABELS, ohem).item() == pytest.approx(nll(0.5, 0.2))
    plain = OptimSection(loss="cross_entropy", loss_reduction="mean")
    assert segmentation_loss(LOGITS, LABELS, plain).item() == pytest.approx(nll(0.9, 0.5, 0.2, 0.95))
