"""Our checkpoint format: bit-exact round trips, metadata, and the errors for foreign or mismatched files."""

import pytest
import torch

from liteseg_ros.errors import IncompatibleWeightsError, WeightsError
from liteseg_ros.model import BACKBONES, CheckpointMeta, build_liteseg, load_checkpoint, load_weights, save_checkpoint

from authors_schema import random_authors_state_dict, save_authors_checkpoint

torch.set_num_threads(2)


def _trained_like(backbone, **kwargs):
    torch.manual_seed(7)
    model = build_liteseg(backbone, **kwargs)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))  # non-trivial BatchNorm statistics
    return model.eval()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_round_trip_is_bit_exact(tmp_path, backbone):
    model = _trained_like(backbone)
    meta = CheckpointMeta.for_model(model, input_size=(512, 1024), origin="unit test", extra={"miou": 0.5})
    save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, loaded_meta = load_checkpoint(tmp_path / "m.pt")
    assert loaded_meta == meta
    assert list(loaded.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_ablation_architecture_round_trips(tmp_path):
    model = _trained_like("shufflenet", aspp="aspp", separable=False, num_classes=5)
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta.arch == {"aspp": "aspp", "separable": False} and loaded.num_classes == 5
    assert torch.equal(loaded.last_conv[6].weight, model.last_conv[6].weight)


def test_half_storage_rounds_to_fp16_and_loads_as_fp32(tmp_path):
    model = _trained_like("mobilenetv2")
    save_checkpoint(tmp_path / "h.pt", model, half=True)
    loaded, _ = load_checkpoint(tmp_path / "h.pt")
    weight = loaded.last_conv[6].weight
    assert weight.dtype == torch.float32
    assert torch.equal(weight, model.last_conv[6].weight.half().float())
    assert (tmp_path / "h.pt").stat().st_size < 0.55 * 4 * sum(p.numel() for p in model.parameters())


def test_authors_file_is_not_our_format_but_load_weights_reads_it(tmp_path):
    path = save_authors_checkpoint(random_authors_state_dict("shufflenet"), tmp_path / "a.pth")
    with pytest.raises(WeightsError, match="authors' LiteSeg checkpoint.*liteseg-convert"):
        load_checkpoint(path)
    model, meta = load_weights(path)
    assert meta.backbone == "shufflenet" and meta.origin == "authors' checkpoint a.pth"
    with pytest.raises(IncompatibleWeightsError, match="has keys for shufflenet, but backbone=darknet19"):
        load_weights(path, backbone="darknet19")


def test_foreign_and_mismatched_files(tmp_path):
    torch.save({"epoch": 3, "weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(WeightsError, match=r"foreign\.pt is not a liteseg_ros checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    model = _trained_like("mobilenetv2")
    save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["meta"]["backbone"] = "darknet19"
    torch.save(payload, tmp_path / "lying.pt")
    with pytest.raises(IncompatibleWeightsError, match=r"lying\.pt has keys for mobilenetv2, but backbone=darknet19"):
        load_checkpoint(tmp_path / "lying.pt")
    payload["meta"]["backbone"] = "vgg"
    torch.save(payload, tmp_path / "unknown.pt")
    with pytest.raises(IncompatibleWeightsError, match="unknown architecture"):
        load_checkpoint(tmp_path / "unknown.pt")
    with pytest.raises(IncompatibleWeightsError, match="has keys for mobilenetv2, but backbone=shufflenet"):
        load_weights(tmp_path / "m.pt", backbone="shufflenet")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    model = _trained_like("mobilenetv2")
    target = tmp_path / "m.pt"
    target.write_bytes(b"previous")
    with pytest.raises(IncompatibleWeightsError):
        save_checkpoint(target, model, CheckpointMeta(backbone="shufflenet"))
    assert target.read_bytes() == b"previous"
    save_checkpoint(target, model)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
