"""The labelling page's loop (docs/labelling.md), command by command, as a user runs it: every ``liteseg-*`` command of
its block runs as written (with sizes for a test appended: fewer frames, a shorter training), in a folder where
``config/`` and ``models/`` are the package's. A generated recording of two domains stands in for ``ros2 bag
record``, accepting the pre-labels stands in for CVAT (its export built as CVAT writes it, with images), and the
last line's model runs in the node."""

from __future__ import annotations

import re
import shlex
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.ros.launching import PARAMETER_ARGUMENTS

from bag_factory import needs_rosbags, write_mining_bag
from conftest import installed_script, mask_from_node

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- the labelling loop: test/test_labelling_page.py runs the liteseg-* commands of this block -->"
FOR_THE_TEST = {  # appended to a command: sizes for a test (argparse takes the last value, training the overrides)
    "liteseg-mine": ["--count", "8"],
    "liteseg-train": ["data.batch_size=2", "fine.epochs=2", "validation.every=2", "data.crop_sizes=[[96,160]]",
                      "checkpoint.every_iterations=100", "runtime.log_every=1"],
    "liteseg-eval": ["--device", "cpu"],
}
pytestmark = [needs_rosbags, pytest.mark.ros]


def readme_loop() -> list[list[str]]:
    """The commands of the page's block, continuation lines joined, comments dropped."""
    text = (ROOT / "docs" / "labelling.md").read_text(encoding="utf-8")
    block = text.split(MARKER, 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def cvat_export(to_label: Path, path: Path) -> Path:
    """What CVAT's "Export task dataset -> Segmentation mask 1.1, Save images" gives after the pre-labels were
    accepted: the uploaded archive's masks and the task's images under JPEGImages/."""
    with zipfile.ZipFile(to_label / "cvat_annotations.zip") as uploaded, zipfile.ZipFile(path, "w") as export:
        for name in uploaded.namelist():
            export.writestr(name, uploaded.read(name))
        for image in sorted((to_label / "images").iterdir()):
            export.write(image, f"JPEGImages/{image.name}")
    return path


def test_the_labelling_pages_loop_runs_as_written(tmp_path, ros_client, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for folder in ("config", "models"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    commands = readme_loop()
    assert [c[0] for c in commands] == ["ros2", "liteseg-mine", "liteseg-train", "liteseg-eval", "ros2"]
    record, mine, train, evaluate, launch = commands
    assert record[:3] == ["ros2", "bag", "record"] and record[-1] == "/camera/image_raw"
    write_mining_bag(tmp_path / record[record.index("-o") + 1], topic=record[-1])
    outputs = {}
    for command in (mine, train, evaluate):
        if command is train:
            cvat_export(tmp_path / "to_label", tmp_path / "export.zip")
        run = subprocess.run([installed_script(command[0]), *command[1:], *FOR_THE_TEST[command[0]]], cwd=tmp_path,
                             capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, f"{' '.join(command)}:\n{run.stderr[-3000:]}"
        outputs[command[0]] = run.stdout
    assert "chose 8" in outputs["liteseg-mine"] and (tmp_path / "to_label" / "report.md").is_file()
    table = outputs["liteseg-eval"]
    assert "| class | 1: models/liteseg_mobilenetv2_synthetic.pt | 2: runs/robot/model_best.pt | difference |" in table
    assert "| drivable |" in table and "| mIoU |" in table
    assert launch[:4] == ["ros2", "launch", "liteseg_ros", "segment.launch.py"]
    arguments = dict(argument.split(":=", 1) for argument in launch[4:])
    assert set(arguments) <= {*PARAMETER_ARGUMENTS, "image_topic"}
    assert 'DeclareLaunchArgument("image_topic"' in (ROOT / "launch" / "segment.launch.py").read_text()
    weights = tmp_path / arguments["weights"].replace("$PWD/", "")
    image = np.asarray(Image.open(sorted((tmp_path / "to_label" / "images").iterdir())[0]))
    mask, log = mask_from_node(ros_client, tmp_path / "node", "/loop", {"weights": weights, "device": "cpu"}, image)
    assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= set(range(5))
    assert f"network input {image.shape[0]}x{image.shape[1]} (the size the weights were trained at)" in log
