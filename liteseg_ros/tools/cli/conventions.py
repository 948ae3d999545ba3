"""What every command-line tool of the package does alike: sizes as HxW, the run options (device, precision,
...), one-line errors and their exit statuses."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from liteseg_ros.errors import EXIT_ERROR, EXIT_INTERRUPTED, LiteSegError


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (height, width)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH (e.g. 360x640), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def format_size(size: tuple[int, int]) -> str:
    """(height, width) -> 'HxW', as :func:`parse_size` reads it."""
    return f"{size[0]}x{size[1]}"


def add_run_arguments(parser: Any, *, optimize: bool = False) -> None:
    """--device and --precision (and with ``optimize`` --optimize and --threads) as the node's parameters of the
    same names, whose plan ``liteseg-info --plan`` shows."""
    from liteseg_ros.inference.plan import AUTO_PRECISION_RULE, DEVICE_CHOICES, PRECISIONS

    parser.add_argument("--device", default="auto",
                        help=f"{DEVICE_CHOICES} (default auto: CUDA when present)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help=f"network precision (default {AUTO_PRECISION_RULE})")
    if optimize:
        parser.add_argument("--optimize", default="auto", help="auto, none, or a comma-separated list such as "
                            "fold_bn,channels_last,torchscript_freeze,warmup=3 (default auto)")
        parser.add_argument("--threads", type=int, default=0, help="CPU threads (default 0: torch's count)")


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None, prog: str) -> int:
    """Run ``main``; a LiteSegError becomes one line on stderr and exit status EXIT_ERROR (2), Ctrl-C
    EXIT_INTERRUPTED (130)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main(argv)
    except LiteSegError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
