"""Validation of the node's parameters and the weights look-up (no ROS graph)."""

from __future__ import annotations

import pytest

from liteseg_ros.errors import ConfigError, WeightsError
from liteseg_ros.model.bundled import bundled_model_name
from liteseg_ros.ros.parameters import NodeConfig


def test_defaults_are_valid():
    config = NodeConfig().validated()
    assert config.input_size is None  # the size the weights were trained at
    assert NodeConfig(input_width=320, input_height=192).validated().input_size == (192, 320)
    assert config.output_modes == {"mask": "auto", "color": "auto", "overlay": "auto", "confidence": "auto",
                                   "points": "auto"}
    assert config.cache is True and config.segmenter_config().calibrate is True


@pytest.mark.parametrize("value, mode", [(True, "always"), (False, "never"), ("true", "always"), ("never", "never")])
def test_output_switches_accept_booleans(value, mode):
    assert NodeConfig(publish_overlay=value).validated().publish_overlay == mode


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"backbone": "resnet50"}, "backbone='resnet50' is invalid: choose one of mobilenetv2, shufflenet, darknet19"),
        ({"input_width": 8, "input_height": 360}, r"input_width=8 is invalid: give an integer in \[32, 4096\]"),
        ({"input_height": 2.5}, "input_height=2.5 is invalid"),
        ({"input_width": 640}, "input_width and input_height are set together: both 0"),
        ({"cache": "yes"}, "cache='yes' is invalid: give true or false"),
        ({"overlay_alpha": 1.5}, r"overlay_alpha=1.5 is invalid: give a number in \[0.0, 1.0\]"),
        ({"overlay_alpha": float("nan")}, "overlay_alpha=nan is invalid"),
        ({"input_transport": "theora"}, "choose one of raw, compressed"),
        ({"qos_reliability": "sometimes"}, "choose one of auto, reliable, best_effort"),
        ({"qos_depth": 0}, "qos_depth=0 is invalid"),
        ({"output_qos_depth": 101}, r"output_qos_depth=101 is invalid: give an integer in \[1, 100\]"),
        ({"publish_mask": "maybe"}, "publish_mask='maybe' is invalid: choose one of auto, always, never"),
        ({"device": 0}, "device=0 is invalid: give a string"),
        ({"optimize": "turbo"}, "unknown optimize option 'turbo'"),
        ({"optimize": "fold_bn,compile,onnxruntime"}, "choose one runner of openvino, onnxruntime, torchscript_freeze"),
        ({"optimize": "warmup=many"}, "warmup must be an integer"),
        ({"output_size": "720p"}, "output_size='720p' is invalid: give camera, network, depth or HEIGHTxWIDTH"),
        ({"output_size": "0x360"}, "output_size='0x360' is invalid"),
        ({"output_size": 640}, "output_size=640 is invalid"),
    ],
)
def test_invalid_values_name_the_parameter(changes, message):
    with pytest.raises(ConfigError, match=message):
        NodeConfig(**changes).validated()


@pytest.mark.parametrize("value", ["auto", "none", "fold_bn,channels_last,torchscript_freeze,warmup=2"])
def test_optimize_accepts_auto_none_and_lists(value):
    assert NodeConfig(optimize=value).validated().optimize == value


@pytest.mark.parametrize("value, normalised, for_segmenter", [
    ("camera", "camera", None), ("network", "network", "input"), ("360x640", "360x640", (360, 640)),
    (" 720 x 1280 ", "720x1280", (720, 1280)),
])
def test_output_size_is_camera_network_or_height_x_width(value, normalised, for_segmenter):
    config = NodeConfig(output_size=value).validated()
    assert config.output_size == normalised and config.segmenter_output_size == for_segmenter


def test_unknown_parameter_is_rejected():
    with pytest.raises(ConfigError, match="unknown parameter"):
        NodeConfig.from_parameters({"backbone": "mobilenetv2", "colour": "red"})


def test_explicit_weights_must_exist(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(WeightsError, match=f"weights file {missing} does not exist"):
        NodeConfig(weights=str(missing)).weights_file()
    present = tmp_path / "w.pt"
    present.write_bytes(b"x")
    assert NodeConfig(weights=str(present)).weights_file() == present


def test_empty_weights_means_the_bundled_model_or_a_clear_error():
    config = NodeConfig(backbone="darknet19")  # no bundled darknet19 model is shipped
    with pytest.raises(WeightsError, match=f"no bundled model {bundled_model_name('darknet19')} in "):
        config.weights_file()
