"""Frames of a given kind for benchmarks: ``street`` (a drive down a synthetic street: large regions) and
``fragmented`` (blocks of random colours: the model is unsure, its class map has boundaries everywhere, the
worst case of the post-processing)."""

from __future__ import annotations

import numpy as np

SCENE_KINDS = ("street", "fragmented")
FRAGMENT_BLOCK = 8  # pixels per random-colour block of a fragmented frame (the costliest size measured)


def fragmented_frame(height: int, width: int, seed: int = 0, block: int = FRAGMENT_BLOCK) -> np.ndarray:
    """H x W x 3 uint8 RGB of ``block`` x ``block`` squares of uniformly random colours."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, size=(-(-height // block), -(-width // block), 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[:height, :width])


def scene_frames(kind: str, count: int, height: int, width: int, seed: int = 5) -> list[np.ndarray]:
    """``count`` RGB frames of ``kind`` (:data:`SCENE_KINDS`): a street drive at 10 Hz, or fragmented frames."""
    if kind == "fragmented":
        return [fragmented_frame(height, width, seed + index) for index in range(count)]
    if kind != "street":
        raise ValueError(f"scene must be one of {', '.join(SCENE_KINDS)}, got {kind!r}")
    from liteseg_ros.tools.synthetic.scene import Drive

    drive = Drive(seed=seed, height=height, width=width, duration_s=max(1.0, count / 10.0))
    return [np.ascontiguousarray(drive.frame(index / 10.0, index)[0]) for index in range(count)]
