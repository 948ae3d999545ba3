"""Writing a directory tree so that an interrupted run leaves nothing half-written."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from liteseg_ros.errors import ConfigError, first_line


def make_parent(path: Path) -> None:
    """Create ``path``'s missing parent folders, as every writer of the package does; ConfigError when one of
    them is a file or cannot be created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the folder {path.parent} for {path.name}: {first_line(error)}") from None


@contextlib.contextmanager
def staged_tree(out: Path) -> Iterator[Path]:
    """Yield a staging directory next to ``out`` (which must not exist or be empty; missing parent folders are
    created); on success it is renamed to ``out``, on any error or interrupt it is removed."""
    make_parent(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield staging
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
