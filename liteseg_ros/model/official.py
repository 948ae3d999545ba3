"""Loading the authors' released Cityscapes checkpoints (``tahaemara/LiteSeg``) into our LiteSeg."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from liteseg_ros.errors import IncompatibleWeightsError, WeightsError
from liteseg_ros.model.backbones import BACKBONE_SPECS
from liteseg_ros.model.liteseg import LiteSeg
from liteseg_ros.model.weights_io import read_weights_file

CLASSIFIER_WEIGHT = "last_conv.6.weight"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
_MAX_LISTED = 8


def _describe(source: object) -> str:
    return f"weights file {source}" if isinstance(source, (str, os.PathLike)) else "the given state dict"


def unwrap_state_dict(obj: object, what: str) -> dict[str, torch.Tensor]:
    """Return the tensor mapping inside a checkpoint object (plain, wrapped in 'state_dict', or DataParallel)."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{what} is not a state dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{what} is not a state dict: entries {bad[:3]} are not tensors")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def detect_backbone(state: Mapping[str, torch.Tensor]) -> str | None:
    """The backbone whose key prefix the state dict uses, or None."""
    for name, spec in BACKBONE_SPECS.items():
        if any(key.startswith(spec.attribute + ".") for key in state):
            return name
    return None


def _listing(keys: list[str]) -> str:
    more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return ", ".join(sorted(keys)[:_MAX_LISTED]) + more


def _check_compatible(model: LiteSeg, state: Mapping[str, torch.Tensor], what: str) -> None:
    backbone = detect_backbone(state)
    if backbone is None:
        raise IncompatibleWeightsError(f"{what} has no keys of any LiteSeg backbone ({', '.join(BACKBONE_SPECS)})")
    if backbone != model.config.backbone:
        raise IncompatibleWeightsError(
            f"{what} has keys for {backbone}, but backbone={model.config.backbone}: use backbone={backbone}"
        )
    if CLASSIFIER_WEIGHT in state and state[CLASSIFIER_WEIGHT].shape[0] != model.num_classes:
        found = state[CLASSIFIER_WEIGHT].shape[0]
        raise IncompatibleWeightsError(
            f"{what} has {found} output classes, but the model has num_classes={model.num_classes}: "
            f"build it with num_classes={found}"
        )


def match_state_dict(model: LiteSeg, state: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Check ``state`` against every key of the model's schema and return a dict ready for strict loading.

    The unused ImageNet head is dropped; missing ``num_batches_tracked`` buffers are filled with 0.
    """
    _check_compatible(model, state, what)
    head_prefix = model.spec.imagenet_head_prefix
    state = {k: v for k, v in state.items() if not (head_prefix and k.startswith(head_prefix))}
    expected = model.state_dict()
    for key in expected:
        if key not in state and key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        hint = ""
        if model.config.aspp != "daspp" or not model.config.separable:
            hint = " (the released checkpoints are the DASPP + separable architecture: build with the defaults)"
        raise IncompatibleWeightsError(
            f"{what} does not fit LiteSeg-{model.config.backbone}{hint}: "
            + (f"missing keys: {_listing(missing)}; " if missing else "")
            + (f"unexpected keys: {_listing(unexpected)}" if unexpected else "")
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape
    ]
    if wrong:
        raise IncompatibleWeightsError(f"{what} has tensors of the wrong shape: {_listing(wrong)}")
    return {k: state[k].to(v.dtype) for k, v in expected.items()}


def load_official_weights(model: LiteSeg, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> LiteSeg:
    """Load an authors' Cityscapes checkpoint (a path to their ``.pth`` or a state dict) into ``model``.

    Strict over every key of the schema. The unused ImageNet head is accepted and dropped, missing
    ``num_batches_tracked`` entries are accepted; another backbone or class count is refused with an
    IncompatibleWeightsError naming the problem. Files are read with ``weights_only=True`` (zip or legacy format).
    """
    what = _describe(source)
    obj = read_weights_file(Path(source)) if isinstance(source, (str, os.PathLike)) else source
    state = unwrap_state_dict(obj, what)
    model.load_state_dict(match_state_dict(model, state, what), strict=True)
    return model
