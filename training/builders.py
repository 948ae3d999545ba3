"""Build what a training run needs from its config: datasets, loaders, model (with initial weights), optimiser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from liteseg_ros.classes import ClassSet
from liteseg_ros.datasets.folders import open_split
from liteseg_ros.errors import ConfigError, DatasetError, IncompatibleWeightsError, WeightsError
from liteseg_ros.logs import get_logger
from liteseg_ros.model import LiteSeg, build_liteseg, load_weights
from liteseg_ros.model.weights_io import read_weights_file
from liteseg_ros.training.config import StageSection, TrainConfig
from liteseg_ros.training.data import AugmentedDataset, EpochBatchSampler, TransformedDataset, worker_init
from liteseg_ros.training.distributed import DistContext
from liteseg_ros.training.transforms import EvalTransform, TrainTransform

log = get_logger(__name__)
BUNDLED = "bundled"  # init.weights: the model bundled with the package for the backbone


@dataclasses.dataclass
class TrainingData:
    """The checked splits of a run and the class set they share."""

    train_sets: dict[str, Dataset]
    val_set: Dataset
    classes: ClassSet


def build_datasets(config: TrainConfig, root: str | Path) -> TrainingData:
    """Scan and check every split the run needs, in whichever layout ``root`` is (Cityscapes, CVAT / VOC,
    plain); raises DatasetError or ConfigError before anything is trained or written."""
    train_sets = {name: open_split(root, stage.splits, annotation=stage.annotation) for name, stage in config.stages()}
    val_set = open_split(root, config.data.val_split, annotation="gtFine")
    for name, dataset in train_sets.items():
        if len(dataset) < config.data.batch_size:
            raise ConfigError(
                f"stage {name} has {len(dataset)} images, fewer than data.batch_size={config.data.batch_size}"
            )
        if dataset.classes != val_set.classes:
            raise DatasetError(f"stage {name}'s splits and the validation split have different class sets")
    return TrainingData(train_sets, val_set, val_set.classes)


def with_data_classes(config: TrainConfig, classes: ClassSet) -> TrainConfig:
    """``config`` with ``model.num_classes`` set to the data set's class count."""
    if config.model.num_classes == len(classes):
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, num_classes=len(classes)))


def train_transform(config: TrainConfig) -> TrainTransform:
    data = config.data
    return TrainTransform(
        scale_range=tuple(data.scale_range),
        flip=data.flip,
        rotation_degrees=data.rotation_degrees,
        crop_policy=data.crop_policy,
    )


def build_train_loader(config: TrainConfig, dataset, stage_index: int, context: DistContext) -> DataLoader:
    """A loader whose batch sampler is deterministic in (seed, stage, epoch) and resumable mid-epoch."""
    seed = config.runtime.seed * 1000 + stage_index
    sampler = EpochBatchSampler(
        len(dataset),
        config.data.batch_size,
        config.data.crop_sizes,
        mode=config.data.multi_scale,
        seed=seed,
        rank=context.rank,
        world_size=context.world_size,
        drop_last=True,
    )
    workers = config.data.workers
    return DataLoader(
        AugmentedDataset(dataset, train_transform(config), seed),
        batch_sampler=sampler,
        num_workers=workers,
        worker_init_fn=worker_init,
        persistent_workers=False,
        pin_memory=context.device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )


def _bare_key(key: str, prefix: str) -> str:
    """``key`` without any leading ``module.`` (DataParallel) or ``prefix`` (the backbone attribute)."""
    while True:
        stripped = next((key[len(p):] for p in ("module.", prefix) if key.startswith(p)), None)
        if stripped is None:
            return key
        key = stripped


def build_val_dataset(config: TrainConfig, dataset) -> TransformedDataset:
    crop = tuple(config.data.val_crop) if config.data.val_crop else None
    return TransformedDataset(dataset, EvalTransform(crop), limit=config.data.val_max_images)


def _load_backbone(model: LiteSeg, path: str) -> None:
    """Load a backbone-only state dict: ImageNet weights such as the files the authors' README links
    (legacy or zip pickles, a ``state_dict`` wrapper, DataParallel ``module.`` prefixes, a classifier head)
    or a backbone in the authors' module naming. Keys are matched with every ``module.`` and the backbone's
    own prefix removed, so ``module.conv1.weight`` (a DataParallel ImageNet ShuffleNet) meets ours."""
    state = read_weights_file(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"init.backbone {path} does not hold a state dict")
    prefix = model.spec.attribute + "."
    cleaned = {_bare_key(key, prefix): value for key, value in state.items()}
    target = {_bare_key(key, prefix): key for key in model.backbone.state_dict()}
    shapes = {key: tuple(value.shape) for key, value in model.backbone.state_dict().items()}
    missing = [target[bare] for bare in target if bare not in cleaned]
    wrong = [target[bare] for bare in target if bare in cleaned and tuple(cleaned[bare].shape) != shapes[target[bare]]]
    if missing or wrong:
        raise IncompatibleWeightsError(
            f"init.backbone {path} does not fit the {model.spec.name} backbone: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(wrong)} with other shapes (e.g. {wrong[:3]}); it needs the authors' "
            f"module names, e.g. {list(target.values())[:2]}"
        )
    model.backbone.load_state_dict({target[bare]: cleaned[bare] for bare in target}, strict=True)
    log.info(
        "backbone initialised from %s (%d tensors, %d extra keys ignored)",
        path,
        len(target),
        len(cleaned) - len(target),
    )


def build_model(config: TrainConfig, *, initialise: bool = True) -> LiteSeg:
    """The network of ``config.model`` with its initial weights (random, backbone file or full weights).

    ``initialise=False`` skips ``init.*`` (a resumed run takes its weights from the training checkpoint).
    """
    spec = config.model
    model = build_liteseg(spec.backbone, num_classes=spec.num_classes, aspp=spec.aspp, separable=spec.separable)
    if not initialise:
        return model
    if config.init.backbone:
        _load_backbone(model, config.init.backbone)
    elif config.init.weights:
        _load_fitting_weights(model, config.init.weights)
    return model


def _load_fitting_weights(model: LiteSeg, weights: str) -> None:
    """Copy every tensor of ``weights`` whose shape fits ``model`` (same architecture; another class count
    leaves the classifier new, and the log names the new tensors)."""
    from liteseg_ros.model.bundled import bundled_model_path
    from liteseg_ros.model.published import resolve_published

    if weights == BUNDLED:
        path = bundled_model_path(model.config.backbone)
    else:
        path = resolve_published(weights, model.config.backbone) or weights
    source, meta = load_weights(path, backbone=model.config.backbone)
    if dataclasses.replace(source.config, num_classes=model.num_classes) != model.config:
        raise IncompatibleWeightsError(f"init.weights {weights} is a {source.config} model but the config asks for "
                                       f"{model.config}: set model.* to match")
    theirs, ours = source.state_dict(), model.state_dict()
    fitting = {key: value for key, value in theirs.items() if key in ours and value.shape == ours[key].shape}
    new = [key for key in ours if key not in fitting]
    model.load_state_dict({**ours, **fitting}, strict=True)
    log.info("model initialised from %s (%s): %d tensors loaded", weights, meta.origin or "our checkpoint",
             len(fitting))
    if new:
        log.info("new (randomly initialised) tensors, for %d classes instead of the weights' %d: %s",
                 model.num_classes, source.num_classes, ", ".join(new))


def build_optimizer(config: TrainConfig, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay
    )


def stage_length(config: TrainConfig, stage: StageSection, batches_per_epoch: int) -> int:
    """Length of a stage in schedule units (epochs or iterations)."""
    return stage.epochs if config.schedule.unit == "epoch" else stage.epochs * batches_per_epoch
