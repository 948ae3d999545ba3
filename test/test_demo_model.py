"""The bundled demo model meets its target on the model card's held-out set: class mIoU >= 0.85 on 100
synthetic val frames of seed 2 (a seed it never trained on), 360x640, full label resolution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liteseg_ros.model import load_checkpoint
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import write_cityscapes_tree
from liteseg_ros.training.evaluate import evaluate_model

ROOT = Path(__file__).resolve().parent.parent
TARGET_MIOU = 0.85


def card_miou() -> float:
    """The class mIoU the model card states for this evaluation."""
    card = (ROOT / "models" / "README.md").read_text()
    return float(re.search(r"full\s+label resolution with `liteseg-eval`.*?: \*\*([0-9.]+)\*\*", card, re.S).group(1))


@pytest.fixture(scope="module")
def held_out_scores(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    write_cityscapes_tree(root, train=0, val=100, height=360, width=640, seed=2, coarse=False)
    return evaluate_model(str(bundled_model_path()), str(root), "val", device="cpu").scores()


def test_bundled_model_reaches_the_target_on_unseen_frames(held_out_scores):
    assert held_out_scores.frames == 100
    assert held_out_scores.miou >= TARGET_MIOU
    assert held_out_scores.miou == pytest.approx(card_miou(), abs=0.0015)  # the card's number, rounded to 3 digits
    scored = {name: iou for name, iou in held_out_scores.per_class.items() if iou is not None}
    assert len(scored) == 19 and min(scored.values()) > 0.6  # every class present, none left behind


def test_bundled_model_metadata_matches_the_node_defaults():
    _, meta = load_checkpoint(bundled_model_path())
    assert meta.backbone == "mobilenetv2" and meta.num_classes == 19 and meta.input_size == (360, 640)
    assert bundled_model_path().stat().st_size < 10_000_000
