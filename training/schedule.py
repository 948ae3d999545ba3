"""The poly learning-rate schedule of the paper, with a configurable update interval."""

from __future__ import annotations


def poly_lr(base_lr: float, step: int, total: int, *, power: float = 0.9, update_every: int = 1) -> float:
    """``base_lr * (1 - t / total) ** power`` with t = step rounded down to a multiple of ``update_every``.

    ``step`` counts completed epochs (or iterations, depending on ``schedule.unit``) of the current stage, so
    with ``update_every=5`` (the paper) epochs 0-4 run at ``base_lr``, epochs 5-9 at
    ``base_lr * (1 - 5/total) ** power``, and so on. The authors' code applies the same values at the same
    epochs (after epochs 4, 9, 14, ... counted from 0).
    """
    if total <= 0:
        raise ValueError(f"total must be positive, got {total}")
    frozen = (max(0, step) // update_every) * update_every
    return base_lr * max(0.0, 1.0 - frozen / total) ** power


def set_lr(optimizer, lr: float) -> bool:
    """Set the LR of every parameter group; return True when it changed."""
    changed = False
    for group in optimizer.param_groups:
        if group["lr"] != lr:
            group["lr"] = lr
            changed = True
    return changed
