"""The LiteSeg network: shapes, parameter counts and MACs against LITESEG.md, key schema, ablations, errors."""

import pytest
import torch

from liteseg_ros.errors import ConfigError, InputSizeError
from liteseg_ros.model import BACKBONES, LiteSegConfig, build_liteseg
from liteseg_ros.model.complexity import measure_complexity

from authors_schema import schema

torch.set_num_threads(2)

# From LITESEG.md "Numbers, measured on the authors' modules".
PARAMS_USED = {"mobilenetv2": 3_101_707, "shufflenet": 1_971_451, "darknet19": 20_545_459}
PARAMS_WITH_HEAD = {"mobilenetv2": 4_382_707, "shufflenet": 3_508_451, "darknet19": 20_545_459}
GMACS_512x1024 = {"mobilenetv2": 4.31, "shufflenet": 2.29, "darknet19": 57.13}


@pytest.fixture(scope="module", params=BACKBONES)
def model(request):
    torch.manual_seed(0)
    return build_liteseg(request.param).eval()


@pytest.mark.parametrize("size", [(64, 128), (96, 160), (360, 640)])
def test_output_shape_and_finite(model, size):
    with torch.inference_mode():
        logits = model(torch.randn(2 if size[0] < 100 else 1, 3, *size))
    assert logits.shape[1:] == (19, *size)
    assert torch.isfinite(logits).all()


def test_parameter_counts_equal_litesegmd(model):
    name = model.config.backbone
    figures = measure_complexity(model.config, (512, 1024))
    assert figures.params_used == PARAMS_USED[name]
    assert figures.params_with_imagenet_head == PARAMS_WITH_HEAD[name]


def test_macs_within_one_percent_of_litesegmd(model):
    figures = measure_complexity(model.config, (512, 1024))
    assert figures.macs / 1e9 == pytest.approx(GMACS_512x1024[model.config.backbone], rel=0.01)


def test_state_dict_keys_and_shapes_equal_authors_schema_without_imagenet_head(model):
    expected = {k: shape for k, (shape, _) in schema(model.config.backbone).items()}
    head = model.spec.imagenet_head_prefix
    expected = {k: v for k, v in expected.items() if not (head and k.startswith(head))}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected


def test_strides(model):
    spec = model.spec
    x = torch.randn(1, 3, 64, 128)
    with torch.inference_mode():
        high, low = model.backbone(x)
    assert high.shape[2:] == (64 // spec.output_stride, 128 // spec.output_stride)
    assert low.shape[1:] == (spec.low_level_channels, 64 // spec.low_level_stride, 128 // spec.low_level_stride)


def test_darknet_takes_authors_speed_size_but_refuses_sides_not_multiple_of_4():
    model = build_liteseg("darknet19").eval()
    model.check_input_size(360, 640)
    with pytest.raises(InputSizeError, match="multiples of 4"):
        model(torch.randn(1, 3, 362, 640))


def test_too_small_or_wrong_channels_is_clear_error():
    model = build_liteseg("shufflenet").eval()
    with pytest.raises(InputSizeError, match="too small"):
        model(torch.randn(1, 3, 16, 64))
    with pytest.raises(InputSizeError, match="N x 3 x H x W"):
        model(torch.randn(1, 4, 64, 64))


def test_unknown_backbone_lists_choices():
    with pytest.raises(
        ConfigError, match="unknown backbone 'resnet50': choose one of mobilenetv2, shufflenet, darknet19"
    ):
        build_liteseg("resnet50")
    with pytest.raises(ConfigError, match="aspp"):
        build_liteseg("mobilenetv2", aspp="fancy")
    with pytest.raises(ConfigError, match="num_classes"):
        build_liteseg("mobilenetv2", num_classes=0)


def test_ablation_switches_change_the_head_as_the_paper_describes():
    released = build_liteseg("mobilenetv2")
    baseline = build_liteseg("mobilenetv2", aspp="aspp")
    standard = build_liteseg("mobilenetv2", separable=False)
    # The baseline ASPP drops the second 3x3 layer of the rate-3/6/9 branches.
    assert not hasattr(baseline.aspp2, "conv1") and hasattr(released.aspp2, "conv1")
    assert isinstance(standard.aspp2.atrous_convolution, torch.nn.Conv2d)
    assert standard.aspp2.atrous_convolution.weight.shape == (96, 1280, 3, 3)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(baseline) < count(released) < count(standard)
    # Table II: standard convolutions cost several times more (18.86 vs 4.9 "GFLOPs" in the paper's counter;
    # 11.28 vs 4.31 GMACs in ours, which does not count BN, activations, pooling and upsampling).
    standard_macs = measure_complexity(standard.config, (512, 1024)).macs
    assert standard_macs / 1e9 == pytest.approx(11.28, rel=0.01)
    assert standard_macs > 2.5 * measure_complexity(released.config, (512, 1024)).macs
    for net in (baseline, standard):
        with torch.inference_mode():
            assert net.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 19, 64, 64)


def test_num_classes_changes_the_classifier_only():
    model = build_liteseg("shufflenet", num_classes=7)
    assert model.last_conv[6].weight.shape == (7, 96, 1, 1)
    assert model.config == LiteSegConfig(backbone="shufflenet", num_classes=7)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_authors_schema_copies_match_reference(backbone):
    from authors_schema import DATA_DIR, SHARED_REFERENCE_DIR

    reference = SHARED_REFERENCE_DIR / f"authors-state-dict-{backbone}.tsv"
    if not reference.exists():
        pytest.skip(f"{reference} is not beside this checkout")
    assert (DATA_DIR / reference.name).read_bytes() == reference.read_bytes()
