"""An isolated ROS 2 graph for demos and tests: a free ROS_DOMAIN_ID and localhost-only discovery."""

from __future__ import annotations

import os
import socket

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
