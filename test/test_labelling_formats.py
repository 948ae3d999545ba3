"""The labelling files held to what the tools' own engines write and read (test/data/labelling_judges, made by its
script with datumaro and label-studio-sdk in a venv of their own): CVAT's "Segmentation mask 1.1" label map, class and
instance masks as datumaro exports them, read back as datumaro reads them; Label Studio's brush RLE byte for byte
as the SDK encodes it, and decoded; the instance rule; the synthetic CVAT export following the same rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ClassSetError
from liteseg_ros.labelling.label_studio import decode_rle, encode_rle, layer_of_rle, mask_rle
from liteseg_ros.labelling.voc import (
    MAX_INSTANCES,
    Labelmap,
    colors_to_ids,
    instance_ids,
    instance_ids_of_image,
    instance_image,
    read_labelmap,
)

JUDGED = Path(__file__).parent / "data" / "labelling_judges"
MODEL_CLASSES = ClassSet(("road", "car", "person", "sky"), ((128, 64, 128), (0, 0, 142), (220, 20, 60), (70, 130, 180)))


@pytest.fixture(scope="module")
def judged():
    masks, read = np.load(JUDGED / "masks.npz"), np.load(JUDGED / "datumaro_read.npz")
    return [(masks[f"classes_{i}"], masks[f"instances_{i}"], read[f"frame_{i}_labels"], read[f"frame_{i}_instances"])
            for i in range(2)]


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


def test_the_label_map_is_datumaros_byte_for_byte():
    assert Labelmap.of(MODEL_CLASSES).text() == (JUDGED / "datumaro_export" / "labelmap.txt").read_text()


def test_class_and_instance_masks_are_the_pixels_datumaro_writes(judged):
    labelmap = Labelmap.of(MODEL_CLASSES)
    for index, (classes, instances, _, _) in enumerate(judged):
        exported = JUDGED / "datumaro_export"
        np.testing.assert_array_equal(labelmap.class_image(classes),
                                      rgb(exported / "SegmentationClass" / f"frame_{index}.png"))
        np.testing.assert_array_equal(instance_image(instances),
                                      rgb(exported / "SegmentationObject" / f"frame_{index}.png"))


def test_datumaros_export_reads_as_datumaro_reads_it(judged):
    exported = JUDGED / "datumaro_export"
    labels = read_labelmap(exported)
    assert labels.names == ("background", "road", "car", "person", "sky")
    for index, (classes, instances, datumaro_labels, datumaro_instances) in enumerate(judged):
        ids, unknown = colors_to_ids(rgb(exported / "SegmentationClass" / f"frame_{index}.png"), labels)
        assert not unknown
        np.testing.assert_array_equal(ids, datumaro_labels)
        np.testing.assert_array_equal(ids, classes + 1)  # background first
        read = instance_ids_of_image(rgb(exported / "SegmentationObject" / f"frame_{index}.png"))
        np.testing.assert_array_equal(read, datumaro_instances)
        np.testing.assert_array_equal(read, instances)


def test_a_black_class_other_than_background_is_refused():
    with pytest.raises(ClassSetError, match="black, the colour CVAT gives the background"):
        Labelmap.of(ClassSet(("road", "tyre"), ((128, 64, 128), (0, 0, 0))))
    robot = ClassSet(("drivable", "background"), ((128, 64, 128), (0, 0, 0)))  # a class map's "other"
    labelmap = Labelmap.of(robot)
    assert labelmap.names == ("background", "drivable") and list(labelmap.label_of_class[:2]) == [1, 0]


def test_instances_cover_every_pixel_one_class_each_objects_apart():
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[10:20, 10:20] = 1  # two cars, far apart: two objects
    mask[10:20, 50:60] = 1
    mask[40, 40] = 1  # a speck: with the rest of its class
    ids = instance_ids(mask)
    assert ids.min() >= 1 and ids.max() <= MAX_INSTANCES
    for instance in np.unique(ids):
        assert len(np.unique(mask[ids == instance])) == 1
    assert ids[15, 15] != ids[15, 55] and ids[40, 40] not in (ids[15, 15], ids[15, 55])
    np.testing.assert_array_equal(instance_ids(mask), ids)  # deterministic
    noisy = np.random.default_rng(0).integers(0, 19, (120, 160)).astype(np.uint8)  # thousands of specks
    many = instance_ids(noisy)
    assert many.min() >= 1 and many.max() <= MAX_INSTANCES
    assert all(len(np.unique(noisy[many == i])) == 1 for i in np.unique(many))


def test_label_studio_rle_is_the_sdks_byte_for_byte_and_decodes_its():
    vectors = json.loads((JUDGED / "label_studio_rle.json").read_text())
    masks = np.load(JUDGED / "masks.npz")
    for name, vector in vectors.items():
        frame, class_id = int(name.split("_")[1]), int(name.split("_")[3])
        layer = masks[f"classes_{frame}"] == class_id
        assert mask_rle(layer) == vector["rle"], name
        np.testing.assert_array_equal(layer_of_rle(vector["rle"], *vector["shape"]), layer)


@pytest.mark.parametrize("values", [np.zeros(1, np.uint8), np.full(2 ** 16 + 1, 9, np.uint8),
                                    np.full(3 * 2 ** 16, 255, np.uint8), np.arange(256, dtype=np.uint8),
                                    np.repeat([0, 255, 0, 7], [300, 8, 17, 1]).astype(np.uint8)])
def test_rle_round_trips_runs_of_every_length(values):
    assert (decode_rle(encode_rle(values)) == values).all()


def test_rle_literal_runs_as_rle_pack_writes_them_decode():
    # a literal run of 3 values (repeat bit 0, 3-bit length 2), as the rle-pack in Label Studio's frontend writes
    bits = f"{3:032b}{7:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16)) + "0" + "00" + "010" + \
        f"{5:08b}{6:08b}{7:08b}"
    bits += "0" * (-len(bits) % 8)
    packed = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_rle(packed).tolist() == [5, 6, 7]
    with pytest.raises(ValueError):
        decode_rle(packed[:-2])


def test_the_synthetic_cvat_export_follows_the_same_rules(tmp_path):
    from liteseg_ros.tools.synthetic.cvat_writer import ROBOT_CLASS_SET, write_cvat_export

    root = write_cvat_export(tmp_path / "cvat", train=2, val=0, height=48, width=64, seed=3).root
    assert (root / "labelmap.txt").read_text() == Labelmap.of(ROBOT_CLASS_SET).text()
    labels = read_labelmap(root)
    for stem in ("train_00000", "train_00001"):
        classes, unknown = colors_to_ids(rgb(root / "SegmentationClass" / f"{stem}.png"), labels)
        instances = instance_ids_of_image(rgb(root / "SegmentationObject" / f"{stem}.png"))
        assert not unknown and instances.min() >= 1  # every labelled pixel is in an instance, as CVAT needs
        assert all(len(np.unique(classes[instances == i])) == 1 for i in np.unique(instances))
