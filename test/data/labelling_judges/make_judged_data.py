"""Writes the labelling tools' own view of small class masks, for test_labelling_formats.py to hold our files to.

Run it in a venv of its own, never the package's (datumaro pins OpenCV < 5 and pulls pandas / pyarrow):

    python3 -m venv /tmp/judges && /tmp/judges/bin/pip install datumaro==1.13.12 label-studio-sdk==2.1.2
    /tmp/judges/bin/python test/data/labelling_judges/make_judged_data.py test/data/labelling_judges

It imports nothing of liteseg_ros. It writes:
- ``masks.npz``: two class masks (ids of the four classes of ``labelmap.txt`` after background) and, for each, the
  instances given to datumaro (an instance id map, 0 = none);
- ``datumaro_export/``: what datumaro's VOC segmentation exporter (CVAT's "Segmentation mask 1.1") writes for them
  with that label map, and ``datumaro_read.npz``: the class and instance ids datumaro's VOC importer reads back;
- ``label_studio_rle.json``: label-studio-sdk's brush RLE (``mask2rle``) of layers of those masks.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from datumaro.components.annotation import AnnotationType, LabelCategories, Mask, MaskCategories
from datumaro.components.dataset import Dataset
from datumaro.components.dataset_base import DatasetItem
from datumaro.components.media import Image
from label_studio_sdk.converter.brush import mask2rle

LABELS = [("background", (0, 0, 0)), ("road", (128, 64, 128)), ("car", (0, 0, 142)), ("person", (220, 20, 60)),
          ("sky", (70, 130, 180))]


def masks() -> list[tuple[np.ndarray, np.ndarray]]:
    """(class ids of the model, 0..3 = road, car, person, sky; instance ids) per frame."""
    frames = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        classes = np.full((24, 32), 3, dtype=np.uint8)
        classes[12:] = 0
        instances = np.where(classes == 3, 1, 2).astype(np.uint8)  # the rest of sky, of road
        for number in range(2):
            top, left = rng.integers(8, 16), rng.integers(0, 24)
            kind = 1 + number % 2  # a car, a person
            classes[top:top + 6, left:left + 7] = kind
            instances[top:top + 6, left:left + 7] = 3 + number
        frames.append((classes, instances))
    return frames


def main(out: Path) -> None:
    frames = masks()
    np.savez(out / "masks.npz", **{f"classes_{i}": c for i, (c, _) in enumerate(frames)},
             **{f"instances_{i}": n for i, (_, n) in enumerate(frames)})
    labelmap = out / "labelmap.txt"
    lines = [f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in LABELS]
    labelmap.write_text("# label:color_rgb:parts:actions\n" + "".join(lines))
    items = []
    for index, (classes, instances) in enumerate(frames):
        annotations = [Mask(image=instances == instance, label=int(classes[instances == instance][0]) + 1,
                            id=int(instance), group=int(instance), z_order=0)
                       for instance in np.unique(instances) if instance]
        items.append(DatasetItem(id=f"frame_{index}", subset="default", annotations=annotations,
                                 media=Image.from_numpy(np.zeros((24, 32, 3), dtype=np.uint8))))
    categories = {AnnotationType.label: LabelCategories.from_iterable([name for name, _ in LABELS]),
                  AnnotationType.mask: MaskCategories({i: color for i, (_, color) in enumerate(LABELS)})}
    export = out / "datumaro_export"
    shutil.rmtree(export, ignore_errors=True)
    Dataset.from_iterable(items, categories=categories).export(str(export), "voc_segmentation", save_media=False,
                                                               apply_colormap=True, label_map=str(labelmap))
    read = Dataset.import_from(str(export), "voc_segmentation")
    decoded = {}
    for item in read:
        class_ids, instance_ids = np.full((24, 32), 255, np.uint8), np.zeros((24, 32), np.uint8)
        for annotation in item.annotations:
            if annotation.type == AnnotationType.mask:
                class_ids[annotation.image] = annotation.label
                instance_ids[annotation.image] = annotation.group
        decoded[f"{item.id}_labels"], decoded[f"{item.id}_instances"] = class_ids, instance_ids
    np.savez(out / "datumaro_read.npz", **decoded)
    layers = {f"frame_{i}_class_{c}": (classes == c) for i, (classes, _) in enumerate(frames) for c in range(4)}
    vectors = {name: {"rle": mask2rle(np.where(layer, 255, 0).astype(np.uint8)), "shape": list(layer.shape)}
               for name, layer in layers.items()}
    (out / "label_studio_rle.json").write_text(json.dumps(vectors))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
