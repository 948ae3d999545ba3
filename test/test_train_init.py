"""Initial weights of a training run: random, a backbone state dict, an authors' .pth, one of our checkpoints."""

import pytest
import torch

from liteseg_ros.errors import IncompatibleWeightsError
from liteseg_ros.model import build_liteseg, save_checkpoint
from liteseg_ros.training.builders import build_model, build_optimizer
from liteseg_ros.training.config import load_config


@pytest.fixture(scope="module")
def source_model():
    torch.manual_seed(3)
    model = build_liteseg("mobilenetv2")
    with torch.no_grad():  # make BatchNorm statistics non-default too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
    return model


def assert_same(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_init_weights_from_our_checkpoint(source_model, tmp_path):
    path = save_checkpoint(tmp_path / "ours.pt", source_model)
    model = build_model(load_config(None, [f"init.weights={path}"]))
    assert_same(model.state_dict(), source_model.state_dict())


def test_init_weights_from_an_authors_state_dict(source_model, tmp_path):
    # the authors' release is a bare state dict with the same module names (plus the unused ImageNet head)
    state = dict(source_model.state_dict())
    state["mobile_features.classifier.1.weight"] = torch.zeros(1000, 1280)
    state["mobile_features.classifier.1.bias"] = torch.zeros(1000)
    torch.save(state, tmp_path / "liteseg-mobilenet-cityscapes.pth")
    model = build_model(load_config(None, [f"init.weights={tmp_path / 'liteseg-mobilenet-cityscapes.pth'}"]))
    assert_same(model.state_dict(), source_model.state_dict())


def test_init_backbone_loads_only_the_backbone(source_model, tmp_path):
    state = {f"module.{key}": value for key, value in source_model.mobile_features.state_dict().items()}
    torch.save(state, tmp_path / "imagenet_backbone.pth")
    model = build_model(load_config(None, [f"init.backbone={tmp_path / 'imagenet_backbone.pth'}"]))
    assert_same(model.mobile_features.state_dict(), source_model.mobile_features.state_dict())
    assert not torch.equal(model.last_conv[6].weight, source_model.last_conv[6].weight)  # the head stays random


def test_init_backbone_of_another_network_is_refused(tmp_path):
    torch.save(build_liteseg("shufflenet").shuffle_features.state_dict(), tmp_path / "shufflenet.pth")
    with pytest.raises(IncompatibleWeightsError, match="does not fit the mobilenetv2 backbone"):
        build_model(load_config(None, [f"init.backbone={tmp_path / 'shufflenet.pth'}"]))


def test_init_weights_with_another_head_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "aspp.pt", build_liteseg("mobilenetv2", aspp="aspp"))
    with pytest.raises(IncompatibleWeightsError, match="set model"):
        build_model(load_config(None, [f"init.weights={path}"]))


def test_optimizer_follows_the_config(source_model):
    sgd = build_optimizer(load_config(None), source_model, 1e-7)
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (1e-7, 0.9, True, 4e-5)
    adam = build_optimizer(load_config(None, ["optim.name=adam"]), source_model, 1e-3)
    assert isinstance(adam, torch.optim.Adam)


def _imagenet_file(backbone: str, path) -> dict:
    """An ImageNet backbone file in the layout of those the authors' README links: MobileNetV2 a plain legacy
    pickle with the classifier head; ShuffleNet 1g8 saved from DataParallel (``module.`` keys, ``fc`` head)
    inside a ``state_dict`` wrapper. Returns the backbone's tensors."""
    source = build_liteseg(backbone)
    features = getattr(source, source.spec.attribute).state_dict()
    if backbone == "mobilenetv2":
        payload = {**features, "classifier.1.weight": torch.zeros(1000, 1280), "classifier.1.bias": torch.zeros(1000)}
    else:
        payload = {"state_dict": {**{f"module.{key.removeprefix('module.')}": value for key, value in features.items()},
                                  "module.fc.weight": torch.zeros(1000, 1536)}, "epoch": 90, "best_prec1": 67.408}
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    return features


@pytest.mark.parametrize("backbone", ["mobilenetv2", "shufflenet"])
def test_init_backbone_reads_the_imagenet_files_the_authors_link(tmp_path, backbone):
    path = tmp_path / f"{backbone}_imagenet.pth.tar"
    features = _imagenet_file(backbone, path)
    model = build_model(load_config(None, [f"model.backbone={backbone}", f"init.backbone={path}"]))
    assert_same(getattr(model, model.spec.attribute).state_dict(), features)
