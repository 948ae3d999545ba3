"""liteseg-mine: choose the frames of a robot's recordings worth labelling and pre-label them for CVAT and Label Studio.

    liteseg-mine BAG [BAG ...] --count N --out DIR [--topic T ...] [--weights W] [--class-map M] [--every S]
                 [--scores DIR] [--engine ray [--address A] [--workers N]]

Runs the model as the node does (its plan; the input size the weights were trained at) over the frames of each
bag's camera topic (--topic, more than once for several; by default each bag's one camera topic), one per S-second
slot of the recording with --every, chooses N frames the model is unsure of and that differ from each other, one per
view (liteseg_ros.mining.selection), and writes them with the model's masks as pre-annotations
(liteseg_ros.mining.output). The recordings are read in pieces (liteseg_ros.mining.pieces), in this process or on a
Ray cluster (--engine ray); --scores keeps each piece's scores, so a later run scores only what is new. The same
input gives the same choice on either engine. A bag that cannot be read is named, and the others are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liteseg_ros.errors import ConfigError
from liteseg_ros.mining import recordings as rec
from liteseg_ros.mining.output import MinedFrame, MiningRun, write_outputs
from liteseg_ros.mining.pieces import BagProblem, Piece, plan_pieces, read_piece
from liteseg_ros.mining.selection import SAME_VIEW, choose
from liteseg_ros.tools.cli.conventions import (
    OneLineArgumentParser,
    Progress,
    add_engine_arguments,
    add_run_arguments,
    engine_options,
    parse_size,
    run_cli,
)

DEFAULT_IMAGE_URL = "/data/local-files/?d=images/"  # Label Studio's local file serving, document root = --out
EXIT_NO_FRAMES = 1


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-mine", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", type=Path, help="rosbag2 folders, ROS 1 .bag files, or folders of them")
    parser.add_argument("--topic", action="append", default=[],
                        help="a camera topic (Image or CompressedImage); again for several (default: each bag's one "
                             "camera topic)")
    parser.add_argument("--count", type=int, required=True, help="how many frames to choose")
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist, unless --force)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--weights", help="the model, as the node's weights: a file or a published name "
                                          "(default: the node's, the bundled one)")
    parser.add_argument("--class-map", type=Path, help="pre-label in a class map's classes (liteseg_ros.class_map)")
    parser.add_argument("--every", type=float, default=0.0, metavar="SECONDS",
                        help="score the first frame of each SECONDS slot of the recording (default 0: every frame)")
    parser.add_argument("--same-view", type=float, default=SAME_VIEW, metavar="T",
                        help=f"frames whose thumbnails differ by less than T are one view (default {SAME_VIEW})")
    parser.add_argument("--input-size", type=parse_size, metavar="HxW",
                        help="network input (default: the size the weights were trained at, as the node)")
    parser.add_argument("--scores", type=Path, metavar="DIR",
                        help="keep each piece's scores in DIR (Parquet) and reuse them: a later run scores only the "
                             "pieces it lacks (another --count, --same-view, or new bags)")
    parser.add_argument("--image-url", default=DEFAULT_IMAGE_URL,
                        help=f"Label Studio URL prefix of images/ (default {DEFAULT_IMAGE_URL}: local file serving "
                             "with the output folder as document root)")
    add_run_arguments(parser)
    add_engine_arguments(parser)
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise ConfigError(f"--count must be at least 1, got {args.count}")
    if args.every < 0 or args.same_view < 0:
        raise ConfigError("--every and --same-view must not be negative")
    if args.out.exists() and not args.force:
        raise ConfigError(f"{args.out} exists: choose a new --out, or --force to replace it")


def _segmenter(args: argparse.Namespace):
    from liteseg_ros.inference.config import SegmenterConfig
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.model.published import resolve_weights

    args.weights = resolve_weights(args.weights)
    config = SegmenterConfig(device=args.device, precision=args.precision, input_size=args.input_size,
                             class_map=args.class_map)
    return Segmenter(args.weights, config), config


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check(args)
    engine = engine_options(args)
    pieces, problems = plan_pieces(rec.recordings(args.bags, strict=False), tuple(args.topic), args.every,
                                   args.piece_frames)
    if not pieces:
        print("liteseg-mine: error: no frame could be read: " + "; ".join(f"{Path(p.bag).name}: {p.reason}"
                                                                         for p in problems), file=sys.stderr)
        return EXIT_NO_FRAMES
    segmenter, config = _segmenter(args)  # every option and the model are checked before the first frame
    results, seconds, from_store = _score(args, pieces, segmenter, config, engine)
    scores = [score for result in results for score in result.scores]
    counts = rec.ReadCounts()
    for result in results:
        counts.add(result.counts)
        if result.error:
            problems.append(BagProblem(result.piece.bag, f"broke at {result.piece.name}: {result.error}"))
    for problem in problems:
        print(f"liteseg-mine: warning: {Path(problem.bag).name}: {problem.reason}; its other frames are used",
              file=sys.stderr)
    if not scores:
        print("liteseg-mine: error: no frame could be read from any recording", file=sys.stderr)
        return EXIT_NO_FRAMES
    choices = choose(scores, args.count, args.same_view)
    mined = _prelabel(segmenter, pieces, scores, choices)
    topics = sorted({piece.topic for piece in pieces})
    run = MiningRun(segmenter.description, segmenter.classes, _rule(args),
                    {"messages": counts.messages, "kept": counts.kept, "unreadable": counts.unreadable,
                     "topic": ", ".join(topics), "bags": len({piece.bag for piece in pieces}), "every": args.every,
                     "requested": args.count, "problems": [f"{Path(p.bag).name}: {p.reason}" for p in problems]},
                    args.image_url)
    write_outputs(args.out, mined, run, replace=args.force)
    for problem in counts.problems:
        print(f"liteseg-mine: skipped {problem}", file=sys.stderr)
    scored = len(scores) - from_store
    kept = f", {from_store} from the score store" if args.scores else ""
    print(f"liteseg-mine: scored {scored} frames of {', '.join(topics)} in {run.counts['bags']} recording(s) in "
          f"{seconds:.1f} s ({scored / max(seconds, 1e-9):.1f} frames/s{kept}, {counts.unreadable} unreadable"
          f"{f', {len(problems)} recording(s) not read' if problems else ''}), chose {len(mined)}: {args.out}")
    return 0


def _score(args, pieces: list[Piece], segmenter, config, engine) -> tuple[list, float, int]:
    """Every piece's scores: from the store where kept, else scored on the engine (and kept); the seconds it took,
    and how many frames came from the store."""
    from liteseg_ros.fleet.engine import WorkerSpec, run_pieces
    from liteseg_ros.fleet.jobs import MiningWorker

    store = _store(args, segmenter)
    kept = {piece.index: store.get(piece) for piece in pieces} if store else {}
    todo = [piece for piece in pieces if kept.get(piece.index) is None]
    progress = Progress("scoring pieces", total=len(pieces), engine=engine)
    for _ in range(len(pieces) - len(todo)):
        progress.step("from the score store")

    def arrived(result) -> None:
        if store:
            store.put(result)
        progress.step(f"{result.piece.name}", frames=len(result.scores))

    local = {"segmenter": segmenter} if engine.engine == "local" else {}
    spec = WorkerSpec(MiningWorker, {"weights": str(args.weights), "config": config, **local})
    scored = dict(zip((piece.index for piece in todo), run_pieces(todo, spec, engine, arrived)))
    seconds = progress.close()
    from_store = sum(len(result.scores) for result in kept.values() if result is not None)
    return [kept.get(piece.index) or scored[piece.index] for piece in pieces], seconds, from_store


def _store(args, segmenter):
    if args.scores is None:
        return None
    from liteseg_ros.mining.store import ScoreStore, scoring_identity

    return ScoreStore(args.scores, scoring_identity(args.weights, args.class_map, segmenter.input_size,
                                                    segmenter.precision))


def _prelabel(segmenter, pieces: list[Piece], scores, choices) -> list[MinedFrame]:
    """The chosen frames read again, with the model's masks at their own size, in the order they were chosen."""
    by_key = {scores[choice.index].key: choice for choice in choices}
    found: dict[tuple, MinedFrame] = {}
    taken: set[str] = set()
    progress = Progress("pre-labelling", total=len(choices))
    wanted_pieces = [piece for piece in pieces if any(key[:2] == (piece.bag, piece.topic) and
                                                      piece.start_ns <= key[2] < piece.stop_ns for key in by_key)]
    for piece in wanted_pieces:
        for frame in read_piece(piece, rec.ReadCounts(), wanted=set(by_key)):
            mask = segmenter.segment(frame.image, encoding=frame.encoding, outputs=("mask",)).mask
            found[frame.key] = MinedFrame(rec.image_name(frame.bag, frame.stamp_ns, taken), frame, mask,
                                          by_key[frame.key])
            progress.step()
    progress.close()
    return [found[scores[choice.index].key] for choice in choices if scores[choice.index].key in found]


def _rule(args: argparse.Namespace) -> str:
    return ("the least sure frame first, then each next frame maximising uncertainty (mean 1 - p) x distance to "
            f"the nearest chosen frame (class layout and thumbnail), never a frame of a chosen view (thumbnails "
            f"closer than {args.same_view:g})")


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-mine")


if __name__ == "__main__":
    sys.exit(main())
