"""liteseg-mine on generated recordings: from a drive of two domains (the street the bundled model knows, the same
streets through a dusk camera) held still for stretches, it chooses frames mostly of the unknown domain and never
two of one view (random picks do not), the same each time; its images are the recorded frames, its CVAT archive and
Label Studio tasks read back to the model's masks; class maps, folders of bags, thinning, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.labelling.label_studio import layer_of_rle
from liteseg_ros.labelling.voc import colors_to_ids, instance_ids_of_image, read_labelmap

from bag_factory import START_NS, image_msg, needs_rosbags, read_bag, write_bag, write_mining_bag
from conftest import installed_script

pytestmark = needs_rosbags
COUNT = 6


def mine(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([installed_script("liteseg-mine"), *map(str, arguments)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    root = tmp_path_factory.mktemp("mine")
    bag, truth = write_mining_bag(root / "drive")
    run = mine(bag, "--topic", "/camera/image_raw", "--count", COUNT, "--out", root / "out")
    assert run.returncode == 0, run.stderr
    return root, bag, truth, run


def rows_of(out: Path) -> list[dict]:
    with (out / "selection.csv").open() as stream:
        return list(csv.DictReader(stream))


def truth_of(row: dict, truth) -> tuple[str, int]:
    return truth[round((int(row["stamp_ns"]) - START_NS) / 1e8)]  # the drive is at 10 Hz from START_NS


def test_the_choice_is_mostly_the_unknown_domain_one_frame_per_view(drive):
    root, _, truth, run = drive
    rows = rows_of(root / "out")
    chosen = [truth_of(row, truth) for row in rows]
    assert len(rows) == COUNT and "chose 6" in run.stdout and "frames/s" in run.stdout
    assert sum(domain == "dusk" for domain, _ in chosen) >= COUNT - 1
    assert len({view for _, view in chosen}) == COUNT  # never two frames of one (still) view
    assert float(rows[0]["uncertainty"]) == max(float(row["uncertainty"]) for row in rows)
    assert rows[0]["distance"] == "" and all(float(row["distance"]) > 0 for row in rows[1:])
    rng = np.random.default_rng(0)  # random picks: how often would they pass the same two checks?
    passing = 0
    for _ in range(2000):
        picked = [truth[i] for i in rng.choice(len(truth), COUNT, replace=False)]
        passing += sum(d == "dusk" for d, _ in picked) >= COUNT - 1 and len({v for _, v in picked}) == COUNT
    assert passing / 2000 < 0.05


def test_the_same_input_gives_the_same_choice(drive, tmp_path):
    root, bag, _, _ = drive
    again = mine(bag, "--topic", "/camera/image_raw", "--count", COUNT, "--out", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "selection.csv").read_text() == (root / "out" / "selection.csv").read_text()
    assert (tmp_path / "again" / "label_studio_tasks.json").read_text() == \
        (root / "out" / "label_studio_tasks.json").read_text()


@pytest.fixture(scope="module")
def model_masks(drive):
    """The bundled model's masks of the chosen images, computed here as the node computes them."""
    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.model.bundled import bundled_model_path

    root = drive[0]
    segmenter = Segmenter(bundled_model_path(), device="cpu")
    return {row["image"][:-4]: segmenter.segment(np.asarray(Image.open(root / "out" / "images" / row["image"])),
                                                 outputs=("mask",)).mask for row in rows_of(root / "out")}


def test_images_are_the_recorded_frames_named_by_bag_and_stamp(drive):
    root, bag, _, _ = drive
    recorded = {m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec: m for _, m in read_bag(bag)["/camera/image_raw"]}
    for row in rows_of(root / "out"):
        assert row["image"] == f"drive_{row['stamp_ns']}.png" and row["bag"] == str(bag)
        assert row["topic"] == "/camera/image_raw" and row["reason"]
        message = recorded[int(row["stamp_ns"])]
        frame = np.asarray(message.data).reshape(message.height, message.width, 3)
        np.testing.assert_array_equal(np.asarray(Image.open(root / "out" / "images" / row["image"])), frame)
        assert (root / "out" / "thumbnails" / f"{row['image'][:-4]}.jpg").is_file()
        assert f"thumbnails/{row['image'][:-4]}.jpg" in (root / "out" / "report.md").read_text()


def test_the_cvat_archive_reads_back_to_the_models_masks(drive, model_masks, tmp_path):
    root = drive[0]
    with zipfile.ZipFile(root / "out" / "cvat_annotations.zip") as archive:
        archive.extractall(tmp_path)
        names = set(archive.namelist())
    stems = sorted(model_masks)
    assert (tmp_path / "ImageSets" / "Segmentation" / "default.txt").read_text().split() == \
        [row["image"][:-4] for row in rows_of(root / "out")]
    assert names == {"labelmap.txt", "ImageSets/Segmentation/default.txt"} | {
        f"Segmentation{kind}/{stem}.png" for stem in stems for kind in ("Class", "Object")}
    labels = read_labelmap(tmp_path)
    assert labels.names[0] == "background" and labels.names[1:4] == ("road", "sidewalk", "building")
    for stem in stems:
        ids, unknown = colors_to_ids(np.asarray(Image.open(tmp_path / "SegmentationClass" / f"{stem}.png")), labels)
        assert not unknown
        np.testing.assert_array_equal(ids, model_masks[stem] + 1)
        instances = instance_ids_of_image(np.asarray(Image.open(tmp_path / "SegmentationObject" / f"{stem}.png")))
        assert instances.min() >= 1 and all(len(np.unique(ids[instances == i])) == 1 for i in np.unique(instances))


def test_label_studio_tasks_hold_the_models_masks_as_predictions(drive, model_masks):
    root = drive[0]
    tasks = json.loads((root / "out" / "label_studio_tasks.json").read_text())
    config = (root / "out" / "label_studio_config.xml").read_text()
    assert '<BrushLabels name="label" toName="image">' in config
    assert '<Label value="road" background="#804080"/>' in config
    for task, row in zip(tasks, rows_of(root / "out")):
        assert task["data"]["image"] == f"/data/local-files/?d=images/{row['image']}"
        mask = model_masks[row["image"][:-4]]
        rebuilt = np.full(mask.shape, 255, dtype=np.uint8)
        for result in task["predictions"][0]["result"]:
            assert (result["type"], result["from_name"], result["to_name"]) == ("brushlabels", "label", "image")
            assert (result["original_height"], result["original_width"]) == mask.shape
            layer = layer_of_rle(result["value"]["rle"], *mask.shape)
            assert not (rebuilt[layer] != 255).any()  # layers do not overlap
            rebuilt[layer] = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                              "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                              "motorcycle", "bicycle"].index(result["value"]["brushlabels"][0])
        np.testing.assert_array_equal(rebuilt, mask)


def write_broken_bag(path: Path) -> Path:
    """Four street frames, the second of an encoding no camera has."""
    from bag_factory import TYPESTORE, Writer, frame, header

    with Writer(path, version=Writer.VERSION_LATEST) as writer:
        connection = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        for index in range(4):
            hdr, ns = header(index)
            msg = image_msg(frame(index, 48, 64)[0], "rgb8", hdr)
            if index == 2:
                msg.encoding = "yuv999"
            writer.write(connection, ns, TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    return path


def test_class_maps_folders_of_bags_thinning_and_bad_input(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    write_bag(folder / "morning", frames=6, gt=False, height=48, width=64)
    write_broken_bag(folder / "evening")
    out = tmp_path / "out"
    run = mine(folder, "--topic", "/camera/image_raw", "--count", 3, "--out", out, "--every", "0.15",
               "--class-map", "config/class_map_robot.yaml")
    assert run.returncode == 0, run.stderr
    assert "1 unreadable" in run.stdout and "yuv999" in run.stderr
    # the first frame of each 0.15 s slot from the bag's start: morning 0, .2, .3, .5 s; evening 0, .3 s (.2 s, the
    # first of its slot, did not decode, and .3 s opens the next slot)
    report = (out / "report.md").read_text()
    assert "read 10 messages" in report
    assert "kept 6 (the first of each 0.15 s slot of the recording), 1 did not decode" in report
    with zipfile.ZipFile(out / "cvat_annotations.zip") as archive:
        assert archive.read("labelmap.txt").decode().splitlines()[1:] == [
            "background:0,0,0::", "drivable:128,64,128::", "walkable:244,35,232::", "obstacle:220,20,60::",
            "structure:70,70,70::"]
    names = [row["image"] for row in rows_of(out)]
    assert len(names) == 3 and all(name.startswith(("morning_", "evening_")) for name in names)
    refused = mine(folder, "--topic", "/camera/image_raw", "--count", 3, "--out", out)
    assert refused.returncode == 2 and "exists: choose a new --out, or --force" in refused.stderr
    replaced = mine(folder / "morning", "--topic", "/camera/image_raw", "--count", 1, "--out", out, "--force")
    assert replaced.returncode == 0 and len(rows_of(out)) == 1
    missing = mine(folder / "morning", "--topic", "/nope", "--count", 1, "--out", tmp_path / "x")
    assert missing.returncode == 1, missing.stderr  # no frame at all could be read (issue 34: 1, not 2)
    assert "image topics: /camera/image_raw" in missing.stderr and "morning" in missing.stderr
    assert not (tmp_path / "x").exists() and len(missing.stderr.strip().splitlines()) == 1



def test_label_studios_export_of_the_tasks_reads_as_a_data_set(drive, model_masks, tmp_path, monkeypatch):
    """The tasks as Label Studio exports them once a labeller accepted the predictions (and cancelled one), saved
    beside the mining folder's images and config: a data set of the labelled frames with the model's masks."""
    import shutil

    from liteseg_ros.datasets.folders import detect_layout, open_split

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "to_label"
    shutil.copytree(drive[0] / "out", folder)
    tasks = json.loads((folder / "label_studio_tasks.json").read_text())
    for number, task in enumerate(tasks, 1):
        task["id"] = number
        task["annotations"] = [{"id": number, "result": task["predictions"][0]["result"], "was_cancelled": number == 1,
                                "created_at": "2026-12-05T10:00:00Z"}]
    export = folder / "project-1-at-2026-12-05-10-00.json"
    export.write_text(json.dumps(tasks))
    assert detect_layout(export) == "plain"
    pairs = open_split(export, "train").pairs + open_split(export, "val").pairs
    assert len(pairs) == len(tasks) - 1  # the cancelled one is left out
    dataset = open_split(export, ["train", "val"])
    assert dataset.classes.names[:3] == ("road", "sidewalk", "building")
    for (image, mask), pair in zip(dataset, dataset.pairs):
        np.testing.assert_array_equal(mask, model_masks[pair.stem])
        np.testing.assert_array_equal(image, np.asarray(Image.open(folder / "images" / f"{pair.stem}.png")))
