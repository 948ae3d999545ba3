"""liteseg-export: the ONNX file's interface, onnxruntime reproducing the eager network, one-line errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from liteseg_ros.model import save_checkpoint
from liteseg_ros.tools.cli.export import main

from segmenter_fixtures import calibrated_model, network_input, one_torch_thread, street_image  # noqa: F401  (one_torch_thread is an autouse fixture)

HAVE_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
if HAVE_ONNX:
    import onnx
    import onnxruntime

pytestmark = pytest.mark.skipif(not HAVE_ONNX, reason="liteseg-export needs onnx and onnxruntime (pip install onnx)")

SIZE = (64, 128)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    model = calibrated_model("mobilenetv2", size=SIZE)
    return model, save_checkpoint(tmp_path_factory.mktemp("export") / "model.pt", model)


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exported_onnx_has_the_tensorrt_interface_and_onnxruntime_reproduces_the_logits(weights, tmp_path, capsys):
    model, path = weights
    out = tmp_path / "liteseg.onnx"
    code, stdout, _ = run(["--format", "onnx", "--weights", path, "--size", "64x128", "-o", out], capsys)
    assert code == 0 and out.is_file()
    assert "mask agreement" in stdout
    graph = onnx.load(str(out))
    assert max(opset.version for opset in graph.opset_import if opset.domain in ("", "ai.onnx")) == 17
    (tensor_in,) = graph.graph.input
    assert tensor_in.name == "input" and tensor_in.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_value for d in tensor_in.type.tensor_type.shape.dim] == [1, 3, 64, 128]
    assert [o.name for o in graph.graph.output] == ["logits"]
    assert [d.dim_value for d in graph.graph.output[0].type.tensor_type.shape.dim] == [1, 19, 64, 128]
    assert not [node for node in graph.graph.node if node.op_type == "BatchNormalization"]
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert metadata["liteseg.backbone"] == "mobilenetv2" and json.loads(metadata["liteseg.meta"])["mean"][0] == 0.485

    x = network_input(street_image(*SIZE, seed=31), SIZE)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        eager = model(x).numpy()  # the original network, BatchNorm and all
    assert np.abs(onnx_logits - eager).max() < 1e-3
    assert (onnx_logits.argmax(1) == eager.argmax(1)).mean() >= 0.999


def test_include_argmax_adds_the_mask_output(weights, tmp_path, capsys):
    _, path = weights
    out = tmp_path / "with_mask.onnx"
    code, _, _ = run(["--weights", path, "--size", "64x128", "-o", out, "--include-argmax", "--opset", "13",
                      "--no-verify"], capsys)
    assert code == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "mask"]
    x = network_input(street_image(*SIZE, seed=32), SIZE).numpy()
    logits, mask = session.run(None, {"input": x})
    assert mask.shape == (1, 64, 128) and np.array_equal(mask, logits.argmax(1))


def test_backbone_without_weights_exports_for_other_backbones(tmp_path, capsys):
    out = tmp_path / "shufflenet.onnx"
    code, stdout, _ = run(["--backbone", "shufflenet", "--size", "64x64", "-o", out], capsys)
    assert code == 0 and "shufflenet" in stdout
    difference = float(stdout.split("max |logits difference| ")[1].split(",")[0])
    assert difference < 1e-3


@pytest.mark.parametrize("argv, message", [
    (["--weights", "missing.pt", "--size", "64x128"], "does not exist"),
    (["--backbone", "mobilenetv2", "--size", "64by128"], "HEIGHTxWIDTH"),
    (["--backbone", "mobilenetv2", "--size", "64x128", "--opset", "11"], "opset"),
    (["--backbone", "darknet19", "--size", "70x130"], "multiples of"),
    (["--backbone", "mobilenetv2", "--size", "64x128", "--format", "trt"], "invalid choice"),
])
def test_errors_are_one_line_on_stderr_with_exit_status_2(tmp_path, capsys, argv, message):
    try:
        code = main([str(a) for a in argv + ["-o", tmp_path / "x.onnx"]])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is not None, reason="onnxscript is installed")
def test_dynamo_exporter_without_onnxscript_says_what_to_install(tmp_path, capsys):
    code, _, err = run(["--backbone", "mobilenetv2", "--size", "64x128", "--exporter", "dynamo",
                        "-o", tmp_path / "d.onnx"], capsys)
    assert code == 2 and "pip install onnxscript" in err
    assert not list(tmp_path.iterdir())
