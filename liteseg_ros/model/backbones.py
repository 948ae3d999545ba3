"""The three LiteSeg backbones, written from the authors' architecture (no torchvision).

Each backbone module returns ``(high_level, low_level)`` features. Module names match the authors'
checkpoints; the unused ImageNet classification heads are not built (see ``IMAGENET_HEAD_PARAMS``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

# (expansion t, channels c, repeats n, stride s) of MobileNetV2 width 1.0.
MOBILENETV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENETV2_LOW_LEVEL_BLOCKS = 4  # features[0..3] -> 24 channels at stride 4

SHUFFLENET_GROUPS = 8
SHUFFLENET_STAGES = ((2, 384, 3), (3, 768, 7), (4, 1536, 3))  # (stage, out channels, repeats after the first unit)

# Darknet19 conv layers: name -> (cin, cout, kernel, padding, dilation); pools are MaxPool2d(2, 2), 18_max is identity.
DARKNET19_LAYERS = (
    ("1", (3, 32, 3, 1, 1)),
    ("2_max", None),
    ("3", (32, 64, 3, 1, 1)),
    ("4_max", None),
    ("5", (64, 128, 3, 1, 1)),
    ("6", (128, 64, 1, 0, 1)),
    ("7", (64, 128, 3, 1, 1)),
    ("8_max", None),
    ("9", (128, 256, 3, 1, 1)),
    ("10", (256, 128, 1, 0, 1)),
    ("11", (128, 256, 3, 1, 1)),
    ("12_max", None),
    ("13", (256, 512, 3, 1, 1)),
    ("14", (512, 256, 1, 1, 1)),
    ("15", (256, 512, 3, 1, 1)),
    ("16", (512, 256, 1, 1, 1)),
    ("17", (256, 512, 3, 1, 1)),
    ("18_max", None),
    ("19", (512, 1024, 3, 1, 2)),
    ("20", (1024, 512, 1, 1, 2)),
    ("21", (512, 1024, 3, 1, 2)),
    ("22", (1024, 512, 1, 0, 2)),
    ("23", (512, 1024, 3, 1, 2)),
)
DARKNET19_LOW_LEVEL_LAYER = "7_convbatch"


@dataclass(frozen=True)
class BackboneSpec:
    """What the LiteSeg head needs to know about a backbone."""

    name: str
    attribute: str  # the module attribute, i.e. the checkpoint key prefix without the dot
    channels: int  # C, channels of the high-level output
    output_stride: int
    low_level_channels: int
    low_level_reduction: int | None  # channels after `conv2`, None when the low-level features are used as they are
    low_level_stride: int
    size_multiple: int  # input sides must be a multiple of this (else the authors' module fails)
    recommended_multiple: int  # sides the released weights were trained with (other sizes run, slightly shifted)
    imagenet_head_params: int  # parameters of the unused ImageNet head kept in the authors' checkpoints
    imagenet_head_prefix: str | None


def _conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block; ``conv`` is one flat Sequential, as in the authors' checkpoint."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Features(nn.Module):
    """MobileNetV2 (width 1.0) feature extractor: ``features.0..18``."""

    def __init__(self):
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
        cin = 32
        for expansion, cout, repeats, stride in MOBILENETV2_SETTINGS:
            for i in range(repeats):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        blocks.append(_conv_bn_relu6(cin, 1280, 1, 1))
        self.features = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.features[:MOBILENETV2_LOW_LEVEL_BLOCKS](x)
        return self.features[MOBILENETV2_LOW_LEVEL_BLOCKS:](low), low


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (N, g*k, H, W) -> interleave the g groups."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class GroupConvBN(nn.Module):
    """``conv1x1`` grouped 1x1 convolution with bias, ``batch_norm``, optional ReLU."""

    def __init__(self, cin: int, cout: int, groups: int, relu: bool):
        super().__init__()
        self.conv1x1 = nn.Conv2d(cin, cout, 1, groups=groups, bias=True)
        self.batch_norm = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.batch_norm(self.conv1x1(x)))


class ShuffleUnit(nn.Module):
    """ShuffleNet v1 unit: stride-2 'concat' units open a stage, stride-1 'add' units follow."""

    def __init__(self, cin: int, cout: int, *, groups: int, first_in_stage: bool, grouped_compress: bool):
        super().__init__()
        self.groups = groups
        self.concat = first_in_stage
        bottleneck = cout // 4
        branch_out = cout - cin if first_in_stage else cout
        self.g_conv_1x1_compress = GroupConvBN(cin, bottleneck, groups if grouped_compress else 1, relu=True)
        self.depthwise_conv3x3 = nn.Conv2d(
            bottleneck, bottleneck, 3, 2 if first_in_stage else 1, 1, groups=bottleneck, bias=True
        )
        self.bn_after_depthwise = nn.BatchNorm2d(bottleneck)
        self.g_conv_1x1_expand = GroupConvBN(bottleneck, branch_out, groups, relu=False)
        self.shortcut_pool = nn.AvgPool2d(3, 2, 1) if first_in_stage else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = channel_shuffle(self.g_conv_1x1_compress(x), self.groups)
        out = self.g_conv_1x1_expand(self.bn_after_depthwise(self.depthwise_conv3x3(out)))
        if self.concat:
            return self.relu(torch.cat((self.shortcut_pool(x), out), 1))
        return self.relu(x + out)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 with 8 groups and no dilation (output stride 32)."""

    def __init__(self, groups: int = SHUFFLENET_GROUPS):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 3, 2, 1, bias=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 24
        for stage, cout, repeats in SHUFFLENET_STAGES:
            units: OrderedDict[str, nn.Module] = OrderedDict()
            for i in range(repeats + 1):
                units[f"ShuffleUnit_Stage{stage}_{i}"] = ShuffleUnit(
                    cin if i == 0 else cout,
                    cout,
                    groups=groups,
                    first_in_stage=i == 0,
                    grouped_compress=not (stage == 2 and i == 0),
                )
            setattr(self, f"stage{stage}", nn.Sequential(units))
            cin = cout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.stage2(self.maxpool(self.conv1(x)))
        return self.stage4(self.stage3(low)), low


class ShuffleNetFeatures(nn.Module):
    """Wraps ShuffleNet as ``module`` (the DataParallel prefix kept in the authors' checkpoint)."""

    def __init__(self):
        super().__init__()
        self.module = ShuffleNetV1()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module(x)


class ConvBatch(nn.Module):
    """Darknet conv layer: ``layers`` = [Conv2d (no bias), BatchNorm2d, LeakyReLU(0.1)]."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int, dilation: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, 1, padding, dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.1, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Darknet19Features(nn.Module):
    """Darknet19 with dilated last stage (output stride 16), as ``layers.<n>_convbatch`` / ``layers.<n>_max``."""

    def __init__(self):
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, conv in DARKNET19_LAYERS:
            if conv is None:
                layers[name] = nn.MaxPool2d(1, 1) if name == "18_max" else nn.MaxPool2d(2, 2)
            else:
                layers[f"{name}_convbatch"] = ConvBatch(*conv)
        self.layers = nn.Sequential(layers)
        self._split = list(layers).index(DARKNET19_LOW_LEVEL_LAYER) + 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layers[: self._split](x)
        return self.layers[self._split :](low), low


BACKBONE_SPECS: dict[str, BackboneSpec] = {
    "mobilenetv2": BackboneSpec(
        "mobilenetv2", "mobile_features", 1280, 32, 24, None, 4, 1, 1, 1280 * 1000 + 1000, "mobile_features.classifier."
    ),
    "shufflenet": BackboneSpec(
        "shufflenet", "shuffle_features", 1536, 32, 384, 48, 8, 1, 1, 1536 * 1000 + 1000, "shuffle_features.module.fc."
    ),
    "darknet19": BackboneSpec("darknet19", "resnet_features", 1024, 16, 128, 32, 4, 4, 16, 0, None),
}

_BACKBONE_CLASSES: dict[str, type[nn.Module]] = {
    "mobilenetv2": MobileNetV2Features,
    "shufflenet": ShuffleNetFeatures,
    "darknet19": Darknet19Features,
}


def build_backbone(name: str) -> nn.Module:
    """Instantiate the named backbone's feature extractor."""
    return _BACKBONE_CLASSES[name]()
