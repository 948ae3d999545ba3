"""liteseg-info prints the figures of LITESEG.md for every backbone."""

import json
import subprocess

import torch

from liteseg_ros.model import build_liteseg, save_checkpoint

from conftest import installed_script


def _run(*args):
    run = subprocess.run([installed_script("liteseg-info"), *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_json_figures_for_all_backbones():
    rows = {row["backbone"]: row for row in json.loads(_run("--json"))}
    assert rows["mobilenetv2"]["params_used"] == 3_101_707
    assert rows["mobilenetv2"]["params_with_imagenet_head"] == 4_382_707
    assert rows["shufflenet"]["params_with_imagenet_head"] == 3_508_451
    assert rows["darknet19"]["params_used"] == 20_545_459
    assert abs(rows["mobilenetv2"]["gmacs"] / 4.31 - 1) < 0.01
    assert abs(rows["shufflenet"]["gmacs"] / 2.29 - 1) < 0.01
    assert abs(rows["darknet19"]["gmacs"] / 57.13 - 1) < 0.01
    assert (rows["darknet19"]["output_stride"], rows["darknet19"]["low_level_stride"]) == (16, 4)
    assert (rows["shufflenet"]["output_stride"], rows["shufflenet"]["low_level_stride"]) == (32, 8)


def test_table_names_counter_and_timing_column(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_liteseg("shufflenet"))
    out = _run("--weights", str(tmp_path / "m.pt"), "--size", "64x128", "--time", "--iters", "2", "--threads", "1")
    assert "FlopCounterMode" in out and "eager CPU fwd ms" in out
    line = next(row for row in out.splitlines() if row.strip().startswith("shufflenet"))
    assert "64x128" in line and "1,971,451" in line and "3,508,451" in line


def test_bad_size_is_a_usage_error():
    run = subprocess.run(
        [installed_script("liteseg-info"), "--backbone", "darknet19", "--size", "362x640"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "multiples of 4" in run.stderr and "Traceback" not in run.stderr
