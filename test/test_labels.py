"""The project's one label table agrees with cityscapesscripts' helpers/labels.py, entry for entry."""

import importlib.util

import numpy as np
import pytest

from liteseg_ros import labels

HAVE_CITYSCAPESSCRIPTS = importlib.util.find_spec("cityscapesscripts") is not None
if HAVE_CITYSCAPESSCRIPTS:
    from cityscapesscripts.helpers import labels as official

pytestmark = pytest.mark.skipif(not HAVE_CITYSCAPESSCRIPTS,
                                reason="cityscapesscripts (a test-only reference) is not installed")


def test_every_label_matches_cityscapesscripts():
    assert len(labels.LABELS) == len(official.labels)
    for ours, theirs in zip(labels.LABELS, official.labels):
        assert (ours.name, ours.id, ours.train_id, ours.category, ours.category_id) == (
            theirs.name, theirs.id, theirs.trainId, theirs.category, theirs.categoryId)
        assert (ours.has_instances, ours.ignore_in_eval, ours.color) == (
            theirs.hasInstances, theirs.ignoreInEval, tuple(theirs.color))


def test_lookup_tables():
    assert labels.CLASS_NAMES[0] == "road" and labels.CLASS_NAMES[18] == "bicycle" and len(labels.CLASS_NAMES) == 19
    ids = np.array([[7, 8, 0], [26, 33, 9]], dtype=np.uint8)
    assert labels.label_ids_to_train_ids(ids).tolist() == [[0, 1, 255], [13, 18, 255]]
    assert labels.train_ids_to_label_ids(np.array([0, 13, 18, 255], dtype=np.uint8)).tolist() == [7, 26, 33, 0]
    assert labels.colorize(np.array([[0, 255]], dtype=np.uint8)).tolist() == [[[128, 64, 128], [0, 0, 0]]]
    assert labels.CATEGORY_NAMES[labels.TRAIN_ID_TO_CATEGORY[11]] == "human"
    for lab in official.labels:
        if 0 <= lab.id < 256:
            assert tuple(labels.ID_PALETTE[lab.id]) == tuple(lab.color)
