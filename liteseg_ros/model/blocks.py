"""LiteSeg head blocks: separable convolutions, DASPP (and the baseline ASPP), image pooling, decoder.

Module names follow the authors' release, so their checkpoints load key for key.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

HEAD_CHANNELS = 96
DASPP_RATES = (1, 3, 6, 9)


class SeparableConv2d(nn.Module):
    """Depthwise ``conv1`` followed by pointwise ``pointwise``, both without bias (authors' ``SepConv``)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, kernel_size, stride, padding, dilation, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


def head_conv(
    cin: int, cout: int, kernel_size: int, *, separable: bool, padding: int = 0, dilation: int = 1
) -> nn.Module:
    """A bias-free head convolution: separable (the released model) or standard (the ablation)."""
    if separable:
        return SeparableConv2d(cin, cout, kernel_size, padding=padding, dilation=dilation)
    return nn.Conv2d(cin, cout, kernel_size, padding=padding, dilation=dilation, bias=False)


class DASPPBranch(nn.Module):
    """One branch of the deeper ASPP.

    rate 1: conv 1x1 -> BN. rate r > 1: dilated 3x3 -> BN -> 3x3 (the "deeper" layer) -> BN -> ReLU.
    """

    def __init__(self, cin: int, rate: int, *, separable: bool = True, filters: int = HEAD_CHANNELS):
        super().__init__()
        self.deeper = rate != 1
        if self.deeper:
            self.conv1 = head_conv(filters, filters, 3, separable=separable, padding=1)
            self.bn1 = nn.BatchNorm2d(filters)
            self.relu = nn.ReLU()
            kernel, padding = 3, rate
        else:
            kernel, padding = 1, 0
        self.atrous_convolution = head_conv(cin, filters, kernel, separable=separable, padding=padding, dilation=rate)
        self.bn = nn.BatchNorm2d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.atrous_convolution(x))
        if self.deeper:
            x = self.relu(self.bn1(self.conv1(x)))
        return x


class ASPPBranch(nn.Module):
    """A Deeplabv3+-style ASPP branch (the paper's baseline): conv (1x1 or dilated 3x3) -> BN -> ReLU."""

    def __init__(self, cin: int, rate: int, *, separable: bool = True, filters: int = HEAD_CHANNELS):
        super().__init__()
        kernel, padding = (1, 0) if rate == 1 else (3, rate)
        self.atrous_convolution = head_conv(cin, filters, kernel, separable=separable, padding=padding, dilation=rate)
        self.bn = nn.BatchNorm2d(filters)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_convolution(x)))


def image_pooling(cin: int, filters: int = HEAD_CHANNELS) -> nn.Sequential:
    """``global_avg_pool``: global average -> 1x1 conv -> BN -> ReLU (upsampled by the caller)."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, filters, 1, bias=False), nn.BatchNorm2d(filters), nn.ReLU()
    )


def decoder_convs(cin: int, num_classes: int, *, separable: bool, filters: int = HEAD_CHANNELS) -> nn.Sequential:
    """``last_conv``: two 3x3 conv -> BN -> ReLU layers and the 1x1 classifier (with bias)."""
    return nn.Sequential(
        head_conv(cin, filters, 3, separable=separable, padding=1),
        nn.BatchNorm2d(filters),
        nn.ReLU(),
        head_conv(filters, filters, 3, separable=separable, padding=1),
        nn.BatchNorm2d(filters),
        nn.ReLU(),
        nn.Conv2d(filters, num_classes, 1, bias=True),
    )


def upsample(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear upsampling with align_corners=True, as the authors' model does everywhere."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
