"""A Label Studio project's JSON export read as a data set: the tasks liteseg-mine wrote, labelled, exported with
"Export -> JSON" and saved beside the mining folder's ``images/`` and ``label_studio_config.xml``::

    to_label/label_studio_config.xml   # the classes: <Label value="road" background="#804080"/> ...
    to_label/images/<name>.png         # the tasks' images (data.image ends with images/<name>.png)
    to_label/<export>.json             # Label Studio's export: tasks with "annotations" (brush RLE results)

It is converted once into the plain layout in the cache (as an archive is unpacked:
:mod:`liteseg_ros.datasets.archives`): ``classes.yaml``, ``images/default``, ``masks/default`` (class ids; pixels
no brush covers are 255, ignored). A task's newest annotation that was not cancelled is used; a task without one is
left out (counted in the log).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import yaml
from PIL import Image

from liteseg_ros.classes import IGNORE_INDEX, ClassSet
from liteseg_ros.errors import DatasetError
from liteseg_ros.labelling.label_studio import layer_of_rle
from liteseg_ros.logs import get_logger

LOG = get_logger(__name__)
CONFIG_NAME = "label_studio_config.xml"


def is_label_studio_export(path: Path) -> bool:
    """A JSON file beside a Label Studio labelling config (as liteseg-mine lays them out)."""
    return path.is_file() and path.suffix == ".json" and (path.parent / CONFIG_NAME).is_file()


def config_classes(path: Path) -> ClassSet:
    """The brush labels of a labelling config, in order, with their colours."""
    try:
        labels = ElementTree.parse(path).getroot().iter("Label")
        entries = [(label.attrib["value"], label.attrib.get("background", "#000000")) for label in labels]
        return ClassSet(tuple(name for name, _ in entries),
                        tuple(tuple(int(color[i:i + 2], 16) for i in (1, 3, 5)) for _, color in entries))
    except (ElementTree.ParseError, KeyError, ValueError, OSError) as error:
        raise DatasetError(f"{path} is not a labelling config with <Label value=... background=#rrggbb>: "
                           f"{error}") from None


def convert(export: Path, target: Path) -> None:
    """Write the plain layout of ``export`` into the new folder ``target``."""
    classes = config_classes(export.parent / CONFIG_NAME)
    try:
        tasks = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"{export} is not Label Studio's JSON export: {error}") from None
    images, masks = target / "images" / "default", target / "masks" / "default"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    (target / "classes.yaml").write_text(yaml.safe_dump({"classes": [
        {"name": name, "color": list(color)} for name, color in zip(classes.names, classes.colors)]}))
    written = 0
    for task in tasks if isinstance(tasks, list) else []:
        annotation = _newest_annotation(task)
        if annotation is None:
            continue
        image_path = _image_path(export.parent, task)
        stem = image_path.stem
        shutil.copyfile(image_path, images / image_path.name)
        Image.fromarray(_mask(annotation, classes, image_path)).save(masks / f"{stem}.png")
        written += 1
    if not written:
        raise DatasetError(f"{export} holds no labelled task (no annotation that was not cancelled)")
    LOG.info("%s: %d labelled tasks of %d", export, written, len(tasks))


def _newest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    done = [a for a in task.get("annotations", []) if not a.get("was_cancelled") and a.get("result")]
    return max(done, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", a.get("id", 0))) if done \
        else None


def _image_path(root: Path, task: dict[str, Any]) -> Path:
    url = str(task.get("data", {}).get("image", ""))
    name = url.rsplit("images/", 1)[-1] if "images/" in url else url.rsplit("/", 1)[-1]
    path = root / "images" / name
    if not name or not path.is_file():
        raise DatasetError(f"the image of task {task.get('id', '?')} ({url}) is not in {root / 'images'}")
    return path


def _mask(annotation: dict[str, Any], classes: ClassSet, image: Path) -> np.ndarray:
    with Image.open(image) as opened:
        width, height = opened.size
    mask = np.full((height, width), IGNORE_INDEX, dtype=np.uint8)
    for result in annotation["result"]:
        value = result.get("value", {})
        if result.get("type") != "brushlabels" or value.get("format", "rle") != "rle":
            continue
        name = (value.get("brushlabels") or [""])[0]
        if name not in classes.names:
            raise DatasetError(f"{image.name}: label {name!r} is not in the labelling config's classes")
        if (result.get("original_height"), result.get("original_width")) != (height, width):
            raise DatasetError(f"{image.name}: a brush of {result.get('original_height')}x"
                               f"{result.get('original_width')} on a {height}x{width} image (HxW)")
        mask[layer_of_rle(value["rle"], height, width)] = classes.names.index(name)
    return mask
