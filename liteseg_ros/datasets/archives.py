"""Data sets as labelling tools hand them out: a zip archive (CVAT's export, a zipped VOC or plain tree) is read as
the folder it holds, unpacked once into the cache (``$XDG_CACHE_HOME/liteseg_ros/datasets/<name>-<sha256>``, else
``~/.cache/...``) and found there again by its content's digest; a Label Studio JSON export beside liteseg-mine's
folder is converted into the plain layout there the same way (:mod:`liteseg_ros.datasets.label_studio`).

The archive is checked as it is unpacked: no member may leave the folder (absolute paths, ``..``, links), and the
unpacked size is bounded (``MAX_UNPACKED_BYTES``). When the tree sits in one top-level folder of the archive, that
folder is the data set.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from liteseg_ros.errors import DatasetError
from liteseg_ros.files import atomic_folder, cache_dir, file_digest
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
MAX_UNPACKED_BYTES = 64 << 30
COMPLETE = ".unpacked"  # marks a finished unpacking in the cache


def is_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip file (a data set to unpack)."""
    path = Path(path)
    return path.is_file() and zipfile.is_zipfile(path)


def dataset_folder(path: str | os.PathLike) -> Path:
    """The folder of the data set at ``path``: itself, the unpacked archive or the converted Label Studio export."""
    from liteseg_ros.datasets import label_studio

    path = Path(path)
    if is_archive(path):
        return unpacked(path, lambda staging: _unzip(path, staging))
    if label_studio.is_label_studio_export(path):
        return unpacked(path, lambda staging: label_studio.convert(path, staging))
    return path


def unpacked(source: Path, fill: Callable[[Path], None]) -> Path:
    """The cache folder of ``source`` (by its name and digest), filled by ``fill`` the first time."""
    target = cache_dir() / "datasets" / f"{source.stem}-{file_digest(source)[:16]}"
    if not (target / COMPLETE).is_file():
        LOG.info("unpacking %s into %s", source, target)
        if target.is_dir() and not (target / COMPLETE).is_file():  # not made here: only complete ones are renamed
            shutil.rmtree(target, ignore_errors=True)
        try:
            with atomic_folder(target) as staging:
                fill(staging)
                (staging / COMPLETE).write_text(str(source) + "\n")
        except FileExistsError:  # another process (a training rank) unpacked it meanwhile
            if not (target / COMPLETE).is_file():
                raise
    return _tree_root(target)


def _unzip(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as opened:
            _extract(opened, into, archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"{archive} cannot be unpacked: {error}") from None


def _extract(archive: zipfile.ZipFile, into: Path, path: Path) -> None:
    members = archive.infolist()
    if sum(member.file_size for member in members) > MAX_UNPACKED_BYTES:
        raise DatasetError(f"{path} unpacks to more than {MAX_UNPACKED_BYTES >> 30} GiB: unpack it yourself")
    for member in members:
        name = PurePosixPath(member.filename)
        if name.is_absolute() or ".." in name.parts or stat.S_ISLNK(member.external_attr >> 16):
            raise DatasetError(f"{path} holds {member.filename!r}, outside its folder or a link: not unpacked")
        archive.extract(member, into)


def _tree_root(folder: Path) -> Path:
    """The folder itself, or its one top-level folder when that is all it holds."""
    entries = [entry for entry in folder.iterdir() if entry.name != COMPLETE]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder
