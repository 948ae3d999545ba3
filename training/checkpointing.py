"""Training checkpoints (model + optimiser + scaler + RNG + data position), written atomically; resume.

These are *training* checkpoints (``RUN_DIR/checkpoints/last.pt`` and ``best.pt``); the deployable model is
exported separately in our model format with ``liteseg_ros.model.save_checkpoint``.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from liteseg_ros.errors import WeightsError
from liteseg_ros.model import atomic_torch_save

FORMAT_NAME = "liteseg_ros.training_checkpoint"
FORMAT_VERSION = 1


@dataclass
class TrainState:
    """Where training stands. (stage, epoch, batch) is the position of the NEXT batch to train on."""

    stage_index: int = 0
    epoch: int = 0
    batch: int = 0
    iteration: int = 0  # optimiser steps done, over all stages
    best_miou: float = -1.0
    best_iteration: int = -1
    last_miou: float = -1.0  # the most recent validation
    last_val_iteration: int = -1


def capture_rng() -> dict:
    """RNG states of python, numpy and torch as weights_only-loadable tensors and lists."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    state = {
        "python": [version, list(python_state), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))
    keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer, scaler, state: TrainState,
                             config: dict) -> None:
    """Write everything needed to continue exactly where training stands (temp file + os.replace)."""
    atomic_torch_save({
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "state": asdict(state), "config": config,
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        "rng": capture_rng(),
    }, path)


def load_training_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a training checkpoint (weights_only); raise WeightsError if it is not one."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"no training checkpoint at {path}: start without --resume") from None
    except Exception as error:  # torch raises many types for corrupt files
        raise WeightsError(f"training checkpoint {path} cannot be read ({error}); delete it to start afresh") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise WeightsError(f"{path} is not a liteseg_ros training checkpoint")
    return payload


def restore(payload: dict, *, model: torch.nn.Module, optimizer, scaler) -> TrainState:
    """Load model, optimiser, scaler and RNG states from a payload; return the saved TrainState."""
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scaler.load_state_dict(payload["scaler"])
    restore_rng(payload["rng"])
    return TrainState(**payload["state"])
