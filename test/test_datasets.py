"""Cityscapes reader: pairing, labelId -> trainId mapping and start-up errors on tiny trees."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.datasets import CityscapesDataset, scan_split
from liteseg_ros.errors import DatasetError
from liteseg_ros.labels import ID_TO_TRAIN_ID, LABEL_BY_NAME

H, W = 6, 8


def write_frame(root: Path, split: str, city: str, index: int, rng: np.random.Generator,
                annotations=("gtFine",)) -> str:
    """One image and its labelId files; returns the frame name."""
    frame = f"{city}_{index:06d}_000019"
    image_dir = root / "leftImg8bit" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(image_dir / f"{frame}_leftImg8bit.png")
    for annotation in annotations:
        label_dir = root / annotation / split / city
        label_dir.mkdir(parents=True, exist_ok=True)
        ids = rng.integers(0, 34, (H, W), dtype=np.uint8)  # all labelIds, ignored ones included
        Image.fromarray(ids).save(label_dir / f"{frame}_{annotation}_labelIds.png")
    return frame


@pytest.fixture
def tree(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_frame(tmp_path, "train", "aachen", i, rng, ("gtFine", "gtCoarse"))
    write_frame(tmp_path, "train", "bremen", 0, rng, ("gtFine", "gtCoarse"))
    for i in range(2):
        write_frame(tmp_path, "val", "frankfurt", i, rng)
    write_frame(tmp_path, "train_extra", "erlangen", 0, rng, ("gtCoarse",))
    return tmp_path


def test_scan_split_pairs_images_with_labels(tree):
    samples = scan_split(tree, "train")
    assert [s.frame for s in samples] == [
        "aachen_000000_000019", "aachen_000001_000019", "aachen_000002_000019", "bremen_000000_000019"]
    first = samples[0]
    assert first.image == tree / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    assert first.label == tree / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"
    assert len(scan_split(tree, "val")) == 2


def test_dataset_returns_rgb_and_train_ids(tree):
    dataset = CityscapesDataset(tree, "train")
    assert len(dataset) == 4
    image, label = dataset[1]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert label.shape == (H, W) and label.dtype == np.uint8
    stored = np.asarray(Image.open(dataset.samples[1].label))
    np.testing.assert_array_equal(label, ID_TO_TRAIN_ID[stored])
    np.testing.assert_array_equal(image, np.asarray(Image.open(dataset.samples[1].image)))
    values = set(np.unique(np.concatenate([dataset[i][1].ravel() for i in range(len(dataset))])).tolist())
    assert values <= set(range(19)) | {255}
    assert 255 in values
    road = LABEL_BY_NAME["road"]
    assert ID_TO_TRAIN_ID[road.id] == road.train_id == 0


def test_coarse_train_plus_extra_and_transform(tree):
    dataset = CityscapesDataset(tree, ["train", "train_extra"], annotation="gtCoarse",
                                transform=lambda image, label: (image.shape, int(label.max())))
    assert len(dataset) == 5
    assert dataset.samples[-1].label.name == "erlangen_000000_000019_gtCoarse_labelIds.png"
    shape, top = dataset[4]
    assert shape == (H, W, 3) and top <= 255


def test_wrong_root_is_refused(tree):
    with pytest.raises(DatasetError, match="no leftImg8bit/"):
        scan_split(tree / "gtFine", "train")
    with pytest.raises(DatasetError, match="does not exist"):
        scan_split(tree / "nowhere", "train")


def test_missing_or_empty_split_is_refused(tree):
    with pytest.raises(DatasetError, match=r"split 'test' not found.*present: train, train_extra, val"):
        scan_split(tree, "test")
    (tree / "leftImg8bit" / "test" / "berlin").mkdir(parents=True)
    with pytest.raises(DatasetError, match="split 'test' is empty"):
        scan_split(tree, "test")


def test_missing_labels_are_listed(tree):
    rng = np.random.default_rng(1)
    for i in range(12):  # images whose labels were never written
        write_frame(tree, "val", "lindau", i, rng, annotations=())
    with pytest.raises(DatasetError) as error:
        scan_split(tree, "val")
    message = str(error.value)
    assert "12 of 14 images of split 'val' have no gtFine label" in message
    assert "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png" in message
    assert "lindau_000009_000019" in message and "lindau_000010_000019" not in message
    assert "and 2 more" in message


def test_annotation_without_split_says_so(tree):
    with pytest.raises(DatasetError, match="gtFine has no 'train_extra' split"):
        scan_split(tree, "train_extra")
    with pytest.raises(DatasetError, match="unknown annotation"):
        scan_split(tree, "train", annotation="gtMedium")


def test_unreadable_label_names_the_file(tree):
    dataset = CityscapesDataset(tree, "val")
    dataset.samples[0].label.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read label image .*frankfurt_000000_000019"):
        dataset[0]


def test_synthetic_tree_reads_back(tmp_path):
    from liteseg_ros.tools.synthetic import write_cityscapes_tree

    root = tmp_path / "synth"
    write_cityscapes_tree(root, train=2, val=1, height=32, width=64, seed=3, coarse=True, extra=1)
    assert len(CityscapesDataset(root, "val")) == 1
    fine = CityscapesDataset(root, "train")
    coarse = CityscapesDataset(root, ["train", "train_extra"], annotation="gtCoarse")
    assert len(fine) == 2 and len(coarse) == 3
    for dataset in (fine, coarse):
        for index in range(len(dataset)):
            image, label = dataset[index]
            assert image.shape == (32, 64, 3) and image.dtype == np.uint8
            assert label.shape == (32, 64) and label.dtype == np.uint8
            assert set(np.unique(label).tolist()) <= set(range(19)) | {255}
    _, fine_label = fine[0]
    assert len(set(np.unique(fine_label).tolist()) - {255}) >= 2  # a street scene, not one flat class
    with pytest.raises(DatasetError, match="gtFine has no 'train_extra' split"):
        scan_split(root, ["train", "train_extra"])
