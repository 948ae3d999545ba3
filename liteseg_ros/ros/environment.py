"""An isolated ROS 2 graph for demos, tests and measurements: a free ROS_DOMAIN_ID and localhost-only discovery; the
Fast DDS profile for camera-sized frames (``config/fastdds_large_images.xml``); the command line that starts a node
process. Imports no rclpy."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liteseg_ros.model.bundled import package_data_dirs

DDS_PROFILE_NAME = "fastdds_large_images.xml"
DDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")  # Fast DDS 2, 3

FASTDDS_PORT_BASE, FASTDDS_DOMAIN_GAIN, FASTDDS_UNICAST_OFFSET = 7400, 250, 10


def domain_in_use(domain_id: int) -> bool:
    """True when a DDS participant of ``domain_id`` already holds its first unicast port on this host."""
    port = FASTDDS_PORT_BASE + FASTDDS_DOMAIN_GAIN * domain_id + FASTDDS_UNICAST_OFFSET
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False


def pick_domain_id() -> int:
    """A domain in 1..100 derived from the pid, skipping domains in use on this host."""
    start = os.getpid() % 100
    for offset in range(100):
        domain_id = 1 + (start + offset) % 100
        if not domain_in_use(domain_id):
            return domain_id
    raise RuntimeError("every ROS domain 1..100 is in use on this host")


def isolated_ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """Set (in os.environ) and return ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST."""
    values = {"ROS_DOMAIN_ID": str(domain_id or pick_domain_id()), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    os.environ.update(values)
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the discovery range
    return values


def large_frames_dds_profile() -> Path | None:
    """The packaged Fast DDS profile with shared memory sized for camera frames, or None where it is missing."""
    return next((d / DDS_PROFILE_NAME for d in package_data_dirs("config") if (d / DDS_PROFILE_NAME).is_file()),
                None)


def use_large_frames_dds_profile() -> dict[str, str]:
    """Name :func:`large_frames_dds_profile` in os.environ for the processes started from here on (and this one's
    first ROS context), unless a profile is named already; return what was set."""
    profile = large_frames_dds_profile()
    if profile is None or any(os.environ.get(variable) for variable in DDS_PROFILE_VARIABLES):
        return {}
    os.environ[DDS_PROFILE_VARIABLES[0]] = str(profile)
    return {DDS_PROFILE_VARIABLES[0]: str(profile)}


def node_command(parameters: Mapping[str, Any] | None = None, *, namespace: str = "",
                 remappings: Mapping[str, str] | None = None,
                 executable: str | os.PathLike = "segmentation_node") -> list[str]:
    """The command line of a segmentation node process: ``executable`` (a console script beside this Python, or a
    path) with ``--ros-args``, the namespace, ``-r from:=to`` remappings and ``-p name:=value`` parameters."""
    script = Path(executable) if os.sep in str(executable) else Path(sys.executable).parent / str(executable)
    args = [str(script), "--ros-args"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    for source, target in (remappings or {}).items():
        args += ["-r", f"{source}:={target}"]
    for name, value in (parameters or {}).items():
        text = f"[{', '.join(value)}]" if isinstance(value, (list, tuple)) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        args += ["-p", f"{name}:={text}"]
    return args
