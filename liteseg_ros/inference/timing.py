"""Timing several variants interleaved, and the machine they were timed on: what the INT8 checks, liteseg-bench and
liteseg-quantize's report measure with."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from typing import Callable

import torch

from liteseg_ros.inference.cpu_features import cpu_class, cpu_model, native_bf16_flags


def time_interleaved(
    variants: dict[str, Callable[[], object]], *, warmup: int, iters: int, rounds: int, synchronize: Callable[[], None]
) -> dict[str, list[float]]:
    """Seconds per call of each variant: warm-ups, then ``iters`` timed calls split over interleaved rounds."""
    for call in variants.values():
        for _ in range(warmup):
            call()
        synchronize()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    per_round = [iters // rounds + (1 if r < iters % rounds else 0) for r in range(rounds)]
    for count in per_round:
        for name, call in variants.items():
            for _ in range(count):
                start = time.perf_counter()
                call()
                synchronize()
                seconds[name].append(time.perf_counter() - start)
    return seconds


def environment(device: torch.device, threads: int) -> dict[str, str]:
    """What the numbers were measured on."""
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu class": cpu_class(),
        "native bf16": ", ".join(native_bf16_flags()) or "no",
        "threads": str(torch.get_num_threads() if device.type == "cpu" else threads),
        "load average": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    for package in ("onnxruntime", "openvino"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
    return info
