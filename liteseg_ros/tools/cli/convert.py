"""liteseg-convert: an authors' LiteSeg checkpoint (.pth) -> a liteseg_ros checkpoint with metadata."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liteseg_ros.files import file_digest
from liteseg_ros.model import BACKBONES, CheckpointMeta, load_weights, save_checkpoint
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, parse_size, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-convert", description=__doc__)
    parser.add_argument("source", help="the authors' checkpoint, e.g. liteseg-mobilenet-cityscapes.pth")
    parser.add_argument("--backbone", required=True, choices=BACKBONES)
    parser.add_argument("-o", "--output", required=True, help="the liteseg_ros checkpoint to write")
    parser.add_argument("--input-size", type=parse_size, default=(1024, 2048),
                        help="training input HEIGHTxWIDTH to record (default 1024x2048, Cityscapes)")
    parser.add_argument("--half", action="store_true", help="store the weights as fp16")
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    model, _ = load_weights(args.source, backbone=args.backbone)  # the class count from its classifier
    meta = CheckpointMeta.for_model(
        model,
        input_size=args.input_size,
        origin=f"converted from the authors' checkpoint {Path(args.source).name} "
               f"(sha256 {file_digest(args.source)[:16]})",
    )
    out = save_checkpoint(args.output, model, meta, half=args.half)
    print(f"wrote {out} ({args.backbone}, {model.num_classes} classes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-convert")


if __name__ == "__main__":
    sys.exit(main())
