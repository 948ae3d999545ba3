"""How the package writes a size: HEIGHTxWIDTH everywhere (``360x640``, ``1024x2048``), rows first, as torch shapes,
NumPy arrays and the paper write them: in command-line options, node parameters, log lines, errors and reports."""

from __future__ import annotations

import re
from collections.abc import Sequence


def format_size(size: Sequence[int]) -> str:
    """(height, width), or an array's shape, -> ``'HxW'``."""
    return f"{int(size[0])}x{int(size[1])}"


def parse_size(text: str, largest: int | None = None) -> tuple[int, int]:
    """``'HxW'`` (spaces allowed) -> (height, width); ValueError saying what to write for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text) if isinstance(text, str) else None
    sides = tuple(int(side) for side in match.groups()) if match else ()
    if len(sides) != 2 or min(sides) <= 0 or (largest is not None and max(sides) > largest):
        limit = f", sides 1..{largest}" if largest is not None else ""
        raise ValueError(f"a size is HEIGHTxWIDTH (e.g. 360x640{limit}), got {text!r}")
    return sides
