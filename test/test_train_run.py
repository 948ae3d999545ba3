"""liteseg-train end to end on tiny synthetic data (CPU): loss goes down, kill -9 + resume gives identical
weights, Ctrl-C saves and resumes, DDP with 2 gloo processes, start-up errors before any training."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from liteseg_ros.model import load_checkpoint
from liteseg_ros.tools.synthetic import write_cityscapes_tree
from liteseg_ros.training.train import TRAIN_EXTRA_MODULES, main

from conftest import start_process

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in TRAIN_EXTRA_MODULES),
    reason="training needs the train extra (pip install 'liteseg_ros[train]')",
)

ROOT = Path(__file__).resolve().parent.parent
TINY = [  # 64x128 crops, batch 2, one thread: a step takes ~0.1 s
    "data.crop_sizes=[[64,128]]", "data.multi_scale=single", "data.batch_size=2", "data.scale_range=[0.5,1.0]",
    "data.val_max_images=2", "data.workers=1", "runtime.threads=1", "runtime.log_every=1", "coarse.epochs=0",
    "optim.loss_reduction=mean", "fine.base_lr=0.02", "schedule.unit=iteration", "schedule.update_every=1",
    "validation.unit=epoch", "validation.every=100",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_cityscapes_tree(root, train=8, val=2, height=96, width=192, seed=11, coarse=True, extra=2)
    return root


def train_command(data_root: Path, out: Path, *overrides: str, resume: bool = False) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "liteseg_ros.training.train",
        "--config",
        str(ROOT / "config" / "train_mobilenetv2.yaml"),
        "--data",
        str(data_root),
        "--out",
        str(out),
        *TINY,
        *overrides,
    ]
    return command + (["--resume"] if resume else [])


def run_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def final_state(run_dir: Path) -> dict:
    model, _ = load_checkpoint(run_dir / "model_final.pt")
    return model.state_dict()


def assert_identical(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def wait_for_checkpoint(process: subprocess.Popen, path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training exited early: {process.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.02)


def saved_iteration(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["state"]["iteration"]


def test_short_training_lowers_the_loss_and_writes_the_run_dir(data_root, tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "--config",
            str(ROOT / "config" / "train_mobilenetv2.yaml"),
            "--data",
            str(data_root),
            "--out",
            str(out),
            *TINY,
            "fine.epochs=8",
            "optim.name=adam",
            "fine.base_lr=0.005",
            "validation.every=8",
            "data.scale_range=[1.0,1.0]",
            "checkpoint.export_input_size=null",
        ]
    )
    assert code == 0
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 32
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["optim"]["name"] == "adam" and config["data"]["crop_sizes"] == [[64, 128]]
    assert (out / "checkpoints" / "last.pt").exists() and (out / "checkpoints" / "best.pt").exists()
    model, meta = load_checkpoint(out / "model_best.pt")
    assert meta.backbone == "mobilenetv2" and meta.input_size == (96, 192)  # the size of the val images
    assert meta.extra["iteration"] == 32 and meta.extra["val_miou"] >= 0
    assert load_checkpoint(out / "model_final.pt")[1].extra == meta.extra  # validated at the last iteration too
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_sigkill_then_resume_gives_identical_weights(data_root, tmp_path):
    overrides = ("fine.epochs=4", "checkpoint.every_iterations=5", "data.workers=2", "runtime.deterministic=true")
    reference = tmp_path / "reference"
    subprocess.run(train_command(data_root, reference, *overrides), env=run_env(), check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = start_process(
        train_command(data_root, killed, *overrides), env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_for_checkpoint(process, killed / "checkpoints" / "last.pt")
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = saved_iteration(killed)
    assert 5 <= stopped_at < 16 and not (killed / "model_final.pt").exists()
    subprocess.run(
        train_command(data_root, killed, *overrides, resume=True), env=run_env(), check=True, capture_output=True
    )
    assert saved_iteration(killed) == 16
    assert_identical(final_state(reference), final_state(killed))


def test_ctrl_c_saves_a_checkpoint_and_exits_130(data_root, tmp_path):
    out = tmp_path / "run"
    process = start_process(
        train_command(data_root, out, "fine.epochs=50", "checkpoint.every_iterations=2"),
        env=run_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_checkpoint(process, out / "checkpoints" / "last.pt")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    assert "SIGINT received" in process.stderr.read().decode()
    stopped_at = saved_iteration(out)
    assert 2 <= stopped_at < 200
    resumed = subprocess.run(
        train_command(data_root, out, "fine.epochs=50", "runtime.max_iterations=" + str(stopped_at + 2), resume=True),
        env=run_env(),
        capture_output=True,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert saved_iteration(out) == stopped_at + 2


def test_ddp_two_gloo_processes(data_root, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--standalone",
        "-m",
        "liteseg_ros.training.train",
        *train_command(
            data_root,
            out,
            "fine.epochs=2",
            "runtime.sync_bn=true",  # CPU: warns, keeps BatchNorm
            "validation.every=2",
        )[3:],
    ]
    result = subprocess.run(command, env=run_env(), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    log = (out / "train.log").read_text()
    assert "world size 2" in log and "validation at iteration 4" in log  # 8 images / 2 ranks / batch 2 = 2 per epoch
    assert "runtime.sync_bn needs CUDA" in log
    assert saved_iteration(out) == 4
    model, _ = load_checkpoint(out / "model_final.pt")
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def test_startup_errors_stop_before_training(data_root, tmp_path, capsys):
    """Each start-up error is one line on stderr (exit 2) and nothing is written to the run directory."""
    missing = tmp_path / "nowhere"
    assert (
        main(
            [
                "--config",
                str(ROOT / "config" / "train_mobilenetv2.yaml"),
                "--data",
                str(missing),
                "--out",
                str(tmp_path / "a"),
                *TINY,
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "a" / "checkpoints").exists()
    # the paper preset pre-trains on gtCoarse train_extra: a tree without it fails at start-up, naming it
    assert (
        main(
            [
                "--config",
                str(ROOT / "config" / "train_mobilenetv2.yaml"),
                "--data",
                str(data_root),
                "--out",
                str(tmp_path / "b"),
                *TINY,
                "coarse.epochs=1",
                "coarse.splits=[train,train_missing]",
            ]
        )
        == 2
    )
    assert "train_missing" in capsys.readouterr().err and not (tmp_path / "b" / "checkpoints").exists()
    assert (
        main(
            [
                "--config",
                str(ROOT / "config" / "train_mobilenetv2.yaml"),
                "--data",
                str(data_root),
                "--out",
                str(tmp_path / "c"),
                "optim.lr=1",
            ]
        )
        == 2
    )
    assert "unknown config key 'optim.lr'" in capsys.readouterr().err


def test_ohem_and_channels_last_run_end_to_end(data_root, tmp_path):
    """OHEM reports the loss of the hard pixels only (above plain CE from the same start); NHWC memory layout
    gives the same forward pass and an exported model that loads like any other."""

    def run(name: str, *overrides: str) -> tuple[list[float], dict]:
        out = tmp_path / name
        assert (
            main(
                [
                    "--config",
                    str(ROOT / "config" / "train_mobilenetv2.yaml"),
                    "--data",
                    str(data_root),
                    "--out",
                    str(out),
                    *TINY,
                    "fine.epochs=1",
                    "runtime.deterministic=true",
                    "data.workers=0",
                    "validation.every=1",
                    *overrides,
                ]
            )
            == 0
        )
        records = map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        return [r["loss"] for r in records if "loss" in r], final_state(out)

    plain_losses, _ = run("plain")
    ohem = ("optim.loss=ohem", "optim.ohem_threshold=0.01", "optim.ohem_min_kept=0.05")  # the hardest 5 %
    ohem_losses, ohem_state = run("ohem", *ohem)
    nhwc_losses, nhwc_state = run("nhwc", *ohem, "runtime.channels_last=true")
    assert yaml.safe_load((tmp_path / "nhwc" / "config.yaml").read_text())["runtime"]["channels_last"] is True
    assert ohem_losses[0] > plain_losses[0] + 0.05  # same weights and batch: the hardest pixels' mean is higher
    # the first step sees identical weights and data; later steps drift apart by float rounding (BatchNorm on a
    # batch of 2 amplifies it), so only the first loss is compared
    assert nhwc_losses[0] == pytest.approx(ohem_losses[0], rel=1e-5)
    assert len(nhwc_losses) == 4 and all(map(math.isfinite, nhwc_losses))
    assert nhwc_state.keys() == ohem_state.keys()
    assert all(tensor.is_contiguous() and torch.isfinite(tensor).all() for tensor in nhwc_state.values())
