"""Loading the authors' checkpoints (synthetic ones, built from their key schema) and liteseg-convert."""

import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch

from liteseg_ros.errors import IncompatibleWeightsError, WeightsError
from liteseg_ros.model import BACKBONES, build_liteseg, load_checkpoint, load_official_weights, load_weights

from authors_schema import random_authors_state_dict, save_authors_checkpoint
from conftest import installed_script

torch.set_num_threads(2)


def _loaded(backbone, source):
    return load_official_weights(build_liteseg(backbone), source).eval()


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_authors_file_loads_every_tensor(tmp_path, backbone, legacy):
    state = random_authors_state_dict(backbone, seed=1)
    path = save_authors_checkpoint(state, tmp_path / "authors.pth", legacy=legacy)
    model = _loaded(backbone, path)
    ours = model.state_dict()
    head = model.spec.imagenet_head_prefix
    for key, value in state.items():
        if head and key.startswith(head):
            assert key not in ours  # the unused ImageNet head is dropped
        else:
            assert torch.equal(ours[key], value), key


def test_missing_num_batches_tracked_and_wrappers_are_accepted():
    state = random_authors_state_dict("mobilenetv2", seed=2)
    old_style = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    wrapped = {"state_dict": {f"module.{k}": v for k, v in old_style.items()}}
    model = _loaded("mobilenetv2", wrapped)
    assert torch.equal(model.last_conv[6].weight, state["last_conv.6.weight"])
    assert int(model.bn1.num_batches_tracked) == 0


def test_other_backbone_is_refused_by_name():
    state = random_authors_state_dict("shufflenet")
    with pytest.raises(IncompatibleWeightsError, match="has keys for shufflenet, but backbone=mobilenetv2"):
        _loaded("mobilenetv2", state)


def test_other_class_count_is_refused_by_number():
    state = random_authors_state_dict("mobilenetv2")
    state["last_conv.6.weight"] = torch.zeros(21, 96, 1, 1)
    state["last_conv.6.bias"] = torch.zeros(21)
    with pytest.raises(IncompatibleWeightsError, match="has 21 output classes, but the model has num_classes=19"):
        _loaded("mobilenetv2", state)


def test_missing_unexpected_and_misshapen_keys_are_listed():
    state = random_authors_state_dict("darknet19")
    del state["aspp3.bn1.running_var"]
    state["aspp9.bn.weight"] = torch.ones(96)
    with pytest.raises(
        IncompatibleWeightsError, match=r"missing keys: aspp3\.bn1\.running_var.*unexpected keys: aspp9\.bn\.weight"
    ):
        _loaded("darknet19", state)
    state = random_authors_state_dict("darknet19")
    state["bn1.weight"] = torch.ones(95)
    with pytest.raises(IncompatibleWeightsError, match=r"wrong shape: bn1\.weight \(95,\) != \(96,\)"):
        _loaded("darknet19", state)


def test_ablation_architecture_cannot_take_released_weights():
    with pytest.raises(IncompatibleWeightsError, match="build with the defaults"):
        load_official_weights(build_liteseg("mobilenetv2", aspp="aspp"), random_authors_state_dict("mobilenetv2"))


@pytest.mark.parametrize("backbone", ["mobilenetv2", "shufflenet"])
def test_convert_cli_gives_bit_identical_logits(tmp_path, backbone):
    state = random_authors_state_dict(backbone, seed=3)
    source = save_authors_checkpoint(state, tmp_path / "authors.pth", legacy=True)
    out = tmp_path / "ours.pt"
    run = subprocess.run(
        [installed_script("liteseg-convert"), source, "--backbone", backbone, "-o", out], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    converted, meta = load_checkpoint(out)
    assert meta.backbone == backbone and meta.input_size == (1024, 2048) and "authors.pth" in meta.origin
    direct = _loaded(backbone, state)
    x = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(converted(x), direct(x))
    # load_weights reads the authors' file directly too, with the same numbers.
    from_authors, authors_meta = load_weights(source)
    assert authors_meta.backbone == backbone
    with torch.inference_mode():
        assert torch.equal(from_authors(x), direct(x))


class _RunsCode:
    """Unpickling this would create the marker file: a checkpoint that runs code when loaded carelessly."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = save_authors_checkpoint(random_authors_state_dict("mobilenetv2"), tmp_path / "good.pth")
    data = good.read_bytes()
    files = {
        "truncated": (tmp_path / "truncated.pth", data[: len(data) // 2]),
        "random": (tmp_path / "random.pth", os.urandom(4096)),
        "empty": (tmp_path / "empty.pth", b""),
    }
    for path, content in files.values():
        path.write_bytes(content)
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _RunsCode(marker)}, evil)
    raw = tmp_path / "evil_raw.pth"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    return {
        "truncated": (files["truncated"][0], "truncated or corrupt"),
        "random": (files["random"][0], "not a readable PyTorch file|truncated or corrupt"),
        "empty": (files["empty"][0], "is empty"),
        "evil": (evil, "refusing to load"),
        "evil_raw": (raw, "refusing to load|not a readable"),
        "missing": (tmp_path / "nope.pth", "does not exist"),
    }


@pytest.mark.parametrize("case", ["truncated", "random", "empty", "evil", "evil_raw", "missing"])
def test_bad_files_give_clear_errors_and_run_nothing(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    for loader in (lambda p: _loaded("mobilenetv2", p), load_checkpoint, load_weights):
        with pytest.raises(WeightsError, match=message) as error:
            loader(path)
        assert str(path) in str(error.value)
    run = subprocess.run(
        [installed_script("liteseg-convert"), path, "--backbone", "mobilenetv2", "-o", tmp_path / "o.pt"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert str(path) in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "o.pt").exists()
