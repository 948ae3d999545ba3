"""The data sets users have: CVAT "Segmentation mask 1.1" / PASCAL VOC and the plain layout, read to exact class ids,
and every layout error caught before training with one message that says what and where."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.datasets.folders import detect_layout, open_split
from liteseg_ros.errors import DatasetError
from liteseg_ros.labelling.voc import VOC_NAMES, voc_palette_color
from liteseg_ros.tools.calibration import read_frames, source_kind
from liteseg_ros.tools.synthetic.cvat_writer import ROBOT_CLASS_SET, write_cvat_export

COLORS = {"background": (0, 0, 0), "floor": (128, 64, 128), "pallet": (250, 170, 30)}
LABELMAP = "# label:color_rgb:parts:actions\nbackground:0,0,0::\nfloor:128,64,128::\npallet:250,170,30::\n"


def truth(height: int = 6, width: int = 8) -> np.ndarray:
    ids = np.zeros((height, width), np.uint8)
    ids[3:, :] = 1
    ids[1:3, 2:5] = 2
    return ids


def write_cvat(root: Path, stems: dict[str, list[str]], labelmap: str = LABELMAP) -> Path:
    """A tiny CVAT export: each stem's mask is truth() in the labelmap's colours."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text(labelmap, encoding="utf-8")
    palette = np.array(list(COLORS.values()), np.uint8)
    for split, names in stems.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for stem in names:
            Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
            Image.fromarray(palette[truth()]).save(root / "SegmentationClass" / f"{stem}.png")
    return root


def write_plain(root: Path, stems: list[str], classes: str | None = None) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "classes.yaml").write_text(classes or "classes:\n  - {name: background, color: [0, 0, 0]}\n"
                                       "  - {name: floor, color: [128, 64, 128]}\n"
                                       "  - {name: pallet, color: [1, 2, 3]}\n")
    for stem in stems:
        Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(root / "images" / "train" / f"{stem}.png")
        mask = truth()
        mask[0, 0] = 255
        Image.fromarray(mask).save(root / "masks" / "train" / f"{stem}.png")
    return root


def test_a_cvat_export_reads_to_the_labelmap_ids(tmp_path):
    root = write_cvat(tmp_path / "cvat", {"train": ["a", "b"], "val": ["c"]})
    dataset = open_split(root, "train")
    assert detect_layout(root) == "voc" and len(dataset) == 2
    assert dataset.classes.names == ("background", "floor", "pallet")
    assert dataset.classes.colors[2] == (250, 170, 30)
    image, mask = dataset[1]
    assert image.shape == (6, 8, 3) and np.array_equal(mask, truth())


def test_the_plain_layout_reads_ids_and_ignore(tmp_path):
    root = write_plain(tmp_path / "plain", ["x", "y", "z"])
    dataset = open_split(root, "train")
    assert detect_layout(root) == "plain" and len(dataset) == 3 and dataset.classes.names[1] == "floor"
    mask = dataset[0][1]
    assert mask[0, 0] == 255 and np.array_equal(mask[1:], truth()[1:])


def test_pascal_voc_palette_masks_without_a_labelmap(tmp_path):
    root = write_cvat(tmp_path / "voc", {"val": ["2007_000032"]})
    (root / "labelmap.txt").unlink()
    indexed = Image.fromarray(np.array([[0, 15, 255], [7, 7, 0]], np.uint8), "P")
    indexed.putpalette([v for i in range(256) for v in voc_palette_color(i)])
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(root / "JPEGImages" / "2007_000032.jpg")
    indexed.save(root / "SegmentationClass" / "2007_000032.png")
    dataset = open_split(root, "val")
    assert dataset.classes.names == VOC_NAMES and dataset.classes.colors[15] == (192, 128, 128)  # person
    assert dataset[0][1].tolist() == [[0, 15, 255], [7, 7, 0]]


def test_the_synthetic_cvat_export_is_a_cvat_export_of_robot_classes(tmp_path):
    summary = write_cvat_export(tmp_path / "deep" / "robot", train=3, val=2, height=48, width=64, seed=5)
    root = summary.root
    assert (root / "labelmap.txt").read_text().splitlines()[:2] == ["# label:color_rgb:parts:actions",
                                                                     "background:0,0,0::"]
    assert sorted(p.name for p in (root / "SegmentationObject").iterdir()) == sorted(
        p.name for p in (root / "SegmentationClass").iterdir())
    train, val = open_split(root, "train"), open_split(root, "val")
    assert train.classes == ROBOT_CLASS_SET and (len(train), len(val)) == (3, 2)
    assert set(np.unique(np.concatenate([train[i][1].ravel() for i in range(3)]))) <= set(range(5))
    with pytest.raises(Exception, match="not an empty directory"):
        write_cvat_export(root, train=1, val=0, height=48, width=64, seed=5)


def _bad_cvat(tmp_path: Path, change) -> Path:
    root = write_cvat(tmp_path / "bad", {"train": ["a", "b", "c"]})
    change(root)
    return root


def _foreign_colour(root: Path) -> None:
    mask = np.array(Image.open(root / "SegmentationClass" / "b.png"))
    mask[0, :3] = (9, 9, 9)
    Image.fromarray(mask).save(root / "SegmentationClass" / "b.png")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


@pytest.mark.parametrize("change, message", [
    (lambda r: (r / "SegmentationClass" / "b.png").unlink(), r"1 stems of .*train.txt without a mask .*: b"),
    (lambda r: (r / "JPEGImages" / "c.jpg").unlink(), r"1 stems of .*train.txt without an image .*: c"),
    (_foreign_colour, r"1 mask\(s\) of split train .* b.png: \(9, 9, 9\) \(3 px\)"),
    (lambda r: Image.fromarray(np.zeros((5, 8, 3), np.uint8)).save(r / "SegmentationClass" / "a.png"),
     r"a.png is 5x8 but its image .*a.jpg is 6x8 \(HxW\)"),
    (lambda r: (r / "ImageSets" / "Segmentation" / "train.txt").write_text("\n"), "is empty"),
    (lambda r: (r / "labelmap.txt").write_text(LABELMAP.replace("pallet:250", "floor:250")), "same name 'floor'"),
    (lambda r: (r / "labelmap.txt").write_text(LABELMAP.replace("250,170,30", "128,64,128")), "same colour"),
    (lambda r: (r / "labelmap.txt").write_text(LABELMAP.replace("background:0,0,0::\n", "")), "no 'background'"),
    (lambda r: (r / "labelmap.txt").write_text(LABELMAP + "broken line\n"), r"labelmap.txt:5: 'broken line'"),
    (lambda r: (r / "labelmap.txt").write_text(LABELMAP + "x:1,2::\n"), r"labelmap.txt:5: 'x:1,2::'"),
    (lambda r: _truncate(r / "JPEGImages" / "a.jpg"), "cannot read image .*a.jpg"),
    (lambda r: _truncate(r / "SegmentationClass" / "c.png"), "cannot read mask .*c.png"),
])
def test_each_cvat_layout_error_is_one_clear_error(tmp_path, change, message):
    root = _bad_cvat(tmp_path, change)
    with pytest.raises(DatasetError, match=message):
        open_split(root, "train")


def test_a_missing_split_lists_the_splits_there_are(tmp_path):
    root = write_cvat(tmp_path / "cvat", {"train": ["a"], "default": ["b"]})
    with pytest.raises(DatasetError, match="splits are default, train"):
        open_split(root, "val")


@pytest.mark.parametrize("change, message", [
    (lambda r: (r / "masks" / "train" / "y.png").unlink(), r"images in .* without a mask .*: y"),
    (lambda r: shutil.copy(r / "masks" / "train" / "x.png", r / "masks" / "train" / "w.png"),
     r"masks in .* without an image .*: w"),
    (lambda r: Image.fromarray(np.full((6, 8), 7, np.uint8)).save(r / "masks" / "train" / "z.png"),
     r"z.png: 7 \(48 px\)"),
    (lambda r: (r / "classes.yaml").write_text("classes:\n" + "".join(
        f"  - {{name: c{i}, color: [{i % 256}, {i // 256}, 0]}}\n" for i in range(300))), "1 to 255 classes"),
    (lambda r: (r / "classes.yaml").write_text("classes: {floor: 1}\n"), "needs 'classes:'"),
])
def test_each_plain_layout_error_is_one_clear_error(tmp_path, change, message):
    root = write_plain(tmp_path / "plain", ["x", "y", "z"])
    change(root)
    with pytest.raises(DatasetError, match=message):
        open_split(root, "train")


def test_an_unknown_folder_says_which_layouts_are_read(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="CVAT / PASCAL VOC export"):
        open_split(tmp_path / "photos", "train")


def zip_of(folder: Path, path: Path, prefix: str = "") -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                archive.write(item, prefix + item.relative_to(folder).as_posix())
    return path


def test_a_zip_reads_as_the_folder_it_holds_unpacked_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = write_cvat(tmp_path / "cvat", {"train": ["a", "b"], "val": ["c"]})
    for archive in (zip_of(root, tmp_path / "export.zip"), zip_of(root, tmp_path / "nested.zip", "export/")):
        dataset = open_split(archive, "train")
        assert detect_layout(archive) == "voc" and dataset.classes.names == ("background", "floor", "pallet")
        assert [pair.stem for pair in dataset.pairs] == ["a", "b"]
        np.testing.assert_array_equal(dataset[0][1], truth())
    unpacked = sorted((tmp_path / "cache" / "liteseg_ros" / "datasets").iterdir())
    assert [p.name.rsplit("-", 1)[0] for p in unpacked] == ["export", "nested"]
    marker = unpacked[0] / ".unpacked"
    stamp = marker.stat().st_mtime_ns
    open_split(tmp_path / "export.zip", "val")
    assert marker.stat().st_mtime_ns == stamp  # found again by its digest, not unpacked again
    assert source_kind(tmp_path / "export.zip") == "dataset"
    frames = list(read_frames(tmp_path / "export.zip", 5))  # what liteseg-quantize --frames export.zip reads
    assert len(frames) == 3 and all(np.array_equal(frame.train_ids, truth()) for frame in frames)


def test_two_ranks_unpacking_one_zip_at_once_both_read_it(tmp_path, monkeypatch):
    """Training ranks open the same export at once: one unpacking lands, the other reads it (neither fails or
    removes the folder the first one is reading)."""
    import threading

    from liteseg_ros.datasets.archives import _unzip, unpacked

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archive = zip_of(write_cvat(tmp_path / "cvat", {"train": ["a"], "val": ["c"]}), tmp_path / "export.zip")
    both_inside = threading.Barrier(2, timeout=30)
    folders, errors = [], []

    def fill(staging):
        _unzip(archive, staging)
        both_inside.wait()

    def rank():
        try:
            folders.append(unpacked(archive, fill))
        except Exception as error:  # noqa: BLE001 - the test reports any failure of either rank
            errors.append(error)

    threads = [threading.Thread(target=rank) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(folders) == 2 and folders[0] == folders[1]
    assert (folders[0] / "labelmap.txt").is_file() and (folders[0] / ".unpacked").is_file()
    assert [p.name for p in (tmp_path / "cache" / "liteseg_ros" / "datasets").iterdir()] == [folders[0].name]


def test_a_zip_member_outside_its_folder_is_refused(tmp_path, monkeypatch):
    import zipfile

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("labelmap.txt", LABELMAP)
        archive.writestr("../outside.txt", "x")
    with pytest.raises(DatasetError, match="outside its folder or a link: not unpacked"):
        open_split(tmp_path / "evil.zip", "train")
    assert not (tmp_path / "cache" / "liteseg_ros" / "outside.txt").exists()
    assert not list((tmp_path / "cache" / "liteseg_ros" / "datasets").glob("evil-*"))


def test_one_split_gives_train_and_val_held_out_by_name(tmp_path):
    stems = [f"frame_{i:03d}" for i in range(20)]
    root = write_cvat(tmp_path / "cvat", {"default": stems})
    train, val = open_split(root, "train"), open_split(root, "val")
    train_stems, val_stems = {p.stem for p in train.pairs}, {p.stem for p in val.pairs}
    assert 1 <= len(val_stems) <= 8 and train_stems | val_stems == set(stems) and not train_stems & val_stems
    grown = write_cvat(tmp_path / "grown", {"default": stems + [f"frame_{i:03d}" for i in range(20, 30)]})
    assert val_stems <= {p.stem for p in open_split(grown, "val").pairs}  # a frame stays on its side
    assert not val_stems & {p.stem for p in open_split(grown, "train").pairs}
    with pytest.raises(DatasetError, match="the data set's splits are default"):
        open_split(root, "test")


def test_a_mistyped_zip_and_annotations_without_images_say_what_they_are(tmp_path, monkeypatch):
    """The messages name what the user gave (not a cache folder) and what to give instead: a zip is no 'folder', and
    CVAT annotations alone (liteseg-mine's pre-labels) need an export with 'Save images'."""
    import zipfile

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetError) as raised:
        open_split(tmp_path / "exprot.zip", "train")
    assert str(raised.value).startswith(f"data set {tmp_path / 'exprot.zip'} does not exist: give a data set folder, "
                                        "its zip") and "folder exprot" not in str(raised.value)
    tree = write_cvat(tmp_path / "tree", {"default": ["a", "b"]})
    shutil.rmtree(tree / "JPEGImages")
    annotations = tmp_path / "cvat_annotations.zip"
    with zipfile.ZipFile(annotations, "w") as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree).as_posix())
    with pytest.raises(DatasetError) as raised:
        open_split(annotations, ["train", "val"])
    message = str(raised.value)
    assert message.startswith(f"{annotations} holds masks but no images (JPEGImages/)") and "'Save images'" in message
    assert str(tmp_path / "cache") not in message
