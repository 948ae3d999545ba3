"""Statistics of the segmentation node: rates, latency percentiles, counters, diagnostics.

Thread-safe (the subscription callback, the worker thread and the timers all report here).
Times are plain float seconds from ``time.monotonic()`` (rates, processing latency) or from the
ROS clock (end-to-end latency, computed by the caller). Only :func:`diagnostic_status` imports
ROS messages.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE_WINDOW_S = 5.0
LATENCY_WINDOW = 300
NO_INPUT_WARN_S = 5.0
# End-to-end latencies outside this range (seconds) come from stamps of another clock: a bag replayed
# without --clock / use_sim_time, or a camera whose clock is not synchronised with this machine.
PLAUSIBLE_END_TO_END_S = (0.0, 10.0)


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()


class SequenceGaps:
    """Counts missing publication sequence numbers of one publisher (frames lost before the callback)."""

    def __init__(self) -> None:
        self._last: int | None = None

    def reset(self) -> None:
        self._last = None

    def gap(self, sequence_number: int | None) -> int:
        """Frames skipped since the previous call; 0 when unknown (no number, or a restarted publisher)."""
        if not sequence_number or sequence_number <= 0:
            return 0
        gap = sequence_number - self._last - 1 if self._last is not None and sequence_number > self._last else 0
        self._last = sequence_number
        return gap


class LatencyWindow:
    """The last ``size`` latencies (seconds) and their percentiles."""

    def __init__(self, size: int = LATENCY_WINDOW):
        self._values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._values.append(seconds)

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100), or None before the first value."""
        if not self._values:
            return None
        return float(np.percentile(np.fromiter(self._values, dtype=np.float64), q))


@dataclass
class StatsSnapshot:
    """A consistent copy of the statistics at one moment."""

    input_rate: float = 0.0
    output_rate: float = 0.0
    processing_p50: float | None = None
    processing_p95: float | None = None
    end_to_end_p50: float | None = None
    end_to_end_p95: float | None = None
    received: int = 0
    lost: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    errors: int = 0
    idle: int = 0
    resolution_changes: int = 0
    foreign_stamps: int = 0
    seconds_since_input: float | None = None
    last_problem: str = ""
    new_rejected: int = 0
    new_errors: int = 0


@dataclass
class NodeStats:
    """Counters and windows of the node; every method may be called from any thread."""

    input_rate: RateMeter = field(default_factory=RateMeter)
    output_rate: RateMeter = field(default_factory=RateMeter)
    processing: LatencyWindow = field(default_factory=LatencyWindow)
    end_to_end: LatencyWindow = field(default_factory=LatencyWindow)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("received", "lost", "processed", "dropped", "rejected", "errors", "idle", "resolution_changes",
         "foreign_stamps"), 0))
    last_input: float | None = None
    last_problem: str = ""
    _reported: dict[str, int] = field(default_factory=lambda: {"rejected": 0, "errors": 0})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_received(self, now: float, dropped_previous: bool, lost_before: int = 0) -> None:
        """A frame arrived; ``dropped_previous``: it overwrote one that was never processed;
        ``lost_before``: frames of its publisher that never reached the callback (DDS queue overwrites)."""
        with self._lock:
            self.counters["received"] += 1
            self.counters["lost"] += lost_before
            self.counters["dropped"] += int(dropped_previous)
            self.input_rate.tick(now)
            self.last_input = now

    def on_processed(self, now: float, processing_s: float, end_to_end_s: float | None) -> bool:
        """A frame was published. Return False when ``end_to_end_s`` is implausible (outside
        PLAUSIBLE_END_TO_END_S): it is then counted as a foreign stamp instead of a latency."""
        low, high = PLAUSIBLE_END_TO_END_S
        plausible = end_to_end_s is None or low <= end_to_end_s <= high
        with self._lock:
            self.counters["processed"] += 1
            self.output_rate.tick(now)
            self.processing.add(processing_s)
            if end_to_end_s is not None and plausible:
                self.end_to_end.add(end_to_end_s)
            elif not plausible:
                self.counters["foreign_stamps"] += 1
        return plausible

    def on_rejected(self, reason: str) -> None:
        with self._lock:
            self.counters["rejected"] += 1
            self.last_problem = f"rejected: {reason}"

    def on_error(self, reason: str) -> None:
        with self._lock:
            self.counters["errors"] += 1
            self.last_problem = f"error: {reason}"

    def on_idle(self) -> None:
        """A frame was skipped because no output had subscribers."""
        with self._lock:
            self.counters["idle"] += 1

    def on_resolution_change(self) -> None:
        with self._lock:
            self.counters["resolution_changes"] += 1

    def snapshot(self, now: float, *, mark_reported: bool = False) -> StatsSnapshot:
        """Copy the statistics; ``mark_reported`` resets the 'new since last report' counts."""
        with self._lock:
            snap = StatsSnapshot(
                input_rate=self.input_rate.rate(now), output_rate=self.output_rate.rate(now),
                processing_p50=self.processing.percentile(50), processing_p95=self.processing.percentile(95),
                end_to_end_p50=self.end_to_end.percentile(50), end_to_end_p95=self.end_to_end.percentile(95),
                seconds_since_input=None if self.last_input is None else now - self.last_input,
                last_problem=self.last_problem,
                new_rejected=self.counters["rejected"] - self._reported["rejected"],
                new_errors=self.counters["errors"] - self._reported["errors"],
                **self.counters,
            )
            if mark_reported:
                self._reported = {"rejected": self.counters["rejected"], "errors": self.counters["errors"]}
            return snap


def depth_diagnostic_values(counts: Any, depth_topic: str, points_topic: str) -> list[tuple[str, str]]:
    """The key/value pairs a camera's diagnostics status adds for its depth (a
    :class:`~liteseg_ros.depth.pairing.DepthCounts`)."""
    counters, problem = counts.snapshot()
    return [("depth topic", depth_topic), ("points topic", points_topic),
            ("depth images received", str(counters["depth_images"])),
            ("clouds published", str(counters["clouds"])),
            ("frames without a depth image (unpaired)", str(counters["unpaired"])),
            ("depth images without a cloud (unusable depth or camera_info)", str(counters["unusable"])),
            ("last depth problem", problem or "none")]


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f}"


def health(snapshot: StatsSnapshot) -> tuple[str, str]:
    """('OK' | 'WARN' | 'ERROR', message) for the diagnostics status."""
    if snapshot.new_errors:
        return "ERROR", f"{snapshot.new_errors} frame(s) failed in inference; last {snapshot.last_problem}"
    if snapshot.new_rejected:
        return "WARN", f"{snapshot.new_rejected} input frame(s) rejected; last {snapshot.last_problem}"
    if snapshot.seconds_since_input is None:
        return "WARN", "no image received yet"
    if snapshot.seconds_since_input > NO_INPUT_WARN_S:
        return "WARN", f"no image for {snapshot.seconds_since_input:.0f} s"
    return "OK", f"segmenting at {snapshot.output_rate:.1f} Hz"


def diagnostic_values(snapshot: StatsSnapshot, *, device: str, model: str, input_topic: str) -> list[tuple[str, str]]:
    """The key/value pairs of the diagnostics status, in display order."""
    return [
        ("input topic", input_topic),
        ("input rate (Hz)", f"{snapshot.input_rate:.2f}"),
        ("output rate (Hz)", f"{snapshot.output_rate:.2f}"),
        ("processing latency p50 (ms)", _ms(snapshot.processing_p50)),
        ("processing latency p95 (ms)", _ms(snapshot.processing_p95)),
        ("end-to-end latency p50 (ms)", _ms(snapshot.end_to_end_p50)),
        ("end-to-end latency p95 (ms)", _ms(snapshot.end_to_end_p95)),
        ("received frames", str(snapshot.received)),
        ("lost frames (before the node)", str(snapshot.lost)),
        ("processed frames", str(snapshot.processed)),
        ("dropped frames", str(snapshot.dropped)),
        ("rejected frames", str(snapshot.rejected)),
        ("failed frames", str(snapshot.errors)),
        ("skipped frames (no subscribers)", str(snapshot.idle)),
        ("resolution changes", str(snapshot.resolution_changes)),
        ("stamps off this clock (no end-to-end latency)", str(snapshot.foreign_stamps)),
        ("device", device),
        ("model", model),
    ]


def diagnostic_status(snapshot: StatsSnapshot, *, name: str, hardware_id: str, device: str, model: str,
                      input_topic: str, extra: list[tuple[str, str]] = ()) -> Any:
    """Build a diagnostic_msgs/DiagnosticStatus from a snapshot (and ``extra`` key/value pairs)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    level_name, message = health(snapshot)
    pairs = diagnostic_values(snapshot, device=device, model=model, input_topic=input_topic) + list(extra)
    return DiagnosticStatus(level=getattr(DiagnosticStatus, level_name), name=name, message=message,
                            hardware_id=hardware_id, values=[KeyValue(key=key, value=value) for key, value in pairs])


def summary_line(snapshot: StatsSnapshot) -> str:
    """One log line: rates, latencies and counters."""
    return (
        f"in {snapshot.input_rate:.1f} Hz, out {snapshot.output_rate:.1f} Hz, "
        f"processing p50/p95 {_ms(snapshot.processing_p50)}/{_ms(snapshot.processing_p95)} ms, "
        f"end-to-end p50/p95 {_ms(snapshot.end_to_end_p50)}/{_ms(snapshot.end_to_end_p95)} ms, "
        f"received {snapshot.received}, lost {snapshot.lost}, processed {snapshot.processed}, "
        f"dropped {snapshot.dropped}, "
        f"rejected {snapshot.rejected}, failed {snapshot.errors}"
    )
