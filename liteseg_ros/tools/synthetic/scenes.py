"""Frames for benchmarks and checks: ``street`` (a drive down a synthetic street: large regions) and
``fragmented`` (blocks of random colours: the model is unsure, its class map has boundaries everywhere, the
worst case of the post-processing); and unseen frames with ground truth (:func:`unseen_frames`)."""

from __future__ import annotations

import numpy as np

SCENE_KINDS = ("street", "fragmented")
EVALUATION_SEED, CALIBRATION_SEED = 2, 3  # the demo model's unseen val seed; a third seed for calibration
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


def unseen_frames(count: int, height: int, width: int, seed: int = EVALUATION_SEED) -> list:
    """Synthetic val frames of ``seed`` (the frames ``write_cityscapes_tree`` writes), as
    :class:`~liteseg_ros.tools.calibration.Frame` with trainIds."""
    from liteseg_ros.labels import label_ids_to_train_ids
    from liteseg_ros.tools.calibration import Frame
    from liteseg_ros.tools.synthetic import render_scene
    from liteseg_ros.tools.synthetic.cityscapes_writer import frame_rng

    frames = []
    for index in range(count):
        rgb, label_ids, _ = render_scene(frame_rng(seed, "val", index), height, width)
        frames.append(Frame(np.ascontiguousarray(rgb), train_ids=label_ids_to_train_ids(label_ids)))
    return frames
