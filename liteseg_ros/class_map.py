"""Merging a model's classes into the classes a robot publishes, at run time, without retraining. No ROS imports.

A class map is a YAML file::

    classes:            # the published classes, in id order; each merges model classes by name
      - {name: drivable, color: [128, 64, 128], from: [road]}
      - {name: obstacle, color: [220, 20, 60], from: [person, rider, car, truck, bus, motorcycle, bicycle]}
    other: {name: background, color: [0, 0, 0]}   # optional: every model class not listed (last id)

Without ``other`` every model class is listed exactly once. A published class's probability is the sum of its
model classes' probabilities: :func:`merge_logits` turns the network's logits into the log of those sums, so the
merged network is an ordinary network of the published classes (its softmax is exactly the summed
probabilities) and every later stage (resize, argmax, confidence, colours) runs on it unchanged. The merge
follows the network's output: on the CPU that is before LiteSeg's last upsampling (fused with the argmax), on
CUDA after it, so the two devices can differ at a few boundary pixels (0.4 % of a test frame).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from liteseg_ros.classes import ClassSet, parse_color
from liteseg_ros.errors import ClassSetError, first_line


@dataclass(frozen=True)
class ClassMap:
    """The published class set and, for each of its classes, the model class ids it merges."""

    classes: ClassSet
    groups: tuple[tuple[int, ...], ...]
    source: ClassSet
    path: str = ""

    def describe(self) -> str:
        """E.g. ``drivable <- road; obstacle <- person, car`` (the log's start-up line)."""
        return "; ".join(f"{name} <- {', '.join(self.source.names[i] for i in group)}"
                         for name, group in zip(self.classes.names, self.groups))

    def to_dict(self) -> dict:
        """The published classes with the model classes each merges (reports, JSON)."""
        return {"path": self.path, "classes": [
            {"name": name, "color": list(color), "from": [self.source.names[i] for i in group]}
            for name, color, group in zip(self.classes.names, self.classes.colors, self.groups)]}

    @functools.cached_property
    def lookup(self) -> torch.Tensor:
        """256 uint8: published class id of each model class id (255 elsewhere), made once."""
        lut = torch.full((256,), 255, dtype=torch.uint8)
        for target, group in enumerate(self.groups):
            lut[list(group)] = target
        return lut

    def mask(self, model_mask: torch.Tensor) -> torch.Tensor:
        """Model class ids -> published class ids (255 stays 255); for ground truth, not for predictions."""
        return self.lookup[model_mask.long()]


def merge_logits(logits: torch.Tensor, groups: tuple[tuple[int, ...], ...], dim: int = 1) -> torch.Tensor:
    """Logits over model classes -> logits over merged classes: the log-sum-exp of each group's logits along
    ``dim``, whose softmax is the sum of the group's probabilities. Runs on any device and dtype (computed in
    float32 for half precisions)."""
    return LogitMerge(groups, logits.device)(logits, dim)


class LogitMerge:
    """:func:`merge_logits` with its index tensors made once on ``device``, so that a CUDA graph can capture it
    (no host-to-device copy while it runs)."""

    def __init__(self, groups: tuple[tuple[int, ...], ...], device: torch.device | str = "cpu"):
        self.groups = [torch.tensor(group, device=device) for group in groups]

    def __call__(self, logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
        source = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
        merged = [source.index_select(dim, group).logsumexp(dim) for group in self.groups]
        return torch.stack(merged, dim=dim)


def load_class_map(path: str | os.PathLike, source: ClassSet) -> ClassMap:
    """Read and check a class map file against the model's class set ``source``.

    Raises ClassSetError naming the file and the problem (a missing file, bad YAML, a name the model does not
    have, a class listed twice, a missing ``from``, a bad colour, model classes left out without ``other``).
    """
    import yaml

    what = f"class_map {path}"
    try:
        data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClassSetError(f"{what} does not exist; give the path of a class map YAML file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ClassSetError(f"{what} cannot be read: {first_line(error)}") from None
    return parse_class_map(data, source, what, str(path))


def parse_class_map(data: object, source: ClassSet, what: str = "class_map", path: str = "") -> ClassMap:
    """A class map from its parsed YAML ``data``; see :func:`load_class_map`."""
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list) or not data["classes"]:
        raise ClassSetError(f"{what}: needs 'classes:', a list of {{name, color, from}} entries")
    unknown = sorted(set(data) - {"classes", "other"})
    if unknown:
        raise ClassSetError(f"{what}: unknown key(s) {', '.join(unknown)}; a class map has 'classes' and 'other'")
    names, colors, groups = [], [], []
    listed: dict[str, str] = {}
    for position, entry in enumerate(data["classes"]):
        name, color = _name_and_color(entry, f"{what}: entry {position + 1}")
        members = entry.get("from")
        if not isinstance(members, list) or not members:
            raise ClassSetError(f"{what}: class {name!r} needs 'from:', a list of the model's class names")
        for member in members:
            if not isinstance(member, str) or member not in source.names:
                raise ClassSetError(f"{what}: class {name!r} merges {member!r}, which the model does not have; "
                                    f"its classes: {', '.join(source.names)}")
            if member in listed:
                raise ClassSetError(f"{what}: model class {member!r} is listed twice (in {listed[member]!r} and "
                                    f"{name!r})")
            listed[member] = name
        names.append(name)
        colors.append(color)
        groups.append(tuple(source.index(member) for member in members))
    rest = tuple(i for i, name in enumerate(source.names) if name not in listed)
    if data.get("other") is not None:
        name, color = _name_and_color(data["other"], f"{what}: other")
        if rest:
            names.append(name)
            colors.append(color)
            groups.append(rest)
    elif rest:
        raise ClassSetError(f"{what}: model class(es) {', '.join(source.names[i] for i in rest)} are not listed; "
                            f"list every class or add 'other: {{name: ..., color: [r, g, b]}}'")
    try:
        classes = ClassSet(tuple(names), tuple(colors))
    except ClassSetError as error:
        raise ClassSetError(f"{what}: {error}") from None
    return ClassMap(classes=classes, groups=tuple(groups), source=source, path=path)


def _name_and_color(entry: object, what: str) -> tuple[str, tuple[int, int, int]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise ClassSetError(f"{what} needs a 'name' (a non-empty string), got {entry!r}")
    return entry["name"], parse_color(entry.get("color"), f"{what} ({entry['name']!r}): color")
