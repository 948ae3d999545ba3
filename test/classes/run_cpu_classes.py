"""The CPU-class guard (`make test` runs it after the suite): the tests whose expectations depend on the plan a CPU
class gets (marked ``plan``) run again under each class the plan knows (``CPU_CLASSES``), rehearsed by the flags it
reads (LITESEG_CPU_FLAGS), so that an expectation written on one class fails on every machine, not only on the class
it breaks. This machine's own class is skipped (the suite just ran it) unless --all is given.

    python test/classes/run_cpu_classes.py [--all] [--list] [pytest arguments]

Each class runs in its own pytest process, with its own package cache (the suite's conftest makes one); the table
at the end gives each class's outcome and time. Exit 1 when any class failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    from liteseg_ros.inference.cpu_features import CPU_CLASSES, FLAGS_OVERRIDE, cpu_class, hardware_flags

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="also rehearse this machine's own class")
    parser.add_argument("--list", action="store_true", help="list the classes and their flags, run nothing")
    args, pytest_arguments = parser.parse_known_args(argv)
    environment = {key: value for key, value in os.environ.items() if key != FLAGS_OVERRIDE}
    own = cpu_class(hardware_flags())
    classes = [name for name in CPU_CLASSES if args.all or name != own]
    if args.list:
        for name in CPU_CLASSES:
            print(f"{name:<12} {' '.join(CPU_CLASSES[name])}{'   (this machine)' if name == own else ''}")
        return 0
    rows = []
    for name in classes:
        print(f"cpu-classes: the plan tests as {name} ({FLAGS_OVERRIDE}={' '.join(CPU_CLASSES[name])})", flush=True)
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "plan", "-p", "no:cacheprovider",
                              *pytest_arguments, "test"], cwd=ROOT,
                             env={**environment, FLAGS_OVERRIDE: " ".join(CPU_CLASSES[name])})
        rows.append((name, "passed" if run.returncode == 0 else f"FAILED (pytest exit {run.returncode})",
                     time.monotonic() - started))
    print(f"\ncpu-classes: this machine is {own}{'' if args.all else ' (its class ran in the suite)'}")
    for name, outcome, seconds in rows:
        print(f"  {name:<12} {outcome:<28} {seconds:6.0f} s")
    return 0 if all(outcome == "passed" for _, outcome, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
