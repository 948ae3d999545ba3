"""Your own classes through training and evaluation: a CVAT export fine-tuned from the bundled model with the preset
(new classifier, the labelmap's names and colours in the checkpoints and logs), scored by liteseg-eval; a bad data
set stops liteseg-train before anything is written; liteseg-eval with a class map on the Cityscapes model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from liteseg_ros.class_map import load_class_map
from liteseg_ros.datasets.folders import open_split
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import CITYSCAPES
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model import load_checkpoint
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import write_cityscapes_tree
from liteseg_ros.tools.synthetic.cvat_writer import ROBOT_CLASS_SET, write_cvat_export
from liteseg_ros.training.train import TRAIN_EXTRA_MODULES

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in TRAIN_EXTRA_MODULES),
    reason="training needs the train extra (pip install 'liteseg_ros[train]')",
)

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["data.crop_sizes=[[96,128]]", "data.batch_size=4", "fine.epochs=3", "validation.every=3",
         "runtime.log_every=1", "checkpoint.every_iterations=100"]


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return write_cvat_export(tmp_path_factory.mktemp("cvat") / "robot", train=8, val=3, height=96, width=128,
                             seed=3).root


def cvat_zip(export: Path, path: Path) -> Path:
    """The export as CVAT hands it out: one zip, one subset (default), images included ("Save images")."""
    stems = sorted(p.stem for p in (export / "JPEGImages").iterdir())
    with zipfile.ZipFile(path, "w") as archive:
        for item in sorted(export.rglob("*")):
            if item.is_file() and "ImageSets" not in item.parts:
                archive.write(item, item.relative_to(export).as_posix())
        archive.writestr("ImageSets/Segmentation/default.txt", "\n".join(stems) + "\n")
    return path


@pytest.fixture(scope="module")
def export_zip(tmp_path_factory, export) -> Path:
    return cvat_zip(export, tmp_path_factory.mktemp("zip") / "task_robot-2026_12_05-segmentation mask 1.1.zip")


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, export_zip) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "robot"
    result = run("liteseg_ros.training.train", "--config", str(ROOT / "config" / "train_custom.yaml"), "--data",
                 str(export_zip), "--out", str(out), *SHORT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stderr


def test_fine_tuning_starts_a_new_classifier_and_the_run_carries_the_labelmap(fine_tuned):
    """From CVAT's zip as it comes: its one subset trained on, a fifth of it held out for validation."""
    out, log = fine_tuned
    assert "has one split, default: train takes" in log and "val takes" in log
    assert "new (randomly initialised) tensors, for 5 classes instead of the weights' 19: last_conv.6.weight, " \
           "last_conv.6.bias" in log
    assert "classes (5): background, drivable, building, vegetation, obstacle" in log
    assert "per class: background " in log and "obstacle " in log
    for name in ("model_final.pt", "model_best.pt"):
        model, meta = load_checkpoint(out / name)
        assert meta.classes == ROBOT_CLASS_SET and model.num_classes == 5
    bundled, _ = load_checkpoint(bundled_model_path())
    model, _ = load_checkpoint(out / "model_final.pt")
    assert not torch.equal(model.state_dict()["last_conv.6.weight"][:5].float(),
                           bundled.state_dict()["last_conv.6.weight"][:5].float())
    resolved = (out / "config.yaml").read_text()
    assert "num_classes: 5" in resolved
    record = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "val_miou" in line][-1]
    assert set(record["val_per_class"]) == set(ROBOT_CLASS_SET.names)


@pytest.mark.ros
def test_the_fine_tuned_model_runs_in_the_node_with_the_labelmap(fine_tuned, export, ros_client, tmp_path,
                                                                 vision_msgs_environment):
    """As a ROS client sees it: masks, colour masks and overlays in the labelmap's colours, confidence, and
    LabelInfo with the labelmap's names, from the model liteseg-train wrote."""
    from test_label_info import listen, outputs_from_node

    from liteseg_ros.outputs import OUTPUTS

    weights = fine_tuned[0] / "model_final.pt"
    image = open_split(export, "val")[0][0]
    parameters = {"weights": weights, "device": "cpu"}  # input 0 x 0: the size the model was trained at
    outputs = outputs_from_node(ros_client, tmp_path, "/robot", parameters, image, outputs=OUTPUTS,
                                env=vision_msgs_environment,
                                while_running=lambda: listen("/robot/liteseg/label_info", vision_msgs_environment))
    labels = outputs["while_running"]
    expected = Segmenter(weights, device="cpu").segment(image)
    assert labels["names"] == list(ROBOT_CLASS_SET.names) and "network input 96x128 (the size the weights were " \
        "trained at)" in outputs["log"]
    assert np.mean(outputs["mask"] == expected.mask) >= 0.999 and len(np.unique(outputs["mask"])) > 1
    np.testing.assert_array_equal(outputs["color"], ROBOT_CLASS_SET.palette()[outputs["mask"]])
    same = outputs["mask"] == expected.mask
    np.testing.assert_array_equal(outputs["overlay"][same], expected.overlay[same])
    assert outputs["confidence"].shape == image.shape[:2] and outputs["confidence"].min() >= 255 // 5


def test_liteseg_eval_scores_the_fine_tuned_model_with_its_names(fine_tuned, export):
    """At the size the model was trained at (its metadata), as the node runs it: the mIoU of the node's masks."""
    out, _ = fine_tuned
    result = run("liteseg_ros.training.evaluate", "--weights", str(out / "model_final.pt"), "--data", str(export),
                 "--split", "val", "--device", "cpu", "--precision", "fp32", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert list(scores["per_class"]) == list(ROBOT_CLASS_SET.names) and scores["per_category"] == {}
    assert "network input 96x128" in result.stderr
    segmenter = Segmenter(out / "model_final.pt", device="cpu", precision="fp32")
    assert segmenter.input_size == (96, 128)
    matrix = ConfusionMatrix(segmenter.classes)
    for image, truth in open_split(export, "val"):
        matrix.update(truth, segmenter.segment(image, outputs=("mask",)).mask)
    assert scores["miou"] == pytest.approx(matrix.scores().miou, abs=1e-9)


def test_a_bad_data_set_stops_training_before_anything_is_written(tmp_path, export):
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in export.iterdir():
        (broken / item.name).symlink_to(item)
    (broken / "labelmap.txt").unlink()
    (broken / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ndrivable:128,64,128::\n")
    out = tmp_path / "never"
    result = run("liteseg_ros.training.train", "--config", str(ROOT / "config" / "train_custom.yaml"), "--data",
                 str(broken), "--out", str(out), *SHORT)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "hold values that are not classes of the data set" in errors[0], result.stderr
    assert "(70, 70, 70)" in errors[0] and " px)" in errors[0]
    assert not out.exists()


def test_liteseg_eval_with_a_class_map_scores_the_merged_classes(tmp_path):
    data = tmp_path / "cityscapes"
    write_cityscapes_tree(data, train=0, val=2, height=96, width=192, seed=4, coarse=False)
    class_map = tmp_path / "map.yaml"
    class_map.write_text("classes:\n  - {name: drivable, color: [128, 64, 128], from: [road, sidewalk]}\n"
                         "  - {name: obstacle, color: [220, 20, 60], from: [person, rider, car, truck, bus, train, "
                         "motorcycle, bicycle]}\nother: {name: background, color: [0, 0, 0]}\n")
    result = run("liteseg_ros.training.evaluate", "--weights", str(bundled_model_path()), "--data", str(data),
                 "--device", "cpu", "--precision", "fp32", "--input-size", "96x192", "--class-map", str(class_map),
                 "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert list(scores["per_class"]) == ["drivable", "obstacle", "background"] and scores["per_category"] == {}
    mapping = load_class_map(class_map, CITYSCAPES)
    segmenter = Segmenter(bundled_model_path(), device="cpu", precision="fp32", input_size=(96, 192),
                          class_map=mapping)
    matrix = ConfusionMatrix(mapping.classes)
    for image, truth in open_split(data, "val"):
        merged_truth = mapping.mask(torch.from_numpy(truth)).numpy()
        matrix.update(merged_truth, segmenter.segment(image, outputs=("mask",)).mask)
    assert scores["miou"] == pytest.approx(matrix.scores().miou, abs=1e-9)
    assert scores["miou"] > 0.5 and np.isfinite(scores["miou"])


def test_liteseg_eval_compares_old_and_new_on_the_classes_they_share(fine_tuned, export_zip):
    """The bundled Cityscapes model through the robot class map (old) against the fine-tuned one (new) on CVAT's zip:
    one table on background, drivable and obstacle (what the ground truth and both models name alike); each IoU
    counted here by hand."""
    from liteseg_ros.tools.synthetic.cvat_writer import ROBOT_CLASS_SET as TRUTH

    new = fine_tuned[0] / "model_final.pt"
    arguments = ["liteseg_ros.training.evaluate", "--weights", str(bundled_model_path()), "--weights", str(new),
                 "--data", str(export_zip), "--split", "val", "--device", "cpu", "--precision", "fp32",
                 "--class-map", str(ROOT / "config" / "class_map_robot.yaml")]
    result = run(*arguments, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    shared = ["background", "drivable", "obstacle"]
    assert document["classes"] == shared
    assert document["left_out"] == {"ground truth": ["building", "vegetation"],
                                    str(bundled_model_path()): ["walkable", "structure"], str(new): ["building",
                                                                                                    "vegetation"]}
    old_segmenter = Segmenter(bundled_model_path(), device="cpu", precision="fp32",
                              class_map=ROOT / "config" / "class_map_robot.yaml")
    new_segmenter = Segmenter(new, device="cpu", precision="fp32")
    for entry, segmenter in zip(document["models"], (old_segmenter, new_segmenter)):
        counts = {name: [0, 0] for name in shared}  # intersection, union
        for image, truth in open_split(export_zip, "val"):
            predicted = np.array(segmenter.classes.names, dtype=object)[segmenter.segment(image).mask]
            named = np.array(TRUTH.names, dtype=object)[truth]
            compared = np.isin(named, shared)
            for name in shared:
                counts[name][0] += int(((named == name) & (predicted == name)).sum())
                counts[name][1] += int((((named == name) | (predicted == name)) & compared).sum())
        for name in shared:
            expected = counts[name][0] / counts[name][1] if counts[name][1] else None
            assert entry["per_class"][name] == pytest.approx(expected, abs=1e-12), (entry["weights"], name)
        assert entry["miou"] == pytest.approx(np.mean([v for v in entry["per_class"].values() if v is not None]))
    table = run(*arguments).stdout
    assert "| class | 1: " in table and "| difference |" in table and "| mIoU |" in table
    assert "left out: ground truth: building, vegetation" in table and "class map" in table
