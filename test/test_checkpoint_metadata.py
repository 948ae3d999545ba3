"""A checkpoint's own normalisation (mean/std in its metadata) is used by every caller: the node, liteseg-eval
and Segmenter(path) give the same masks, and a Segmenter that ignores the metadata gives others."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import label_ids_to_train_ids
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model import CheckpointMeta, load_weights, save_checkpoint
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import render_scene, write_cityscapes_tree

from conftest import installed_script, mask_from_node

SIZE = (128, 256)


@pytest.fixture(scope="module")
def half_stats_checkpoint(tmp_path_factory):
    """The bundled (trained) model saved with mean = std = (0.5, 0.5, 0.5) in its metadata."""
    model, meta = load_weights(bundled_model_path())
    path = tmp_path_factory.mktemp("meta") / "liteseg_mobilenetv2_half.pt"
    save_checkpoint(path, model, CheckpointMeta.for_model(model, mean=(0.5,) * 3, std=(0.5,) * 3))
    return path


def test_a_weights_file_uses_its_metadata_and_ignoring_it_changes_the_masks(half_stats_checkpoint):
    image = render_scene(8, *SIZE)[0]
    ours = Segmenter(half_stats_checkpoint, backbone="mobilenetv2", device="cpu", input_size=SIZE)
    model, _ = load_weights(half_stats_checkpoint)
    ignoring = Segmenter(model, device="cpu", input_size=SIZE)  # a bare module: ImageNet statistics
    assert np.mean(ours.segment(image).mask != ignoring.segment(image).mask) > 0.01


@pytest.mark.ros
def test_the_node_gives_the_weights_files_masks(half_stats_checkpoint, ros_client, tmp_path):
    image = render_scene(9, *SIZE)[0]
    expected = Segmenter(half_stats_checkpoint, device="cpu", input_size=SIZE).segment(image).mask
    mask, _ = mask_from_node(ros_client, tmp_path, "/meta", {"weights": str(half_stats_checkpoint), "device": "cpu",
                                                             "input_height": SIZE[0], "input_width": SIZE[1]}, image)
    assert np.mean(mask == expected) >= 0.999


def test_liteseg_eval_scores_the_weights_files_masks(half_stats_checkpoint, tmp_path):
    write_cityscapes_tree(tmp_path / "data", train=0, val=2, height=SIZE[0], width=SIZE[1], seed=5)
    run = subprocess.run([installed_script("liteseg-eval"), "--weights", half_stats_checkpoint, "--data",
                          tmp_path / "data", "--input-size", f"{SIZE[0]}x{SIZE[1]}", "--device", "cpu", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    scores = {}
    model, _ = load_weights(half_stats_checkpoint)
    for name, segmenter in (("from_file", Segmenter(half_stats_checkpoint, device="cpu",
                                                                     input_size=SIZE)),
                            ("ignoring", Segmenter(model, device="cpu", input_size=SIZE))):
        matrix = ConfusionMatrix()
        for image_path in sorted((tmp_path / "data" / "leftImg8bit" / "val").rglob("*.png")):
            label_path = str(image_path).replace("leftImg8bit", "gtFine", 1).replace("_leftImg8bit.png",
                                                                                     "_gtFine_labelIds.png")
            from PIL import Image as PILImage

            matrix.update(label_ids_to_train_ids(np.asarray(PILImage.open(label_path))),
                          segmenter.segment(np.asarray(PILImage.open(image_path).convert("RGB"))).mask)
        scores[name] = matrix.scores().miou
    assert json.loads(run.stdout)["miou"] == pytest.approx(scores["from_file"], abs=1e-6)
    assert abs(scores["ignoring"] - scores["from_file"]) > 1e-3
