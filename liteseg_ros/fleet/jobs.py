"""The workers of ``liteseg-mine`` and ``liteseg-replay`` on the engine (:mod:`.engine`): each holds one Segmenter
for its life and works on one piece of a recording per call (:mod:`liteseg_ros.mining.pieces`): mining scores its
frames, a fleet evaluation counts its pixels against the ground truth of the same stamps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.errors import BagError, ImageError
from liteseg_ros.mining.pieces import Piece
from liteseg_ros.mining.scores import score_piece
from liteseg_ros.replay.bag_io import BagSource, decode_image, ground_truth_array
from liteseg_ros.replay.matching import StampMatcher
from liteseg_ros.stamps import NS_PER_S, stamp_ns

GT_MARGIN_NS = 2 * NS_PER_S  # ground truth received this long beside a piece is read with it (joined by stamp)


def build_segmenter(weights: str, config: Any) -> Any:
    from liteseg_ros.inference.segmenter import Segmenter

    return Segmenter(Path(weights), config)


class MiningWorker:
    """Scores pieces with one Segmenter of ``weights`` and ``config`` (or the one given, in this process)."""

    def __init__(self, weights: str, config: Any, segmenter: Any = None):
        self.segmenter = segmenter if segmenter is not None else build_segmenter(weights, config)

    def __call__(self, piece: Piece) -> Any:
        return score_piece(self.segmenter, piece)


@dataclass
class PieceEvaluation:
    """A piece's pixels counted against the ground truth of the same stamps: the confusion matrix, the frames
    segmented and those with ground truth, rejected frames, per-frame seconds, and why it stopped early, if it did."""

    piece: Piece
    matrix: np.ndarray | None = None
    frames: int = 0
    gt_frames: int = 0
    rejected: int = 0
    seconds: list[float] = field(default_factory=list)
    error: str | None = None


class EvaluationWorker:
    """Evaluates pieces of labelled recordings with one Segmenter; ground truth on ``gt_topic``."""

    def __init__(self, weights: str, config: Any, gt_topic: str | None, gt_encoding: str, segmenter: Any = None):
        self.segmenter = segmenter if segmenter is not None else build_segmenter(weights, config)
        self.gt_topic, self.gt_encoding = gt_topic, gt_encoding

    def __call__(self, piece: Piece) -> PieceEvaluation:
        result = PieceEvaluation(piece)
        matcher = StampMatcher(self.gt_encoding, classes=self.segmenter.model_classes,
                               class_map=self.segmenter.class_map) if self.gt_topic else None
        try:
            self._evaluate(piece, matcher, result)
        except BagError as error:
            result.error = str(error)
        if matcher is not None:
            result.matrix, result.gt_frames = matcher.confusion.matrix.copy(), matcher.matched
        return result

    def _evaluate(self, piece: Piece, matcher: StampMatcher | None, result: PieceEvaluation) -> None:
        source = BagSource(piece.bag, image_topic=piece.topic, gt_topic=self.gt_topic, depth_topic="")
        topics = (piece.topic, self.gt_topic) if self.gt_topic else (piece.topic,)
        try:
            for message in source.messages(only=topics, start_ns=piece.start_ns - GT_MARGIN_NS,
                                           stop_ns=piece.stop_ns + GT_MARGIN_NS):
                if message.topic == self.gt_topic:
                    matcher.add_ground_truth(stamp_ns(message.msg.header), ground_truth_array(message))
                elif piece.start_ns <= message.timestamp_ns < piece.stop_ns:
                    self._segment(message, matcher, result)
        finally:
            source.close()

    def _segment(self, message: Any, matcher: StampMatcher, result: PieceEvaluation) -> None:
        started = time.perf_counter()
        try:
            image, encoding = decode_image(message)
            mask = self.segmenter.segment(image, encoding=encoding, outputs=("mask",)).mask
        except ImageError:
            result.rejected += 1
            return
        result.seconds.append(time.perf_counter() - started)
        result.frames += 1
        if matcher is not None:
            matcher.add_mask(stamp_ns(message.msg.header), mask)


def evaluate_bags(pieces: list[Piece], problems: list, spec: Any, engine: Any, segmenter: Any,
                  on_result: Any = lambda result: None) -> Any:
    """The pieces' evaluations summed per bag into its report, and the fleet's (FleetReport); a bag whose piece broke
    keeps the frames evaluated before, and is named."""
    from liteseg_ros.fleet.engine import run_pieces
    from liteseg_ros.metrics import ConfusionMatrix
    from liteseg_ros.replay.fleet import FleetReport
    from liteseg_ros.replay.report import ReplayReport, percentiles_ms

    fleet = FleetReport(segmenter.description, segmenter.classes, engine.engine,
                        problems=[f"{problem.bag}: {problem.reason}" for problem in problems])
    by_bag: dict[str, list[PieceEvaluation]] = {}
    for result in run_pieces(pieces, spec, engine, on_result):
        by_bag.setdefault(result.piece.bag, []).append(result)
    for bag, results in by_bag.items():
        report = ReplayReport(bag=bag, image_topic=results[0].piece.topic, mode=f"offline ({engine.engine})",
                              model=segmenter.description, classes=segmenter.classes.to_dict(),
                              class_map=segmenter.class_map.to_dict() if segmenter.class_map else None,
                              latency_definition="decode + segment per frame (Segmenter, the mask)")
        report.frames = sum(result.frames for result in results)
        report.rejected_frames = sum(result.rejected for result in results)
        report.latency_ms = percentiles_ms([second for result in results for second in result.seconds])
        if all(result.matrix is not None for result in results):
            confusion = ConfusionMatrix(segmenter.classes)
            for result in results:
                confusion.matrix += result.matrix
            confusion.frames = sum(result.gt_frames for result in results)
            if confusion.frames:
                report.add_scores(confusion, confusion.frames)
        fleet.problems += [f"{bag}: broke at {result.piece.name}: {result.error}" for result in results if result.error]
        fleet.bags.append(report)
    return fleet
