"""Putting a file or a folder in place, the one way every writer of the package does it.

A file is written under a temporary name beside its destination and renamed over it when complete, so a reader
(a node starting, another tool) sees the old file or the new one, never half of one; an error or Ctrl-C removes
the temporary file. A folder is staged beside its destination and renamed into place the same way. Both get the
permissions a plainly created file or folder would get under the user's umask (``tempfile`` makes them 0600 /
0700, which the ``ros`` user running a node could not read). Missing parent folders are created.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from liteseg_ros.errors import ConfigError, first_line


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (briefly) and restoring it
    os.umask(mask)
    return mask


def cache_dir() -> Path:
    """The package's cache folder: ``$XDG_CACHE_HOME/liteseg_ros``, or ``~/.cache/liteseg_ros`` (published
    weights; prepared networks under ``networks/``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "liteseg_ros"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_parent(path: str | os.PathLike) -> None:
    """Create ``path``'s missing parent folders; ConfigError when one of them is a file or cannot be made."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the folder {parent} for {Path(path).name}: {first_line(error)}") from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it becomes ``path`` (mode 0666 & ~umask),
    on any error or interrupt it is removed. ``durable`` also flushes it to disk before the rename."""
    path = Path(path)
    make_parent(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~current_umask())
        if durable:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` into ``path``, atomically (:func:`atomic_file`)."""
    with atomic_file(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``text`` (UTF-8) into ``path``, atomically (:func:`atomic_file`)."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike, *, create: bool = True, replace: bool = False) -> Iterator[Path]:
    """Yield a path beside ``out`` to fill (a new folder; with ``create=False`` a path that does not exist yet, for
    writers that make their folder themselves, such as a bag writer); on success it is renamed to ``out``, on any
    error or interrupt it is removed. ``out`` must not exist or be empty: FileExistsError when it holds something
    at the rename (another process put it there first); with ``replace`` a folder there is replaced (moved aside,
    then removed, once the new one is in place)."""
    out = Path(out)
    make_parent(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        target = staging / out.name  # the writer's folder keeps its final name (a bag names its data file after it)
        if create:
            target.mkdir()  # under the umask, as a plainly created folder
        yield target
        if replace and out.is_dir():
            out.rename(staging / f"{out.name}.replaced")
        try:
            target.rename(out)  # replaces an empty folder; fails when ``out`` holds something
        except OSError as error:
            if out.exists():
                raise FileExistsError(f"{out} exists and is not empty: it was written by someone else meanwhile") \
                    from error
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
