"""Measure liteseg-mine on recordings of growing length: frames read and scored per second, the scoring's time per
frame (median / p95) against the baseline of segmenting the same frames at full resolution (what liteseg-replay
does), the choice's time, and the whole command's wall time, with the model the node runs (the bundled one, the
node's plan).

    .venv/bin/liteseg-synth --bag /tmp/drive300 --frames 300 --height 360 --width 640 --seed 3
    .venv/bin/python docs/measure_mining.py /tmp/drive100 /tmp/drive300 /tmp/drive1000 [--count 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from liteseg_ros.inference.cpu_features import cpu_model
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.mining import recordings as rec
from liteseg_ros.mining.pieces import plan_pieces, read_piece
from liteseg_ros.mining.scores import score_frame
from liteseg_ros.mining.selection import choose
from liteseg_ros.model.bundled import bundled_model_path

TOPIC = "/camera/image_raw"


def frames(bag: Path, counts: rec.ReadCounts):
    pieces, problems = plan_pieces([bag], (TOPIC,), 0.0)
    if problems:
        raise SystemExit(f"{bag}: {problems[0].reason}")
    for piece in pieces:
        yield from read_piece(piece, counts)


def measure(bag: Path, segmenter: Segmenter, count: int) -> str:
    scores, score_ms, segment_ms = [], [], []
    counts = rec.ReadCounts()
    start = time.perf_counter()
    for frame in frames(bag, counts):
        begin = time.perf_counter()
        scores.append(score_frame(segmenter, frame, len(segmenter.classes)))
        score_ms.append((time.perf_counter() - begin) * 1e3)
    read_and_score = time.perf_counter() - start
    for frame in frames(bag, rec.ReadCounts()):  # the baseline, on the same frames
        begin = time.perf_counter()
        segmenter.segment(frame.image, outputs=("mask",))
        segment_ms.append((time.perf_counter() - begin) * 1e3)
    begin = time.perf_counter()
    choose(scores, count)
    selection_s = time.perf_counter() - begin
    begin = time.perf_counter()
    out = Path(f"/tmp/measure_mining_{os.getpid()}_{bag.name}")
    run = subprocess.run([Path(sys.executable).parent / "liteseg-mine", bag, "--topic", TOPIC, "--count", str(count),
                          "--out", out, "--force"], capture_output=True, text=True)
    command_s = time.perf_counter() - begin
    if run.returncode:
        raise SystemExit(run.stderr)
    return (f"| {len(scores)} | {len(scores) / read_and_score:.1f} | {np.median(score_ms):.1f} / "
            f"{np.percentile(score_ms, 95):.1f} | {np.median(segment_ms):.1f} / {np.percentile(segment_ms, 95):.1f} | "
            f"{selection_s:.2f} | {command_s:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bags", nargs="+", type=Path)
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    segmenter = Segmenter(bundled_model_path())
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; model {segmenter.description}; --count {args.count}\n")
    print("| frames | read + scored per s | scoring ms/frame p50 / p95 | baseline: segmenting at full size ms/frame "
          "p50 / p95 | choice s | liteseg-mine command s |")
    print("|---|---|---|---|---|---|")
    for bag in args.bags:
        print(measure(bag, segmenter, args.count), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
