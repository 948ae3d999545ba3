"""Synthetic street scenes: exact Cityscapes layout, label validity, determinism, coarse labels, coverage."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.errors import ConfigError
from liteseg_ros.labels import ID_PALETTE, ID_TO_TRAIN_ID, LABELS, NUM_CLASSES
from liteseg_ros.tools.cli.synth import main as synth_main
from liteseg_ros.tools.synthetic import render_scene, write_cityscapes_tree
from liteseg_ros.tools.synthetic.cityscapes_writer import coarsen, eroded_regions
from liteseg_ros.tools.synthetic.scene import compact_instances

H, W = 64, 128
COUNTS = {"train": 4, "val": 2, "test": 1, "train_extra": 2}
VALID_IDS = {lb.id for lb in LABELS if lb.id >= 0}
INSTANCE_IDS = {lb.id for lb in LABELS if lb.has_instances}
STEM = r"(?P<city>[a-z]+)_(?P<seq>\d{6})_(?P<frame>\d{6})"
PATH_RE = re.compile(
    rf"^(?:leftImg8bit/(?P<isplit>train|val|test|train_extra)/(?P<icity>[a-z]+)/{STEM}_leftImg8bit"
    rf"|(?P<ann>gtFine|gtCoarse)/(?P<split>train|val|test|train_extra)/(?P<lcity>[a-z]+)/"
    rf"(?P<lstem>[a-z]+_\d{{6}}_\d{{6}})_(?P=ann)_(?P<kind>labelIds|color|instanceIds))\.png$"
)


def write(root: Path, seed: int = 7) -> Path:
    write_cityscapes_tree(root, train=COUNTS["train"], val=COUNTS["val"], test=COUNTS["test"],
                          extra=COUNTS["train_extra"], height=H, width=W, seed=seed, coarse=True)
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("tree") / "cityscapes")


def load(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_every_path_has_the_cityscapes_name_and_its_partners(tree: Path) -> None:
    files = tree_bytes(tree)
    images = {}
    for rel in files:
        match = PATH_RE.match(rel)
        assert match, f"not a Cityscapes path: {rel}"
        if match["isplit"]:
            assert match["city"] == match["icity"]
            images[rel] = match
        else:
            assert match["lstem"].startswith(match["lcity"] + "_")
    assert {split: sum(m["isplit"] == split for m in images.values()) for split in COUNTS} == COUNTS
    expected = {"train": ("gtFine", "gtCoarse"), "val": ("gtFine", "gtCoarse"), "test": ("gtFine",),
                "train_extra": ("gtCoarse",)}
    labels = set()
    for rel, m in images.items():
        stem = f"{m['city']}_{m['seq']}_{m['frame']}"
        assert Image.open(tree / rel).size == (W, H) and Image.open(tree / rel).mode == "RGB"
        for ann in expected[m["isplit"]]:
            for kind in ("labelIds", "color", "instanceIds"):
                label = f"{ann}/{m['isplit']}/{m['city']}/{stem}_{ann}_{kind}.png"
                assert label in files, f"{rel} lacks {label}"
                assert Image.open(tree / label).size == (W, H)
                labels.add(label)
    assert len(files) == len(images) + len(labels), "files without an image"


def test_cities_rotate_and_frames_are_numbered_like_cityscapes(tree: Path) -> None:
    names = sorted(p.name for p in (tree / "leftImg8bit" / "train").rglob("*.png"))
    assert names == ["pixelstadt_000000_000019_leftImg8bit.png", "rendermund_000000_000019_leftImg8bit.png",
                     "synthburg_000000_000019_leftImg8bit.png", "synthburg_000001_000019_leftImg8bit.png"]


def test_label_images_hold_valid_ids_in_the_cityscapes_encodings(tree: Path) -> None:
    for path in tree.rglob("*_labelIds.png"):
        image = Image.open(path)
        assert image.mode == "L"
        labels = np.asarray(image)
        assert set(np.unique(labels)) <= VALID_IDS, path
        instances = load(path.with_name(path.name.replace("labelIds", "instanceIds"))).astype(np.int64)
        is_instance = instances >= 1000
        assert np.array_equal(np.where(is_instance, instances // 1000, instances), labels)
        assert set(np.unique(instances[is_instance] // 1000)) <= INSTANCE_IDS
        if "gtFine" in path.parts:  # fine labels give every vehicle / person pixel its instance
            assert not np.isin(instances[~is_instance], list(INSTANCE_IDS)).any()
        color = load(path.with_name(path.name.replace("labelIds", "color")))
        assert color.shape == (H, W, 4)
        assert np.array_equal(color[..., :3], ID_PALETTE[labels]) and (color[..., 3] == 255).all()


def test_instance_png_is_16_bit_and_counts_instances_per_class_from_zero(tree: Path) -> None:
    path = next(tree.glob("gtFine/train/*/*_instanceIds.png"))
    assert Image.open(path).mode in ("I;16", "I")
    values = np.unique(load(path).astype(np.int64))
    for class_id in {v // 1000 for v in values if v >= 1000}:
        ks = sorted(v % 1000 for v in values if v // 1000 == class_id)
        assert ks == list(range(len(ks)))


def test_coarse_labels_are_an_eroded_subset_of_the_fine_ones(tree: Path) -> None:
    for coarse_path in tree.glob("gtCoarse/t*/*/*_labelIds.png"):
        if "train_extra" in coarse_path.parts:
            continue
        fine_path = Path(str(coarse_path).replace("gtCoarse", "gtFine"))
        coarse, fine = load(coarse_path), load(fine_path)
        labelled = coarse != 0
        assert np.array_equal(coarse[labelled], fine[labelled])
        assert labelled.sum() < (fine != 0).sum() * 0.95, "coarse must leave unlabeled borders"
        coarse_inst = load(Path(str(coarse_path).replace("labelIds", "instanceIds")))
        fine_inst = load(Path(str(fine_path).replace("labelIds", "instanceIds")))
        assert np.array_equal(coarse_inst[labelled], fine_inst[labelled])


def test_test_split_labels_are_withheld_like_cityscapes(tree: Path) -> None:
    for path in tree.glob("gtFine/test/*/*_labelIds.png"):
        assert set(np.unique(load(path))) <= {0, 1, 2, 3}


def test_same_seed_same_bytes_other_seed_other_images(tree: Path, tmp_path: Path) -> None:
    again = write(tmp_path / "again")
    assert tree_bytes(again) == tree_bytes(tree)
    other = tree_bytes(write(tmp_path / "other", seed=8))
    ours = tree_bytes(tree)
    images = [rel for rel in ours if rel.startswith("leftImg8bit")]
    assert all(other[rel] != ours[rel] for rel in images)


def test_render_scene_is_deterministic_and_consistent() -> None:
    rgb, labels, instances = render_scene(3, 96, 192)
    assert rgb.shape == (96, 192, 3) and rgb.dtype == np.uint8
    assert labels.shape == (96, 192) and labels.dtype == np.uint8 and instances.dtype == np.int32
    again = render_scene(np.random.default_rng(3), 96, 192)
    assert all(np.array_equal(a, b) for a, b in zip((rgb, labels, instances), again))
    other_rgb, other_labels, _ = render_scene(4, 96, 192)
    assert not np.array_equal(other_labels, labels) and not np.array_equal(other_rgb, rgb)
    assert np.array_equal(np.where(instances >= 1000, instances // 1000, instances), labels)


def test_twenty_frames_cover_the_evaluated_classes_and_the_ignore_path() -> None:
    pixels = np.zeros(256, dtype=np.int64)
    ids_seen: set[int] = set()
    for seed in range(20):
        _, labels, _ = render_scene(seed, 256, 512)
        pixels += np.bincount(ID_TO_TRAIN_ID[labels].ravel(), minlength=256)
        ids_seen |= set(np.unique(labels).tolist())
    covered = int((pixels[:NUM_CLASSES] >= 200).sum())
    assert covered >= 17, f"only {covered} of 19 classes with >= 200 pixels: {pixels[:NUM_CLASSES].tolist()}"
    assert {0, 1, 4, 6} <= ids_seen  # unlabeled, ego vehicle, static, ground: all ignored in training
    assert pixels[255] > 0


def test_same_scene_at_two_sizes_has_the_same_layout() -> None:
    _, small, _ = render_scene(5, 64, 128)
    _, large, _ = render_scene(5, 128, 256)
    agreement = (large[::2, ::2] == small).mean()
    assert agreement > 0.8, agreement


def test_erosion_keeps_only_pixels_whose_square_neighbourhood_is_uniform() -> None:
    values = np.zeros((7, 7), dtype=np.int32)
    values[1:6, 1:6] = 5
    keep = eroded_regions(values, 1)
    expected = np.zeros((7, 7), dtype=bool)
    expected[2:5, 2:5] = True  # the inner 3x3 of the 5x5 square; every ring pixel touches the square
    assert np.array_equal(keep, expected)


def test_coarsen_zeroes_borders_and_drops_no_stuff() -> None:
    labels = np.full((40, 40), 7, dtype=np.uint8)
    labels[:, 20:] = 11
    coarse, instances = coarsen(labels, labels.astype(np.int32), np.random.default_rng(0))
    assert (coarse[:, 19:21] == 0).all()  # radius 1 at 40 rows: one pixel each side of the seam
    assert (coarse[:, :19] == 7).all() and (coarse[:, 21:] == 11).all()
    assert np.array_equal(instances, coarse)


def test_compact_instances_numbers_each_class_from_zero() -> None:
    values = np.array([[26005, 26002, 7], [24003, 26005, 24001]], dtype=np.int32)
    assert compact_instances(values).tolist() == [[26001, 26000, 7], [24001, 26001, 24000]]


def test_writer_refuses_bad_requests_and_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an empty directory"):
        write_cityscapes_tree(tmp_path / "full", train=1, val=0, height=H, width=W, seed=0)
    with pytest.raises(ConfigError, match="coarse"):
        write_cityscapes_tree(tmp_path / "a", train=1, val=0, height=H, width=W, seed=0, coarse=False, extra=1)
    with pytest.raises(ConfigError, match="too small"):
        write_cityscapes_tree(tmp_path / "b", train=1, val=0, height=8, width=8, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        write_cityscapes_tree(tmp_path / "d", train=1, val=0, height=H, width=W, seed=-1)
    with pytest.raises(ConfigError, match="nothing to write"):
        write_cityscapes_tree(tmp_path / "c", train=0, val=0, height=H, width=W, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_writer_fills_an_existing_empty_directory_without_coarse(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = write_cityscapes_tree(tmp_path / "empty", train=1, val=1, height=H, width=W, seed=1, coarse=False)
    assert summary.files == 8 and summary.annotations == {"gtFine": ("train", "val")}
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["gtFine", "leftImg8bit"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_cli_writes_a_tree_and_reports_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    args = ["--out", str(out), "--train", "1", "--val", "1", "--height", str(H), "--width", str(W), "--seed", "7"]
    assert synth_main(args) == 0
    assert "files: 14" in capsys.readouterr().out
    assert len(list(out.rglob("*.png"))) == 14
    assert synth_main(args) == 2
    assert "not an empty directory" in capsys.readouterr().err


def test_cli_creates_missing_parent_folders_and_refuses_a_file_as_one(tmp_path: Path, capsys) -> None:
    """`liteseg-synth --out a/b` (and --bag a/b) create a and write b, as every other writer does."""
    out = tmp_path / "new" / "deeper" / "tree"
    args = ["--train", "1", "--val", "0", "--height", str(H), "--width", str(W), "--seed", "3"]
    assert synth_main(["--out", str(out), *args]) == 0
    assert len(list(out.rglob("*_leftImg8bit.png"))) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["tree"], "no staging folder left beside it"
    bag = tmp_path / "bags" / "today" / "drive"
    assert synth_main(["--bag", str(bag), "--frames", "2", "--height", str(H), "--width", str(W)]) == 0
    assert (bag / "metadata.yaml").is_file() and sorted(p.name for p in bag.parent.iterdir()) == ["drive"]
    (tmp_path / "a_file").write_text("x")
    capsys.readouterr()
    assert synth_main(["--out", str(tmp_path / "a_file" / "tree"), *args]) == 2
    err = capsys.readouterr().err
    assert "cannot create the folder" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "a_file").read_text() == "x"
