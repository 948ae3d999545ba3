"""The package's loggers. No imports beyond the standard library.

Every logger of liteseg_ros propagates to its parents, whatever logger class another package installed:
``launch`` (imported by launch_testing's pytest plugin on every ROS install, and by ``ros2 launch``) installs one
whose loggers are created non-propagating, which would send the tools' messages to Python's last-resort
stderr handler instead of their configured handlers.
"""

from __future__ import annotations

import logging


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, propagating to its parents."""
    logger = logging.getLogger(name)
    logger.propagate = True
    return logger
