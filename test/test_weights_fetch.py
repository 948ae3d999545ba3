"""liteseg-weights against a real HTTP server on 127.0.0.1: fetch, verify (git blob SHA-1), convert, load; and the
failures (tampered, truncated, HTTP error, no server) leave nothing at the destination.

The served file is an authors'-format checkpoint built from the reference key schema. The catalogue's pinned
digests are data, checked here only for their form; the test entries carry the digest of the file served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from liteseg_ros.errors import WeightsError
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.model import build_liteseg, load_checkpoint, load_official_weights
from liteseg_ros.model import published as weights_catalog
from liteseg_ros.ros.parameters import NodeConfig
from liteseg_ros.tools.cli.weights import main as weights_main

from authors_schema import random_authors_state_dict, save_authors_checkpoint
from conftest import spawn_node, wait_until_ready
from segmenter_fixtures import street_image

ENTRY = weights_catalog.CATALOG["cityscapes-mobilenetv2"]
TRUNCATE_MARK = "truncated/"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test tree; paths under truncated/ announce the whole file but send half of it."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.lstrip("/").startswith(TRUNCATE_MARK):
            body = (Path(self.directory) / self.path.lstrip("/")[len(TRUNCATE_MARK):]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, the authors' file as served, its git blob SHA-1): a loopback server over a mirror tree."""
    root = tmp_path_factory.mktemp("mirror")
    source = root / ENTRY.relative_url
    source.parent.mkdir(parents=True)
    save_authors_checkpoint(random_authors_state_dict("mobilenetv2", seed=4), source)
    tampered = root / "tampered" / ENTRY.relative_url
    tampered.parent.mkdir(parents=True)
    tampered.write_bytes(source.read_bytes()[:-1] + bytes([source.read_bytes()[-1] ^ 1]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             lambda *args: _Handler(*args, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", source, _blob_sha1(source.read_bytes())
    server.shutdown()
    server.server_close()


def _blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@pytest.fixture
def catalog_with_served_digest(served, monkeypatch, tmp_path):
    """The catalogue entry with the served file's digest, the cache in tmp_path, the mirror as base URL."""
    base, _, digest = served
    monkeypatch.setitem(weights_catalog.CATALOG, ENTRY.name, dataclasses.replace(ENTRY, blob_sha1=digest))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(weights_catalog.BASE_URL_VARIABLE, base)
    return tmp_path / "cache" / "liteseg_ros"


def test_pinned_digests_are_git_blob_sha1s_and_the_function_is_gits(tmp_path):
    for entry in weights_catalog.CATALOG.values():
        assert re.fullmatch(r"[0-9a-f]{40}", entry.blob_sha1) and re.fullmatch(r"[0-9a-f]{40}", entry.commit)
    sample = tmp_path / "sample.bin"
    sample.write_bytes(bytes(range(256)) * 7)
    git = subprocess.run(["git", "hash-object", str(sample)], capture_output=True, text=True)
    if git.returncode == 0:
        assert weights_catalog.git_blob_sha1(sample) == git.stdout.strip()
    assert weights_catalog.git_blob_sha1(sample) == _blob_sha1(sample.read_bytes())


def test_fetch_verifies_converts_and_the_node_and_segmenter_load_it(served, catalog_with_served_digest, capsys):
    _, source, _ = served
    assert weights_main(["fetch", ENTRY.name]) == 0
    out, err = capsys.readouterr()
    target = catalog_with_served_digest / "liteseg_mobilenetv2_cityscapes.pt"
    assert out.splitlines()[0] == str(target) and "CC BY-NC 4.0 (non-commercial use only)" in out + err
    assert "MB downloaded" in err  # progress
    assert sorted(p.name for p in catalog_with_served_digest.iterdir()) == [target.name]  # no temporary left
    model, meta = load_checkpoint(target)
    assert meta.license == ENTRY.license and ENTRY.path in meta.origin and meta.backbone == "mobilenetv2"
    assert meta.mean == (0.485, 0.456, 0.406) and meta.input_size == (1024, 2048)
    reference = load_official_weights(build_liteseg("mobilenetv2"), source)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    resolved = NodeConfig(weights="cityscapes", backbone="mobilenetv2").validated().weights_file()
    assert resolved == target
    image = street_image(64, 96, seed=3)
    ours = Segmenter(resolved, device="cpu", input_size=(64, 96), optimize="none").segment(image).mask
    theirs = Segmenter(reference, device="cpu", input_size=(64, 96), optimize="none").segment(image).mask
    assert np.array_equal(ours, theirs)


@pytest.mark.ros
def test_the_node_takes_the_published_name(served, catalog_with_served_digest, ros_client, tmp_path):
    """weights:=cityscapes (with the backbone) starts the node on the fetched file; a name not fetched yet is
    one start-up error line saying how to fetch it."""
    weights_catalog.fetch(weights_catalog.CATALOG[ENTRY.name])
    cache = {"XDG_CACHE_HOME": str(catalog_with_served_digest.parent)}
    node = spawn_node(tmp_path / "ok", "/published", {"weights": "cityscapes", "device": "cpu"}, env=cache)
    missing = spawn_node(tmp_path / "missing", "/published_missing", {"weights": "cityscapes", "device": "cpu",
                                                                      "backbone": "shufflenet"}, env=cache)
    try:
        wait_until_ready(ros_client, node, "/published/image")
        assert missing.process.wait(timeout=60) == 1
        assert "run 'liteseg-weights fetch cityscapes-shufflenet' once" in missing.stderr()
    finally:
        node.stop()


@pytest.mark.parametrize("case", ["tampered", "truncated", "missing (HTTP 404)", "no server"])
def test_failures_are_one_line_and_leave_nothing(served, catalog_with_served_digest, monkeypatch, capsys, case):
    base, _, _ = served
    bases = {"tampered": f"{base}/tampered", "truncated": f"{base}/{TRUNCATE_MARK.rstrip('/')}",
             "missing (HTTP 404)": f"{base}/nowhere", "no server": "http://127.0.0.1:9"}
    monkeypatch.setenv(weights_catalog.BASE_URL_VARIABLE, bases[case])
    assert weights_main(["fetch", ENTRY.name]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("liteseg-weights: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    expected = {"tampered": "git blob SHA-1 is", "truncated": "truncated", "missing (HTTP 404)": "HTTP 404",
                "no server": "cannot reach"}[case]
    assert expected in errors[0]
    leftovers = list(catalog_with_served_digest.iterdir()) if catalog_with_served_digest.exists() else []
    assert leftovers == []


def test_a_published_name_not_fetched_says_how_to_fetch_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="run 'liteseg-weights fetch cityscapes-shufflenet' once"):
        NodeConfig(weights="cityscapes", backbone="shufflenet").validated().weights_file()
    with pytest.raises(WeightsError, match="use backbone=darknet19"):
        NodeConfig(weights="cityscapes-darknet19", backbone="mobilenetv2").validated().weights_file()


def test_list_names_every_entry_with_its_licence(capsys):
    assert weights_main(["list"]) == 0
    out = capsys.readouterr().out
    for entry in weights_catalog.CATALOG.values():
        assert entry.name in out and entry.repository in out
    assert out.count("CC BY-NC 4.0 (non-commercial use only)") == 3
