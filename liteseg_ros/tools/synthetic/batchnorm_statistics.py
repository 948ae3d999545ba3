"""Street-scene BatchNorm statistics for untrained networks (benchmarks and tests without a trained model).

With default statistics a random network predicts one class everywhere, which makes the post-processing (class
boundaries) look cheaper than it is with real predictions, and BatchNorm folding has nothing to do.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD
from liteseg_ros.tools.synthetic.scene import render_scene


def with_random_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` (modified, in eval mode) with random BatchNorm scales ~ N(1, 0.5), biases ~ N(0, 0.2), running
    variances 0.25 and no classifier bias: freshly initialised, the bias decides every pixel; this way the argmax
    depends on the image, so tests can tell images apart. Draws from torch's global generator."""
    model.eval()
    with torch.no_grad():
        model.last_conv[6].bias.zero_()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.normal_(1.0, 0.5)
                module.bias.normal_(0.0, 0.2)
                module.running_var.fill_(0.25)
    return model


def with_street_statistics(model: nn.Module, *, size: tuple[int, int] = (64, 128), seed: int = 0,
                           random_affine: bool = False) -> nn.Module:
    """``model`` (modified, in eval mode) with the BatchNorm running statistics of two street scenes (seeds
    ``seed`` and ``seed + 1``) and their mirror images, as a cumulative average; with ``random_affine`` also
    BatchNorm scales in [0.5, 1.5] and biases ~ N(0, 0.1) drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    images = np.stack([np.ascontiguousarray(render_scene(seed + i, *size)[0]) for i in range(2)])
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    batch = (batch - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        for bn in batchnorms:
            if random_affine:
                bn.weight.copy_(torch.empty_like(bn.weight).uniform_(0.5, 1.5, generator=generator))
                bn.bias.copy_(torch.randn(bn.bias.shape, generator=generator) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        model(batch)
        model(batch.flip(3))
    for bn in batchnorms:
        bn.momentum = 0.1
    return model.eval()
