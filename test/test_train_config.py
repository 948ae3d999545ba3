"""Training config (YAML, overrides, validation, dump), poly LR schedule and the deterministic batch sampler."""

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from liteseg_ros.errors import ConfigError
from liteseg_ros.training.config import TrainConfig, dump_config, load_config
from liteseg_ros.training.data import EpochBatchSampler
from liteseg_ros.training.schedule import poly_lr

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def test_paper_presets_follow_litseg_md():
    for backbone, lr in (("mobilenetv2", 1e-7), ("shufflenet", 1e-7), ("darknet19", 1e-8)):
        config = load_config(CONFIG_DIR / f"train_{backbone}.yaml")
        assert config.model.backbone == backbone
        assert (config.optim.name, config.optim.momentum, config.optim.nesterov) == ("sgd", 0.9, True)
        assert config.optim.weight_decay == 4e-5 and config.optim.loss_reduction == "sum"
        assert (config.schedule.power, config.schedule.update_every, config.schedule.unit) == (0.9, 5, "epoch")
        assert config.coarse.epochs == 20 and config.coarse.annotation == "gtCoarse"
        assert config.coarse.splits == ["train", "train_extra"] and config.fine.annotation == "gtFine"
        assert config.coarse.base_lr == lr and config.fine.base_lr == lr
        assert [name for name, _ in config.stages()] == ["coarse", "fine"]


def test_authors_preset_differences():
    config = load_config(CONFIG_DIR / "train_authors_mobilenetv2.yaml")
    assert config.optim.nesterov is False and config.optim.weight_decay == 5e-4
    assert config.optim.reset_on_lr_update is True and config.coarse.epochs == 100
    assert config.coarse.lr_update_every == 10 and config.fine.lr_update_every == 5
    assert config.data.crop_policy == "resize" and config.data.scale_range == [0.2, 0.8]
    assert config.data.rotation_degrees == 5.0 and config.data.val_crop == [512, 1024]


def test_overrides_nested_typed_and_dumped(tmp_path):
    config = load_config(CONFIG_DIR / "train_mobilenetv2.yaml", [
        "data.batch_size=8", "data.crop_sizes=[[64, 128]]", "optim.nesterov=false", "fine.base_lr=0.01",
        "init.weights=null", "coarse.epochs=0", "runtime.max_iterations=5", "optim.loss_reduction=mean",
    ])
    assert config.data.batch_size == 8 and config.data.crop_sizes == [[64, 128]]
    assert config.optim.nesterov is False and config.fine.base_lr == 0.01 and isinstance(config.fine.base_lr, float)
    assert [name for name, _ in config.stages()] == ["fine"] and config.runtime.max_iterations == 5
    dump_config(config, tmp_path / "config.yaml")
    dumped = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert dumped["data"]["batch_size"] == 8 and dumped["optim"]["loss_reduction"] == "mean"
    assert load_config(tmp_path / "config.yaml") == config  # the dump is a complete, loadable config


def test_defaults_without_file_equal_the_dataclass_defaults():
    assert load_config(None) == TrainConfig()


@pytest.mark.parametrize("override, message", [
    ("data.batchsize=8", "did you mean 'batch_size'"),
    ("data.batch_size=eight", "data.batch_size must be of type int"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
    ("optim.loss_reduction=median", "optim.loss_reduction must be one of sum, mean"),
    ("model.backbone=resnet", "model.backbone must be one of"),
    ("optim.loss=focal", "optim.loss must be one of cross_entropy, ohem"),
    ("optim.loss=ohem", "set optim.loss_reduction=mean"),
    ("optim.ohem_threshold=1.5", "optim.ohem_threshold and optim.ohem_min_kept must lie in"),
    ("optim.ohem_min_kept=0", "optim.ohem_threshold and optim.ohem_min_kept must lie in"),
    ("data.crop_sizes=[[16, 16]]", "data.crop_sizes"),
    ("data=3", "data must be a section"),
    ("nonsense", "not of the form key=value"),
    ("coarse.epochs=0", None),
])
def test_bad_overrides_raise_config_error_naming_the_key(override, message):
    overrides = [override] if message else [override, "fine.epochs=0"]
    with pytest.raises(ConfigError, match=message or "nothing to train"):
        load_config(CONFIG_DIR / "train_mobilenetv2.yaml", overrides)


def test_poly_lr_is_frozen_between_updates():
    assert poly_lr(0.1, 0, 100, update_every=5) == 0.1
    assert poly_lr(0.1, 4, 100, update_every=5) == 0.1
    assert poly_lr(0.1, 5, 100, update_every=5) == pytest.approx(0.1 * 0.95 ** 0.9)
    assert poly_lr(0.1, 9, 100, update_every=5) == pytest.approx(0.1 * 0.95 ** 0.9)
    assert poly_lr(0.1, 99, 100, update_every=1) == pytest.approx(0.1 * 0.01 ** 0.9)
    assert poly_lr(0.1, 100, 100) == 0.0


def test_sampler_order_is_a_function_of_seed_and_epoch_and_resumable():
    sampler = EpochBatchSampler(10, 3, [[64, 128]], seed=1)
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == 3 and all(len(batch) == 3 for batch in full)
    again = EpochBatchSampler(10, 3, [[64, 128]], seed=1)
    again.set_epoch(2, start_batch=1)
    assert list(again) == full[1:]
    other_epoch = EpochBatchSampler(10, 3, [[64, 128]], seed=1)
    other_epoch.set_epoch(3)
    assert list(other_epoch) != full
    indices = [key[2] for batch in full for key in batch]
    assert len(set(indices)) == 9 and all(key[0] == 2 and key[3:] == (64, 128) for batch in full for key in batch)


def test_sampler_ranks_split_the_epoch_like_distributed_sampler():
    per_rank = []
    for rank in range(2):
        sampler = EpochBatchSampler(9, 2, [[64, 128]], seed=0, rank=rank, world_size=2, drop_last=False)
        sampler.set_epoch(0)
        per_rank.append([key[2] for batch in sampler for key in batch])
    assert len(per_rank[0]) == len(per_rank[1]) == 5  # 9 padded to 10, 5 each
    assert set(per_rank[0]) | set(per_rank[1]) == set(range(9))
    assert len(set(per_rank[0]) & set(per_rank[1])) == 1  # only the padding sample repeats


def test_sampler_multi_scale_modes():
    sizes = [[64, 128], [96, 192], [32, 64]]
    loaders = EpochBatchSampler(8, 4, sizes, mode="loaders", seed=0)
    batches = loaders.all_batches()
    assert [(b[0][1], b[0][3], b[0][4]) for b in batches] == [(0, 64, 128), (0, 64, 128), (1, 96, 192),
                                                             (1, 96, 192), (2, 32, 64), (2, 32, 64)]
    per_batch = EpochBatchSampler(64, 1, sizes, mode="per_batch", seed=0).all_batches()
    drawn = {(batch[0][3], batch[0][4]) for batch in per_batch}
    assert drawn == {tuple(size) for size in sizes}
    assert all(len({(key[3], key[4]) for key in batch}) == 1 for batch in per_batch)
    single = EpochBatchSampler(8, 4, sizes, mode="single", seed=0).all_batches()
    assert {(key[3], key[4]) for batch in single for key in batch} == {(64, 128)}
    assert np.array_equal(sorted(key[2] for batch in single for key in batch), np.arange(8))


def test_training_without_the_train_extra_is_one_clear_error(tmp_path, monkeypatch, capsys):
    """A runtime-only install (no tqdm / tensorboard) gets a sentence naming the extra, not a traceback."""
    import sys

    from liteseg_ros.training.train import main

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    config = Path(__file__).resolve().parent.parent / "config" / "train_mobilenetv2.yaml"
    code = main(["--config", str(config), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert code == 2
    log_file = tmp_path / "run" / "train.log"
    logged = capsys.readouterr().err + (log_file.read_text() if log_file.exists() else "")
    assert re.search(r"liteseg-train needs the train extra \((tqdm|tqdm, tensorboard) missing\): "
                     r"pip install 'liteseg_ros\[train\]'", logged), logged
    assert "Traceback" not in logged


def test_the_model_section_is_the_architecture_config_and_devices_match_the_node():
    """One definition of the architecture (LiteSegConfig, as checkpoints store it); runtime.device takes cuda:N
    as the node's device parameter does."""
    from liteseg_ros.model import LiteSegConfig

    config = load_config(None, ["model.backbone=shufflenet", "model.separable=false", "runtime.device=cuda:1"])
    assert config.model == LiteSegConfig(backbone="shufflenet", separable=False)
    assert config.runtime.device == "cuda:1"
    with pytest.raises(ConfigError, match="runtime.device must be auto, cpu, cuda or cuda:N"):
        load_config(None, ["runtime.device=gpu"])
