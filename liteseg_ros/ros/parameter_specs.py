"""How a parameter of the segmentation node is written (:class:`ParameterSpec`, :func:`parameter`) and the checks
of its values; the table itself is :class:`liteseg_ros.ros.parameters.NodeConfig`. Imports no rclpy and no torch."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from liteseg_ros.errors import ConfigError
from liteseg_ros.sizes import format_size, parse_size

OUTPUT_MODES = ("auto", "always", "never")
INPUT_TRANSPORTS = ("raw", "compressed")
QOS_RELIABILITIES = ("auto", "reliable", "best_effort")
MAX_INPUT_SIDE = 4096
MAX_QOS_DEPTH = 100
OUTPUT_SIZE_NAMES = ("camera", "network", "depth")


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter, written once: name, default (which also fixes its type), description, range or
    choices, and how its value is checked."""

    name: str
    default: Any
    description: str
    read_only: bool = True
    integer_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[str, Any], Any] | None = None  # (name, value) -> normalised value, or ConfigError
    dynamic_typing: bool = False

    def validate(self, value: Any) -> Any:
        """The normalised value, or ConfigError naming the parameter and what to give."""
        if self.check is not None:
            return self.check(self.name, value)
        if self.integer_range is not None:
            return _integer(self.name, value, *self.integer_range)
        if self.float_range is not None:
            return _number(self.name, value, *self.float_range)
        if self.choices is not None:
            return _choice(self.name, value, self.choices)
        if isinstance(self.default, str) and not isinstance(value, str):
            raise ConfigError(f"parameter {self.name}={value!r} is invalid: give a string")
        return value


def parameter(default: Any, description: str, **spec: Any) -> Any:
    """A :class:`NodeConfig` field that is a ROS parameter (a list default is declared as a string array and held
    as a tuple)."""
    held = tuple(default) if isinstance(default, list) else default
    return field(default=held, metadata={"spec": ParameterSpec("", default, description, **spec)})


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"parameter {name}={value!r} is invalid: choose one of {', '.join(choices)}")
    return value


def check_output_mode(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "always" if value else "never"
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return "always" if value.lower() == "true" else "never"
    return _choice(name, value, OUTPUT_MODES)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"parameter {name}={value!r} is invalid: give an integer in [{low}, {high}]")
    return value


def check_input_side(name: str, value: Any) -> int:
    """0 (the size the weights were trained at) or 32..MAX_INPUT_SIDE pixels."""
    if value != 0 or isinstance(value, bool):
        _integer(name, value, 32, MAX_INPUT_SIDE)
    return value


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ConfigError(f"parameter {name}={value!r} is invalid: give a number in [{low}, {high}]")
    return float(value)


def check_camera_names(name: str, value: Any) -> tuple[str, ...]:
    """The ``cameras`` names: distinct ROS name tokens (letters, digits, underscores; not starting with a digit)."""
    names = tuple(value or ())  # an empty list in a params file arrives as "not set"
    for camera in names:
        if not isinstance(camera, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", camera):
            raise ConfigError(f"parameter {name} has an invalid name {camera!r}: use letters, digits and "
                              "underscores, e.g. cameras:=[front, rear]")
    if len(set(names)) != len(names):
        raise ConfigError(f"parameter {name}={list(names)} names a camera twice")
    return names


def check_output_size(name: str, value: Any) -> str:
    """``camera``, ``network``, ``depth`` or HEIGHTxWIDTH (each side 1..MAX_INPUT_SIDE)."""
    if isinstance(value, str) and value in OUTPUT_SIZE_NAMES:
        return value
    try:
        return format_size(parse_size(value, MAX_INPUT_SIDE))
    except ValueError:
        raise ConfigError(f"parameter {name}={value!r} is invalid: give {', '.join(OUTPUT_SIZE_NAMES)} or "
                          f"HEIGHTxWIDTH (e.g. 360x640, sides 1..{MAX_INPUT_SIDE})") from None


def check_class_names(name: str, value: Any) -> tuple[str, ...]:
    """Distinct class names (checked against the published class set once the model is loaded)."""
    names = tuple(value or ())
    if not all(isinstance(item, str) and item for item in names) or len(set(names)) != len(names):
        raise ConfigError(f"parameter {name}={list(names)!r} is invalid: give distinct class names, e.g. "
                          f"{name}:='[person, car]'")
    return names


def check_class_map(name: str, value: Any) -> str:
    """A class map path (checked against the model when the Segmenter is built) or "" for none."""
    if not isinstance(value, str):
        raise ConfigError(f"parameter {name} must be a file path or empty, got {value!r}")
    if value and not Path(value).expanduser().is_file():
        raise ConfigError(f"parameter {name}={value!r}: no such file; give the path of a class map YAML file")
    return value


def check_backbone(name: str, value: Any) -> str:
    from liteseg_ros.model.liteseg import BACKBONES

    return _choice(name, value, BACKBONES)


def check_optimize(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"parameter {name}={value!r} is invalid: give a string")
    if value not in ("auto", "none"):
        from liteseg_ros.inference.optimize import parse_option_list

        parse_option_list(value).validate()  # names and combinations; the device is checked by the Segmenter
    return value


def check_boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"parameter {name}={value!r} is invalid: give true or false")
    return value


OUTPUT_SWITCH_TEXT = (
    "'auto': computed and published only while the topic has subscribers; 'always'; "
    "'never' (the topic is not advertised). Booleans are accepted: true = always, false = never."
)
