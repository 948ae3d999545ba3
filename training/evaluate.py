"""liteseg-eval: Cityscapes class and category IoU, computed as the official evaluation does.

Two modes:

- ``liteseg-eval --pred-dir P --gt-dir G``: labelId prediction PNGs against the
  ``*_gtFine_labelIds.png`` found recursively under G. As in cityscapesscripts' ``getPrediction``,
  the prediction of frame ``<city>_<seq>_<frame>`` is the one PNG under P whose name starts with
  that frame name; none or several is an error.
- ``liteseg-eval --weights W --data ROOT --split val``: runs a model on a dataset split (ROOT a folder or a zip
  archive, e.g. CVAT's export as it comes) as the node runs it (its training size) and scores its masks at full
  label resolution;
- ``liteseg-eval --weights OLD --weights NEW --data ROOT``: both on the same frames, one table (per-class IoU, a
  column per model, the difference) on the classes they share (:mod:`liteseg_ros.comparison`).

A table goes to stdout (``--json``: one JSON object), ``--plots DIR`` adds PNG charts.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import sys
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from liteseg_ros.comparison import ModelScores, SharedClasses, SharedConfusion, comparison_dict, comparison_table
from liteseg_ros.datasets import read_label_ids
from liteseg_ros.datasets.folders import open_split
from liteseg_ros.errors import ConfigError, DatasetError, ImageError
from liteseg_ros.inference.config import SegmenterConfig
from liteseg_ros.logs import get_logger
from liteseg_ros.metrics import ConfusionMatrix, SegmentationScores
from liteseg_ros.sizes import format_size
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, add_run_arguments, parse_size, run_cli

PROG = "liteseg-eval"
GT_SUFFIX = "_gtFine_labelIds.png"
MAX_LISTED = 10
LOG = get_logger(PROG)

T = TypeVar("T")
R = TypeVar("R")


def _listing(items: Sequence[object]) -> str:
    shown = ", ".join(str(i) for i in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def find_ground_truth(gt_dir: str | os.PathLike) -> dict[str, Path]:
    """Frame name -> ``*_gtFine_labelIds.png`` path, searched recursively; duplicates are an error."""
    root = Path(gt_dir)
    if not root.is_dir():
        raise DatasetError(f"ground-truth folder {root} does not exist")
    frames: dict[str, Path] = {}
    duplicates = []
    for path in sorted(root.rglob(f"*{GT_SUFFIX}")):
        frame = path.name[: -len(GT_SUFFIX)]
        if frame in frames:
            duplicates.append(path)
        frames.setdefault(frame, path)
    if not frames:
        raise DatasetError(f"no *{GT_SUFFIX} under {root}; pass e.g. <cityscapes>/gtFine/val")
    if duplicates:
        raise DatasetError(f"ground truth found twice for some frames under {root}: {_listing(duplicates)}")
    return frames


def pair_predictions(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) pairs, matched as cityscapesscripts' ``getPrediction`` does."""
    pred_root = Path(pred_dir)
    if not pred_root.is_dir():
        raise DatasetError(f"prediction folder {pred_root} does not exist")
    ground_truth = find_ground_truth(gt_dir)
    candidates = sorted(
        (name, Path(folder) / name)
        for folder, _, names in os.walk(pred_root)
        for name in names
        if name.endswith(".png")
    )
    names = [name for name, _ in candidates]
    pairs, missing, ambiguous = [], [], []
    for frame, gt_path in sorted(ground_truth.items()):
        start = bisect.bisect_left(names, frame)
        end = start
        while end < len(names) and names[end].startswith(frame):
            end += 1
        if end == start:
            missing.append(gt_path)
        elif end - start > 1:
            ambiguous.append(f"{frame} ({', '.join(str(p) for _, p in candidates[start:end])})")
        else:
            pairs.append((candidates[start][1], gt_path))
    if missing:
        raise DatasetError(
            f"no prediction under {pred_root} for {len(missing)} of {len(ground_truth)} ground-truth frames "
            f"(expected <frame>*.png): {_listing(missing)}"
        )
    if ambiguous:
        raise DatasetError(f"several predictions for one ground truth: {_listing(ambiguous)}")
    unused = len(candidates) - len(pairs)
    if unused:
        LOG.warning("%d PNG files under %s match no ground truth and are not evaluated", unused, pred_root)
    return pairs


def _bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map`` in a thread pool (PNG decoding releases the GIL), in order, a few items ahead."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _load_pair(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray, tuple[Path, Path]]:
    pred_path, gt_path = pair
    pred = read_label_ids(pred_path)
    gt = read_label_ids(gt_path)
    if pred.shape != gt.shape:
        raise ImageError(
            f"prediction {pred_path} is {format_size(pred.shape)} (HxW) but its ground truth {gt_path} is "
            f"{format_size(gt.shape)}; write predictions at full label resolution"
        )
    return gt, pred, pair


def evaluate_prediction_files(pairs: Sequence[tuple[Path, Path]], workers: int = 4) -> ConfusionMatrix:
    """Count labelId prediction PNGs against their labelId ground truth."""
    matrix = ConfusionMatrix()
    for gt, pred, (pred_path, gt_path) in _bounded_map(_load_pair, pairs, workers):
        try:
            matrix.update_label_ids(gt, pred)
        except ImageError as error:
            raise ImageError(f"{pred_path} vs {gt_path}: {error}") from None
    return matrix


def evaluate_model(weights: str, data: str, split: str, config: SegmenterConfig | None = None, *, workers: int = 2,
                   **keywords) -> ConfusionMatrix:
    """Score a model's masks on a data set split (Cityscapes, CVAT / VOC or plain; a folder or a zip) at full label
    resolution, with the model's class set (or the config's ``class_map``'s merged classes, the ground truth merged
    alike). ``weights`` is what the node's ``weights`` takes (a file or a published name); ``config`` (or keywords of
    its fields) runs it as the node does.

    The network input is the config's ``input_size``, else the checkpoint's training size (as the node runs it), else
    the first image's size (full resolution, as the authors' demo runs); masks are resized back to each image.
    """
    config = SegmenterConfig.of(config, **keywords)
    dataset = open_split(data, split)  # checks the data set before the model is loaded
    segmenter = _segmenter(weights, dataset, config)
    if segmenter.model_classes.names != dataset.classes.names:
        raise DatasetError(f"{data} is labelled with the classes {', '.join(dataset.classes.names)} but {weights} "
                           f"predicts {', '.join(segmenter.model_classes.names)}: evaluate a model trained on this "
                           "class set, or compare models on the classes they share (--weights OLD --weights NEW)")
    matrix = ConfusionMatrix(segmenter.classes)
    merge = segmenter.class_map.mask if segmenter.class_map else None
    for index, (image, label) in enumerate(_bounded_map(dataset.__getitem__, range(len(dataset)), workers), 1):
        truth = merge(torch.from_numpy(label)).numpy() if merge else label
        matrix.update(truth, segmenter.segment(image, outputs=("mask",)).mask)
        if index % 50 == 0:
            LOG.info("%d / %d images", index, len(dataset))
    return matrix


def _segmenter(weights: str, dataset, config: SegmenterConfig, fit_only: bool = False):
    """The Segmenter of ``weights`` as the node runs it (its training size unless the config's ``input_size``), with
    the class map (with ``fit_only``: only if the map was made for the model's classes)."""
    from liteseg_ros.class_map import load_class_map
    from liteseg_ros.errors import ClassSetError
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.inference.sources import read_source
    from liteseg_ros.model.published import resolve_weights

    path = resolve_weights(weights, config.backbone)
    source = read_source(path, config.backbone)  # checks the file and --backbone: metadata only (INT8 models too)
    class_map = config.class_map
    if class_map is not None and fit_only:
        try:
            load_class_map(class_map, source.classes)
        except ClassSetError:
            class_map = None
    size = config.input_size or source.trained_size or dataset[0][1].shape
    segmenter = Segmenter(path, config, input_size=size, class_map=class_map)
    LOG.info("evaluating %s (%s) on %d images, network input %dx%d, %s", path, source.backbone, len(dataset),
             size[0], size[1], segmenter.description)
    return segmenter


def compare_models(weights: list[str], data: str, split: str, config: SegmenterConfig | None = None, *,
                   workers: int = 2) -> tuple[list[ModelScores], SharedClasses]:
    """Score several models on the same frames of a data set split, on the classes they share with its ground
    truth (:mod:`liteseg_ros.comparison`). The config's ``class_map`` applies to each model it was made for."""
    config = config or SegmenterConfig()
    dataset = open_split(data, split)
    segmenters = [_segmenter(w, dataset, config, fit_only=True) for w in weights]
    shared = SharedClasses.of(dataset.classes, {w: s.classes for w, s in zip(weights, segmenters)})
    confusions = [SharedConfusion(shared, segmenter.classes) for segmenter in segmenters]
    for index, (image, label) in enumerate(_bounded_map(dataset.__getitem__, range(len(dataset)), workers), 1):
        for segmenter, confusion in zip(segmenters, confusions):
            confusion.update(label, segmenter.segment(image, outputs=("mask",)).mask)
        if index % 50 == 0:
            LOG.info("%d / %d images", index, len(dataset))
    notes = [f"class map {s.class_map.path}, input {format_size(s.input_size)}" if s.class_map
             else f"input {format_size(s.input_size)}" for s in segmenters]
    return [ModelScores.of(w, c.scores(), shared.names, note) for w, c, note in zip(weights, confusions, notes)], shared


def _cell(value: float | None) -> str:
    return f"{math.nan if value is None else value:>5.3f}"


def format_table(scores: SegmentationScores) -> str:
    """The class and category tables as cityscapesscripts prints them (IoU only)."""
    rule = "-" * 32
    lines = [f"Evaluated {scores.frames} frames", "", "classes          IoU", rule]
    lines += [f"{name:<14}: {_cell(iou)}" for name, iou in scores.per_class.items()]
    lines += [rule, f"Score Average : {_cell(scores.miou)}", rule]
    if scores.per_category:
        lines += ["", "categories       IoU", rule]
        lines += [f"{name:<14}: {_cell(iou)}" for name, iou in scores.per_category.items()]
        lines += [rule, f"Score Average : {_cell(scores.category_miou)}", rule]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Pixel-level evaluation: class IoU of the model's class set on a CVAT / VOC, plain or Cityscapes "
                    "data set (Cityscapes: also category IoU, as cityscapesscripts computes them).",
    )
    files = parser.add_argument_group("score prediction files")
    files.add_argument("--pred-dir", help="folder of labelId prediction PNGs named <city>_<seq>_<frame>*.png")
    files.add_argument("--gt-dir", help="folder searched recursively for *_gtFine_labelIds.png (e.g. gtFine/val)")
    model = parser.add_argument_group("score a model")
    model.add_argument("--weights", action="append", help="checkpoint, authors' .pth, INT8 model or a published name "
                       "(as the node's weights: cityscapes-mobilenetv2, ...); give it twice or more (OLD first, NEW "
                       "last) to compare models on the same frames in one table")
    model.add_argument("--backbone", help="backbone of an authors' weights file, if it cannot be detected")
    model.add_argument("--data", help="data set folder or zip archive: a CVAT 'Segmentation mask 1.1' / PASCAL VOC "
                                      "export, the plain layout (classes.yaml, images/, masks/) or Cityscapes "
                                      "(leftImg8bit/, gtFine/)")
    model.add_argument("--class-map", help="a class map YAML: score the merged classes (ground truth merged alike)")
    model.add_argument("--split", default="val", help="dataset split (default: val)")
    model.add_argument("--input-size", type=parse_size, metavar="HxW",
                       help="network input size (default: the checkpoint's, else the images' full resolution)")
    add_run_arguments(model)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--plots", metavar="DIR", help="also write class_iou.png and confusion_matrix.png to DIR")
    parser.add_argument("--workers", type=int, default=4, help="threads reading PNG files (default: 4)")
    return parser


def _scores_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> SegmentationScores | tuple:
    file_mode = args.pred_dir is not None or args.gt_dir is not None
    model_mode = args.weights is not None or args.data is not None
    if file_mode == model_mode:
        parser.error("give either --pred-dir and --gt-dir, or --weights and --data")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if file_mode:
        if args.pred_dir is None or args.gt_dir is None:
            parser.error("--pred-dir and --gt-dir go together")
        matrix = evaluate_prediction_files(pair_predictions(args.pred_dir, args.gt_dir), args.workers)
    else:
        if args.weights is None or args.data is None:
            parser.error("--weights and --data go together")
        config = SegmenterConfig(device=args.device, precision=args.precision, input_size=args.input_size,
                                 backbone=args.backbone, class_map=args.class_map)
        if len(args.weights) > 1:
            return compare_models(args.weights, args.data, args.split, config, workers=args.workers)
        matrix = evaluate_model(args.weights[0], args.data, args.split, config, workers=args.workers)
    return matrix.scores()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    scores = _scores_from_args(parser, args)
    if isinstance(scores, tuple):
        models, shared = scores
        print(json.dumps(comparison_dict(models, shared)) if args.json else comparison_table(models, shared), end="")
        return 0
    if args.plots:
        for path in _write_plots(scores, args.plots):
            LOG.info("wrote %s", path)
    if args.json:
        print(json.dumps(scores.to_dict()))
    else:
        print(format_table(scores))
    return 0


def _write_plots(scores: SegmentationScores, out_dir: str) -> list[Path]:
    from liteseg_ros.training.plots import write_plots

    try:
        return write_plots(scores, out_dir)
    except OSError as error:
        raise ConfigError(f"cannot write plots to {out_dir}: {error}") from None


def main(argv: list[str] | None = None) -> int:
    """Console entry point of liteseg-eval."""
    return run_cli(_main, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
