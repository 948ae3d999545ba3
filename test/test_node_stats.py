"""Rates, latency percentiles, counters and the diagnostics builder of the node (no ROS graph)."""

from __future__ import annotations

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from liteseg_ros.ros.stats import (
    LatencyWindow,
    NodeStats,
    RateMeter,
    SequenceGaps,
    diagnostic_status,
    health,
    summary_line,
)


def test_rate_meter_counts_events_in_its_window():
    meter = RateMeter(window_s=2.0)
    for i in range(11):  # 10 Hz for one second
        meter.tick(100.0 + i * 0.1)
    assert meter.rate(101.0) == pytest.approx(10.0)
    assert meter.rate(103.5) == 0.0  # everything left the window
    assert RateMeter().rate(5.0) == 0.0


def test_latency_percentiles():
    window = LatencyWindow(size=4)
    assert window.percentile(50) is None
    for value in (0.5, 0.1, 0.2, 0.3, 0.4):  # 0.5 falls out: size 4
        window.add(value)
    assert window.percentile(50) == pytest.approx(0.25)
    assert window.percentile(100) == pytest.approx(0.4)
    assert window.percentile(95) == pytest.approx(0.3 + 0.85 * 0.1)  # linear interpolation between 0.3 and 0.4


def test_sequence_gaps_count_missing_frames_of_one_publisher():
    gaps = SequenceGaps()
    assert [gaps.gap(n) for n in (5, 6, 9, 10, 14)] == [0, 0, 2, 0, 3]
    assert gaps.gap(1) == 0 and gaps.gap(3) == 1  # a restarted publisher starts again
    assert gaps.gap(None) == 0 and gaps.gap(0) == 0  # an RMW without sequence numbers
    gaps.reset()
    assert gaps.gap(100) == 0


def test_counters_and_new_problem_counts():
    stats = NodeStats()
    stats.on_received(10.0, dropped_previous=False)
    stats.on_received(10.1, dropped_previous=True, lost_before=3)
    stats.on_processed(10.2, processing_s=0.05, end_to_end_s=0.2)
    stats.on_rejected("unsupported image encoding 'yuv422'")
    stats.on_idle()
    stats.on_resolution_change()
    snap = stats.snapshot(10.3, mark_reported=True)
    assert (snap.received, snap.lost, snap.dropped, snap.processed, snap.rejected, snap.idle,
            snap.resolution_changes) == (2, 3, 1, 1, 1, 1, 1)
    assert snap.processing_p50 == pytest.approx(0.05) and snap.end_to_end_p95 == pytest.approx(0.2)
    assert snap.seconds_since_input == pytest.approx(0.2)
    assert snap.new_rejected == 1
    assert health(snap)[0] == "WARN" and "yuv422" in health(snap)[1]
    later = stats.snapshot(10.4)
    assert later.new_rejected == 0 and later.rejected == 1
    assert health(later) == ("OK", "segmenting at 0.0 Hz")


def test_health_levels():
    stats = NodeStats()
    assert health(stats.snapshot(1.0)) == ("WARN", "no image received yet")
    stats.on_received(1.0, dropped_previous=False)
    assert health(stats.snapshot(20.0))[1] == "no image for 19 s"
    stats.on_error("RuntimeError: out of memory")
    level, message = health(stats.snapshot(20.0))
    assert level == "ERROR" and "out of memory" in message


def test_diagnostic_status_carries_every_figure():
    stats = NodeStats()
    for i in range(3):
        stats.on_received(i * 0.5, dropped_previous=i == 2)
        stats.on_processed(i * 0.5 + 0.1, processing_s=0.1 * (i + 1), end_to_end_s=0.2 * (i + 1))
    status = diagnostic_status(stats.snapshot(1.0), name="/liteseg: segmentation", hardware_id="cpu",
                               device="cpu", model="mobilenetv2 fp32 cpu 64x128", input_topic="/image")
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and status.name == "/liteseg: segmentation"
    assert values["input rate (Hz)"] == "2.00" and values["output rate (Hz)"] == "2.00"
    assert values["processing latency p50 (ms)"] == "200.0"
    assert values["end-to-end latency p50 (ms)"] == "400.0"
    assert values["end-to-end latency p95 (ms)"] == "580.0"
    assert values["dropped frames"] == "1" and values["rejected frames"] == "0"
    assert values["device"] == "cpu" and values["model"] == "mobilenetv2 fp32 cpu 64x128"
    assert "dropped 1" in summary_line(stats.snapshot(1.2))


def test_stamps_of_another_clock_are_counted_not_averaged():
    stats = NodeStats()
    assert stats.on_processed(1.0, processing_s=0.05, end_to_end_s=0.08) is True
    assert stats.on_processed(1.1, processing_s=0.05, end_to_end_s=95_495_762.5) is False  # a replayed bag's stamp
    assert stats.on_processed(1.2, processing_s=0.05, end_to_end_s=-3.0) is False  # a camera clock ahead of ours
    assert stats.on_processed(1.3, processing_s=0.05, end_to_end_s=None) is True  # a zero stamp: nothing to judge
    snap = stats.snapshot(1.4)
    assert snap.processed == 4 and snap.foreign_stamps == 2
    assert snap.end_to_end_p50 == pytest.approx(0.08) and snap.end_to_end_p95 == pytest.approx(0.08)
    status = diagnostic_status(snap, name="n", hardware_id="cpu", device="cpu", model="m", input_topic="/image")
    values = {kv.key: kv.value for kv in status.values}
    assert values["stamps off this clock (no end-to-end latency)"] == "2"
    assert values["end-to-end latency p50 (ms)"] == "80.0"
