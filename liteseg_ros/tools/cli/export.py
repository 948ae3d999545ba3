"""liteseg-export: write LiteSeg as a static-shape ONNX model (BatchNorm folded) for TensorRT / onnxruntime.

Input ``input``: float32 N x 3 x H x W, RGB scaled to [0, 1] and ImageNet-normalised (mean/std in the
model's metadata). Output ``logits``: float32 N x C x H x W; with --include-argmax also ``mask``: int64
N x H x W trainIds (argmax over classes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from liteseg_ros.errors import ConfigError, LiteSegError, first_line
from liteseg_ros.files import atomic_file
from liteseg_ros.inference.batchnorm import fold_batchnorm
from liteseg_ros.inference.export import export_onnx
from liteseg_ros.labels import NUM_CLASSES, default_class_set
from liteseg_ros.logs import get_logger
from liteseg_ros.model import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, build_liteseg, load_weights
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, parse_size, run_cli

LOG = get_logger("liteseg-export")
MIN_OPSET = 13
EXPORTERS = ("torchscript", "dynamo")


class LogitsAndMask(nn.Module):
    """The network followed by the argmax over classes: outputs (logits, mask)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.network(x)
        return logits, logits.argmax(dim=1)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-export", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="output format (onnx)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="a liteseg_ros checkpoint or an authors' .pth")
    source.add_argument("--backbone", choices=BACKBONES, help="export randomly initialised weights (for testing)")
    parser.add_argument("--num-classes", type=int, default=NUM_CLASSES,
                        help=f"classes with --backbone (default {NUM_CLASSES}, Cityscapes)")
    parser.add_argument("--size", type=parse_size, required=True, help="static input HEIGHTxWIDTH, e.g. 360x640")
    parser.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=17, help=f"ONNX opset (>= {MIN_OPSET}, default 17)")
    parser.add_argument("--include-argmax", action="store_true", help="also output the int64 argmax 'mask'")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="torch.onnx exporter: torchscript (default, no extra dependency) "
                             "or dynamo (needs onnxscript)")
    parser.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers (default: folded)")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison with PyTorch")
    return parser


def _load(args: argparse.Namespace) -> tuple[nn.Module, dict]:
    if args.weights:
        model, meta = load_weights(args.weights)
        return model, {"mean": list(meta.mean), "std": list(meta.std), "class_names": list(meta.classes.names),
                       "class_colors": [list(c) for c in meta.classes.colors],
                       "origin": meta.origin or str(args.weights)}
    LOG.warning("exporting %s with RANDOM weights (--backbone): for testing the toolchain only", args.backbone)
    model = build_liteseg(args.backbone, num_classes=args.num_classes).eval()
    classes = default_class_set(args.num_classes)
    return model, {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "class_names": list(classes.names),
                   "class_colors": [list(c) for c in classes.colors], "origin": "random initialisation"}


def _check_args(args: argparse.Namespace) -> None:
    if args.opset < MIN_OPSET:
        raise ConfigError(f"--opset must be at least {MIN_OPSET} (TensorRT needs the Resize/ArgMax semantics "
                          f"of opset 13+), got {args.opset}")
    if args.batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {args.batch}")
    if args.exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise ConfigError("--exporter dynamo needs onnxscript: pip install onnxscript, or use --exporter torchscript")
    if not str(args.output).endswith(".onnx"):
        raise ConfigError(f"the output file should end in .onnx, got {args.output}")


def write_onnx(network: nn.Module, example: torch.Tensor, path: Path, *, opset: int, include_argmax: bool,
                exporter: str, metadata: dict[str, str]) -> None:
    """Export ``network`` (eval, fp32) for the static shape of ``example`` to ``path`` atomically."""
    module = LogitsAndMask(network) if include_argmax else network
    output_names = ["logits", "mask"] if include_argmax else ["logits"]
    try:
        with atomic_file(path) as temporary:
            export_onnx(module, example, str(temporary), opset=opset, output_names=output_names, exporter=exporter)
            _add_metadata(str(temporary), metadata)
    except ModuleNotFoundError as error:
        raise ConfigError(f"--exporter dynamo needs {error.name}: pip install {error.name}, "
                          "or use --exporter torchscript") from None


def _add_metadata(path: str, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(path)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, path)


def verify_with_onnxruntime(path: Path, network: nn.Module, example: torch.Tensor) -> tuple[float, float]:
    """(max abs logits difference, mask agreement) between onnxruntime on CPU and PyTorch."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"input": example.numpy()})[0]
    with torch.inference_mode():
        torch_logits = network(example).numpy()
    agreement = float((onnx_logits.argmax(1) == torch_logits.argmax(1)).mean())
    return float(np.abs(onnx_logits - torch_logits).max()), agreement


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    model, meta = _load(args)
    height, width = args.size
    model.check_input_size(height, width)
    example = torch.randn(args.batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    network = model if args.no_fold_bn else fold_batchnorm(model, example[:1])
    metadata = {"liteseg.backbone": model.config.backbone, "liteseg.input_size": f"{height}x{width}",
                "liteseg.normalisation": "RGB / 255, then (x - mean) / std", "liteseg.meta": json.dumps(meta)}
    output = Path(args.output)
    try:
        write_onnx(network, example, output, opset=args.opset, include_argmax=args.include_argmax,
                    exporter=args.exporter, metadata=metadata)
    except (RuntimeError, ValueError, OSError) as error:
        if isinstance(error, LiteSegError):
            raise
        raise ConfigError(f"ONNX export failed: {first_line(error)}") from None
    outputs = "logits, mask" if args.include_argmax else "logits"
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB): {model.config.backbone}, input float32 "
          f"{args.batch}x3x{height}x{width}, outputs {outputs}, opset {args.opset}, "
          f"BatchNorm {'kept' if args.no_fold_bn else 'folded'}")
    if not args.no_verify:
        difference, agreement = verify_with_onnxruntime(output, network, example)
        print(f"onnxruntime (CPU) vs PyTorch: max |logits difference| {difference:.2e}, mask agreement {agreement:.4%}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-export")


if __name__ == "__main__":
    sys.exit(main())
