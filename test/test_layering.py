"""The layers: checked in fresh interpreters, outside ``liteseg_ros.ros`` no module imports rclpy, a ROS message
package or rosbags, and ``from liteseg_ros import Segmenter`` pulls in none of them; read from the source, no import
cycle between modules or rooms, and imports run down the layers docs/ARCHITECTURE.md states."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

from import_graph import cycles, import_edges, module_files, room_edges, room_of

from conftest import installed_script

ROOT = Path(__file__).resolve().parent.parent
ROS_PACKAGE = "liteseg_ros.ros"
# modules whose import would pull in optional packages the layering does not concern (checked where installed)
CHECK = """
import importlib, json, sys
def ros_modules():
    return sorted(n for n in sys.modules if n.split('.')[0] in ('rclpy', 'rosbags', 'launch', 'launch_ros')
                  or n.split('.')[0].endswith('_msgs'))
found = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except ImportError as error:  # an optional dependency of a tool (e.g. matplotlib): not a layering question
        optional = isinstance(error, ModuleNotFoundError) and not (error.name or '').startswith('liteseg_ros')
        found[name] = ('skipped: ' if optional else 'broken: ') + str(error)
        continue
    if ros_modules():
        found[name] = ros_modules()
        break
print(json.dumps(found))
"""


def core_modules() -> list[str]:
    """Every module of the package outside liteseg_ros.ros (training/ is installed as liteseg_ros.training)."""
    import liteseg_ros.training

    names = []
    for package, prefix in ((liteseg_ros, "liteseg_ros."), (liteseg_ros.training, "liteseg_ros.training.")):
        names += [info.name for info in pkgutil.walk_packages(package.__path__, prefix)
                  if not info.name.startswith(ROS_PACKAGE)]
    return sorted(set(names))


def test_no_module_outside_the_ros_package_imports_ros():
    modules = core_modules()
    assert "liteseg_ros.inference.segmenter" in modules and "liteseg_ros.replay.offline" in modules
    assert "liteseg_ros.training.train" in modules and "liteseg_ros.tools.cli.replay" in modules
    run = subprocess.run([sys.executable, "-c", CHECK, json.dumps(modules)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    offenders = {name: value for name, value in found.items() if not isinstance(value, str)}
    assert offenders == {}, f"ROS imported outside liteseg_ros.ros: {offenders}"
    broken = {name: value for name, value in found.items() if isinstance(value, str) and value.startswith("broken")}
    assert broken == {}, f"modules that do not import (a name moved?): {broken}"


def test_the_public_entry_point_imports_no_ros():
    code = ("import sys; from liteseg_ros import Segmenter, SegmentationResult; "
            "tops = {n.split('.')[0] for n in sys.modules}; "
            "print(Segmenter.__module__, sorted(t for t in tops if t in ('rclpy', 'rosbags') or t.endswith('_msgs')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["liteseg_ros.inference.segmenter", "[]"]


def test_the_ros_package_is_where_ros_is_imported():
    """The check above can fail: importing the node module does pull rclpy in."""
    run = subprocess.run([sys.executable, "-c", CHECK, json.dumps(["liteseg_ros.ros.node"])], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert "rclpy" in json.loads(run.stdout)["liteseg_ros.ros.node"]


def test_training_is_installed_under_the_package_namespace(tmp_path):
    """Outside the source tree, ``import training`` fails (no top-level package to collide with another
    project's), while the training tools work from liteseg_ros.training."""
    collide = subprocess.run([sys.executable, "-c", "import training"], capture_output=True, text=True, cwd=tmp_path)
    assert collide.returncode != 0 and "No module named 'training'" in collide.stderr
    for tool in ("liteseg-train", "liteseg-eval"):
        run = subprocess.run([str(installed_script(tool)), "--help"], capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 0 and f"usage: {tool}" in run.stdout, run.stderr


def test_the_node_runs_without_the_tools_and_the_synthetic_renderer(tmp_path):
    """What a robot runs (the nodes, a Segmenter segmenting a frame) imports nothing of liteseg_ros.tools (the
    command-line tools and the synthetic street renderer, installed beside it for users who try the road without
    data), of the training package, nor the ONNX exporter."""
    code = (
        "import sys, numpy as np\n"
        "import liteseg_ros.ros.node, liteseg_ros.ros.lifecycle_node\n"
        "from liteseg_ros.inference.segmenter import Segmenter\n"
        "from liteseg_ros.model.bundled import bundled_model_path\n"
        "segmenter = Segmenter(bundled_model_path(), device='cpu', calibrate=True)\n"
        "segmenter.segment(np.zeros((360, 640, 3), np.uint8))\n"
        "print(sorted(n for n in sys.modules if n.startswith(('liteseg_ros.tools', 'liteseg_ros.training', "
        "'torch.onnx', 'onnx.'))))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"


def architecture_layers() -> list[list[str]]:
    """The rooms of each layer of docs/ARCHITECTURE.md's layer table, top layer first."""
    lines = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| layer | rooms | imports ROS |")
    layers = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cell = line.split("|")[2]
        layers.append([name for name in re.findall(r"`([^`]+)`", cell)
                       if name.startswith(("liteseg_ros/", "training/")) and name.endswith(("/", ".py"))])
    return layers


def test_no_import_cycle_between_modules_or_rooms():
    """Counting the imports inside functions: no module imports itself around a circle, nor does a room."""
    files = module_files()
    edges = import_edges(files)
    assert "liteseg_ros.inference.cache" in edges["liteseg_ros.inference.networks"]  # the graph is read
    assert cycles(edges) == []
    rooms = room_edges(edges, files)
    assert "liteseg_ros/inference/" in rooms["liteseg_ros/ros/"] and cycles(rooms) == [], {
        room: {target: why[:3] for target, why in targets.items()} for room, targets in rooms.items()}


def test_cycle_detection_finds_a_circle_around_three_modules():
    """The check above can fail: a circle a -> b -> c -> a and one between two rooms are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    files = {"liteseg_ros.datasets.x": Path("x.py"), "liteseg_ros.labelling.y": Path("y.py")}
    rooms = room_edges({"liteseg_ros.datasets.x": {"liteseg_ros.labelling.y"},
                        "liteseg_ros.labelling.y": {"liteseg_ros.datasets.x"}}, files)
    assert cycles(rooms) == [["liteseg_ros/datasets/", "liteseg_ros/labelling/"]]


def test_imports_run_down_the_layers_the_architecture_page_states():
    """Every room is in one layer of docs/ARCHITECTURE.md's table, and every import goes to its own layer or a
    lower one."""
    files = module_files()
    layers = architecture_layers()
    layer_of = {room: number for number, rooms in enumerate(layers) for room in rooms}
    present = {room_of(module, files) for module in files}
    assert len(layer_of) == sum(len(rooms) for rooms in layers), "a room is named in two layers"
    assert present == set(layer_of), (sorted(present - set(layer_of)), sorted(set(layer_of) - present))
    upward = {(a, b): why[:2] for a, targets in room_edges(import_edges(files), files).items()
              for b, why in targets.items() if layer_of[b] < layer_of[a]}
    assert upward == {}, upward
