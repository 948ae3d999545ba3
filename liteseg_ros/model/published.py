"""Published weights, fetched and verified: the authors' Cityscapes checkpoints and the ImageNet backbones.

Each file is pinned to a commit of its repository and verified by its git blob SHA-1
(``sha1(b"blob <size>\\0" + content)``, what ``git hash-object`` prints: the only digest these repositories
publish). A download goes to a temporary file beside the destination, is verified, converted (Cityscapes
checkpoints become our format, with backbone, classes, mean/std, origin and licence), and only then renamed:
a failure never leaves a file at the destination.

The download base is ``https://raw.githubusercontent.com`` and the file's URL ``<base>/<owner>/<repo>/<commit>/<path>``;
``LITESEG_WEIGHTS_BASE_URL`` replaces the base (a mirror for air-gapped robots), the digests stay the same.
No ROS imports.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from liteseg_ros.errors import LiteSegError, WeightsError
from liteseg_ros.files import atomic_file, cache_dir

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
BASE_URL_VARIABLE = "LITESEG_WEIGHTS_BASE_URL"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0
CC_BY_NC = "CC BY-NC 4.0 (non-commercial use only)"


class DownloadError(LiteSegError):
    """A download that failed or did not verify: no network, an HTTP error, a truncated or tampered file."""


@dataclass(frozen=True)
class PublishedWeights:
    """One published weights file, pinned to a commit and a git blob SHA-1."""

    name: str
    kind: str  # "cityscapes" (a whole LiteSeg, converted to our format) or "imagenet" (a backbone for init.backbone)
    backbone: str
    repository: str  # owner/name on GitHub
    commit: str
    path: str  # inside the repository
    blob_sha1: str
    license: str
    size: int | None = None  # bytes, where known

    @property
    def relative_url(self) -> str:
        return f"{self.repository}/{self.commit}/{self.path}"

    @property
    def cached_name(self) -> str:
        """The file name in the cache: our checkpoint for Cityscapes models, the original name for backbones."""
        if self.kind == "cityscapes":
            return f"liteseg_{self.backbone}_cityscapes.pt"
        return Path(self.path).name


_AUTHORS = ("tahaemara/LiteSeg", "11399a5c91ee8ffa0bff7b74e620d8d628e08b31")
CATALOG: dict[str, PublishedWeights] = {
    entry.name: entry
    for entry in (
        PublishedWeights("cityscapes-mobilenetv2", "cityscapes", "mobilenetv2", *_AUTHORS,
                         "pretrained_models/liteseg-mobilenet-cityscapes.pth",
                         "52adc4cdbf63e015ae9fc1d3397b0d157d27bf09", CC_BY_NC),
        PublishedWeights("cityscapes-shufflenet", "cityscapes", "shufflenet", *_AUTHORS,
                         "pretrained_models/liteseg-shufflenet-cityscapes.pth",
                         "0a3dbb7eddb0629e1f5024585526c5873bef9c13", CC_BY_NC),
        PublishedWeights("cityscapes-darknet19", "cityscapes", "darknet19", *_AUTHORS,
                         "pretrained_models/liteseg-darknet-cityscapes.pth",
                         "96432dafe28de44f17a3ef68b320b818caa626d1", CC_BY_NC),
        PublishedWeights("imagenet-mobilenetv2", "imagenet", "mobilenetv2", "ericsun99/MobileNet-V2-Pytorch",
                         "eb1a050237d8c461b916f15526c7e643da7a0856", "mobilenetv2_Top1_71.806_Top2_90.410.pth.tar",
                         "f2b6f102fd42f909a0f095723039e9511ee1b47d", "not stated by the repository"),
        PublishedWeights("imagenet-shufflenet", "imagenet", "shufflenet", "ericsun99/ShuffleNet-1g8-Pytorch",
                         "4b82cd8aacb64ed58cafe6d9cb96956a4215016c", "ShuffleNet_1g8_Top1_67.408_Top5_87.258.pth.tar",
                         "3b946f87c93d591ec64f1a440ea9f438a257d10b", "not stated by the repository"),
    )
}
SHORT_NAMES = {"cityscapes": "cityscapes-{backbone}", "imagenet": "imagenet-{backbone}"}


def lookup(name: str, backbone: str | None = None) -> PublishedWeights | None:
    """The catalogue entry called ``name`` (``cityscapes`` / ``imagenet`` mean the one of ``backbone``), else None."""
    if name in SHORT_NAMES and backbone:
        name = SHORT_NAMES[name].format(backbone=backbone)
    return CATALOG.get(name)


def resolve_published(name: str, backbone: str) -> Path | None:
    """Where a published name's fetched file is, for the node's and the tools' ``weights`` argument.

    Returns None when ``name`` is not a catalogue name (it is then a path). Raises WeightsError when the name
    is known but not fetched yet (saying how to fetch it), or belongs to another backbone.
    """
    entry = lookup(name, backbone)
    if entry is None:
        return None
    if entry.kind != "cityscapes":
        raise WeightsError(f"{entry.name} is an ImageNet backbone for liteseg-train init.backbone, not a segmentation "
                           "model; use weights:=cityscapes")
    if entry.backbone != backbone:
        raise WeightsError(f"weights {entry.name} are for backbone {entry.backbone}, but backbone={backbone}: "
                           f"use backbone={entry.backbone}")
    path = cache_dir() / entry.cached_name
    if not path.is_file():
        raise WeightsError(f"weights {entry.name} are not downloaded yet ({path} is missing): run "
                           f"'liteseg-weights fetch {entry.name}' once (licence {entry.license})")
    return path


def resolve_weights(name: str | os.PathLike | None, backbone: str | None = None) -> Path:
    """The weights file ``name`` stands for: the one resolver of the node's ``weights`` and every tool's
    ``--weights``. Empty or None: the bundled model (of ``backbone``); a published name (``cityscapes-mobilenetv2``,
    or ``cityscapes`` for the authors' model of ``backbone``, default mobilenetv2), fetched by ``liteseg-weights``;
    else a path (a checkpoint, an authors' ``.pth`` or an INT8 model).

    Raises WeightsError when the file does not exist (for a published name: how to fetch it)."""
    from liteseg_ros.model.bundled import DEFAULT_BACKBONE, bundled_model_path

    if name is None or not str(name):
        return bundled_model_path(backbone or DEFAULT_BACKBONE)
    entry = CATALOG.get(str(name))
    published = resolve_published(str(name), backbone or (entry.backbone if entry else DEFAULT_BACKBONE))
    if published is not None:
        return published
    path = Path(name).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist: give a weights file, a published name "
                           f"({', '.join(SHORT_NAMES)} or one of liteseg-weights list) or none for the bundled model")
    return path


def git_blob_sha1(path: Path) -> str:
    """The git blob SHA-1 of a file (``git hash-object``)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def download_url(entry: PublishedWeights) -> str:
    base = os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL
    return f"{base.rstrip('/')}/{entry.relative_url}"


def fetch(entry: PublishedWeights, destination_dir: Path | None = None, progress: IO[str] | None = None) -> Path:
    """Download, verify and (Cityscapes models) convert ``entry``; return the file's path. ``progress``: a text
    stream for the download's progress (e.g. sys.stderr), or None for silence.

    Raises DownloadError (network, HTTP, truncated, digest mismatch) or WeightsError (a verified file that does
    not load); nothing is left at the destination then.
    """
    directory = Path(destination_dir) if destination_dir else cache_dir()
    target = directory / entry.cached_name
    with atomic_file(target) as temporary:
        _download(download_url(entry), temporary, progress)
        found = git_blob_sha1(temporary)
        if found != entry.blob_sha1:
            raise DownloadError(f"{entry.name}: the downloaded file's git blob SHA-1 is {found}, expected "
                                f"{entry.blob_sha1}: it is not the published file (tampered, or a wrong mirror)")
        if entry.kind == "cityscapes":
            _convert(entry, temporary, temporary)
    return target


def _download(url: str, destination: Path, progress: IO[str] | None) -> None:
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot reach {url}: {reason} (no network? set {BASE_URL_VARIABLE} to a mirror)") from None
    with response:
        expected = int(response.headers.get("Content-Length") or 0) or None
        received = _copy_with_progress(response, destination, expected, url, progress)
    if expected is not None and received != expected:
        raise DownloadError(f"downloading {url} stopped after {received} of {expected} bytes (truncated); try again")


def _copy_with_progress(response: IO[bytes], destination: Path, expected: int | None, url: str,
                        progress: IO[str] | None) -> int:
    received, last_report = 0, 0.0
    try:
        with open(destination, "wb") as out:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(block)
                received += len(block)
                if progress is not None and time.monotonic() - last_report > 0.5:
                    last_report = time.monotonic()
                    total = f" of {expected / 1e6:.1f}" if expected else ""
                    progress.write(f"\r  {received / 1e6:.1f}{total} MB")
                    progress.flush()
    except (OSError, urllib.error.URLError) as error:  # a connection reset mid-way, http.client.IncompleteRead
        raise DownloadError(f"downloading {url} failed after {received} bytes: {error}; try again") from None
    if progress is not None:
        progress.write(f"\r  {received / 1e6:.1f} MB downloaded\n")
    return received


def _convert(entry: PublishedWeights, source: Path, target: Path) -> None:
    """The authors' checkpoint -> our format, with its metadata (origin, licence, Cityscapes input size);
    ``target`` may be ``source``."""
    from liteseg_ros.model import CheckpointMeta, build_liteseg, load_official_weights, save_checkpoint

    model = load_official_weights(build_liteseg(entry.backbone), source)
    meta = CheckpointMeta.for_model(
        model, input_size=(1024, 2048), license=entry.license,
        origin=f"{entry.repository}@{entry.commit[:12]}:{entry.path} (git blob {entry.blob_sha1})",
    )
    save_checkpoint(target, model, meta)
