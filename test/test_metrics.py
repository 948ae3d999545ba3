"""ConfusionMatrix: IoU values computed by hand on tiny label images."""

import numpy as np
import pytest
import torch

from liteseg_ros.errors import ImageError
from liteseg_ros.labels import CATEGORY_NAMES, CLASS_NAMES, LABEL_BY_NAME
from liteseg_ros.metrics import ConfusionMatrix

ROAD, SIDEWALK, BUILDING = 0, 1, 2  # trainIds
IGN = 255

# 2 x 3 images. Pixel by pixel:
#   road->road (TP road) | road->sidewalk (FN road, FP sidewalk) | sidewalk->sidewalk (TP)
#   sidewalk->sidewalk (TP) | ignore->road (nothing) | building->255 (FN building, FP nobody)
GT = np.array([[ROAD, ROAD, SIDEWALK], [SIDEWALK, IGN, BUILDING]], dtype=np.uint8)
PRED = np.array([[ROAD, SIDEWALK, SIDEWALK], [SIDEWALK, ROAD, IGN]], dtype=np.uint8)


def label_id(name: str) -> int:
    return LABEL_BY_NAME[name].id


def check_hand_case(scores):
    assert scores.per_class["road"] == pytest.approx(1 / 2, abs=1e-12)  # tp 1, fn 1, fp 0
    assert scores.per_class["sidewalk"] == pytest.approx(2 / 3, abs=1e-12)  # tp 2, fp 1
    assert scores.per_class["building"] == 0.0  # tp 0, fn 1
    absent = set(CLASS_NAMES) - {"road", "sidewalk", "building"}
    assert all(scores.per_class[name] is None for name in absent)
    assert scores.miou == pytest.approx((1 / 2 + 2 / 3 + 0.0) / 3, abs=1e-12)
    # flat: all 4 flat pixels predicted flat (road<->sidewalk swaps are category hits)
    assert scores.per_category["flat"] == 1.0
    assert scores.per_category["construction"] == 0.0
    assert all(scores.per_category[c] is None for c in CATEGORY_NAMES if c not in ("flat", "construction"))
    assert scores.category_miou == pytest.approx(0.5, abs=1e-12)


def test_train_id_scores_by_hand():
    cm = ConfusionMatrix()
    cm.update(GT, PRED)
    scores = cm.scores()
    check_hand_case(scores)
    assert scores.frames == 1
    assert cm.matrix.sum() == 5  # the ignored pixel is not counted
    assert cm.matrix[BUILDING, 19] == 1  # "other" column


def test_label_id_scores_by_hand():
    road, sidewalk, building = label_id("road"), label_id("sidewalk"), label_id("building")
    gt = np.array([[road, road, sidewalk], [sidewalk, label_id("parking"), building]], dtype=np.uint8)
    pred = np.array([[road, sidewalk, sidewalk], [sidewalk, road, label_id("unlabeled")]], dtype=np.uint8)
    cm = ConfusionMatrix()
    cm.update_label_ids(gt, pred)
    check_hand_case(cm.scores())


def test_predicted_ignored_id_is_fn_not_fp():
    # gt road everywhere; predictions: road, "unlabeled" (0), "parking" (ignored flat id), sidewalk
    gt = np.full((1, 4), label_id("road"), dtype=np.uint8)
    pred = np.array([[label_id("road"), 0, label_id("parking"), label_id("sidewalk")]], dtype=np.uint8)
    cm = ConfusionMatrix()
    cm.update_label_ids(gt, pred)
    scores = cm.scores()
    assert scores.per_class["road"] == pytest.approx(1 / 4)
    assert scores.per_class["sidewalk"] == 0.0  # a FP only: 0 / (0 + 1 + 0)
    assert scores.per_class["building"] is None
    # parking is flat but not evaluated: a miss for the category, as in cityscapesscripts
    assert scores.per_category["flat"] == pytest.approx(2 / 4)
    assert scores.miou == pytest.approx(1 / 8)


def test_ignored_ground_truth_counts_nothing():
    gt = np.array([[IGN, IGN], [IGN, IGN]], dtype=np.uint8)
    cm = ConfusionMatrix()
    cm.update(gt, np.array([[0, 1], [2, 3]], dtype=np.uint8))
    scores = cm.scores()
    assert cm.matrix.sum() == 0
    assert scores.miou is None and scores.category_miou is None
    assert all(v is None for v in scores.per_class.values())
    assert scores.frames == 1


def test_torch_and_numpy_agree_on_batches():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, (3, 17, 23)).astype(np.uint8)
    gt[:, :4] = IGN
    pred = rng.integers(0, 21, (3, 17, 23)).astype(np.uint8)
    pred[0, 0, 0] = IGN
    by_numpy, by_int, by_torch = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    by_numpy.update(gt, pred)  # the uint8 path
    by_int.update(gt.astype(np.int32), pred.astype(np.int64))  # the generic path
    by_torch.update(torch.from_numpy(gt), torch.from_numpy(pred).long())
    np.testing.assert_array_equal(by_numpy.matrix, by_int.matrix)
    np.testing.assert_array_equal(by_numpy.matrix, by_torch.matrix)
    assert by_numpy.frames == by_torch.frames == 3
    assert by_numpy.matrix.sum() == 3 * 13 * 23
    # predictions 19, 20 and 255 are all "other"
    assert by_numpy.matrix[:, 19].sum() == np.count_nonzero(pred[:, 4:] >= 19)


def test_merge_equals_one_pass_and_reset():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 19, (2, 8, 8)).astype(np.uint8)
    pred = rng.integers(0, 19, (2, 8, 8)).astype(np.uint8)
    whole, first, second = ConfusionMatrix(), ConfusionMatrix(), ConfusionMatrix()
    whole.update(gt, pred)
    first.update(gt[0], pred[0])
    second.update(gt[1], pred[1])
    merged = first.merge(second)
    np.testing.assert_array_equal(merged.matrix, whole.matrix)
    assert merged.frames == 2
    assert merged.scores().to_dict() == whole.scores().to_dict()
    merged.reset()
    assert merged.matrix.sum() == 0 and merged.frames == 0
    with pytest.raises(ValueError):
        merged.merge(ConfusionMatrix(3))


def test_to_dict_has_exactly_the_json_fields():
    cm = ConfusionMatrix()
    cm.update(GT, PRED)
    data = cm.scores().to_dict()
    assert set(data) == {"miou", "category_miou", "per_class", "per_category", "frames"}
    assert list(data["per_class"]) == list(CLASS_NAMES)
    assert list(data["per_category"]) == list(CATEGORY_NAMES)


def test_other_class_count_has_no_categories():
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 1, 2, 7]]), np.array([[0, 1, 1, 0]]))  # gt 7 is out of range: ignored
    scores = cm.scores()
    assert scores.per_class == {"class_0": 1.0, "class_1": 0.5, "class_2": 0.0}
    assert scores.per_category == {} and scores.category_miou is None


def test_bad_inputs_are_refused():
    cm = ConfusionMatrix()
    with pytest.raises(ImageError, match="shape"):
        cm.update(GT, PRED[:, :2])
    with pytest.raises(ImageError, match=r"\[200\]"):
        cm.update_label_ids(np.full((2, 2), 7, np.uint8), np.full((2, 2), 200, np.uint8))
    with pytest.raises(ImageError, match="ground truth"):
        cm.update_label_ids(np.full((2, 2), 255, np.uint8), np.full((2, 2), 7, np.uint8))
    assert cm.matrix.sum() == 0 and cm.frames == 0


def test_label_id_path_equals_train_id_path():
    from liteseg_ros.labels import ID_TO_TRAIN_ID

    rng = np.random.default_rng(2)
    gt = rng.integers(0, 34, (2, 9, 11)).astype(np.uint8)
    pred = rng.integers(0, 34, (2, 9, 11)).astype(np.int32)  # e.g. a 32-bit PNG
    by_label_ids, by_train_ids = ConfusionMatrix(), ConfusionMatrix()
    by_label_ids.update_label_ids(gt, pred)
    by_train_ids.update(ID_TO_TRAIN_ID[gt], ID_TO_TRAIN_ID[pred])
    np.testing.assert_array_equal(by_label_ids.matrix, by_train_ids.matrix)
    assert by_label_ids.frames == 2
    assert by_label_ids.matrix[:, 19].sum() > 0  # ignored ids were predicted on evaluated pixels
