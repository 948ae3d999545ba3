"""The network cache: its key changes with everything that changes a prepared network and with nothing else; a
stale, truncated or foreign entry is rebuilt (one info line) and gives the masks of an uncached Segmenter; two
processes starting at once on an empty cache both start, on one entry; a node started twice reads the entry;
liteseg-info --cache lists, sizes and clears it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liteseg_ros.inference.cache import CacheKey, NetworkCache, cache_key
from liteseg_ros.inference.runners import RUNNERS, package_available
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from conftest import installed_script, random_weights, spawn_node, wait_until_ready
from segmenter_fixtures import core_log

SIZE = (96, 160)
pytestmark = [pytest.mark.plan,
              pytest.mark.skipif(not (package_available("onnx") and package_available("onnxruntime")),
                                 reason="the network cache holds ONNX exports: it needs onnx and onnxruntime")]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return random_weights(tmp_path_factory.mktemp("cache_weights") / "liteseg_mobilenetv2_cache.pt")


def test_the_key_changes_with_each_input_and_with_nothing_else(monkeypatch):
    base = cache_key("a" * 64, "openvino", "int8", (360, 640), int8="twin:b")
    assert cache_key("a" * 64, "openvino", "int8", (360, 640), int8="twin:b") == base  # the same inputs
    assert cache_key("a" * 64, "openvino", "int8", [360, 640], int8="twin:b").name == base.name  # list or tuple
    changed = {
        "weights": cache_key("c" * 64, "openvino", "int8", (360, 640), int8="twin:b"),
        "runner": cache_key("a" * 64, "onnxruntime", "int8", (360, 640), int8="twin:b"),
        "precision": cache_key("a" * 64, "openvino", "fp32", (360, 640)),
        "input size": cache_key("a" * 64, "openvino", "int8", (720, 1280), int8="twin:b"),
        "int8 source": cache_key("a" * 64, "openvino", "int8", (360, 640), int8="calibrated"),
        "folding": cache_key("a" * 64, "openvino", "int8", (360, 640), int8="twin:b", fold_bn=False),
        "network": cache_key("a" * 64, "openvino", "int8", (360, 640), int8="twin:b", pre_upsample=False),
        "runner version": dataclasses.replace(base, runner_version="2099.1"),
        "torch": dataclasses.replace(base, torch="9.9"),
        "format": dataclasses.replace(base, format=base.format + 1),
        "device (a GPU engine's)": dataclasses.replace(base, device="cuda:0 NVIDIA H100 sm90 TensorRT 10.9"),
    }
    monkeypatch.setenv("LITESEG_CPU_FLAGS", "avx2 fma amx_bf16")  # another CPU class
    changed["cpu"] = cache_key("a" * 64, "openvino", "int8", (360, 640), int8="twin:b")
    names = [key.name for key in changed.values()]
    assert base.name not in names and len(set(names)) == len(names), changed
    assert all(len(name) == 32 for name in names)


def _store(cache: NetworkCache, key: CacheKey, text: str = "network") -> None:
    def write(folder: Path) -> dict:
        (folder / "network.onnx").write_text(text)
        return {"made": "here"}

    cache.store(key, write)


def test_a_stale_truncated_or_foreign_entry_is_removed_with_one_line(tmp_path):
    cache, key = NetworkCache(tmp_path), cache_key("d" * 64, "onnxruntime", "fp32", SIZE)
    _store(cache, key)
    entry = cache.lookup(key)
    assert entry.files["network.onnx"]["bytes"] == 7 and entry.report == {"made": "here"}
    cases = {
        "truncated": lambda path: (path / "network.onnx").write_text("net"),
        "edited": lambda path: (path / "network.onnx").write_text("NETWORK"),
        "foreign": lambda path: (path / "manifest.json").write_text(json.dumps(
            {**json.loads((path / "manifest.json").read_text()), "key": {"source": "other"}})),
        "no manifest": lambda path: (path / "manifest.json").unlink(),
    }
    for name, damage in cases.items():
        _store(cache, key)
        damage(tmp_path / key.name)
        with core_log(level=20) as logged:
            assert cache.lookup(key) is None, name
        assert len(logged) == 1 and logged[0].startswith(f"network cache: entry {tmp_path / key.name} is stale ("), \
            logged
        assert not (tmp_path / key.name).exists() and not list(tmp_path.glob(".*removed")), name


def test_a_corrupted_entry_is_rebuilt_and_gives_the_uncached_masks(weights, tmp_path):
    """On whatever plan this CPU class gets (bf16 or fp32, OpenVINO or onnxruntime): the log names that plan."""
    cache = tmp_path / "cache"
    frames = [frame.image for frame in unseen_frames(2, *SIZE)]
    uncached = Segmenter(weights, device="cpu", input_size=SIZE, cache=False)
    expected = [uncached.segment(frame).mask for frame in frames]
    first = Segmenter(weights, device="cpu", input_size=SIZE, cache=cache)
    planned = f"{first.plan.runner} {first.precision}"
    assert RUNNERS[first.plan.runner].cacheable and first.plan.summary() == uncached.plan.summary()
    entry = Path(first.preparation["entry"])
    assert [np.array_equal(first.segment(frame).mask, mask) for frame, mask in zip(frames, expected)] == [True] * 2
    onnx_file = entry / "network.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])  # truncated on disk
    with core_log(level=20) as logged:
        rebuilt = Segmenter(weights, device="cpu", input_size=SIZE, cache=cache)
    stale = [line for line in logged if "is stale" in line]
    assert len(stale) == 1 and "network.onnx is missing or truncated" in stale[0], logged
    assert any(line.startswith(f"preparing liteseg_mobilenetv2_cache.pt for {planned} in a helper process")
               for line in logged), logged
    assert [np.array_equal(rebuilt.segment(frame).mask, mask) for frame, mask in zip(frames, expected)] == [True] * 2
    with core_log(level=20) as logged:
        Segmenter(weights, device="cpu", input_size=SIZE, cache=cache)
    assert any(line == f"network cache: {planned} from {entry}" for line in logged), logged


CONCURRENT = """
import sys, numpy as np
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.tools.synthetic.scenes import unseen_frames
segmenter = Segmenter(sys.argv[1], device="cpu", input_size=(96, 160), cache=sys.argv[2])
np.save(sys.argv[3], segmenter.segment(unseen_frames(1, 96, 160)[0].image).mask)
"""


def test_two_processes_starting_at_once_share_one_entry(weights, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(weights), str(cache), str(tmp_path / f"{i}.npy")],
                             stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert np.array_equal(np.load(tmp_path / "0.npy"), np.load(tmp_path / "1.npy"))
    entries = NetworkCache(cache).entries()
    assert len(entries) == 1 and "stale" not in entries[0], entries
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith("weights-meta")) == \
        [Path(entries[0]["path"]).name]  # no staging folder left by the process that lost the race


def test_the_node_started_twice_reads_the_entry_the_first_start_made(ros_client, weights, tmp_path):
    """The node reports its plan ("plan cpu bf16 openvino (...)"): the second start reads that plan's entry."""
    cache_home = tmp_path / "xdg"
    parameters = {"weights": str(weights), "device": "cpu", "input_height": SIZE[0], "input_width": SIZE[1],
                  "publish_mask": "always"}
    logs = []
    for run in range(2):
        node = spawn_node(tmp_path / f"run{run}", "/cached", parameters, env={"XDG_CACHE_HOME": str(cache_home)})
        try:
            wait_until_ready(ros_client, node, "/cached/image", timeout=180)
            ros_client.wait_for(lambda: "; plan cpu " in node.stderr() + node.stdout(), 60, "the node's plan line")
        finally:
            node.stop()
        logs.append(node.stderr() + node.stdout())
    planned = [re.search(r"; plan cpu (\S+) (\S+) \(", log) for log in logs]
    assert all(planned), logs
    precision, runner = planned[0].groups()
    assert planned[1].groups() == (precision, runner) and RUNNERS[runner].cacheable, logs
    loaded = f"network cache: {runner} {precision} from "
    assert "in a helper process" in logs[0] and loaded not in logs[0], logs[0]
    assert loaded + str(cache_home / "liteseg_ros" / "networks") in logs[1], logs[1]
    assert "in a helper process" not in logs[1]


def test_liteseg_info_lists_sizes_and_clears_the_cache(weights, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}

    def info(*args: str) -> str:
        run = subprocess.run([str(installed_script("liteseg-info")), "--cache", *args], capture_output=True, text=True,
                             env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert info().startswith("0 entries, 0.0 MB in ")
    plan = Segmenter(weights, device="cpu", input_size=SIZE, cache=tmp_path / "xdg" / "liteseg_ros" / "networks").plan
    listed = info("--json")
    entries = json.loads(listed)["entries"]
    assert len(entries) == 1 and entries[0]["bytes"] > 100_000, entries
    assert (entries[0]["key"]["runner"], entries[0]["key"]["precision"]) == (plan.runner, plan.precision)
    assert f"{plan.runner} {plan.precision} 96x160 of {weights.name}" in info("list")
    assert json.loads(info("size", "--json"))["bytes"] >= entries[0]["bytes"]
    assert info("clear").startswith("removed 1 entries from ")
    assert info().startswith("0 entries")
