"""Measure the CPU pre/post-processing on one thread (in one piece, the previous default) against row bands on
two threads, on an idle machine and with another process spinning on one core. Prints a Markdown table.

    .venv/bin/python docs/measure_postprocess.py [--sizes 360x640 1024x2048] [--iters 40]

Each row: the bundled model with precision/optimize auto, image = input size, mask + colour + overlay out;
the two post-processing settings are interleaved in rounds so that both see the same load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

from liteseg_ros.inference.cpu_features import cpu_model
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.cli.conventions import parse_size
from liteseg_ros.tools.synthetic.scenes import unseen_frames

STAGES = ("preprocess", "inference", "postprocess", "total")


def measure(size: tuple[int, int], iters: int, rounds: int = 4) -> dict[int, dict[str, list[float]]]:
    image = unseen_frames(1, *size)[0].image
    segmenters = {threads: Segmenter(bundled_model_path(), device="cpu", input_size=size,
                                     postprocess_threads=threads) for threads in (1, 2)}
    seconds: dict[int, dict[str, list[float]]] = {threads: {stage: [] for stage in STAGES} for threads in segmenters}
    for segmenter in segmenters.values():
        for _ in range(3):
            segmenter.segment(image)
    for _ in range(rounds):
        for threads, segmenter in segmenters.items():
            for _ in range(iters // rounds):
                timings = segmenter.segment(image).timings
                for stage in STAGES:
                    seconds[threads][stage].append(timings[stage])
    return seconds


def cell(values: list[float]) -> str:
    return f"{np.median(values) * 1e3:.1f} / {np.percentile(values, 95) * 1e3:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(360, 640), (1024, 2048)])
    parser.add_argument("--iters", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| image = input | load | pre/post threads | preprocess med/p95 ms | network | postprocess | end to end |")
    print("|---|---|---|---|---|---|---|")
    for load in ("idle", "1 core busy"):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "idle" else None
        try:
            time.sleep(0.5)
            for size in args.sizes:
                for threads, seconds in measure(size, args.iters).items():
                    label = "1 (one piece)" if threads == 1 else "2 (row bands)"
                    print(f"| {size[0]}x{size[1]} | {load} | {label} | " + " | ".join(
                        cell(seconds[stage]) for stage in STAGES) + " |")
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    print(f"\n{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, network: "
          f"{Segmenter(bundled_model_path(), device='cpu').description}; {args.iters} frames per row.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
