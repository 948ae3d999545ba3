"""Training configuration: YAML -> validated dataclasses, ``key=value`` overrides, resolved dump.

A config file holds the sections below (every field has a default; see ``config/train_*.yaml``). Any field can be
overridden on the command line as ``section.field=value`` (values are parsed as YAML, so ``data.crop_sizes=[[64,128]]``,
``init.weights=null`` and ``optim.nesterov=false`` work). The resolved config is written to ``RUN_DIR/config.yaml``.

Learning rate and loss reduction: the paper's base LR of 1e-7 (1e-8 for darknet19) only makes sense with the
authors' loss, the cross-entropy *summed* over all pixels and divided by the batch size
(``optim.loss_reduction: sum``). With the usual per-pixel mean (``loss_reduction: mean``) the same step needs
the LR multiplied by the number of pixels per crop: 1e-7 x 512 x 1024 ~= 0.05.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from liteseg_ros.errors import ConfigError
from liteseg_ros.files import write_text
from liteseg_ros.inference.plan import DEVICE_CHOICES
from liteseg_ros.model import ASPP_KINDS, BACKBONES, LiteSegConfig
from liteseg_ros.training.data import MULTI_SCALE_MODES
from liteseg_ros.training.transforms import CROP_POLICIES


@dataclass
class InitSection:
    """Where the starting weights come from (both null: random initialisation)."""

    backbone: str | None = None  # a state dict of the backbone alone (e.g. ImageNet MobileNetV2)
    # a full model (fine-tuning): one of ours, the authors' .pth, "cityscapes" (fetched by liteseg-weights) or
    # "bundled" (the package's demo model); tensors of another shape (a new class count) start new
    weights: str | None = None


@dataclass
class DataSection:
    crop_sizes: list[list[int]] = field(default_factory=lambda: [[512, 1024], [768, 1536], [360, 640], [720, 1280]])
    multi_scale: str = "loaders"  # loaders | per_batch | single (see training/data.py)
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    flip: bool = True
    rotation_degrees: float = 0.0
    crop_policy: str = "pad"  # pad | resize (the authors' code resizes the image up to the crop)
    batch_size: int = 4  # per process
    workers: int = 4  # loader worker processes per training process
    val_split: str = "val"
    val_crop: list[int] | None = None  # null: full resolution; the authors use a centre [512, 1024] crop
    val_max_images: int | None = None  # validate on the first N images only (null: all)


@dataclass
class StageSection:
    """One training stage (coarse pre-training or fine-tuning); ``epochs: 0`` skips it."""

    annotation: str = "gtFine"
    splits: list[str] = field(default_factory=lambda: ["train"])
    epochs: int = 100
    base_lr: float = 1e-7
    lr_update_every: int | None = None  # null: schedule.update_every (the authors update every 10 epochs on coarse)


@dataclass
class OptimSection:
    name: str = "sgd"  # sgd | adam
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    loss_reduction: str = "sum"  # sum (authors: summed over pixels / batch size) | mean (over valid pixels)
    reset_on_lr_update: bool = False  # the authors build a new optimiser (momentum reset) at each LR update
    loss: str = "cross_entropy"  # cross_entropy | ohem (hard pixels only; needs loss_reduction: mean)
    ohem_threshold: float = 0.7  # ohem: a pixel is hard while p(true class) < this
    ohem_min_kept: float = 0.1  # ohem: keep at least this fraction of the valid pixels (the hardest)


@dataclass
class ScheduleSection:
    """Poly LR: lr = base_lr * (1 - t / T) ** power, t frozen between updates (every ``update_every`` units)."""

    power: float = 0.9
    update_every: int = 5
    unit: str = "epoch"  # epoch | iteration


@dataclass
class ValidationSection:
    every: int = 2
    unit: str = "epoch"  # epoch | iteration
    num_images_logged: int = 2  # sample predictions written to TensorBoard


@dataclass
class CheckpointSection:
    every_iterations: int = 500
    export_half: bool = False  # exported model checkpoints in fp16
    # network input size stored in exported models (deployment default); null: the validation image size
    export_input_size: list[int] | None = None


@dataclass
class RuntimeSection:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (as the node's device parameter)
    amp: bool | str = "auto"  # auto (on with CUDA) | true | false
    deterministic: bool = False
    threads: int | None = None  # torch intra-op threads per process (null: torch default)
    sync_bn: bool = False  # SyncBatchNorm under DDP
    channels_last: bool = False  # NHWC memory format (measured 22% faster per step on a 2-core CPU)
    log_every: int = 20
    max_iterations: int | None = None  # stop after this many iterations in total (null: run all stages)


@dataclass
class TrainConfig:
    model: LiteSegConfig = field(default_factory=LiteSegConfig)  # the architecture, as checkpoints store it
    init: InitSection = field(default_factory=InitSection)
    data: DataSection = field(default_factory=DataSection)
    coarse: StageSection = field(default_factory=lambda: StageSection("gtCoarse", ["train", "train_extra"], 20))
    fine: StageSection = field(default_factory=StageSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    validation: ValidationSection = field(default_factory=ValidationSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)

    def stages(self) -> list[tuple[str, StageSection]]:
        """The stages to run, in order (coarse then fine), skipping those with 0 epochs."""
        return [(name, stage) for name, stage in (("coarse", self.coarse), ("fine", self.fine)) if stage.epochs > 0]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(hint) -> str:
    return getattr(hint, "__name__", str(hint))


def _coerce(value, hint, where: str):
    """Check ``value`` against a type hint (int accepted for float); raise ConfigError naming ``where``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        for option in inner[:-1]:
            try:
                return _coerce(value, option, where)
            except ConfigError:
                pass
        return _coerce(value, inner[-1], where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_hint,) = typing.get_args(hint)
        return [_coerce(item, item_hint, f"{where}[{i}]") for i, item in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads "1e-7" as a string
        except ValueError:
            pass
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where} must be of type {_type_name(hint)}, got {value!r}")


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(names)}"
        raise ConfigError(f"unknown config key {where + unknown[0]!r}{hint}")
    instance, built = cls(), {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key} must be a section (a mapping), got {value!r}")
            current = dataclasses.asdict(getattr(instance, key))
            current.update(value)
            built[key] = _build(hint, current, f"{where}{key}.")
        else:
            built[key] = _coerce(value, hint, where + key)
    return dataclasses.replace(instance, **built)  # works for frozen sections (the model's LiteSegConfig)


def _check_choice(value, choices, where: str) -> None:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}, got {value!r}")


def validate(config: TrainConfig) -> TrainConfig:
    """Cross-field checks; raise ConfigError saying what to change."""
    _validate_choices(config)
    _validate_sizes(config)
    _validate_counts(config)
    if config.init.backbone and config.init.weights:
        raise ConfigError("set init.backbone or init.weights, not both (init.weights already holds a backbone)")
    return config


def _validate_choices(config: TrainConfig) -> None:
    _check_choice(config.model.backbone, BACKBONES, "model.backbone")
    _check_choice(config.model.aspp, ASPP_KINDS, "model.aspp")
    _check_choice(config.data.multi_scale, MULTI_SCALE_MODES, "data.multi_scale")
    _check_choice(config.data.crop_policy, CROP_POLICIES, "data.crop_policy")
    _check_choice(config.optim.name, ("sgd", "adam"), "optim.name")
    _check_choice(config.optim.loss_reduction, ("sum", "mean"), "optim.loss_reduction")
    _check_choice(config.optim.loss, ("cross_entropy", "ohem"), "optim.loss")
    if config.optim.loss == "ohem" and config.optim.loss_reduction != "mean":
        raise ConfigError("optim.loss=ohem averages over the hard pixels: set optim.loss_reduction=mean")
    if not 0 < config.optim.ohem_threshold <= 1 or not 0 < config.optim.ohem_min_kept <= 1:
        raise ConfigError(f"optim.ohem_threshold and optim.ohem_min_kept must lie in (0, 1], got "
                          f"{config.optim.ohem_threshold} and {config.optim.ohem_min_kept}")
    _check_choice(config.schedule.unit, ("epoch", "iteration"), "schedule.unit")
    _check_choice(config.validation.unit, ("epoch", "iteration"), "validation.unit")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(config.runtime.device)):
        raise ConfigError(f"runtime.device must be {DEVICE_CHOICES}, got {config.runtime.device!r}")
    _check_choice(config.runtime.amp, (True, False, "auto"), "runtime.amp")


def _validate_sizes(config: TrainConfig) -> None:
    if not config.data.crop_sizes or any(len(s) != 2 or min(s) < 32 for s in config.data.crop_sizes):
        raise ConfigError(
            f"data.crop_sizes must be a non-empty list of [height, width] >= 32, got {config.data.crop_sizes}"
        )
    if len(config.data.scale_range) != 2 or not 0 < config.data.scale_range[0] <= config.data.scale_range[1]:
        raise ConfigError(f"data.scale_range must be [low, high] with 0 < low <= high, got {config.data.scale_range}")
    if config.checkpoint.export_input_size is not None and len(config.checkpoint.export_input_size) != 2:
        raise ConfigError(
            f"checkpoint.export_input_size must be null or [height, width], got {config.checkpoint.export_input_size}"
        )
    if config.data.val_crop is not None and len(config.data.val_crop) != 2:
        raise ConfigError(f"data.val_crop must be null or [height, width], got {config.data.val_crop}")


def _validate_counts(config: TrainConfig) -> None:
    for name, value in (
        ("data.batch_size", config.data.batch_size),
        ("schedule.update_every", config.schedule.update_every),
        ("validation.every", config.validation.every),
        ("checkpoint.every_iterations", config.checkpoint.every_iterations),
    ):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if config.data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {config.data.workers}")
    if not config.stages():
        raise ConfigError("nothing to train: coarse.epochs and fine.epochs are both 0")
    for name, stage in config.stages():
        if stage.base_lr <= 0 or not stage.splits:
            raise ConfigError(f"{name}.base_lr must be > 0 and {name}.splits non-empty")
        if stage.lr_update_every is not None and stage.lr_update_every < 1:
            raise ConfigError(f"{name}.lr_update_every must be null or >= 1, got {stage.lr_update_every}")


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b.c=value`` -> (["a", "b", "c"], YAML-parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. data.batch_size=8)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from error
    return key.strip().split("."), value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """Set each ``key=value`` in a nested dict (creating sub-dicts); validation happens afterwards."""
    for text in overrides:
        path, value = parse_override(text)
        node = values
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return values


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from the defaults), apply overrides, validate."""
    values: dict = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as error:
            raise ConfigError(f"cannot read config {path}: {error}") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"config {path} is not valid YAML: {error}") from error
    values = apply_overrides(values, list(overrides))
    return validate(_build(TrainConfig, values, ""))


def dump_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
