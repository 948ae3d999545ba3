"""Helpers for the Segmenter / optimisation / export tests: a network with realistic BatchNorm statistics,
street-like images, and reference predictions computed independently of liteseg_ros.inference.segmenter."""

from __future__ import annotations

import contextlib
import functools
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from liteseg_ros.model import IMAGENET_MEAN, IMAGENET_STD, build_liteseg
from liteseg_ros.tools.synthetic import render_scene
from liteseg_ros.tools.synthetic.batchnorm_statistics import with_street_statistics


def street_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A synthetic street scene, H x W x 3 uint8 RGB (a fresh copy of a cached rendering)."""
    return _rendered(height, width, seed).copy()


@functools.lru_cache(maxsize=32)
def _rendered(height: int, width: int, seed: int) -> np.ndarray:
    return np.ascontiguousarray(render_scene(seed, height, width)[0])


def normalise(batch_uint8: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W uint8 (or float 0..255) -> ImageNet-normalised float, written out the textbook way."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (batch_uint8.float() / 255.0 - mean) / std


def calibrated_model(backbone: str = "mobilenetv2", seed: int = 0, size: tuple[int, int] = (64, 128),
                     num_classes: int = 19) -> nn.Module:
    """A LiteSeg whose BatchNorms hold non-trivial statistics and affine parameters.

    Random affine parameters, then the running statistics of two train-mode passes over street scenes
    (cumulative average), so activations stay in a realistic range and folding has real work to do.
    """
    torch.manual_seed(seed)
    model = build_liteseg(backbone, num_classes=num_classes)
    return with_street_statistics(model, size=size, seed=seed, random_affine=True)


def network_input(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """What the Segmenter feeds the network on CPU: uint8 bilinear resize (antialiased when shrinking), normalised."""
    batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
    if tuple(image.shape[:2]) != tuple(size):
        shrinking = size[0] < image.shape[0] or size[1] < image.shape[1]
        batch = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    return normalise(batch)


def reference_prediction(model: nn.Module, image: np.ndarray, size: tuple[int, int], upsample: str
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(mask, top-2 margin) of eager fp32 ``model`` on ``image``: logits resized then argmax, or argmax then nearest."""
    height, width = image.shape[:2]
    with torch.no_grad():
        logits = model(network_input(image, size))
        if upsample == "logits":
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        else:
            logits = F.interpolate(logits, size=(height, width), mode="nearest-exact")
    top2 = logits[0].topk(2, dim=0).values
    return logits[0].argmax(0).to(torch.uint8).numpy(), (top2[0] - top2[1]).numpy()


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, 2-thread barriers stall whenever the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def core_log(level: int = logging.WARNING):
    """Collect the messages the core logs (logger ``liteseg_ros``) at ``level`` or above.

    A handler on that logger itself, not pytest's caplog: caplog listens on the root logger, which the core's
    records may not reach (launch's logging set-up under ``colcon test``, a node's ``propagate = False``).
    """
    messages: list[str] = []

    class _Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("liteseg_ros")
    handler, previous = _Collector(level), logger.level
    # launch's LaunchLogger (active wherever launch is imported, e.g. by launch_testing's pytest plugin under
    # colcon test) creates every logger with propagate=False: let the core's loggers reach this one meanwhile.
    children = [child for name, child in logging.Logger.manager.loggerDict.items()
                if name.startswith("liteseg_ros.") and isinstance(child, logging.Logger)]
    propagated = [child.propagate for child in children]
    for child in children:
        child.propagate = True
    logger.addHandler(handler)
    logger.setLevel(min(level, previous) if previous else level)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        for child, value in zip(children, propagated):
            child.propagate = value
