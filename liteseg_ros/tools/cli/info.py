"""liteseg-info: parameters, multiply-accumulates and strides of LiteSeg (optionally eager CPU forward time); with
--weights also the model's class set."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from liteseg_ros.classes import ClassSet
from liteseg_ros.model import BACKBONES, LiteSegConfig, load_weights
from liteseg_ros.model.complexity import MAC_COUNTER, measure_complexity, median_ms, time_eager_forward
from liteseg_ros.tools.cli.common import parse_size, run_cli

COLUMNS = (
    "backbone",
    "input",
    "params used",
    "params incl. ImageNet head",
    "GMACs",
    "output stride",
    "low-level stride",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liteseg-info", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--backbone", choices=BACKBONES + ("all",), default="all", help="architecture (default: all three)"
    )
    source.add_argument("--weights", help="a liteseg_ros checkpoint or an authors' .pth instead of --backbone")
    parser.add_argument("--size", type=parse_size, default=(512, 1024), help="input HEIGHTxWIDTH (default 512x1024)")
    parser.add_argument("--time", action="store_true", help="also time the eager fp32 CPU forward (median)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for --time (default 2)")
    parser.add_argument("--iters", type=int, default=10, help="timed passes for --time (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _configs(args: argparse.Namespace) -> list[tuple[LiteSegConfig, ClassSet | None]]:
    if args.weights:
        model, meta = load_weights(args.weights)
        return [(model.config, meta.classes)]
    names = BACKBONES if args.backbone == "all" else (args.backbone,)
    return [(LiteSegConfig(backbone=name), None) for name in names]


def _row(config: LiteSegConfig, classes: ClassSet | None, args: argparse.Namespace) -> dict:
    figures = measure_complexity(config, args.size)
    row = {
        "backbone": figures.backbone,
        "input": f"{args.size[0]}x{args.size[1]}",
        "params_used": figures.params_used,
        "params_with_imagenet_head": figures.params_with_imagenet_head,
        "gmacs": round(figures.macs / 1e9, 3),
        "output_stride": figures.output_stride,
        "low_level_stride": figures.low_level_stride,
    }
    if args.time:
        from liteseg_ros.model import LiteSeg

        torch.set_num_threads(args.threads)
        row["eager_cpu_ms"] = round(median_ms(time_eager_forward(LiteSeg(config), args.size, iters=args.iters)), 1)
    if classes is not None:
        row["classes"] = classes.to_dict()
    return row


def _print_table(rows: list[dict], args: argparse.Namespace) -> None:
    header = list(COLUMNS) + ([f"eager CPU fwd ms ({args.threads} thr, median)"] if args.time else [])
    lines = [header] + [[f"{v:,}" if isinstance(v, int) else str(v) for k, v in row.items() if k != "classes"]
                        for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print(f"\nMACs counted with {MAC_COUNTER}.")
    print("Params incl. ImageNet head: the unused classifier kept in the authors' checkpoints (paper Table III).")
    for row in rows:
        if "classes" in row:
            names, colors = row["classes"]["names"], row["classes"]["colors"]
            print(f"\nclasses ({len(names)}): " + ", ".join(f"{i} {name} {tuple(color)}"
                                                          for i, (name, color) in enumerate(zip(names, colors))))


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    rows = [_row(config, classes, args) for config, classes in _configs(args)]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        _print_table(rows, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-info")


if __name__ == "__main__":
    sys.exit(main())
