"""The choice of frames to label: unsure and unlike each other, one per view, the same for the same input.

The first frame chosen is the one the model is least sure of. Each next one maximises uncertainty x distance: its
uncertainty (:mod:`liteseg_ros.mining.scores`) times the distance of its embedding (layout and thumbnail) to the
nearest frame chosen before it (greedy k-centre, weighted by uncertainty), among the frames that are not of a chosen
frame's view (thumbnails closer than ``same_view``: a robot standing still records hundreds of near-identical
frames, and they count once). Ties go to the earlier frame. It stops early when every frame left is of a chosen view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liteseg_ros.mining.scores import FrameScore

# Mean absolute difference of normalised thumbnails below which two frames are one view: consecutive frames of a
# synthetic drive at 10 Hz differ by 0.22-0.43, a view held still with sensor noise (+-3 levels) by 0.003.
SAME_VIEW = 0.1


@dataclass(frozen=True)
class Choice:
    """A chosen frame: its index among the scores, its value, uncertainty, distance and why it was chosen."""

    index: int
    value: float
    uncertainty: float
    distance: float | None
    reason: str


def choose(scores: list[FrameScore], count: int, same_view: float = SAME_VIEW) -> list[Choice]:
    """Up to ``count`` frames by the rule of the module docstring."""
    if not scores or count <= 0:
        return []
    uncertainty = np.array([score.uncertainty for score in scores], dtype=np.float64)
    embeddings = np.stack([score.embedding for score in scores]).astype(np.float32)
    thumbnails = np.stack([score.thumbnail.reshape(-1) for score in scores]).astype(np.float32)
    nearest = np.full(len(scores), np.inf)
    excluded = np.zeros(len(scores), dtype=bool)
    choices: list[Choice] = []
    while len(choices) < count and not excluded.all():
        value = np.where(excluded, -np.inf, uncertainty * np.where(np.isinf(nearest), 1.0, nearest))
        index = int(np.argmax(value))  # the first of equal values
        distance = None if np.isinf(nearest[index]) else float(nearest[index])
        choices.append(Choice(index, float(value[index]), float(uncertainty[index]), distance,
                              _reason(uncertainty[index], distance)))
        nearest = np.minimum(nearest, np.linalg.norm(embeddings - embeddings[index], axis=1))
        excluded |= np.abs(thumbnails - thumbnails[index]).mean(axis=1) < same_view
        excluded[index] = True
    return choices


def _reason(uncertainty: float, distance: float | None) -> str:
    if distance is None:
        return f"the frame the model is least sure of (mean 1 - p {uncertainty:.3f})"
    return (f"unsure (mean 1 - p {uncertainty:.3f}) and unlike the frames chosen before it (distance {distance:.3f} "
            "to the nearest)")
