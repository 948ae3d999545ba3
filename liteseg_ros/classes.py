"""A model's class set: ids 0..N-1, names and RGB colours, with 255 as the ignore index. No ROS imports.

A class set travels with its model (checkpoint metadata, INT8 models, exports) and everything that shows or
scores a prediction reads it from there: the Segmenter's colour mask, the node's LabelInfo, the metrics' tables.
Cityscapes is one instance (:data:`liteseg_ros.labels.CITYSCAPES`).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liteseg_ros.errors import ClassSetError

IGNORE_INDEX = 255  # "no label" in masks; class ids are 0..254
MAX_CLASSES = 255


@dataclass(frozen=True)
class ClassSet:
    """Class ids 0..N-1 with their names and RGB colours (``colors[i]`` is class i's)."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "colors", tuple(parse_color(c, f"the colour of class {i}")
                                                 for i, c in enumerate(self.colors)))
        check_class_set(self.names, self.colors)

    @classmethod
    def from_names(cls, names: Sequence[str], colors: Sequence[Sequence[int]] | None = None) -> "ClassSet":
        """A class set of ``names``; without ``colors``, distinct generated ones (:func:`distinct_colors`)."""
        return cls(tuple(names), tuple(colors) if colors is not None else distinct_colors(len(names)))

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The id of class ``name``; ClassSetError naming the known classes otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ClassSetError(f"the model has no class {name!r}; its classes: {', '.join(self.names)}") from None

    def palette(self) -> np.ndarray:
        """256 x 3 uint8 RGB indexed by class id (ids without a class, and 255, are black)."""
        palette = np.zeros((256, 3), dtype=np.uint8)
        palette[: len(self)] = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
        return palette

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """H x W class ids -> H x W x 3 uint8 RGB."""
        return self.palette()[mask]

    def to_dict(self) -> dict:
        """``{"names": [...], "colors": [[r, g, b], ...]}`` (JSON and checkpoint metadata)."""
        return {"names": list(self.names), "colors": [list(c) for c in self.colors]}

    @classmethod
    def from_dict(cls, data: dict, what: str) -> "ClassSet":
        """The inverse of :meth:`to_dict`; ClassSetError naming ``what`` for malformed data."""
        if not isinstance(data, dict) or not isinstance(data.get("names"), list):
            raise ClassSetError(f"{what}: a class set needs a list of names")
        try:
            return cls(tuple(data["names"]), tuple(data.get("colors") or distinct_colors(len(data["names"]))))
        except ClassSetError as error:
            raise ClassSetError(f"{what}: {error}") from None


def parse_color(value: object, what: str) -> tuple[int, int, int]:
    """``[r, g, b]`` of integers 0..255 -> a tuple; ClassSetError naming ``what`` otherwise."""
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise ClassSetError(f"{what} must be [r, g, b] with integers 0..255, got {value!r}")
    return int(value[0]), int(value[1]), int(value[2])


def check_class_set(names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> None:
    """ClassSetError for no classes, more than 255, names that are not non-empty strings, duplicate names or
    colours, or as many colours as names."""
    if not 1 <= len(names) <= MAX_CLASSES:
        raise ClassSetError(f"a class set has 1 to {MAX_CLASSES} classes (the mask is uint8, 255 = ignore), "
                            f"got {len(names)}")
    if len(colors) != len(names):
        raise ClassSetError(f"{len(names)} class names but {len(colors)} colours")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ClassSetError(f"class {i} needs a non-empty name, got {name!r}")
    for what, values in (("name", names), ("colour", colors)):
        seen: dict = {}
        for i, value in enumerate(values):
            if value in seen:
                raise ClassSetError(f"classes {seen[value]} and {i} have the same {what} {value!r}")
            seen[value] = i


def distinct_colors(count: int) -> tuple[tuple[int, int, int], ...]:
    """``count`` distinct, well separated RGB colours (golden-ratio hues, alternating brightness)."""
    colors: list[tuple[int, int, int]] = []
    for i in range(count):
        hue = (i * 0.618033988749895) % 1.0
        value = 0.95 if i % 2 == 0 else 0.7
        r, g, b = colorsys.hsv_to_rgb(hue, 0.75, value)
        color = (round(r * 255), round(g * 255), round(b * 255))
        while color in colors:
            color = (color[0], color[1], (color[2] + 1) % 256)
        colors.append(color)
    return tuple(colors)
