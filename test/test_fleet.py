"""A fleet's recordings with a real Ray, never a mock: a cluster started as its own process (``ray start --head
--block``, stopped by that process's id) and a local Ray the tool starts and stops itself. ``liteseg-mine`` and
``liteseg-replay`` give the same answer on both engines (selection rows, images, CVAT and Label Studio files; per-bag
confusion matrices summed exactly); the score store reuses pieces and a greedy ``--count 8`` is the head of
``--count 16``; a killed worker's piece runs again and the result is identical; a corrupt bag is named and the
others are used; mixed raw and compressed recordings; class maps per model and a staged replay output."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from liteseg_ros.inference.runners import package_available

from bag_factory import needs_rosbags, write_bag, write_mining_bag
from conftest import end_processes, installed_script, random_weights, start_process

pytestmark = [needs_rosbags, pytest.mark.skipif(not package_available("ray"), reason="Ray is not installed "
                                                "(pip install '.[fleet]')")]
SMALL = {"views": 4, "still": 4, "height": 96, "width": 160}
PIECE = ["--piece-frames", "6"]


CLUSTER_ENV: dict[str, str] = {}  # the test cluster's token, for every client of it


def environment() -> dict[str, str]:
    return {**{key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}, **CLUSTER_ENV}


def tool(name: str, *arguments, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([installed_script(name), *map(str, arguments)], capture_output=True, text=True,
                          timeout=timeout, env=environment())


def rows_of(out: Path) -> list[dict]:
    with (out / "selection.csv").open() as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    """Four recordings of two domains: raw sqlite3, raw mcap, JPEG-compressed, and a robot standing still."""
    root = tmp_path_factory.mktemp("fleet") / "recordings"
    root.mkdir()
    write_mining_bag(root / "a_street", seed=21, **SMALL)
    write_mining_bag(root / "b_mcap", seed=22, storage="mcap", **SMALL)
    write_mining_bag(root / "c_compressed", seed=23, compressed=True, **SMALL)
    write_mining_bag(root / "d_still", seed=24, **{**SMALL, "views": 1, "still": 12})
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``ray start --head --block`` as its own process (2 CPUs, token authentication as Ray's default with a token of
    this module's: every client here gets it); its address; stopped by its id after the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "ray.log"
    CLUSTER_ENV.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    with open(log, "wb") as out:
        process = start_process([installed_script("ray"), "start", "--head", "--block", "--port", str(port),
                                 "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "false",
                                 "--disable-usage-stats"], stdout=out, stderr=subprocess.STDOUT, env=environment())
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        status = subprocess.run([installed_script("ray"), "status", "--address", address], capture_output=True,
                                text=True, timeout=60, env=environment())
        if status.returncode == 0:
            break
        time.sleep(1)
    else:
        end_processes([process])
        raise AssertionError(f"the Ray head did not come up:\n{log.read_text()}")
    yield address
    process.send_signal(signal.SIGTERM)  # `ray start --block` stops its cluster when it ends
    try:
        process.wait(timeout=60)
    finally:
        end_processes([process])


@pytest.fixture(scope="module")
def local_mining(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    run = tool("liteseg-mine", fleet, "--count", 8, "--out", out, *PIECE)
    assert run.returncode == 0, run.stderr
    return out, run


def test_mixed_recordings_take_each_bags_one_camera_topic(local_mining):
    out, run = local_mining
    topics = {row["bag"].split("/")[-1]: row["topic"] for row in rows_of(out)}
    assert "/camera/image_raw" in set(topics.values()) and "chose 8" in run.stdout, run.stdout
    assert "4 recording(s)" in run.stdout


def same_mining(first: Path, second: Path) -> None:
    """The same rows (frames, stamps; scores within 1e-4), the same image bytes and labelling files."""
    a, b = rows_of(first), rows_of(second)
    assert [(r["image"], r["bag"], r["topic"], r["stamp_ns"]) for r in a] == \
        [(r["image"], r["bag"], r["topic"], r["stamp_ns"]) for r in b]
    for column in ("score", "uncertainty"):
        assert np.allclose([float(r[column]) for r in a], [float(r[column]) for r in b], atol=1e-4)
    for name in sorted(p.name for p in (first / "images").iterdir()):
        assert (first / "images" / name).read_bytes() == (second / "images" / name).read_bytes(), name
    for name in ("cvat_annotations.zip", "label_studio_tasks.json", "label_studio_config.xml"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_mining_on_a_cluster_writes_what_in_process_mining_writes(fleet, local_mining, cluster, tmp_path):
    run = tool("liteseg-mine", fleet, "--count", 8, "--out", tmp_path / "ray", "--engine", "ray", "--address",
               cluster, "--workers", 2, *PIECE)
    assert run.returncode == 0, run.stderr
    same_mining(local_mining[0], tmp_path / "ray")


def test_the_tool_starts_its_own_local_ray_and_stops_it(fleet, local_mining, tmp_path):
    def rays() -> set[str]:
        found = subprocess.run(["pgrep", "-f", "raylet"], capture_output=True, text=True).stdout.split()
        return set(found)

    before = rays()
    run = tool("liteseg-mine", fleet, "--count", 8, "--out", tmp_path / "own", "--engine", "ray", "--workers", 2,
               *PIECE)
    assert run.returncode == 0, run.stderr
    assert "a local Ray for this run" in run.stderr
    same_mining(local_mining[0], tmp_path / "own")
    deadline = time.monotonic() + 30
    while rays() - before and time.monotonic() < deadline:  # its processes end with ray.shutdown()
        time.sleep(0.5)
    assert rays() - before == set()


def test_the_score_store_reuses_pieces_and_a_smaller_count_is_the_head_of_a_larger_one(fleet, tmp_path):
    store = tmp_path / "scores"
    first = tool("liteseg-mine", fleet / "a_street", fleet / "b_mcap", "--count", 16, "--out", tmp_path / "16",
                 "--scores", store, *PIECE)
    assert first.returncode == 0, first.stderr
    pieces = sorted(store.iterdir())
    assert pieces and all(p.suffix == ".parquet" for p in pieces)
    again = tool("liteseg-mine", fleet / "a_street", fleet / "b_mcap", "--count", 8, "--out", tmp_path / "8",
                 "--scores", store, *PIECE)
    assert again.returncode == 0, again.stderr
    assert "scored 0 frames" in again.stdout and "32 from the score store" in again.stdout, again.stdout
    assert rows_of(tmp_path / "8") == rows_of(tmp_path / "16")[:8]
    more = tool("liteseg-mine", fleet / "a_street", fleet / "b_mcap", fleet / "d_still", "--count", 8, "--out",
                tmp_path / "more", "--scores", store, *PIECE)
    assert "scored 12 frames" in more.stdout and "32 from the score store" in more.stdout, more.stdout
    other = random_weights(tmp_path / "other.pt")  # another model's entries are never read as this one's
    foreign = tool("liteseg-mine", fleet / "a_street", "--count", 4, "--out", tmp_path / "foreign", "--weights",
                   other, "--scores", store, *PIECE)
    assert foreign.returncode == 0 and "scored 16 frames" in foreign.stdout, foreign.stdout
    plain = tool("liteseg-mine", fleet / "a_street", fleet / "b_mcap", "--count", 16, "--out", tmp_path / "plain",
                 *PIECE)
    assert plain.returncode == 0, plain.stderr
    assert rows_of(tmp_path / "plain") == rows_of(tmp_path / "16")  # the store changes nothing of the answer


def test_a_killed_worker_runs_its_piece_again_and_the_answer_is_the_same(fleet, local_mining, cluster, tmp_path):
    """A worker process killed once the first piece is done: Ray restarts it and runs its piece again."""
    store = tmp_path / "scores"
    log = tmp_path / "mine.log"
    with open(log, "w") as stderr:
        mining = start_process([installed_script("liteseg-mine"), fleet, "--count", "8", "--out", tmp_path / "out",
                                "--engine", "ray", "--address", cluster, "--workers", "2", "--scores", store,
                                "--piece-frames", "2"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                               env=environment())
    deadline = time.monotonic() + 300
    while not (store.is_dir() and any(store.iterdir())) and mining.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    # the actors' processes carry their class in their title (ray::MapWorker(MapBatches(PieceWorker)))
    workers = subprocess.run(["pgrep", "-f", "PieceWorker"], capture_output=True, text=True).stdout.split()
    assert workers and mining.poll() is None, log.read_text()
    killed = int(workers[0])
    os.kill(killed, signal.SIGKILL)
    stdout, _ = mining.communicate(timeout=600)
    assert mining.returncode == 0, log.read_text()
    assert len(list(store.iterdir())) > 2 and not Path(f"/proc/{killed}").exists()
    same_mining(local_mining[0], tmp_path / "out")


def test_a_corrupt_bag_is_named_and_every_other_bags_frames_are_used(fleet, tmp_path):
    recordings = tmp_path / "recordings"
    shutil.copytree(fleet / "a_street", recordings / "a_street")
    broken = shutil.copytree(fleet / "b_mcap", recordings / "b_broken")
    data = next(broken.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    (recordings / "c_empty").mkdir()  # not a bag at all
    write_bag(recordings / "e_other_topic", frames=2, gt=False, image_topic="/front/image_raw")
    run = tool("liteseg-mine", recordings / "a_street", broken, recordings / "c_empty", recordings / "e_other_topic",
               "--topic", "/camera/image_raw", "--count", 4, "--out", tmp_path / "out", *PIECE)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("liteseg-mine: warning:")]
    assert any("b_broken" in line for line in warnings) and any("c_empty" in line for line in warnings), warnings
    assert any("e_other_topic" in line and "has no topic /camera/image_raw" in line for line in warnings), warnings
    assert "not read: " in (tmp_path / "out" / "report.md").read_text()
    assert {row["bag"].split("/")[-1] for row in rows_of(tmp_path / "out")} <= {"a_street", "b_broken"}
    none = tool("liteseg-mine", recordings / "c_empty", recordings / "e_other_topic", "--topic", "/camera/image_raw",
                "--count", 4, "--out", tmp_path / "none", *PIECE)
    assert none.returncode == 1 and not (tmp_path / "none").exists(), none.stderr
    assert "no frame could be read" in none.stderr


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("labelled")
    return [write_bag(root / "one", frames=14, height=64, width=96),
            write_bag(root / "two", frames=9, height=64, width=96, storage="mcap")]


def test_replay_over_several_bags_sums_the_confusion_matrices_the_same_on_both_engines(labelled, cluster, tmp_path):
    local = tool("liteseg-replay", *labelled, "--out", tmp_path / "local", "--gt-topic", "/camera/labels", "--json")
    assert local.returncode == 0, local.stderr
    ray = tool("liteseg-replay", *labelled, "--out", tmp_path / "ray", "--gt-topic", "/camera/labels", "--json",
               "--engine", "ray", "--address", cluster, "--workers", 2, "--piece-frames", 4)
    assert ray.returncode == 0, ray.stderr
    fleets = [json.loads(run.stdout) for run in (local, ray)]
    assert [b["bag"] for b in fleets[0]["bags"]] == [str(bag) for bag in labelled]
    matrices = {}
    for engine in ("local", "ray"):
        for bag in labelled:
            report = json.loads((tmp_path / engine / bag.name / "report.json").read_text())
            matrices[engine, bag.name] = np.asarray(report["confusion"])
        assert (tmp_path / engine / "report.md").is_file()
    for bag in labelled:
        assert np.array_equal(matrices["local", bag.name], matrices["ray", bag.name]), bag.name
    assert (tmp_path / "local" / "one" / "bag").is_dir() and not (tmp_path / "ray" / "one" / "bag").exists()
    total = matrices["local", "one"] + matrices["local", "two"]  # the fleet's mIoU, computed here
    truth, predicted = total.sum(axis=1), total[:, :-1].sum(axis=0)  # rows: truth (last column: "other")
    hits = np.diag(total[:, :-1])
    union = truth + predicted - hits
    miou = float(np.mean(hits[union > 0] / union[union > 0]))  # classes never seen nor predicted: left out
    assert fleets[0]["miou"] == fleets[1]["miou"] and abs(fleets[0]["miou"] - miou) < 1e-12
    assert fleets[0]["gt_frames"] == 23 == fleets[1]["gt_frames"]


def test_replay_applies_a_class_map_to_the_models_it_fits_checks_first_and_stages_its_output(labelled, tmp_path):
    """OLD (Cityscapes classes) and NEW (retrained on the robot's own): the class map is OLD's only; a model the
    ground truth cannot score is refused before any frame; OUT appears whole, and again only with --force."""
    import argparse

    from liteseg_ros.model.bundled import bundled_model_path
    from liteseg_ros.tools.cli import replay
    from liteseg_ros.tools.synthetic.cvat_writer import ROBOT_CLASS_SET

    new = random_weights(tmp_path / "robot.pt", classes=ROBOT_CLASS_SET)
    args = argparse.Namespace(weights=[str(bundled_model_path()), str(new)], class_map="config/class_map_robot.yaml",
                              device="cpu", precision="auto", input_size=(64, 96), gt_topic=None,
                              gt_encoding="labelids")
    (old_path, old), (_, robot) = replay._models(args)
    assert old_path == bundled_model_path() and old.class_map is not None and robot.class_map is None
    assert "drivable" in old.classes.names and old.model_classes.names[0] == "road"
    assert robot.classes.names == ROBOT_CLASS_SET.names
    out = tmp_path / "out"
    common = ["--out", out, "--weights", bundled_model_path(), "--weights", new, "--gt-topic", "/camera/labels",
              "--class-map", "config/class_map_robot.yaml", "--input-size", "64x96"]
    refused = tool("liteseg-replay", labelled[0], *common)  # labelIds ground truth cannot score the robot model
    assert refused.returncode == 2 and "labelIds ground truth is Cityscapes'" in refused.stderr, refused.stderr
    assert not out.exists() and "segmenter ready" in refused.stderr  # checked after loading, before any frame
    ran = tool("liteseg-replay", labelled[0], *common, "--gt-encoding", "trainids")
    assert ran.returncode == 0, ran.stderr
    assert {p.name for p in out.iterdir()} == {"1-liteseg_mobilenetv2_synthetic", "2-robot", "comparison.md",
                                               "comparison.json"}
    again = tool("liteseg-replay", labelled[0], *common, "--gt-encoding", "trainids")
    assert again.returncode == 2 and "exists: choose a new --out, or --force" in again.stderr
    forced = tool("liteseg-replay", labelled[0], *common, "--gt-encoding", "trainids", "--force")
    assert forced.returncode == 0 and (out / "comparison.md").is_file(), forced.stderr


def test_the_progress_line_counts_pieces_frames_and_workers_on_a_terminal():
    import io

    from liteseg_ros.fleet.engine import EngineOptions
    from liteseg_ros.tools.cli.conventions import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress("scoring pieces", total=2, stream=stream, period_s=0.0, engine=EngineOptions())
    progress.step("a 0.0-1.0 s", frames=10)
    progress.step("a 1.0-2.0 s", frames=6)
    progress.close()
    lines = stream.getvalue().strip("\r\n").split("\r")
    assert lines[-1].startswith("scoring pieces: 2/2 (") and "frames/s)" in lines[-1] and "a 1.0-2.0 s" in lines[-1]
    assert "workers alive" not in stream.getvalue()  # in this process: no workers to count
    quiet = io.StringIO()
    Progress("scoring pieces", total=1, stream=quiet).step()
    assert quiet.getvalue() == ""  # not a terminal: only the summary line, which the tool prints
