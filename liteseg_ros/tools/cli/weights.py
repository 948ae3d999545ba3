"""liteseg-weights: list and fetch the published weights (the authors' Cityscapes models, ImageNet backbones).

    liteseg-weights list
    liteseg-weights fetch cityscapes-mobilenetv2 [--dest DIR]

Files are pinned to a commit and verified by their git blob SHA-1; Cityscapes models are converted to our
format. The default destination is the user's cache ($XDG_CACHE_HOME/liteseg_ros or ~/.cache/liteseg_ros),
where the node finds them as weights:=cityscapes. LITESEG_WEIGHTS_BASE_URL replaces the download base.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liteseg_ros.files import cache_dir
from liteseg_ros.model.published import CATALOG, download_url, fetch
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="what can be fetched, with source, size and licence")
    fetch_parser = commands.add_parser("fetch", help="download, verify and convert one of them")
    fetch_parser.add_argument("name", choices=sorted(CATALOG))
    fetch_parser.add_argument("--dest", type=Path, help=f"destination folder (default {cache_dir()})")
    return parser


def _list() -> int:
    print(f"{'name':24} {'backbone':12} {'size':>8}  licence / source")
    for entry in CATALOG.values():
        size = f"{entry.size / 1e6:.1f} MB" if entry.size else "unknown"
        fetched = " [fetched]" if (cache_dir() / entry.cached_name).is_file() else ""
        print(f"{entry.name:24} {entry.backbone:12} {size:>8}  {entry.license}{fetched}\n"
              f"{'':47}{entry.repository}@{entry.commit[:12]} {entry.path}")
    return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        return _list()
    entry = CATALOG[args.name]
    print(f"fetching {entry.name} from {download_url(entry)}\n  licence: {entry.license}", file=sys.stderr)
    path = fetch(entry, args.dest, progress=sys.stderr)
    use = (f"ros2 launch liteseg_ros segment.launch.py backbone:={entry.backbone} weights:=cityscapes"
           if entry.kind == "cityscapes" else f"liteseg-train ... init.backbone={path}")
    print(f"{path}\n  verified (git blob {entry.blob_sha1}); licence: {entry.license}\n  use: {use}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script ``liteseg-weights``."""
    return run_cli(_main, argv, "liteseg-weights")


if __name__ == "__main__":
    sys.exit(main())
