"""Synthetic checkpoints in the authors' format, built from ../shared/reference/authors-state-dict-*.tsv."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch

# Copies of ../shared/reference/authors-state-dict-*.tsv (key, shape, dtype of the authors' released checkpoints),
# so the suite is self-contained (colcon test, CI); test_authors_schema_copies_match_reference checks them.
DATA_DIR = Path(__file__).resolve().parent / "data"
SHARED_REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"
REFERENCE_DIR = Path(os.environ.get("LITESEG_REFERENCE_DIR", DATA_DIR))


def schema(backbone: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """key -> (shape, dtype) of the authors' checkpoint for ``backbone``."""
    path = REFERENCE_DIR / f"authors-state-dict-{backbone}.tsv"
    if not path.exists():
        pytest.fail(f"authors' key schema not found at {path}")
    with path.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {
        row["key"]: (() if row["shape"] == "scalar" else tuple(int(s) for s in row["shape"].split("x")), row["dtype"])
        for row in rows
    }


def random_authors_state_dict(backbone: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with every key of the authors' checkpoint, random but plausible values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in schema(backbone).items():
        if dtype == "int64":
            state[key] = torch.tensor(1000, dtype=torch.int64).reshape(shape)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) * 0.5 + 0.75
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=generator) * 0.1
        elif key.endswith(".weight") and len(shape) == 1:  # BatchNorm gamma
            state[key] = torch.rand(shape, generator=generator) * 0.5 + 0.75
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
    return state


def save_authors_checkpoint(state: dict, path: Path, *, legacy: bool = False) -> Path:
    """torch.save as the authors did: a plain state dict, zip format or the old non-zip format."""
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path
