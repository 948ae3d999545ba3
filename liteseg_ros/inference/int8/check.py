"""Whether an INT8 network may run: the one rule (:meth:`Int8Check.refusal`), applied to what was measured on this
machine, by all three that decide it: the preparation's check of a twin file (:mod:`.twin`), ``liteseg-quantize``
before it writes a model, and the node's switch after calibrating on its frames (:mod:`.switch`).

The rule: masks equal to fp32's on at least :data:`MIN_AGREEMENT` of the pixels compared (where masks were compared),
and a network at least :data:`MIN_SPEEDUP` times as fast as fp32's (the ratio of the median times). The times are
seconds; the messages print them in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liteseg_ros.inference.timing import time_interleaved

MIN_AGREEMENT = 0.98  # of the pixels equal to fp32's (liteseg-quantize's --min-agreement)
MIN_SPEEDUP = 1.0  # INT8 network time against fp32's on this machine (liteseg-quantize's --min-speedup)
PASSES, ROUNDS = 15, 3  # timed passes of each network, interleaved in rounds, for a check without frames


@dataclass
class Int8Check:
    """Pixel agreement of INT8 masks with fp32's over the frames compared, and both networks' times (seconds)."""

    equal: int = 0
    total: int = 0
    frames: int = 0
    fp32_seconds: list[float] = field(default_factory=list)
    int8_seconds: list[float] = field(default_factory=list)

    def add(self, mask_fp32: np.ndarray, mask_int8: np.ndarray, fp32_seconds: float | None = None,
            int8_seconds: float | None = None) -> None:
        """One frame: both masks, and (when timed) both networks' seconds on it."""
        self.equal += int(np.count_nonzero(mask_fp32 == mask_int8))
        self.total += mask_fp32.size
        self.frames += 1
        if fp32_seconds is not None and int8_seconds is not None:
            self.fp32_seconds.append(fp32_seconds)
            self.int8_seconds.append(int8_seconds)

    def add_times(self, fp32_seconds: list[float], int8_seconds: list[float]) -> None:
        """Timed passes of both networks (interleaved, on the same input)."""
        self.fp32_seconds.extend(fp32_seconds)
        self.int8_seconds.extend(int8_seconds)

    @property
    def agreement(self) -> float:
        return self.equal / self.total if self.total else 0.0

    @property
    def timed(self) -> bool:
        return bool(self.int8_seconds and self.fp32_seconds)

    @property
    def fp32_ms(self) -> float:
        """fp32's median network time, in milliseconds (0 when not timed)."""
        return float(np.median(self.fp32_seconds)) * 1e3 if self.fp32_seconds else 0.0

    @property
    def int8_ms(self) -> float:
        """INT8's median network time, in milliseconds (0 when not timed)."""
        return float(np.median(self.int8_seconds)) * 1e3 if self.int8_seconds else 0.0

    @property
    def speedup(self) -> float:
        """fp32's median time over INT8's (0 when not timed)."""
        return self.fp32_ms / self.int8_ms if self.timed else 0.0

    def refusal(self, min_agreement: float = MIN_AGREEMENT, min_speedup: float = MIN_SPEEDUP) -> str | None:
        """Why the INT8 network must not run (None when it passed): the one rule of the module docstring."""
        if self.frames and self.agreement < min_agreement:
            return f"only {self.agreement:.2%} of its pixels equal fp32's over {self.frames} frames (required " \
                   f"{min_agreement:.0%})"
        if self.timed and self.speedup < min_speedup:
            wanted = "faster than" if min_speedup == 1.0 else f"{min_speedup:g}x as fast as"
            return f"its network is not {wanted} fp32's here ({self.int8_ms:.1f} ms vs {self.fp32_ms:.1f} ms, " \
                   f"{self.speedup:.2f}x)"
        return None

    def summary(self) -> str:
        """The agreement (where masks were compared) and the times."""
        parts = [f"{self.agreement:.2%} of pixels equal to fp32 over {self.frames} frames"] if self.frames else []
        if self.timed:
            parts.append(f"network {self.int8_ms:.1f} ms vs fp32 {self.fp32_ms:.1f} ms ({self.speedup:.2f}x)")
        return ", ".join(parts) or "nothing measured"


def time_networks(fp32: Callable[[Any], Any], int8: Callable[[Any], Any], x: Any, check: Int8Check | None = None,
                  passes: int = PASSES, rounds: int = ROUNDS) -> Int8Check:
    """Both networks timed on ``x``, interleaved in rounds after a warm-up pass each, into ``check`` (default: a
    new one)."""
    check = check if check is not None else Int8Check()
    seconds = time_interleaved({"fp32": lambda: fp32(x), "int8": lambda: int8(x)}, warmup=1, iters=passes,
                               rounds=rounds, synchronize=lambda: None)
    check.add_times(seconds["fp32"], seconds["int8"])
    return check


def compare_speed(fp32_file: str | Path, int8_file: str | Path, input_size: tuple[int, int], threads: int) -> dict:
    """An fp32 ONNX file on onnxruntime (fp32's runner) against an INT8 one on OpenVINO (INT8's), timed by
    :func:`time_networks` on a random input: the figures and the verdict a preparation report keeps."""
    import torch

    from liteseg_ros.inference.onnx_runners import OnnxRuntimeNetwork, OpenVinoNetwork

    x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
    check = time_networks(OnnxRuntimeNetwork(fp32_file, threads), OpenVinoNetwork(int8_file, precision="int8",
                                                                                   threads=threads), x)
    return {"fp32_ms": round(check.fp32_ms, 2), "int8_ms": round(check.int8_ms, 2), "speedup": round(check.speedup, 3),
            "fp32_runner": "onnxruntime", "int8_runner": "openvino", "refused": check.refusal()}
