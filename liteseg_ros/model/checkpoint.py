"""Our checkpoint format: weights plus the metadata needed to deploy them, and a loader for any weights file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ClassSetError, IncompatibleWeightsError, WeightsError
from liteseg_ros.files import atomic_file
from liteseg_ros.labels import CITYSCAPES, NUM_CLASSES, default_class_set
from liteseg_ros.model.liteseg import IMAGENET_MEAN, IMAGENET_STD, LiteSeg, LiteSegConfig
from liteseg_ros.model.official import CLASSIFIER_WEIGHT, detect_backbone, match_state_dict, unwrap_state_dict
from liteseg_ros.model.weights_io import read_weights_file

FORMAT_NAME = "liteseg_ros.checkpoint"
FORMAT_VERSION = 1


@dataclass
class CheckpointMeta:
    """What a deployed model needs besides its weights."""

    backbone: str
    num_classes: int = NUM_CLASSES
    class_names: list[str] = field(default_factory=list)  # with class_colors: the class set (ClassSet)
    class_colors: list[list[int]] = field(default_factory=list)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: tuple[int, int] | None = None  # (height, width) the model was trained at
    origin: str = ""
    license: str = ""  # the weights' licence, e.g. the authors' CC BY-NC 4.0 (non-commercial)
    arch: dict = field(default_factory=dict)  # LiteSegConfig fields beyond backbone/num_classes
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.class_names:
            classes = default_class_set(self.num_classes)
            self.class_names, self.class_colors = list(classes.names), [list(c) for c in classes.colors]

    @classmethod
    def for_model(cls, model: LiteSeg, *, classes: ClassSet | None = None, **fields) -> "CheckpointMeta":
        """Metadata of ``model`` with its class set (default: :func:`default_class_set` of its class count)."""
        config = model.config
        classes = classes or default_class_set(config.num_classes)
        return cls(backbone=config.backbone, num_classes=config.num_classes,
                   class_names=list(classes.names), class_colors=[list(c) for c in classes.colors],
                   arch={"aspp": config.aspp, "separable": config.separable}, **fields)

    @property
    def classes(self) -> ClassSet:
        """The model's class set. Files written before class colours were stored get Cityscapes' colours when
        their names are Cityscapes', else generated ones."""
        if self.class_colors:
            return ClassSet(tuple(self.class_names), tuple(tuple(c) for c in self.class_colors))
        if tuple(self.class_names) == CITYSCAPES.names:
            return CITYSCAPES
        return ClassSet.from_names(self.class_names)

    def model_config(self) -> LiteSegConfig:
        return LiteSegConfig(backbone=self.backbone, num_classes=self.num_classes, **self.arch)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(
            mean=list(self.mean), std=list(self.std), input_size=list(self.input_size) if self.input_size else None
        )
        return data

    @classmethod
    def from_dict(cls, data: dict, what: str) -> "CheckpointMeta":
        try:
            meta = cls(**data)
        except TypeError as error:
            raise WeightsError(f"{what} has malformed metadata: {error}") from None
        meta.mean, meta.std = tuple(meta.mean), tuple(meta.std)
        meta.input_size = tuple(meta.input_size) if meta.input_size else None
        try:
            classes = meta.classes
        except ClassSetError as error:
            raise WeightsError(f"{what} has a malformed class set: {error}") from None
        if len(classes) != meta.num_classes:
            raise IncompatibleWeightsError(
                f"{what} names {len(classes)} classes but its classifier has {meta.num_classes}: the file is "
                f"inconsistent; write it again with liteseg-train or liteseg-convert")
        return meta


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    """torch.save put in place atomically and durably (:func:`liteseg_ros.files.atomic_file`)."""
    with atomic_file(path, durable=True) as temporary:
        torch.save(obj, temporary)


def save_checkpoint(
    path: str | os.PathLike, model: LiteSeg, meta: CheckpointMeta | None = None, *, half: bool = False
) -> Path:
    """Write ``model`` and its metadata in our format (atomically). ``half`` stores floating tensors as fp16."""
    meta = meta or CheckpointMeta.for_model(model)
    if (meta.backbone != model.config.backbone or meta.num_classes != model.num_classes
            or len(meta.classes) != model.num_classes):
        raise IncompatibleWeightsError(
            f"metadata says {meta.backbone}/{meta.num_classes} classes ({len(meta.classes)} named) but the model is "
            f"{model.config.backbone}/{model.num_classes} classes"
        )
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "meta": meta.to_dict(), "state_dict": state}
    atomic_torch_save(payload, path)
    return Path(path)


def is_our_checkpoint(obj: object) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT_NAME


def _model_from_payload(payload: dict, what: str) -> tuple[LiteSeg, CheckpointMeta]:
    if payload.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{what} has format version {payload.get('format_version')}; this liteseg_ros reads {FORMAT_VERSION}"
        )
    meta = CheckpointMeta.from_dict(payload.get("meta") or {}, what)
    try:
        model = LiteSeg(meta.model_config())
    except Exception as error:  # ConfigError from bad metadata
        raise IncompatibleWeightsError(f"{what} describes an unknown architecture: {error}") from None
    state = unwrap_state_dict(payload.get("state_dict"), what)
    model.load_state_dict(match_state_dict(model, state, what), strict=True)
    return model.eval(), meta


def load_checkpoint(path: str | os.PathLike) -> tuple[LiteSeg, CheckpointMeta]:
    """Load one of our checkpoints; returns the model (eval mode, fp32, CPU) and its metadata.

    Never executes code from the file. A missing, corrupt, truncated, foreign or wrong-architecture file
    raises WeightsError / IncompatibleWeightsError naming the file and the problem.
    """
    what = f"weights file {path}"
    payload = read_weights_file(path)
    if not is_our_checkpoint(payload):
        if isinstance(payload, dict) and detect_backbone(_safe_keys(payload)):
            raise WeightsError(
                f"{what} is an authors' LiteSeg checkpoint, not a liteseg_ros one: convert it with "
                f"`liteseg-convert {path} --backbone B -o OUT.pt` or load it with load_weights()"
            )
        raise WeightsError(f"{what} is not a liteseg_ros checkpoint (no '{FORMAT_NAME}' format marker)")
    return _model_from_payload(payload, what)


def _safe_keys(obj: dict) -> dict:
    try:
        return unwrap_state_dict(obj, "")
    except WeightsError:
        return {}


def read_weights_meta(path: str | os.PathLike, backbone: str | None = None) -> CheckpointMeta:
    """The metadata of our checkpoint or an authors' ``.pth`` without reading its weights (their tensors are mapped
    from the file, not loaded); the same backbone check as :func:`load_weights`. A file whose weights do not fit
    its metadata is refused when they are loaded."""
    what = f"weights file {path}"
    payload = read_weights_file(path, mmap=True)
    if is_our_checkpoint(payload):
        if payload.get("format_version") != FORMAT_VERSION:
            raise WeightsError(f"{what} has format version {payload.get('format_version')}; this liteseg_ros reads "
                               f"{FORMAT_VERSION}")
        meta = CheckpointMeta.from_dict(payload.get("meta") or {}, what)
    else:
        _, config = _authors_architecture(payload, what)
        meta = CheckpointMeta(backbone=config.backbone, num_classes=config.num_classes,
                              origin=f"authors' checkpoint {Path(path).name}")
    _check_backbone(meta, backbone, what)
    return meta


def load_weights(path: str | os.PathLike, backbone: str | None = None) -> tuple[LiteSeg, CheckpointMeta]:
    """Load our checkpoint or an authors' ``.pth``; refuse one whose backbone differs from ``backbone`` (if given)."""
    what = f"weights file {path}"
    payload = read_weights_file(path)
    if is_our_checkpoint(payload):
        model, meta = _model_from_payload(payload, what)
    else:
        state, config = _authors_architecture(payload, what)
        model = LiteSeg(config)
        model.load_state_dict(match_state_dict(model, state, what), strict=True)
        model.eval()
        meta = CheckpointMeta.for_model(model, origin=f"authors' checkpoint {Path(path).name}")
    _check_backbone(meta, backbone, what)
    return model, meta


def _authors_architecture(payload: Any, what: str) -> tuple[dict, LiteSegConfig]:
    """An authors' checkpoint's state dict and the architecture its keys name (backbone, class count)."""
    state = unwrap_state_dict(payload, what)
    found = detect_backbone(state)
    if found is None:
        raise WeightsError(f"{what} is neither a liteseg_ros checkpoint nor an authors' LiteSeg checkpoint")
    classes = state[CLASSIFIER_WEIGHT].shape[0] if CLASSIFIER_WEIGHT in state else NUM_CLASSES
    return state, LiteSegConfig(backbone=found, num_classes=int(classes))


def _check_backbone(meta: CheckpointMeta, backbone: str | None, what: str) -> None:
    """IncompatibleWeightsError when ``backbone`` is given and the file holds another."""
    if backbone is not None and meta.backbone != backbone:
        raise IncompatibleWeightsError(
            f"{what} has keys for {meta.backbone}, but backbone={backbone}: use backbone={meta.backbone}"
        )
