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
