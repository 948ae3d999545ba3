"""The tools' messages do not depend on the logger class another package installed.

``launch`` (on every ROS install: launch_testing's pytest plugin imports it) installs a logger class whose
loggers are created non-propagating; a warning of such a logger has no handler and reaches stderr through
Python's last resort, breaking the tools' one-line errors. Here the affected tests run in a pytest process with
a logger class that does what launch's does, installed before anything of ours is imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What launch/logging/__init__.py does at import (3.4.3): LaunchLogger, non-propagating, made the logger class.
WITH_LAUNCH_LOGGER_CLASS = """
import logging, sys

class LaunchLikeLogger(logging.getLoggerClass()):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.propagate = False

logging.setLoggerClass(LaunchLikeLogger)
assert logging.getLogger("someone.else").propagate is False
import pytest
code = pytest.main(sys.argv[1:])
import liteseg_ros.tools.cli.export as export
assert export.LOG.propagate and isinstance(export.LOG, LaunchLikeLogger), "the class was not in place"
sys.exit(code)
"""


def test_one_line_errors_hold_with_launchs_logger_class():
    run = subprocess.run(
        [sys.executable, "-c", WITH_LAUNCH_LOGGER_CLASS, "-q", "-p", "no:cacheprovider", "-p", "no:launch_testing",
         str(ROOT / "test" / "test_export.py"), "-k", "one_line or onnxscript or random"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
