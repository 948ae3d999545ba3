"""The LiteSeg network, its weights formats and its complexity figures.

The names below are imported on first use (PEP 562), so that ``liteseg_ros.model.bundled`` (where the bundled models
are, the default input size) stays light for the node's parameters and the launch file: no torch until a network is
built or a weights file read.
"""

import importlib

_HOMES = {
    "liteseg_ros.model.backbones": ("BACKBONE_SPECS", "BackboneSpec"),
    "liteseg_ros.model.liteseg": ("ASPP_KINDS", "BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD", "LiteSeg",
                                  "LiteSegConfig", "build_liteseg"),
    "liteseg_ros.model.checkpoint": ("CheckpointMeta", "atomic_torch_save", "load_checkpoint", "load_weights",
                                     "save_checkpoint"),
    "liteseg_ros.model.official": ("load_official_weights",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str):
    if name in _HOME_OF:
        return getattr(importlib.import_module(_HOME_OF[name]), name)
    raise AttributeError(f"module 'liteseg_ros.model' has no attribute {name!r}")
