"""Class sets travel with their model: checkpoint round trips, old files, inconsistent files, odd names, one class,
and the Segmenter's colours; class maps merge by summed probabilities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from liteseg_ros.class_map import load_class_map, merge_logits, parse_class_map
from liteseg_ros.classes import ClassSet, distinct_colors
from liteseg_ros.errors import ClassSetError, IncompatibleWeightsError
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.labels import CITYSCAPES, CLASS_NAMES
from liteseg_ros.model import CheckpointMeta, build_liteseg, load_checkpoint, load_weights, save_checkpoint
from liteseg_ros.model.weights_io import read_weights_file

ODD = ClassSet(("free space", "straße à", "障害物"), ((1, 2, 3), (4, 5, 6), (7, 8, 9)))


@pytest.mark.parametrize("names, colors, message", [
    ((), (), "1 to 255 classes"),
    (tuple(f"c{i}" for i in range(256)), distinct_colors(256), "1 to 255 classes"),
    (("a", "a"), ((0, 0, 0), (1, 1, 1)), "same name 'a'"),
    (("a", "b"), ((0, 0, 0), (0, 0, 0)), "same colour (0, 0, 0)"),
    (("a",), ((0, 0, 256),), "integers 0..255"),
    (("a", " "), ((0, 0, 0), (1, 1, 1)), "non-empty name"),
])
def test_bad_class_sets_are_one_error_each(names, colors, message):
    with pytest.raises(ClassSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ClassSet(names, colors)


def test_cityscapes_is_a_class_set_of_the_label_table():
    assert CITYSCAPES.names == CLASS_NAMES and CITYSCAPES.colors[0] == (128, 64, 128) and len(CITYSCAPES) == 19
    assert CITYSCAPES.palette()[255].tolist() == [0, 0, 0]


def test_a_checkpoint_carries_its_class_set_and_names_survive_json(tmp_path):
    model = build_liteseg("mobilenetv2", num_classes=3).eval()
    save_checkpoint(tmp_path / "odd.pt", model, CheckpointMeta.for_model(model, classes=ODD))
    _, meta = load_checkpoint(tmp_path / "odd.pt")
    assert meta.classes == ODD
    assert ClassSet.from_dict(json.loads(json.dumps(ODD.to_dict())), "json") == ODD


def test_files_without_colours_read_as_before(tmp_path):
    """Checkpoints written before class colours were stored: Cityscapes names get Cityscapes' colours."""
    model = build_liteseg("mobilenetv2").eval()
    meta = CheckpointMeta.for_model(model)
    meta.class_colors = []
    save_checkpoint(tmp_path / "old.pt", model, meta)
    assert load_checkpoint(tmp_path / "old.pt")[1].classes == CITYSCAPES


def test_a_class_set_that_disagrees_with_the_classifier_is_refused(tmp_path):
    model = build_liteseg("mobilenetv2", num_classes=3).eval()
    save_checkpoint(tmp_path / "odd.pt", model, CheckpointMeta.for_model(model, classes=ODD))
    payload = read_weights_file(tmp_path / "odd.pt")
    payload["meta"]["class_names"] = ["a", "b"]
    payload["meta"]["class_colors"] = [[0, 0, 0], [1, 1, 1]]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(IncompatibleWeightsError, match="names 2 classes but its classifier has 3"):
        load_weights(tmp_path / "bad.pt")
    with pytest.raises(IncompatibleWeightsError):
        save_checkpoint(tmp_path / "never.pt", model, CheckpointMeta.for_model(model, classes=CITYSCAPES))
    assert not (tmp_path / "never.pt").exists()


def test_the_segmenter_colours_with_the_model_class_set(tmp_path):
    model = build_liteseg("mobilenetv2", num_classes=3).eval()
    save_checkpoint(tmp_path / "odd.pt", model, CheckpointMeta.for_model(model, classes=ODD))
    segmenter = Segmenter(tmp_path / "odd.pt", device="cpu", input_size=(64, 96), optimize="none")
    result = segmenter.segment(np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8),
                               outputs=("mask", "color"))
    assert segmenter.classes == ODD
    np.testing.assert_array_equal(result.color, ODD.palette()[result.mask])


class ConstantLogits(nn.Module):
    """A network whose logits are the same at every pixel: 1 x C x h x w."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, x.shape[2], x.shape[3])


def test_one_class_gives_class_0_with_full_confidence():
    segmenter = Segmenter(ConstantLogits([0.3]), device="cpu", input_size=(32, 32), optimize="none")
    result = segmenter.segment(np.zeros((20, 30, 3), np.uint8), outputs=("mask", "confidence"))
    assert segmenter.classes.names == ("class_0",)
    assert (result.mask == 0).all() and (result.confidence == 255).all()


ROBOT_MAP = {"classes": [{"name": "drivable", "color": [128, 64, 128], "from": ["road"]},
                         {"name": "obstacle", "color": [220, 20, 60], "from": ["car", "truck", "bus"]}],
             "other": {"name": "background", "color": [0, 0, 0]}}


def test_the_merged_class_is_the_argmax_of_summed_probabilities_not_a_relabelled_argmax():
    logits = [-5.0] * 19
    logits[CLASS_NAMES.index("road")] = 2.5
    for name in ("car", "truck", "bus"):
        logits[CLASS_NAMES.index(name)] = 2.0
    class_map = parse_class_map(ROBOT_MAP, CITYSCAPES)
    segmenter = Segmenter(ConstantLogits(logits), device="cpu", input_size=(32, 32), optimize="none",
                          class_map=class_map)
    result = segmenter.segment(np.zeros((20, 30, 3), np.uint8), outputs=("mask", "confidence", "color"))
    probabilities = torch.softmax(torch.tensor(logits), 0)
    obstacle = float(sum(probabilities[CLASS_NAMES.index(n)] for n in ("car", "truck", "bus")))
    assert obstacle > float(probabilities[CLASS_NAMES.index("road")])  # while road has the largest logit
    assert (result.mask == 1).all()
    assert (result.confidence == round(obstacle * 255)).all()
    assert (result.color == (220, 20, 60)).all()
    assert segmenter.classes.names == ("drivable", "obstacle", "background")


def test_merged_logits_have_the_summed_probabilities_as_softmax():
    logits = torch.randn(1, 19, 5, 7)
    groups = ((0,), (1, 2, 3), tuple(range(4, 19)))
    merged = merge_logits(logits, groups)
    summed = torch.stack([torch.softmax(logits, 1)[:, list(g)].sum(1) for g in groups], 1)
    torch.testing.assert_close(torch.softmax(merged, 1), summed)


def test_a_class_map_merges_ground_truth_alike():
    class_map = parse_class_map(ROBOT_MAP, CITYSCAPES)
    truth = torch.tensor([[0, 13, 14], [15, 255, 10]], dtype=torch.uint8)  # road car truck / bus ignore sky
    assert class_map.mask(truth).tolist() == [[0, 1, 1], [1, 255, 2]]


@pytest.mark.parametrize("data, message", [
    ({"classes": [{"name": "x", "color": [0, 0, 0], "from": ["runway"]}]}, "'runway', which the model does not"),
    ({"classes": [{"name": "x", "color": [0, 0, 0], "from": ["road"]}]}, "are not listed"),
    ({"classes": [{"name": "x", "color": [0, 0, 0], "from": ["road"]},
                  {"name": "y", "color": [0, 0, 1], "from": ["road"]}], "other": {"name": "z", "color": [1, 1, 1]}},
     "'road' is listed twice"),
    ({"classes": [{"name": "x", "color": [0, 0, 0]}], "other": {"name": "z", "color": [1, 1, 1]}}, "needs 'from:'"),
    ({"classes": [{"name": "x", "color": "red", "from": ["road"]}], "other": {"name": "z", "color": [1, 1, 1]}},
     "integers 0..255"),
    ({"classes": [{"name": "x", "color": [0, 0, 0], "from": ["road"]}], "other": {"name": "x", "color": [1, 1, 1]}},
     "same name 'x'"),
    ({"classes": []}, "needs 'classes:'"),
    ({"classes": [{"name": "x", "color": [0, 0, 0], "from": ["road"]}], "extra": 1}, "unknown key"),
])
def test_bad_class_maps_name_the_problem(data, message):
    with pytest.raises(ClassSetError, match=message):
        parse_class_map(data, CITYSCAPES)


def test_a_class_map_for_another_model_is_refused(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("classes:\n  - {name: x, color: [0, 0, 0], from: [road]}\nother: {name: y, color: [1, 1, 1]}\n")
    with pytest.raises(ClassSetError, match=f"class_map {path}: class 'x' merges 'road', which the model does not"):
        load_class_map(path, ODD)
    with pytest.raises(ClassSetError, match="does not exist"):
        load_class_map(tmp_path / "missing.yaml", ODD)
    (tmp_path / "broken.yaml").write_text("classes: [\n")
    with pytest.raises(ClassSetError, match="cannot be read"):
        load_class_map(tmp_path / "broken.yaml", ODD)
