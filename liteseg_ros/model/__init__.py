"""The LiteSeg network, its weights formats and its complexity figures."""

from liteseg_ros.model.backbones import BACKBONE_SPECS, BackboneSpec
from liteseg_ros.model.liteseg import (
    ASPP_KINDS,
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LiteSeg,
    LiteSegConfig,
    build_liteseg,
)

__all__ = [
    "ASPP_KINDS", "BACKBONES", "BACKBONE_SPECS", "BackboneSpec", "IMAGENET_MEAN", "IMAGENET_STD",
    "LiteSeg", "LiteSegConfig", "build_liteseg",
]

from liteseg_ros.model.checkpoint import (  # noqa: E402
    CheckpointMeta,
    atomic_torch_save,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from liteseg_ros.model.official import load_official_weights  # noqa: E402

__all__ += [
    "CheckpointMeta",
    "atomic_torch_save",
    "load_checkpoint",
    "load_official_weights",
    "load_weights",
    "save_checkpoint",
]
