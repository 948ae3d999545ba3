"""Safe reading of weights files: ``torch.load(weights_only=True)`` with errors that name the file and the problem."""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from liteseg_ros.errors import WeightsError, first_line

_UNSAFE_MARKERS = ("Unsupported global", "GLOBAL ", "not an allowed global")


def read_weights_file(path: str | os.PathLike, mmap: bool = False) -> Any:
    """Load a PyTorch file (zip or legacy format) without executing code from it. ``mmap``: map the tensors of a
    zip-format file from the file instead of reading them (nothing is read until a tensor is used; the legacy
    format is read as usual).

    Raises WeightsError naming the file for a missing, empty, truncated, corrupt or unsafe file.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist: check the path")
    if not path.is_file():
        raise WeightsError(f"weights file {path} is not a regular file")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path} is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol N": the error below says more
            if mmap and zipfile.is_zipfile(path):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "Weights only load failed" in text and any(marker in text for marker in _UNSAFE_MARKERS):
            raise WeightsError(
                f"weights file {path} holds Python objects other than tensors and plain data; refusing to load it "
                f"(unpickling it could run code). Re-save the weights as a plain state dict."
            ) from None
        raise WeightsError(
            f"weights file {path} is not a readable PyTorch file (corrupt or not a weights file)"
        ) from None
    except Exception as error:  # garbage makes the unpickler raise almost anything (IndexError, struct.error, ...)
        raise WeightsError(
            f"weights file {path} could not be read (truncated or corrupt?): {first_line(error, 200)}"
        ) from None
