"""What ``launch/segment.launch.py`` decides, as plain functions it calls (and the tests call): which launch
arguments override which node parameters and how their text is read, the node's Fast DDS environment, whether
rviz2 can start, its config in a namespace, and when a node's exit ends launch. Imports no ``launch`` (not on PyPI)
and no rclpy, torch or message package: ``ros2 launch`` stays quick."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from liteseg_ros.depth.camera import camera_info_topic
from liteseg_ros.outputs import NODE_NAME
from liteseg_ros.ros.environment import DDS_PROFILE_NAME, DDS_PROFILE_VARIABLES
from liteseg_ros.ros.parameters import PARAMETER_SPECS

PACKAGE = "liteseg_ros"
RVIZ_TOPIC_PREFIX = f"/{NODE_NAME}/"
# Node parameters a launch argument of the same name overrides when it is given (empty: the params file's value).
PARAMETER_ARGUMENTS = ("backbone", "weights", "input_width", "input_height", "device", "precision", "optimize",
                       "class_map", "output_size", "cameras")
__all__ = ["DDS_PROFILE_NAME", "NodeFailed", "PACKAGE", "PARAMETER_ARGUMENTS", "argument_description",
           "camera_info_topic", "dds_environment", "node_exit_handler", "parameter_overrides", "remappings",
           "rviz2_missing", "rviz_config"]


class NodeFailed(RuntimeError):
    """The segmentation node exited with a non-zero status before launch was shutting down."""


def argument_description(name: str) -> str:
    """The launch argument's description: its parameter's, and that empty keeps the params file's value."""
    return f"{PARAMETER_SPECS[name].description} (empty: the params file's value)"


def _cameras(text: str) -> list[str]:
    return [name.strip() for name in text.strip("[]").split(",") if name.strip()]


def parameter_overrides(values: Mapping[str, str]) -> dict[str, Any]:
    """The parameters the given launch argument texts override, typed as their parameters are (ValueError naming the
    argument for a text that is not of its type); empty texts override nothing."""
    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        text = values.get(name, "").strip()
        if not text:
            continue
        default = PARAMETER_SPECS[name].default
        cast: Callable[[str], Any] = _cameras if isinstance(default, list) else type(default)
        try:
            overrides[name] = cast(text)
        except ValueError:
            kind = "a list such as [front, rear]" if isinstance(default, list) else type(default).__name__
            raise ValueError(f"launch argument {name}:={text} must be {kind}") from None
    return overrides


def remappings(image_topic: str, depth_topic: str = "", depth_info_topic: str = "") -> list[tuple[str, str]]:
    """The node's remappings: its ``image`` (and ``image/compressed``) to ``image_topic``; with ``depth_topic``,
    ``depth/image`` to it and ``depth/camera_info`` to ``depth_info_topic`` or the camera_info beside it."""
    pairs = [("image", image_topic), ("image/compressed", f"{image_topic}/compressed")]
    if depth_topic:
        info_topic = depth_info_topic or camera_info_topic(depth_topic)
        pairs += [("depth/image", depth_topic), ("depth/camera_info", info_topic)]
    return pairs


def dds_environment(profile: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The node's Fast DDS profile variable, unless ``profile`` is empty or the environment names a profile."""
    if not profile or any(environ.get(variable) for variable in DDS_PROFILE_VARIABLES):
        return {}
    return {DDS_PROFILE_VARIABLES[0]: profile}


def rviz2_missing() -> str | None:
    """None when rviz2 is installed (the ament index knows it), else the warning to log instead of starting it."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        distro = os.environ.get("ROS_DISTRO") or "<distro>"
        return (f"rviz:=true, but rviz2 is not installed (sudo apt install ros-{distro}-rviz2): "
                "starting the node without rviz2")
    return None


def rviz_config(config: Path, namespace: str) -> str:
    """The rviz config ``config``, with its topics moved into ``namespace`` when there is one (written to a
    temporary file)."""
    if not namespace:
        return str(config)
    text = config.read_text(encoding="utf-8").replace(RVIZ_TOPIC_PREFIX, f"/{namespace}{RVIZ_TOPIC_PREFIX}")
    path = Path(tempfile.gettempdir()) / f"liteseg_{namespace.replace('/', '_')}.rviz"
    path.write_text(text, encoding="utf-8")
    return str(path)


def node_exit_handler() -> Callable[[Any, Any], None]:
    """What launch runs when the segmentation node exits: a non-zero exit before shutdown raises NodeFailed (launch
    turns an exception in an event handler into a shutdown and exit status 1; a Shutdown action would exit 0)."""
    def on_exit(event: Any, context: Any) -> None:
        if event.returncode != 0 and not context.is_shutdown:
            raise NodeFailed(f"{event.process_name} exited with status {event.returncode} (its error is logged "
                             "above): shutting down")
    return on_exit
