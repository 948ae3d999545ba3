"""The bundled demo model meets its target on its held-out set (class mIoU >= 0.85 on 100 synthetic val frames of
seed 2, a seed it never trained on, 360x640, full label resolution), and the figure its metadata states is the one
measured; its INT8 twin was made from it, for its input size, and scores within 0.005 of it."""

from __future__ import annotations

import pytest

from liteseg_ros.inference.cache import file_digest
from liteseg_ros.inference.int8.models import read_quantized_model, twin_path
from liteseg_ros.inference.runners import package_available
from liteseg_ros.model import load_checkpoint
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic import write_cityscapes_tree
from liteseg_ros.training.evaluate import evaluate_model

TARGET_MIOU = 0.85


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    write_cityscapes_tree(root, train=0, val=100, height=360, width=640, seed=2, coarse=False)
    return root


@pytest.fixture(scope="module")
def fp32_scores(held_out):
    return evaluate_model(str(bundled_model_path()), str(held_out), "val", device="cpu", precision="fp32").scores()


def test_bundled_model_reaches_the_target_on_unseen_frames(fp32_scores):
    _, meta = load_checkpoint(bundled_model_path())
    stated = meta.extra["evaluation"]
    assert fp32_scores.frames == 100 and stated["precision"] == "fp32"
    assert fp32_scores.miou >= TARGET_MIOU
    assert fp32_scores.miou == pytest.approx(stated["class_miou"], abs=0.0015)  # the figure the model carries
    assert fp32_scores.category_miou == pytest.approx(stated["category_miou"], abs=0.0015)
    scored = {name: iou for name, iou in fp32_scores.per_class.items() if iou is not None}
    assert len(scored) == 19 and min(scored.values()) > 0.6  # every class present, none left behind


def test_bundled_model_metadata_matches_the_node_defaults():
    _, meta = load_checkpoint(bundled_model_path())
    assert meta.backbone == "mobilenetv2" and meta.num_classes == 19 and meta.input_size == (360, 640)
    assert bundled_model_path().stat().st_size < 10_000_000


@pytest.mark.skipif(not package_available("openvino") and not package_available("onnxruntime"),
                    reason="an INT8 model runs on OpenVINO or onnxruntime")
def test_the_int8_twin_is_the_bundled_models_and_keeps_its_masks(held_out, fp32_scores):
    twin = read_quantized_model(twin_path(bundled_model_path()))
    assert twin.source_digest == file_digest(bundled_model_path()) and twin.input_size == (360, 640)
    assert twin.report["pixel_agreement"] >= 0.99 and twin.report["calibration_frames"] == 64
    int8 = evaluate_model(str(twin.path), str(held_out), "val", device="cpu").scores()
    assert abs(int8.miou - fp32_scores.miou) <= 0.005, (int8.miou, fp32_scores.miou)
