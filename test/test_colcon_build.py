"""`colcon build` (with and without --symlink-install) installs what a ROS user's `ros2 launch` needs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COLCON = shutil.which("colcon", path=str(BIN)) or shutil.which("colcon")
INSTALLED = [
    "lib/liteseg_ros/segmentation_node", "lib/liteseg_ros/liteseg-replay",
    "share/liteseg_ros/package.xml", "share/liteseg_ros/launch/segment.launch.py",
    "share/liteseg_ros/config/liteseg.yaml", "share/liteseg_ros/config/liteseg.rviz",
    "share/liteseg_ros/models/liteseg_mobilenetv2_synthetic.pt", "share/liteseg_ros/models/README.md",
    "share/ament_index/resource_index/packages/liteseg_ros",
    "lib/liteseg_ros/liteseg-train", "lib/liteseg_ros/segmentation_lifecycle_node",
]


def _copy_tracked_files(target: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)


@pytest.mark.skipif(COLCON is None, reason="colcon is not installed (pip install colcon-common-extensions)")
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout to know the package's files")
@pytest.mark.parametrize("symlink", [False, True], ids=["install", "symlink-install"])
def test_colcon_build_installs_executables_launch_config_and_models(tmp_path, symlink):
    source = tmp_path / "src" / "liteseg_ros"
    _copy_tracked_files(source)
    command = [COLCON, "build", "--packages-select", "liteseg_ros"] + (["--symlink-install"] if symlink else [])
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stdout + run.stderr
    prefix = tmp_path / "install" / "liteseg_ros"
    for relative in INSTALLED:
        assert (prefix / relative).exists(), relative
    site = next(prefix.glob("lib/python3*/site-packages"))
    # The installed package finds its bundled model through the ament index, as `ros2 launch` will.
    probe = subprocess.run(
        [sys.executable, "-c", "from liteseg_ros.model.bundled import bundled_model_path; print(bundled_model_path())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "AMENT_PREFIX_PATH": str(prefix),
            "PYTHONPATH": f"{site}:{tmp_path / 'build' / 'liteseg_ros'}",
        },
    )
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()) == prefix / "share/liteseg_ros/models/liteseg_mobilenetv2_synthetic.pt"
    # training/ is installed as liteseg_ros.training in both modes (setup.py's package_dir)
    python_path = {"PYTHONPATH": f"{site}:{tmp_path / 'build' / 'liteseg_ros'}"}
    train = subprocess.run([str(prefix / "lib/liteseg_ros/liteseg-train"), "--help"], capture_output=True, text=True,
                           cwd=tmp_path, env={**os.environ, **python_path})
    assert train.returncode == 0 and "usage: liteseg-train" in train.stdout, train.stderr
