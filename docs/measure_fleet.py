"""Measure liteseg-mine on a fleet's recordings, as users run it: in-process (the baseline) against ``--engine ray``
with 1 and 2 workers (a local Ray the tool starts and stops), interleaved in rounds; then the score store: a first
run with ``--scores``, and a re-run with another ``--count`` from it. Prints one Markdown table with each variant's
median command time and frames/s (scored frames / command seconds), and the CPU class.

    .venv/bin/python docs/measure_fleet.py --bags 4 --frames 500 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from liteseg_ros.inference.cpu_features import cpu_class, cpu_model
from liteseg_ros.tools.synthetic import write_drive_bag

TOOL = Path(sys.executable).parent / "liteseg-mine"
VARIANTS = {"in-process (baseline)": [], "ray, 1 worker": ["--engine", "ray", "--workers", "1"],
            "ray, 2 workers": ["--engine", "ray", "--workers", "2"]}


def mine(bags: list[Path], out: Path, *extra: str) -> tuple[float, int]:
    """(command seconds, frames scored) of one liteseg-mine run."""
    started = time.perf_counter()
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    run = subprocess.run([TOOL, *map(str, bags), "--count", "50", "--out", str(out), "--force", *extra],
                         capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if run.returncode:
        raise SystemExit(run.stderr[-3000:])
    return seconds, int(re.search(r"scored (\d+) frames", run.stdout).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bags", type=int, default=4)
    parser.add_argument("--frames", type=int, default=500, help="frames per bag (360x640, 10 Hz)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="measure_fleet."))
    try:
        bags = [work / f"robot{index}" for index in range(args.bags)]
        for index, bag in enumerate(bags):
            write_drive_bag(bag, frames=args.frames, height=360, width=640, seed=10 + index)
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        scored = {}
        for _ in range(args.rounds):
            for name, extra in VARIANTS.items():
                seconds, scored[name] = mine(bags, work / "out", *extra)
                times[name].append(seconds)
        first, _ = mine(bags, work / "store_first", "--scores", str(work / "scores"))
        again, again_scored = mine(bags, work / "store_again", "--scores", str(work / "scores"), "--count", "20")
        base = float(np.median(times["in-process (baseline)"]))
        print(f"{cpu_model()} ({cpu_class()}), {os.cpu_count()} cores; {args.bags} bags x {args.frames} frames "
              f"360x640; {args.rounds} interleaved rounds\n")
        print("| variant | command s (median) | frames/s | vs in-process |")
        print("|---|---|---|---|")
        for name, values in times.items():
            median = float(np.median(values))
            print(f"| {name} | {median:.1f} ({', '.join(f'{v:.1f}' for v in values)}) | "
                  f"{scored[name] / median:.1f} | {base / median:.2f}x |")
        print(f"| first run with --scores | {first:.1f} | - | - |")
        print(f"| re-run from the store, --count 20 ({again_scored} frames scored) | {again:.1f} | - | "
              f"{again / first:.0%} of the first run |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
