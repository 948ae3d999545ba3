"""Helpers shared by the command-line tools: size parsing and one-line error exits."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from liteseg_ros.errors import LiteSegError

EXIT_USAGE = 2


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (height, width)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH (e.g. 360x640), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None, prog: str) -> int:
    """Run ``main``; a LiteSegError becomes one line on stderr and exit code 2, Ctrl-C exit code 130."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return main(argv)
    except LiteSegError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
