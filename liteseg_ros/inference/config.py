"""How a Segmenter is asked to run, as one frozen value: built once (from the node's parameters, a tool's options or
the Python API's keywords) and passed along to the Segmenter, its plan and the tools. What can be checked without the
weights and the machine is checked here; the rest (the device, the input size against the backbone, the
optimisations against the device) by the plan and the source when they see them. Imports no torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.validation import check_frame_size

UPSAMPLE_MODES = ("logits", "mask")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


@dataclass(frozen=True)
class SegmenterConfig:
    """A Segmenter's options (their meaning: :class:`~liteseg_ros.inference.segmenter.Segmenter`)."""

    device: str = "auto"
    precision: str = "auto"
    input_size: tuple[int, int] | None = None  # None: the size the weights were trained at
    overlay_alpha: float = 0.5
    upsample: str = "logits"
    optimize: Any = "auto"
    backbone: str | None = None
    threads: int | None = None
    postprocess_threads: int | None = None
    output_size: Any = None  # None (the image's), "input" (the network's) or (height, width)
    class_map: Any = None  # a class map file or a ClassMap
    cache: Any = True  # True (the default folder), a folder, a NetworkCache, or False
    calibrate: bool = False

    def __post_init__(self) -> None:
        if self.input_size is not None:
            object.__setattr__(self, "input_size", check_frame_size("input_size", self.input_size))
        if isinstance(self.output_size, (list, tuple)):
            object.__setattr__(self, "output_size", check_frame_size("output_size", self.output_size))
        elif self.output_size not in (None, "input"):
            raise ConfigError(f"output_size must be None (the image's size), 'input' or two positive integers "
                              f"(height, width), got {self.output_size!r}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}")
        check_overlay_alpha(self.overlay_alpha)
        if not isinstance(self.calibrate, bool):
            raise ConfigError(f"calibrate must be true or false, got {self.calibrate!r}")
        if isinstance(self.class_map, (str, os.PathLike)) and not str(self.class_map):
            object.__setattr__(self, "class_map", None)

    @classmethod
    def of(cls, config: "SegmenterConfig | None" = None, **keywords: Any) -> "SegmenterConfig":
        """``config`` (default: the defaults) with ``keywords`` in place of its fields; TypeError for a keyword that
        is not one of them."""
        unknown = sorted(set(keywords) - {item.name for item in fields(cls)})
        if unknown:
            raise TypeError(f"unknown Segmenter option(s) {', '.join(unknown)}: choose from "
                            f"{', '.join(item.name for item in fields(cls))}")
        return replace(config or cls(), **keywords)


def check_overlay_alpha(value: Any) -> float:
    """``value`` as an overlay weight in [0, 1]; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"overlay_alpha must be a number in [0, 1], got {value!r}")
    return float(value)
