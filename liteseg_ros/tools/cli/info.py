"""liteseg-info: parameters, multiply-accumulates and strides of LiteSeg (optionally eager CPU forward time); with
--weights also the model's class set and training size. With --plan: how the node would run on this machine
(device, precision, runner, threads, each with its reason, and the fallbacks), from its parameters file and the
flags, without preparing the network. With --cache: the network cache's entries, its size, or clearing it. With
--nav2-layer: a Nav2 semantic_segmentation_layer configuration for the node's topics and published classes:

    liteseg-info --plan [--params-file config/liteseg.yaml] [--device cpu] [--precision auto] [--weights F]
    liteseg-info --cache [list|size|clear] [--json]
    liteseg-info --nav2-layer [--params-file F] [--weights F] [--namespace NS] [--camera NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from liteseg_ros.classes import ClassSet
from liteseg_ros.errors import ConfigError, first_line
from liteseg_ros.inference.sources import read_source
from liteseg_ros.model import BACKBONES, LiteSegConfig
from liteseg_ros.model.complexity import MAC_COUNTER, measure_complexity, median_ms, time_eager_forward
from liteseg_ros.model.published import resolve_weights
from liteseg_ros.sizes import format_size
from liteseg_ros.tools.cli.conventions import OneLineArgumentParser, add_threads_argument, parse_size, run_cli

DEFAULT_SIZE = (512, 1024)  # the paper's Cityscapes evaluation size, for an architecture alone
COLUMNS = (
    "backbone",
    "input",
    "params used",
    "params incl. ImageNet head",
    "GMACs",
    "output stride",
    "low-level stride",
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-info", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--backbone", choices=BACKBONES + ("all",), default="all", help="architecture (default: all three)"
    )
    source.add_argument("--weights", help="a liteseg_ros checkpoint, an authors' .pth or an INT8 model (.int8.onnx) "
                        "instead of --backbone: its metadata is read, not its network")
    parser.add_argument("--size", type=parse_size, help="input HEIGHTxWIDTH (default: the size --weights was trained "
                        "at, else 512x1024)")
    parser.add_argument("--time", action="store_true", help="also time the eager fp32 CPU forward (median)")
    add_threads_argument(parser, "CPU threads for --time; with --plan the node's threads parameter")
    parser.add_argument("--iters", type=int, default=10, help="timed passes for --time (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plan = parser.add_argument_group("--plan: what the node would do here (flags override the parameters file)")
    plan.add_argument("--plan", action="store_true", help="print the plan instead of the complexity table")
    plan.add_argument("--params-file", type=Path, help="the node's parameters YAML (default: the parameters' "
                      "defaults, as config/liteseg.yaml holds them)")
    plan.add_argument("--device", help="the node's device parameter")
    plan.add_argument("--precision", help="the node's precision parameter")
    plan.add_argument("--optimize", help="the node's optimize parameter")
    nav2 = parser.add_argument_group("--nav2-layer: Nav2's semantic_segmentation_layer for the node's outputs")
    nav2.add_argument("--nav2-layer", action="store_true", help="print the layer's YAML for the published classes "
                      "(the weights' and the parameters file's class_map)")
    nav2.add_argument("--namespace", default="", help="the node's namespace (default: none)")
    nav2.add_argument("--camera", default="", help="one of the node's cameras (default: the single camera)")
    parser.add_argument("--cache", nargs="?", const="list", choices=("list", "size", "clear"),
                        help="the network cache ($XDG_CACHE_HOME/liteseg_ros/networks): list its entries (default), "
                             "print its size, or clear it")
    return parser


def node_parameters(args: argparse.Namespace) -> dict:
    """The node's parameter values: the file's (any node key of it holding ros__parameters), then the flags."""
    values: dict = {}
    if args.params_file is not None:
        try:
            document = yaml.safe_load(args.params_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"--params-file {args.params_file} cannot be read: {first_line(error)}") from None
        for entry in document.values() if isinstance(document, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("ros__parameters"), dict):
                values.update(entry["ros__parameters"])
    flags = {"device": args.device, "precision": args.precision, "optimize": args.optimize,
             "threads": args.threads or None, "weights": args.weights}
    values.update({name: value for name, value in flags.items() if value is not None})
    if args.backbone != "all":
        values["backbone"] = args.backbone
    return values


def print_plan(args: argparse.Namespace) -> int:
    """What the node would do on this machine with these parameters: its plan, as a table or JSON."""
    from liteseg_ros.inference.segmenter import plan_for
    from liteseg_ros.ros.parameters import NodeConfig

    config = NodeConfig.from_parameters(node_parameters(args))
    weights = config.weights_file()
    plan = plan_for(weights, config.segmenter_config())
    if args.json:
        print(json.dumps({"weights": str(weights), **plan.to_dict()}, indent=2))
    else:
        print(f"weights    {weights}\n{plan.describe()}")
        for warning in plan.warnings:
            print(f"warning: {warning}")
    return 0


def print_nav2_layer(args: argparse.Namespace) -> int:
    """The Nav2 layer's configuration for the classes the node would publish with these parameters."""
    from liteseg_ros.class_map import load_class_map
    from liteseg_ros.inference.sources import read_source
    from liteseg_ros.labels import CITYSCAPES
    from liteseg_ros.ros.parameters import NodeConfig
    from liteseg_ros.tools.nav2_layer import nav2_layer_yaml

    config = NodeConfig.from_parameters(node_parameters(args))
    if args.camera and args.camera not in config.cameras:
        served = ", ".join(config.cameras) or "none: it serves one camera; leave --camera out"
        raise ConfigError(f"--camera {args.camera} is not one of the node's cameras ({served})")
    classes = read_source(config.weights_file(), config.backbone).classes or CITYSCAPES
    if config.class_map:
        classes = load_class_map(config.class_map, classes).classes
    print(nav2_layer_yaml(classes, args.namespace, args.camera, config.depth_slop), end="")
    return 0


INT8_KINDS = {"twin": ", its INT8 twin", "calibrated": ", INT8 calibrated on this robot's frames",
              "model": ", an INT8 model"}


def print_cache(action: str, as_json: bool) -> int:
    """The network cache's entries (what, for which CPU and input, how big, which verdict), size, or clearing."""
    from liteseg_ros.inference.cache import NetworkCache

    cache = NetworkCache()
    if action == "clear":
        print(f"removed {cache.clear()} entries from {cache.root}")
        return 0
    if action == "size":
        print(json.dumps({"path": str(cache.root), "bytes": cache.size()}) if as_json
              else f"{cache.size() / 1e6:.1f} MB in {cache.root}")
        return 0
    entries = cache.entries()
    if as_json:
        print(json.dumps({"path": str(cache.root), "entries": entries}, indent=2))
        return 0
    print(f"{len(entries)} entries, {cache.size() / 1e6:.1f} MB in {cache.root}")
    for entry in entries:
        key, report = entry.get("key", {}), entry.get("report", {})
        what = "stale (rebuilt when next used)" if entry.get("stale") else (
            f"{key['runner']} {key['precision']} {format_size(key['input_size'])} of {report.get('source', '?')} "
            f"(sha256 {key['source'][:12]}{INT8_KINDS.get(key['int8'].split(':')[0], '')})")
        verdict = f"; refused: {report['refused']}" if report.get("refused") else ""
        print(f"  {Path(entry['path']).name}  {entry['bytes'] / 1e6:5.1f} MB  {what}{verdict}")
    return 0


def _configs(args: argparse.Namespace) -> list[tuple[LiteSegConfig, ClassSet | None]]:
    """The architectures to describe; with --weights, its own (and ``args.size`` defaults to its training size)."""
    if args.weights:
        source = read_source(resolve_weights(args.weights))
        args.size = args.size or source.trained_size or DEFAULT_SIZE
        args.weights_note = _weights_note(source)
        return [(source.meta.model_config(), source.classes)]
    args.size = args.size or DEFAULT_SIZE
    names = BACKBONES if args.backbone == "all" else (args.backbone,)
    return [(LiteSegConfig(backbone=name), None) for name in names]


def _weights_note(source) -> str:
    """What a weights file says about itself: training size, origin, and an INT8 model's check against fp32."""
    size = f"trained at {format_size(source.trained_size)}" if source.trained_size else "training size not recorded"
    lines = [f"{source.path.name}: {size}" + (f", {source.meta.origin}" if source.meta.origin else "")]
    if source.int8_model is not None:
        report = source.int8_model.report
        check = report.get("summary") or ", ".join(f"{k} {v}" for k, v in report.items() if not isinstance(v, dict))
        lines.append(f"INT8 model for {format_size(source.int8_model.input_size)} input (CPU only)"
                     + (f": {check}" if check else ""))
    return "\n".join(lines)


def _row(config: LiteSegConfig, classes: ClassSet | None, args: argparse.Namespace) -> dict:
    figures = measure_complexity(config, args.size)
    row = {
        "backbone": figures.backbone,
        "input": f"{args.size[0]}x{args.size[1]}",
        "params_used": figures.params_used,
        "params_with_imagenet_head": figures.params_with_imagenet_head,
        "gmacs": round(figures.macs / 1e9, 3),
        "output_stride": figures.output_stride,
        "low_level_stride": figures.low_level_stride,
    }
    if args.time:
        from liteseg_ros.model import LiteSeg

        if args.threads:
            torch.set_num_threads(args.threads)
        row["eager_cpu_ms"] = round(median_ms(time_eager_forward(LiteSeg(config), args.size, iters=args.iters)), 1)
    if classes is not None:
        row["classes"] = classes.to_dict()
    return row


def _print_table(rows: list[dict], args: argparse.Namespace) -> None:
    header = list(COLUMNS) + ([f"eager CPU fwd ms ({torch.get_num_threads()} thr, median)"] if args.time else [])
    lines = [header] + [[f"{v:,}" if isinstance(v, int) else str(v) for k, v in row.items() if k != "classes"]
                        for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    if getattr(args, "weights_note", ""):
        print(f"\n{args.weights_note}")
    print(f"\nMACs counted with {MAC_COUNTER}.")
    print("Params incl. ImageNet head: the unused classifier kept in the authors' checkpoints (paper Table III).")
    for row in rows:
        if "classes" in row:
            names, colors = row["classes"]["names"], row["classes"]["colors"]
            print(f"\nclasses ({len(names)}): " + ", ".join(f"{i} {name} {tuple(color)}"
                                                          for i, (name, color) in enumerate(zip(names, colors))))


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.cache:
        return print_cache(args.cache, args.json)
    if args.plan:
        return print_plan(args)
    if args.nav2_layer:
        return print_nav2_layer(args)
    rows = [_row(config, classes, args) for config, classes in _configs(args)]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        _print_table(rows, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-info")


if __name__ == "__main__":
    sys.exit(main())
