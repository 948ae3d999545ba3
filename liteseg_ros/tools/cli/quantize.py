"""liteseg-quantize: an INT8 model of a checkpoint for CPUs without native bf16.

    liteseg-quantize CHECKPOINT --frames SOURCE [--calibration 32] [--holdout 16] [--input-size 360x640]

SOURCE is a folder of images, a data set (a folder or a zip archive: a CVAT / VOC export, the plain layout or
Cityscapes) or a bag (ROS 1 .bag or a rosbag2 folder; --image-topic / --gt-topic as for liteseg-replay). The first
--calibration frames calibrate the quantizer; the next --holdout frames check the INT8 model against fp32: pixel
agreement and, where the source has ground truth, the class-mIoU change. Its network is timed against fp32 on this
machine, and a model that is not faster is refused (--min-speedup; on some CPUs INT8 is slower), as is one that
agrees with fp32 on fewer than --min-agreement of the pixels. The model is written beside the checkpoint as
NAME.int8.onnx (or --out), with the report in its metadata; the node, liteseg-replay and the Segmenter load it like
any weights file (weights:=/path/NAME.int8.onnx, CPU only, the input size it was made for).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.runners import ONNX_RUNNERS
from liteseg_ros.model.bundled import DEFAULT_INPUT_SIZE
from liteseg_ros.replay.matching import GT_ENCODINGS
from liteseg_ros.tools.cli.conventions import (
    OneLineArgumentParser,
    add_threads_argument,
    check_threads,
    format_size,
    parse_size,
    run_cli,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-quantize", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="weights file (ours or the authors') or a "
                                                                  "fetched published name")
    parser.add_argument("--frames", type=Path, required=True,
                        help="images folder, a data set (folder or zip: CVAT / VOC, plain, Cityscapes) or a bag")
    parser.add_argument("--calibration", type=int, default=32, help="calibration frames (default 32)")
    parser.add_argument("--holdout", type=int, default=16, help="held-out frames for the report (default 16)")
    parser.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE,
                        help="network input HxW (default %s, the node's)" % format_size(DEFAULT_INPUT_SIZE))
    parser.add_argument("--out", type=Path, help="output file (default: CHECKPOINT's name with .int8.onnx)")
    parser.add_argument("--min-speedup", type=float, default=1.0,
                        help="refuse unless INT8 is this many times faster than fp32 here (default 1.0; 0: never)")
    parser.add_argument("--min-agreement", type=float, default=0.98,
                        help="refuse unless this fraction of pixels equals fp32's on the held-out frames (default "
                             "0.98; 0: never)")
    parser.add_argument("--runner", choices=("auto",) + ONNX_RUNNERS, default="auto",
                        help="runner to time INT8 with (default auto: OpenVINO when installed, as the node)")
    parser.add_argument("--image-topic", help="a bag's camera topic (found automatically when there is one)")
    parser.add_argument("--gt-topic", help="a bag's ground-truth mono8 label topic (for the mIoU change)")
    parser.add_argument("--gt-encoding", choices=GT_ENCODINGS, default="labelids", help="a bag's label values")
    add_threads_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON (a refused model's too, with "
                                                            "'refused')")
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.calibration < 1 or args.holdout < 1:
        raise ConfigError("--calibration and --holdout must be at least 1")
    check_threads(args.threads)
    import torch

    from liteseg_ros.tools.calibration import read_frames
    from liteseg_ros.tools.quantize import QuantizationRefused, default_output, quantize_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    from liteseg_ros.model.published import resolve_weights

    args.checkpoint = resolve_weights(args.checkpoint)
    out = args.out or default_output(args.checkpoint)
    if out.suffix != ".onnx":
        raise ConfigError(f"--out must end in .onnx (the node recognises INT8 models by it), got {out}")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of {out} does not exist: create it first")
    frames = read_frames(args.frames, args.calibration + args.holdout, image_topic=args.image_topic,
                         gt_topic=args.gt_topic, gt_encoding=args.gt_encoding)
    try:
        report = quantize_checkpoint(args.checkpoint, frames, calibration=args.calibration, holdout=args.holdout,
                                     input_size=args.input_size, out=out, min_speedup=args.min_speedup,
                                     min_agreement=args.min_agreement, runner=args.runner)
    except QuantizationRefused as refused:
        if args.json:  # what was measured, and why nothing was written
            print(json.dumps({**refused.report.to_dict(), "refused": str(refused)}, indent=2))
        raise
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"wrote {out}\n{report.summary()}")
        for name, plan in report.plans.items():
            print(f"\n{name} plan:\n{plan}")
        if report.miou_change is not None and report.miou_change < -0.005:
            print(f"warning: INT8 loses {-report.miou_change:.4f} class mIoU on these frames; check on your data "
                  f"before deploying it", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-quantize")


if __name__ == "__main__":
    sys.exit(main())
