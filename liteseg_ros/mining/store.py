"""The score store (``liteseg-mine --scores DIR``): each frame's scores and embedding, kept per piece of a recording
(:mod:`liteseg_ros.mining.pieces`) as one Parquet file, so that a later run scores only the pieces it lacks.

A piece's key holds everything its scores depend on: the recording's identity (its resolved path and each file's
size and mtime), the topic, the piece's time range and thinning, the model (the weights' SHA-256, the class map's),
the input size and the precision the plan ran, and :data:`SCORING`, the version of the scoring itself. The file is
named by the key's digest and holds the key in its metadata: an entry of another model or another scoring is never
read as this one's. Files are written whole or not at all (:func:`liteseg_ros.files.atomic_file`), so a run stopped
by Ctrl-C or a crash leaves the pieces it finished usable. A piece whose bag broke while it was read is not kept.
Needs pyarrow (``pip install pyarrow``, or the ``fleet`` extra).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from liteseg_ros.errors import ConfigError
from liteseg_ros.files import atomic_file, file_digest
from liteseg_ros.logs import get_logger
from liteseg_ros.mining.pieces import Piece, bag_identity, identity_digest
from liteseg_ros.mining.recordings import ReadCounts
from liteseg_ros.mining.scores import FrameScore, PieceScores

LOG = get_logger(__name__)
SCORING = 1  # of score_frame and the embedding: a new one never reads entries of an older one
METADATA_KEY = b"liteseg_ros"


def scoring_identity(weights: Path, class_map: str | Path | None, input_size: tuple[int, int],
                     precision: str) -> dict:
    """The model side of a piece's key."""
    return {"weights": file_digest(weights), "class_map": file_digest(class_map) if class_map else None,
            "input_size": list(input_size), "precision": precision, "scoring": SCORING}


class ScoreStore:
    """The store at ``root`` for one model and scoring (:func:`scoring_identity`)."""

    def __init__(self, root: str | Path, scoring: dict):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("--scores keeps Parquet files: pip install pyarrow (or liteseg_ros[fleet])") from None
        self.root, self.scoring = Path(root), scoring

    def key(self, piece: Piece) -> dict:
        return {"bag": bag_identity(piece.bag), "topic": piece.topic, "start_ns": piece.start_ns,
                "stop_ns": piece.stop_ns, "origin_ns": piece.origin_ns, "every_ns": piece.every_ns,
                "model": self.scoring}

    def path(self, piece: Piece) -> Path:
        return self.root / f"{identity_digest(self.key(piece))[:32]}.parquet"

    def get(self, piece: Piece) -> PieceScores | None:
        """The piece's kept scores, or None (none kept, or an entry that is not this key's: left alone)."""
        import pyarrow.parquet as parquet

        path = self.path(piece)
        if not path.is_file():
            return None
        try:
            table = parquet.read_table(path)
            kept = json.loads(table.schema.metadata[METADATA_KEY])
        except (OSError, ValueError, KeyError, TypeError) as error:
            LOG.warning("score store: %s cannot be read (%s); scoring its piece again", path, error)
            return None
        if kept.get("key") != self.key(piece):
            return None
        columns = table.to_pydict()
        scores = [FrameScore((piece.bag, piece.topic, time, ordinal), piece.topic, stamp, uncertainty,
                             np.asarray(layout, np.float32), np.asarray(look, np.float32).reshape(24, 32))
                  for time, ordinal, stamp, uncertainty, layout, look in zip(
                      columns["timestamp_ns"], columns["ordinal"], columns["stamp_ns"], columns["uncertainty"],
                      columns["layout"], columns["thumbnail"])]
        return PieceScores(piece, scores, ReadCounts(**kept["counts"]))

    def put(self, result: PieceScores) -> None:
        """Keep a piece's scores (not when its bag broke while it was read)."""
        import pyarrow as arrow
        import pyarrow.parquet as parquet

        if result.error is not None:
            return
        scores = result.scores
        table = arrow.table({
            "timestamp_ns": arrow.array([s.key[2] for s in scores], arrow.int64()),
            "ordinal": arrow.array([s.key[3] for s in scores], arrow.int32()),
            "stamp_ns": arrow.array([s.stamp_ns for s in scores], arrow.int64()),
            "uncertainty": arrow.array([s.uncertainty for s in scores], arrow.float64()),
            "layout": arrow.array([s.layout.tolist() for s in scores], arrow.list_(arrow.float32())),
            "thumbnail": arrow.array([s.thumbnail.reshape(-1).tolist() for s in scores], arrow.list_(arrow.float32())),
        })
        document = {"key": self.key(result.piece), "counts": asdict(result.counts)}
        table = table.replace_schema_metadata({METADATA_KEY: json.dumps(document).encode()})
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path(result.piece)) as temporary:
            parquet.write_table(table, temporary)
