"""The network cache: a network prepared for an ONNX runner (its ONNX export, OpenVINO's compiled blob, an INT8
model calibrated on the robot's frames, and the checks that chose it), kept so that the next start reads it
instead of exporting and compiling again.

Where: ``$XDG_CACHE_HOME/liteseg_ros/networks`` (else ``~/.cache/liteseg_ros/networks``). One folder per entry,
named after the digest of its :class:`CacheKey`: everything that changes the prepared network (the weights' digest,
the runner and its version, precision, input size, the CPU's flags, the preparation's own format, torch's version
for the export). A GPU engine (TensorRT) would add its GPU, compute capability and TensorRT version to the same key.

An entry is written by :func:`liteseg_ros.files.atomic_folder` (two nodes starting at once: one entry wins, the other
process reads it) and holds ``manifest.json``: the key and each file's size and SHA-256. A stale, truncated or
foreign entry (files that do not match the manifest, a key that is not the one asked for) is removed and rebuilt,
with one info line. Imports no torch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from liteseg_ros.errors import LiteSegError
from liteseg_ros.files import atomic_folder, cache_dir, file_digest, write_text
from liteseg_ros.inference.cpu_features import cpu_identity
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)

FORMAT = 1  # of an entry's layout and of the preparation that writes it: a new one never reads an older entry
MANIFEST = "manifest.json"
NETWORK_FILE, BLOB_FILE = "network.onnx", "openvino.blob"  # an entry's ONNX network and OpenVINO's compiled one
META_FOLDER = "weights-meta"  # a weights file's metadata by its digest (the file's name is its content's digest)
DISABLED = "disabled"


def cache_root() -> Path:
    """The network cache's folder (:func:`liteseg_ros.files.cache_dir` ``/networks``)."""
    return cache_dir() / "networks"


@dataclass(frozen=True)
class CacheKey:
    """Everything that changes a prepared network. ``source`` is the SHA-256 of the weights file (fp32 or INT8),
    ``int8`` how an INT8 network of fp32 weights was made (``twin:<sha256>`` of the file beside them, ``calibrated``
    on the robot's frames), ``cpu`` the digest of the CPU's model name and flags."""

    source: str
    runner: str
    runner_version: str
    precision: str
    input_size: tuple[int, int]
    cpu: str
    torch: str
    network: str = "pre-upsample"  # the network up to its last upsampling (the CPU path fuses that with argmax)
    fold_bn: bool = True
    int8: str = ""
    device: str = "cpu"  # with a GPU engine: its name, compute capability and the engine's version as well
    format: int = FORMAT

    def to_dict(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size)}

    @property
    def name(self) -> str:
        """The entry's folder name: the key's digest."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:32]


def package_version(name: str) -> str:
    """The installed version of a package (a runner's, torch's: part of the cache key), or ``not installed``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cache_key(source_digest: str, runner: str, precision: str, input_size: tuple[int, int], *, int8: str = "",
              fold_bn: bool = True, pre_upsample: bool = True) -> CacheKey:
    """The key of a network prepared on this machine (its CPU, runner version and torch)."""
    return CacheKey(source=source_digest, runner=runner, runner_version=package_version(runner),
                    precision=precision, input_size=tuple(input_size), cpu=cpu_identity(),
                    torch=package_version("torch"), network="pre-upsample" if pre_upsample else "full",
                    fold_bn=fold_bn, int8=int8)


@dataclass
class Entry:
    """A verified cache entry: its folder, key, files and the preparation's report."""

    path: Path
    key: CacheKey
    files: dict[str, dict] = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    def file(self, name: str) -> Path:
        return self.path / name


class StaleEntry(Exception):
    """An entry that does not hold what its manifest says (truncated, edited, foreign)."""


class NetworkCache:
    """The cache at ``root`` (default :func:`cache_root`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_root()

    def lookup(self, key: CacheKey) -> Entry | None:
        """The verified entry of ``key``, or None (a stale one is removed, with one info line)."""
        path = self.root / key.name
        if not path.is_dir():
            return None
        try:
            return _verified(path, key)
        except StaleEntry as stale:
            LOG.info("network cache: entry %s is stale (%s); preparing it again", path, stale)
            self.remove(path)
            return None

    def store(self, key: CacheKey, write: Callable[[Path], dict]) -> Entry:
        """Write an entry: ``write(folder)`` puts its files there and returns the report; the manifest is added
        and the folder put in place atomically. When another process stored the key meanwhile, its entry is
        returned."""
        path = self.root / key.name
        try:
            with atomic_folder(path) as staging:
                report = write(staging)
                files = {item.name: {"bytes": item.stat().st_size, "sha256": file_digest(item)}
                         for item in sorted(staging.iterdir())}
                manifest = {"key": key.to_dict(), "files": files, "report": report, "created": time.time()}
                (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        except FileExistsError:
            LOG.info("network cache: %s was prepared by another process meanwhile; using it", path)
        entry = self.lookup(key)
        if entry is None:
            raise StaleEntry(f"the entry just written to {path} does not verify")
        return entry

    def weights_meta(self, digest: str) -> dict | None:
        """The metadata kept for the weights file of SHA-256 ``digest`` (:meth:`keep_weights_meta`), or None."""
        try:
            return json.loads((self.root / META_FOLDER / f"{digest}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def keep_weights_meta(self, digest: str, meta: dict) -> None:
        """Keep a weights file's metadata under its digest, so a start reads it without unpickling the file."""
        try:
            write_text(self.root / META_FOLDER / f"{digest}.json", json.dumps(meta))
        except (OSError, LiteSegError) as error:
            LOG.info("network cache: could not keep the weights' metadata (%s)", error)

    def entries(self) -> list[dict]:
        """Every entry's folder, size, creation time, key and report (a stale one says so)."""
        listed = []
        for path in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            if not path.is_dir() or path.name.startswith(".") or path.name == META_FOLDER:
                continue
            item = {"path": str(path), "bytes": _folder_bytes(path)}
            try:
                manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
                item.update(key=manifest["key"], report=manifest.get("report", {}), created=manifest.get("created"))
            except (OSError, ValueError, KeyError, TypeError):
                item["stale"] = True
            listed.append(item)
        return listed

    def size(self) -> int:
        """Bytes the cache holds."""
        return _folder_bytes(self.root) if self.root.is_dir() else 0

    def clear(self) -> int:
        """Remove every entry (and the kept weights' metadata); returns how many entries were removed."""
        count = 0
        for path in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            if path.is_dir():
                self.remove(path)
                count += path.name != META_FOLDER
        return count

    def remove(self, path: Path) -> None:
        """Take an entry out of use at once (renamed away), then delete it."""
        trash = path.with_name(f".{path.name}.{os.getpid()}.removed")
        try:
            os.replace(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)


def _verified(path: Path, key: CacheKey) -> Entry:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        stored_key, files = manifest["key"], manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StaleEntry(f"no readable manifest: {type(error).__name__}") from None
    if stored_key != key.to_dict():
        raise StaleEntry("its key is not the one asked for")
    for name, expected in files.items():
        item = path / name
        if not item.is_file() or item.stat().st_size != expected["bytes"]:
            raise StaleEntry(f"{name} is missing or truncated")
        if file_digest(item) != expected["sha256"]:
            raise StaleEntry(f"{name} does not match its digest")
    return Entry(path=path, key=key, files=files, report=manifest.get("report", {}))


def _folder_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


__all__ = ["BLOB_FILE", "DISABLED", "NETWORK_FILE", "CacheKey", "Entry", "NetworkCache", "StaleEntry", "cache_key",
           "cache_root", "file_digest", "package_version"]
