"""`make demo`'s core in CI: a short synthetic drive replayed live into a real segmentation_node process."""

import json
import os
import subprocess
import sys
from pathlib import Path

from liteseg_ros.model.bundled import bundled_model_path

from bag_factory import needs_rosbags, read_bag

pytestmark = needs_rosbags

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_with_the_bundled_model(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run([sys.executable, "-m", "liteseg_ros.tools.demo", "--out", out, "--frames", "12", "--rate", "5",
                          "--size", "180x320", "--overlays", "4"], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=400)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "class mIoU" in run.stdout and "Output bag:" in run.stdout
    report = json.loads((out / "replay" / "report.json").read_text())
    assert report["mode"] == "live" and report["published_frames"] == 12
    assert report["frames"] + report["dropped_frames"] == 12 and report["frames"] >= 6
    assert report["miou"] is not None and 0.0 <= report["miou"] <= 1.0 and report["gt_frames"] == report["frames"]
    assert report["latency_ms"]["p50"] > 0
    assert bundled_model_path().name in report["model"]
    bag = read_bag(out / "replay" / "bag")
    assert len(bag["/camera/image_raw"]) == 12 and len(bag["/liteseg/mask"]) == report["frames"]
    inputs = {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in bag["/camera/image_raw"]}
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in bag["/liteseg/mask"]} <= inputs
    assert all((m.height, m.width) == (180, 320) for _, m in bag["/liteseg/overlay"])
    assert sorted(p.name for p in (out / "replay" / "overlays").iterdir())[:1] == ["overlay_000000.png"]
    node_log = (out / "node.log").read_text()
    assert "cannot start" not in node_log
    # the demo plays its bag with /clock to a node with use_sim_time: its recorded stamps are on the node's clock
    assert "from this node's clock" not in node_log and "ros2 bag play" not in node_log, node_log
