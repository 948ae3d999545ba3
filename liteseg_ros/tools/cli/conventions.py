"""What every command-line tool of the package does alike: one argument parser (usage errors in one line), sizes as
HEIGHTxWIDTH (:mod:`liteseg_ros.sizes`), the run options (device, precision, optimize, threads: 0 = torch's count),
one-line errors and their exit statuses (:func:`run_cli`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from liteseg_ros import sizes
from liteseg_ros.errors import EXIT_ERROR, EXIT_INTERRUPTED, ConfigError, LiteSegError


class OneLineArgumentParser(argparse.ArgumentParser):
    """Every tool's argument parser: a usage error is one line on stderr and exit status EXIT_ERROR (2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def add_threads_argument(parser: Any, purpose: str = "CPU threads") -> None:
    """``--threads N`` as every tool has it: 0 (the default) is torch's count, one per core."""
    parser.add_argument("--threads", type=int, default=0, help=f"{purpose} (default 0: torch's count, one per core)")


def check_threads(threads: int) -> int:
    """``--threads`` checked; ConfigError for a negative count."""
    if threads < 0:
        from liteseg_ros.errors import ConfigError

        raise ConfigError(f"--threads must be positive (0: torch's count), got {threads}")
    return threads


class Progress:
    """A tool's progress on stderr: one line redrawn on a terminal (count, rate, frames/s, the workers alive on a
    Ray run, what it is doing), nothing elsewhere (the tool prints its summary line)."""

    def __init__(self, what: str, total: int | None = None, stream: Any = None, period_s: float = 0.25,
                 engine: Any = None):
        import time

        self.stream = stream if stream is not None else sys.stderr
        self.what, self.total, self.period_s, self.count, self.frames = what, total, period_s, 0, 0
        self.started, self._clock, self._shown = time.monotonic(), time.monotonic, 0.0
        self.on_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.ray = getattr(engine, "engine", "local") == "ray"
        self._workers: tuple[float, int | None] = (-1e9, None)

    def step(self, note: str = "", frames: int = 0) -> None:
        """One more item (of ``frames`` frames); redraws the line at most every ``period_s`` seconds."""
        self.count += 1
        self.frames += frames
        now = self._clock()
        if self.on_terminal and (now - self._shown >= self.period_s or self.count == self.total):
            self._shown = now
            elapsed = max(now - self.started, 1e-9)
            of = f"/{self.total}" if self.total else ""
            rates = f"{self.frames / elapsed:.1f} frames/s" if self.frames else f"{self.count / elapsed:.1f}/s"
            workers = self._alive(now)
            alive = f", {workers} workers alive" if workers is not None else ""
            self.stream.write(f"\r{self.what}: {self.count}{of} ({rates}{alive}) {note}"[:160].ljust(80))
            self.stream.flush()

    def _alive(self, now: float) -> int | None:
        if not self.ray:
            return None
        if now - self._workers[0] >= 5.0:
            from liteseg_ros.fleet.engine import alive_workers

            self._workers = (now, alive_workers())
        return self._workers[1]

    def close(self) -> float:
        """End the line; returns the seconds since the start."""
        if self.on_terminal and self.count:
            self.stream.write("\n")
            self.stream.flush()
        return self._clock() - self.started


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (height, width), for argparse (:mod:`liteseg_ros.sizes`: HEIGHTxWIDTH everywhere)."""
    try:
        return sizes.parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


format_size = sizes.format_size


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
        add_threads_argument(parser)


def add_engine_arguments(parser: Any) -> None:
    """--engine and the Ray options (liteseg_ros.fleet.engine.EngineOptions)."""
    from liteseg_ros.fleet.engine import ENGINES
    from liteseg_ros.mining.pieces import PIECE_FRAMES

    group = parser.add_argument_group("where the work runs (a fleet's recordings: docs/fleet.md)")
    group.add_argument("--engine", choices=ENGINES, default="local",
                       help="local (default: this process) or ray (a Ray cluster: --address, else RAY_ADDRESS, else "
                            "a local Ray started for the run)")
    group.add_argument("--address", help="the Ray cluster: host:port or auto (default: RAY_ADDRESS)")
    group.add_argument("--workers", type=int, default=0, help="Ray workers (default 0: the cluster's cores)")
    group.add_argument("--worker-cpus", type=float, default=1.0, help="CPUs per Ray worker (default 1)")
    group.add_argument("--worker-gpus", type=float, default=0.0,
                       help="GPUs per Ray worker (default 0; with GPUs: one CUDA worker per GPU)")
    group.add_argument("--piece-frames", type=int, default=PIECE_FRAMES, metavar="N",
                       help=f"frames per piece of a recording, the unit of work (default {PIECE_FRAMES})")


def engine_options(args: Any) -> Any:
    """The engine the arguments of :func:`add_engine_arguments` ask for (ConfigError for bad values)."""
    from liteseg_ros.fleet.engine import EngineOptions

    if args.piece_frames < 1:
        raise ConfigError(f"--piece-frames must be at least 1, got {args.piece_frames}")

    return EngineOptions(args.engine, args.address, args.workers, args.worker_cpus, args.worker_gpus)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None, prog: str) -> int:
    """Run ``main``; a LiteSegError becomes one line on stderr and exit status EXIT_ERROR (2), Ctrl-C
    EXIT_INTERRUPTED (130). Log records go to stderr, as logging.basicConfig sends them (a tool may replace that
    handler: it is marked with :data:`CLI_HANDLER`)."""
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig: where a host (a test runner) installed none
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        setattr(handler, CLI_HANDLER, True)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        return main(argv)
    except LiteSegError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


CLI_HANDLER = "liteseg_cli"  # the attribute that marks run_cli's log handler
