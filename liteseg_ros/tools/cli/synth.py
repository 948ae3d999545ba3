"""liteseg-synth: synthetic street scenes in the Cityscapes layout or as a CVAT export of a robot's own classes,
or a synthetic drive as a rosbag2 bag.

  liteseg-synth --out DIR --train N --val M --height H --width W --seed S [--test K] [--extra E] [--no-coarse]
  liteseg-synth --out DIR --layout cvat --train N --val M --height H --width W --seed S
  liteseg-synth --bag OUT --frames N --height H --width W --seed S [--rate HZ] [--storage sqlite3|mcap]
                [--compressed] [--image-topic T] [--gt-topic T]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from liteseg_ros.errors import ConfigError
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, run_cli
from liteseg_ros.tools.synthetic.bag_writer import DEFAULT_GT_TOPIC, DEFAULT_IMAGE_TOPIC, STORAGES


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="new (or empty) directory for a data set (--layout)")
    target.add_argument("--bag", help="new rosbag2 bag directory for a synthetic drive")
    parser.add_argument("--height", type=int, default=256, help="image rows (default 256)")
    parser.add_argument("--width", type=int, default=512, help="image columns (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same bytes (default 0)")
    tree = parser.add_argument_group("data set (--out)")
    tree.add_argument("--layout", choices=("cityscapes", "cvat"), default="cityscapes",
                      help="cityscapes (19 classes, gtFine/gtCoarse) or cvat: a CVAT 'Segmentation mask 1.1' export "
                           "with 5 robot classes (background, drivable, building, vegetation, obstacle)")
    tree.add_argument("--train", type=int, default=0, help="frames in train (gtFine + gtCoarse)")
    tree.add_argument("--val", type=int, default=0, help="frames in val (gtFine + gtCoarse)")
    tree.add_argument("--test", type=int, default=0, help="frames in test (gtFine holds only the ego vehicle)")
    tree.add_argument("--extra", type=int, default=0, help="frames in train_extra (gtCoarse only)")
    tree.add_argument("--coarse", action=argparse.BooleanOptionalAction, default=True,
                      help="also write gtCoarse for train/val/train_extra (default: yes)")
    bag = parser.add_argument_group("drive bag (--bag)")
    bag.add_argument("--frames", type=int, default=100, help="frames in the drive (default 100)")
    bag.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    bag.add_argument("--storage", choices=STORAGES, default=STORAGES[0], help=f"bag storage (default {STORAGES[0]})")
    bag.add_argument("--compressed", action="store_true",
                     help="camera as CompressedImage (JPEG q90) on <image-topic>/compressed")
    bag.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC, help=f"camera topic (default {DEFAULT_IMAGE_TOPIC})")
    bag.add_argument("--gt-topic", default=DEFAULT_GT_TOPIC, help=f"labelIds topic (default {DEFAULT_GT_TOPIC})")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _write_tree(args: argparse.Namespace) -> dict:
    if args.layout == "cvat":
        from liteseg_ros.tools.synthetic.cvat_writer import write_cvat_export

        if args.test or args.extra:
            raise ConfigError("--test and --extra are Cityscapes splits; a CVAT export has train and val")
        return asdict(write_cvat_export(args.out, train=args.train, val=args.val, height=args.height,
                                        width=args.width, seed=args.seed))
    from liteseg_ros.tools.synthetic.cityscapes_writer import write_cityscapes_tree

    summary = write_cityscapes_tree(args.out, train=args.train, val=args.val, test=args.test, extra=args.extra,
                                    coarse=args.coarse, height=args.height, width=args.width, seed=args.seed)
    return asdict(summary)


def _write_bag(args: argparse.Namespace) -> dict:
    from liteseg_ros.tools.synthetic.bag_writer import write_drive_bag

    summary = write_drive_bag(args.bag, frames=args.frames, height=args.height, width=args.width, seed=args.seed,
                              rate_hz=args.rate, storage=args.storage, compressed=args.compressed,
                              image_topic=args.image_topic, gt_topic=args.gt_topic)
    return asdict(summary)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is not None and (args.compressed or args.storage != "sqlite3"):
        raise ConfigError("--compressed and --storage apply to --bag, not to --out")
    started = time.monotonic()
    summary = _write_tree(args) if args.out is not None else _write_bag(args)
    summary = {key: str(value) if key in ("root", "path") else value for key, value in summary.items()}
    summary["seconds"] = round(time.monotonic() - started, 2)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-synth")


if __name__ == "__main__":
    raise SystemExit(main())
