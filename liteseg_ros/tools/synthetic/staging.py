"""Writing a directory tree so that an interrupted run leaves nothing half-written."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_tree(out: Path) -> Iterator[Path]:
    """Yield a staging directory next to ``out`` (which must not exist or be empty); on success it is renamed to
    ``out``, on any error or interrupt it is removed."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
