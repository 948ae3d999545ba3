"""The LiteSeg network and its keyword-only builder."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from liteseg_ros.errors import ConfigError, InputSizeError
from liteseg_ros.labels import NUM_CLASSES
from liteseg_ros.model.backbones import BACKBONE_SPECS, BackboneSpec, build_backbone
from liteseg_ros.model.blocks import (
    DASPP_RATES,
    HEAD_CHANNELS,
    ASPPBranch,
    DASPPBranch,
    decoder_convs,
    head_conv,
    image_pooling,
    upsample,
)

BACKBONES = tuple(BACKBONE_SPECS)
ASPP_KINDS = ("daspp", "aspp")
MIN_INPUT_SIDE = 32
#: ImageNet normalisation of the input (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LiteSegConfig:
    """Everything that defines a LiteSeg architecture (stored in checkpoints)."""

    backbone: str = "mobilenetv2"
    num_classes: int = NUM_CLASSES
    aspp: str = "daspp"  # "daspp" (the paper) or "aspp" (Deeplabv3+-style baseline of Table I)
    separable: bool = True  # depthwise-separable head convolutions (False: the standard-conv ablation of Table II)

    def validate(self) -> "LiteSegConfig":
        """Raise ConfigError naming the bad field; return self when valid."""
        if self.backbone not in BACKBONE_SPECS:
            raise ConfigError(f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONES)}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if self.aspp not in ASPP_KINDS:
            raise ConfigError(f"unknown aspp kind {self.aspp!r}: choose one of {', '.join(ASPP_KINDS)}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def check_input_size(self, height: int, width: int) -> None:
        """Raise InputSizeError when the backbone cannot take an input of this size."""
        spec = BACKBONE_SPECS[self.backbone]
        multiple = spec.size_multiple
        if height < MIN_INPUT_SIDE or width < MIN_INPUT_SIDE:
            raise InputSizeError(f"input {height}x{width} is too small: both sides must be at least {MIN_INPUT_SIDE}")
        if height % multiple or width % multiple:
            raise InputSizeError(
                f"{spec.name} needs input sides that are multiples of {multiple} "
                f"({spec.recommended_multiple} recommended), got {height}x{width}; "
                f"try {round(height / multiple) * multiple}x{round(width / multiple) * multiple}"
            )


class LiteSeg(nn.Module):
    """LiteSeg: backbone -> (D)ASPP with short residual -> decoder with long residual -> full-size logits.

    ``forward(x)`` takes N x 3 x H x W ImageNet-normalised RGB and returns N x num_classes x H x W logits.
    """

    def __init__(self, config: LiteSegConfig):
        super().__init__()
        self.config = config.validate()
        self.spec: BackboneSpec = BACKBONE_SPECS[config.backbone]
        spec, separable = self.spec, config.separable
        self.add_module(spec.attribute, build_backbone(spec.name))
        branch = DASPPBranch if config.aspp == "daspp" else ASPPBranch
        for index, rate in enumerate(DASPP_RATES, start=1):
            self.add_module(f"aspp{index}", branch(spec.channels, rate, separable=separable))
        self.global_avg_pool = image_pooling(spec.channels)
        concat_channels = spec.channels + HEAD_CHANNELS * (len(DASPP_RATES) + 1)
        self.conv1 = head_conv(concat_channels, HEAD_CHANNELS, 1, separable=separable)
        self.bn1 = nn.BatchNorm2d(HEAD_CHANNELS)
        self.relu = nn.ReLU()
        low_channels = spec.low_level_channels
        if spec.low_level_reduction is not None:
            self.conv2 = head_conv(low_channels, spec.low_level_reduction, 1, separable=separable)
            self.bn2 = nn.BatchNorm2d(spec.low_level_reduction)
            low_channels = spec.low_level_reduction
        self.last_conv = decoder_convs(HEAD_CHANNELS + low_channels, config.num_classes, separable=separable)

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.spec.attribute)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def check_input_size(self, height: int, width: int) -> None:
        """Raise InputSizeError when the backbone cannot take an input of this size."""
        self.config.check_input_size(height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()):
            if x.dim() != 4 or x.shape[1] != 3:
                raise InputSizeError(f"expected an N x 3 x H x W tensor, got shape {tuple(x.shape)}")
            self.check_input_size(x.shape[2], x.shape[3])
        high, low = self.backbone(x)
        pooled = upsample(self.global_avg_pool(high), high.shape[2:])
        branches = [high, self.aspp1(high), self.aspp2(high), self.aspp3(high), self.aspp4(high), pooled]
        encoded = self.relu(self.bn1(self.conv1(torch.cat(branches, dim=1))))
        encoded = upsample(encoded, low.shape[2:])
        if self.spec.low_level_reduction is not None:
            low = self.relu(self.bn2(self.conv2(low)))
        logits = self.last_conv(torch.cat((encoded, low), dim=1))
        return upsample(logits, x.shape[2:])


def _liteseg(config: LiteSegConfig) -> LiteSeg:
    return LiteSeg(config)


def build_liteseg(
    backbone: str = "mobilenetv2", *, num_classes: int = NUM_CLASSES, aspp: str = "daspp", separable: bool = True
) -> LiteSeg:
    """Build LiteSeg with randomly initialised weights.

    Args:
        backbone: ``mobilenetv2``, ``shufflenet`` or ``darknet19``.
        num_classes: output classes (default: Cityscapes' trainIds).
        aspp: ``daspp`` (the released model) or ``aspp`` (the Deeplabv3+-style baseline of the paper's Table I).
        separable: depthwise-separable head convolutions (released) or standard ones (Table II ablation).
    """
    return _liteseg(LiteSegConfig(backbone=backbone, num_classes=num_classes, aspp=aspp, separable=separable))
