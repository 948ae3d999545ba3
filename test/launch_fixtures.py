"""Helpers of the launch_testing tests (no launch import here, so the rest of the suite can import it)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def launch_file() -> Path:
    """The installed launch file (ament index), else the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("liteseg_ros")) / "launch" / "segment.launch.py"
    except Exception:
        return Path(__file__).resolve().parent.parent / "launch" / "segment.launch.py"


def rviz2_installed() -> bool:
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory("rviz2")
        return True
    except Exception:
        return False


def tiny_weights() -> str:
    """A random-weight mobilenetv2 checkpoint in a temporary folder (quick to load)."""
    import torch

    from liteseg_ros.model import build_liteseg, save_checkpoint

    torch.manual_seed(0)
    path = Path(tempfile.mkdtemp(prefix="liteseg_launch_test_")) / "liteseg_mobilenetv2.pt"
    save_checkpoint(path, build_liteseg("mobilenetv2").eval())
    return str(path)


def exited_processes(proc_info) -> list:
    """launch_testing's ProcessExited events so far (its proc_info also holds ProcessStarted events)."""
    return [event for event in proc_info if getattr(event, "returncode", None) is not None]


def exit_report(exited, proc_output, lines: int = 15) -> str:
    """Which launched processes exited (ProcessExited events), with the last lines each printed."""
    parts = []
    for event in exited:
        name = event.action.process_details["name"]
        try:
            text = b"".join(io.text for io in proc_output[event.action]).decode(errors="replace")
        except Exception:  # launch_testing raises when a process printed nothing
            text = ""
        tail = "\n".join(text.splitlines()[-lines:]) or "(no output)"
        parts.append(f"{name} exited with {event.returncode} before a mask arrived; its last output:\n{tail}")
    return "\n".join(parts)
