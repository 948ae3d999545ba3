"""What the model makes of a frame, for choosing it: how unsure it is, what its prediction looks like where, and what
the frame looks like.

- ``uncertainty``: the mean over pixels of 1 - p, p the probability of each pixel's predicted class (the confidence
  output), at a quarter of the network input's size. The expected share of wrong pixels if the model's
  probabilities were right; high where the model has never been.
- ``layout``: the share of each class in each cell of a 4 x 6 grid over the prediction (the scene's semantic
  layout), L2-normalised.
- ``thumbnail``: the frame as 24 x 32 grey levels, zero mean and unit spread (exposure does not count); two frames
  are of one view when their thumbnails differ by less than a threshold on average.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from liteseg_ros.errors import BagError
from liteseg_ros.mining.pieces import Piece, read_piece
from liteseg_ros.mining.recordings import Frame, ReadCounts

GRID = (4, 6)
THUMBNAIL = (24, 32)


@dataclass(frozen=True)
class FrameScore:
    """One frame's scores and where it came from."""

    key: tuple[str, str, int, int]
    topic: str
    stamp_ns: int
    uncertainty: float
    layout: np.ndarray
    thumbnail: np.ndarray

    @property
    def embedding(self) -> np.ndarray:
        """The layout and the thumbnail, each of unit length, as one vector (what diversity is measured on)."""
        look = self.thumbnail.reshape(-1)
        return np.concatenate([self.layout, look / max(float(np.linalg.norm(look)), 1e-6)]) / np.sqrt(2.0)


def scoring_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """The size the scores are computed at: a quarter of the network input's sides."""
    return max(8, input_size[0] // 4), max(8, input_size[1] // 4)


def score_frame(segmenter, frame: Frame, classes: int) -> FrameScore:
    """Run ``segmenter`` on the frame (at the scoring size) and score it."""
    result = segmenter.segment(frame.image, encoding=frame.encoding, outputs=("mask", "confidence"),
                               output_size=scoring_size(segmenter.input_size))
    uncertainty = 1.0 - float(result.confidence.mean()) / 255.0
    return FrameScore(frame.key, frame.topic, frame.stamp_ns, uncertainty, class_layout(result.mask, classes),
                      thumbnail(frame.image, frame.encoding))


@dataclass
class PieceScores:
    """A piece's frames scored, what reading it gave, and why it stopped early (a bag that broke), if it did."""

    piece: Piece
    scores: list[FrameScore] = field(default_factory=list)
    counts: ReadCounts = field(default_factory=ReadCounts)
    error: str | None = None


def score_piece(segmenter, piece: Piece) -> PieceScores:
    """Every frame of ``piece`` scored by ``segmenter``; a bag that breaks keeps the frames scored before."""
    result = PieceScores(piece)
    classes = len(segmenter.classes)
    try:
        for frame in read_piece(piece, result.counts):
            result.scores.append(score_frame(segmenter, frame, classes))
    except BagError as error:
        result.error = str(error)
    return result


def class_layout(mask: np.ndarray, classes: int) -> np.ndarray:
    """Class shares per grid cell of a mask, flattened and L2-normalised."""
    rows = np.minimum(np.arange(mask.shape[0]) * GRID[0] // mask.shape[0], GRID[0] - 1)
    cols = np.minimum(np.arange(mask.shape[1]) * GRID[1] // mask.shape[1], GRID[1] - 1)
    cell = rows[:, None] * GRID[1] + cols[None, :]
    counts = np.bincount((cell * classes + mask).reshape(-1), minlength=GRID[0] * GRID[1] * classes)
    layout = counts.astype(np.float32)
    return layout / max(float(np.linalg.norm(layout)), 1e-6)


def thumbnail(image: np.ndarray, encoding: str) -> np.ndarray:
    """24 x 32 grey levels of the frame, zero mean and unit spread."""
    grey = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image.mean(axis=2) if image.ndim == 3 \
        else image
    small = cv2.resize(grey.astype(np.float32), THUMBNAIL[::-1], interpolation=cv2.INTER_AREA)
    return (small - small.mean()) / max(float(small.std()), 1.0)
