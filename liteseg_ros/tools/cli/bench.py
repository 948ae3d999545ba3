"""liteseg-bench: model-only and end-to-end Segmenter throughput beside a plain eager fp32 forward.

For each backbone x input size it times, in the same process and interleaved in rounds:
- eager fp32: the plain network, random 1x3xHxW input (the authors' speed test);
  without --weights the network has random weights with BatchNorm statistics of synthetic street scenes;
- model: the optimised network as the Segmenter runs it (on CPU a LiteSeg stops before its final upsampling,
  which the Segmenter fuses with the argmax);
- end-to-end: ``Segmenter.segment`` on a uint8 image, mask + colour + overlay out, for each scene of
  ``--scenes``: a street, and a fragmented frame (random-colour blocks: boundaries everywhere, the
  post-processing's worst case), each with its post-processing median beside it.
Warm-up passes first, then timed passes, synchronising after each one on CUDA. FPS = 1 / mean latency.

``--runners`` instead compares every CPU runner and precision this machine can run (fp32/bf16/INT8 with
onnxruntime, OpenVINO, TorchScript; OpenVINO's own fp32 pipeline; the previous default) in one interleaved
table, with each one's pixel agreement with fp32 and class-mIoU change on unseen synthetic frames. It needs a
trained model (--weights; default: the bundled demo model): random weights say nothing about agreement.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.config import SegmenterConfig
from liteseg_ros.inference.cuda_graphs import CudaGraphRunner
from liteseg_ros.inference.plan import Machine, Request, make_plan
from liteseg_ros.inference.segmenter import Segmenter
from liteseg_ros.inference.timing import environment, time_interleaved
from liteseg_ros.model import BACKBONES, build_liteseg, load_weights
from liteseg_ros.model.checkpoint import read_weights_meta
from liteseg_ros.model.published import resolve_weights
from liteseg_ros.tools.cli.conventions import (
    OneLineArgumentParser,
    add_run_arguments,
    add_threads_argument,
    check_threads,
    parse_size,
    run_cli,
)
from liteseg_ros.tools.synthetic.batchnorm_statistics import with_street_statistics
from liteseg_ros.tools.synthetic.scenes import SCENE_KINDS, fragmented_frame

DEFAULT_SIZES = "360x640,512x1024,1024x2048"


@dataclass
class Timing:
    """Latency statistics of one timed variant."""

    fps: float
    median_ms: float
    p95_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> "Timing":
        return cls(fps=1.0 / statistics.fmean(seconds), median_ms=statistics.median(seconds) * 1e3,
                   p95_ms=float(np.percentile(seconds, 95)) * 1e3)


@dataclass
class Row:
    backbone: str
    input: str
    image: str
    scene: str
    device: str
    precision: str
    upsample: str
    eager_fp32: Timing
    model: Timing
    end_to_end: Timing
    speedup_end_to_end: float  # end-to-end FPS / eager fp32 model-only FPS
    speedup_model: float
    optimisations: str
    postprocess_ms: float  # median of the Segmenter's post-processing in the end-to-end passes
    agreement_with_logits_mode: float | None = None
    plan: str = ""  # the Segmenter's plan (Plan.describe)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="liteseg-bench", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES),
                        help="backbones, space- or comma-separated (default: all three)")
    parser.add_argument("--weights", help="time this model instead of random weights (its backbone only): a file or a "
                                           "published name, as the node's weights")
    parser.add_argument("--sizes", nargs="+", default=[DEFAULT_SIZES],
                        help=f"network input sizes HxW, space- or comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument("--image-size", type=parse_size, help="camera image HxW (default: the input size)")
    add_run_arguments(parser)
    parser.add_argument("--optimize", default="auto", help="Segmenter optimize= (auto, none, or a list)")
    parser.add_argument("--upsample", default="logits", help="logits, mask or logits,mask (adds mask agreement)")
    parser.add_argument("--scenes", default=",".join(SCENE_KINDS),
                        help=f"end-to-end scenes, comma-separated: {', '.join(SCENE_KINDS)} (default both)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up passes per variant (default 10)")
    parser.add_argument("--iters", type=int, default=50, help="timed passes per variant (default 50)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds the passes are split into (default 3)"
    )
    add_threads_argument(parser)
    parser.add_argument("--runners", action="store_true",
                        help="compare the CPU runners/precisions (see above) instead of the default table")
    parser.add_argument("--frames", type=int, default=8, help="--runners: unseen frames scored (default 8)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for docs)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    return parser


def _street(height: int, width: int, seed: int = 7) -> np.ndarray:
    from liteseg_ros.tools.synthetic import render_scene

    return np.ascontiguousarray(render_scene(seed, height, width)[0])


def _model(args: argparse.Namespace, backbone: str) -> torch.nn.Module:
    if args.weights:
        return load_weights(args.weights, backbone=backbone)[0]
    torch.manual_seed(0)
    return with_street_statistics(build_liteseg(backbone), size=(128, 256), seed=1)


def bench_size(args: argparse.Namespace, backbone: str, size: tuple[int, int], device: torch.device) -> list[Row]:
    """One row per upsample mode and scene; mask-mode rows carry their agreement with the logits mode on the
    same image."""
    model = _model(args, backbone)
    image_size = args.image_size or size
    images = {scene: _street(*image_size) if scene == "street" else fragmented_frame(*image_size)
              for scene in args.scene_list}
    eager = model.to(device).eval()
    eager_input = torch.randn(1, 3, *size, device=device)
    rows, masks = [], {}
    for upsample in args.upsample_modes:
        segmenter = Segmenter(model, SegmenterConfig(device=str(device), precision=args.precision, input_size=size,
                                                     upsample=upsample, optimize=args.optimize))
        timings, post = _time_segmenter(args, segmenter, eager, eager_input, images)
        masks[upsample] = segmenter.segment(images[args.scene_list[0]], outputs=("mask",)).mask
        for scene in args.scene_list:
            end_to_end = timings[f"end_to_end {scene}"]
            rows.append(Row(
                backbone=backbone, input=f"{size[0]}x{size[1]}", image=f"{image_size[0]}x{image_size[1]}",
                scene=scene, device=segmenter.device, precision=segmenter.precision, upsample=upsample,
                eager_fp32=timings["eager"], model=timings["model"], end_to_end=end_to_end,
                speedup_end_to_end=end_to_end.fps / timings["eager"].fps,
                speedup_model=timings["model"].fps / timings["eager"].fps,
                optimisations=", ".join(segmenter.options.tags()) or "none",
                postprocess_ms=statistics.median(post[scene]) * 1e3, plan=segmenter.plan.describe(),
            ))
    if "logits" in masks and "mask" in masks:
        agreement = float((masks["mask"] == masks["logits"]).mean())
        for row in rows:
            row.agreement_with_logits_mode = agreement if row.upsample == "mask" and row.scene == \
                args.scene_list[0] else None
    return rows


def _time_segmenter(args: argparse.Namespace, segmenter: Segmenter, eager: torch.nn.Module,
                    eager_input: torch.Tensor, images: dict[str, np.ndarray]
                    ) -> tuple[dict[str, Timing], dict[str, list[float]]]:
    """Eager fp32, the optimised network and the Segmenter on each scene, interleaved; and each scene's
    post-processing times."""
    network_input = segmenter.example_input()
    if segmenter.options.cuda_graphs:  # model-only replays a graph of the network alone
        run_model: Callable[[], object] = CudaGraphRunner(segmenter.network, [network_input], copy_inputs=False)
    else:
        run_model = functools.partial(segmenter.network, network_input)
    post: dict[str, list[float]] = {scene: [] for scene in images}

    def end_to_end(scene: str) -> None:
        result = segmenter.segment(images[scene], outputs=("mask", "color", "overlay"))
        post[scene].append(result.timings["postprocess"])

    variants = {"eager": lambda: eager(eager_input), "model": run_model}
    variants.update({f"end_to_end {scene}": functools.partial(end_to_end, scene) for scene in images})
    synchronize = torch.cuda.synchronize if segmenter.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        seconds = time_interleaved(variants, warmup=args.warmup, iters=args.iters, rounds=args.rounds,
                                   synchronize=synchronize)
    return {name: Timing.of(values) for name, values in seconds.items()}, post


HEADER = (
    "backbone",
    "input",
    "image",
    "scene",
    "device",
    "prec.",
    "upsample",
    "eager fp32 model FPS (med ms)",
    "optimised model FPS (med/p95 ms)",
    "end-to-end FPS (med/p95 ms)",
    "post-processing med ms",
    "e2e / eager",
    "model / eager",
    "mask-mode agreement",
    "optimisations",
)


def _cells(row: Row) -> list[str]:
    def fps(t: Timing, p95: bool = True) -> str:
        return f"{t.fps:.1f} ({t.median_ms:.1f}" + (f"/{t.p95_ms:.1f})" if p95 else ")")

    agreement = "-" if row.agreement_with_logits_mode is None else f"{row.agreement_with_logits_mode:.2%}"
    return [
        row.backbone,
        row.input,
        row.image,
        row.scene,
        row.device,
        row.precision,
        row.upsample,
        fps(row.eager_fp32, False),
        fps(row.model),
        fps(row.end_to_end),
        f"{row.postprocess_ms:.1f}",
        f"{row.speedup_end_to_end:.2f}x",
        f"{row.speedup_model:.2f}x",
        agreement,
        row.optimisations,
    ]


def format_table(rows: list[Row], markdown: bool) -> str:
    return format_cells([list(HEADER)] + [_cells(row) for row in rows], markdown)


def format_cells(lines: list[list[str]], markdown: bool) -> str:
    """A header line and rows of cells as a Markdown or an aligned text table."""
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "|".join("---" for _ in lines[0]) + "|"]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines[1:]])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


def _split(values: list[str]) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c']."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _check(args: argparse.Namespace) -> None:
    check_threads(args.threads)
    for name in ("warmup", "iters", "rounds"):
        minimum = 0 if name == "warmup" else 1
        if getattr(args, name) < minimum:
            raise ConfigError(f"--{name} must be at least {minimum}, got {getattr(args, name)}")
    args.rounds = min(args.rounds, args.iters)
    args.backbone_list = _split(args.backbones)
    if args.weights:  # time the file's own backbone
        args.weights = resolve_weights(args.weights)
        args.backbone_list = [read_weights_meta(args.weights).backbone]
    unknown = [b for b in args.backbone_list if b not in BACKBONES]
    if unknown or not args.backbone_list:
        raise ConfigError(f"--backbones: unknown {unknown}; choose from {', '.join(BACKBONES)}")
    try:
        args.size_list = [parse_size(size) for size in _split(args.sizes)]
    except argparse.ArgumentTypeError as error:
        raise ConfigError(f"--sizes: {error}") from None
    args.scene_list = [scene.strip() for scene in args.scenes.split(",") if scene.strip()]
    if not args.scene_list or any(scene not in SCENE_KINDS for scene in args.scene_list):
        raise ConfigError(f"--scenes must name {' and/or '.join(SCENE_KINDS)}, comma-separated; got {args.scenes!r}")
    args.upsample_modes = [m.strip() for m in args.upsample.split(",") if m.strip()]
    if not args.upsample_modes or any(m not in ("logits", "mask") for m in args.upsample_modes):
        raise ConfigError(f"--upsample must be logits, mask or logits,mask; got {args.upsample!r}")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    _check(args)
    device = torch.device(make_plan(Request(device="cpu" if args.runners and args.device == "auto" else args.device),
                                    Machine.detect()).device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    if args.runners:
        return _compare_runners(args, device)
    rows = [
        row
        for backbone in args.backbone_list
        for size in args.size_list
        for row in bench_size(args, backbone, size, device)
    ]
    env = environment(device, args.threads)
    if args.json:
        json.dump(
            {"environment": env, "warmup": args.warmup, "iters": args.iters, "rows": [asdict(row) for row in rows]},
            sys.stdout,
            indent=2,
        )
        print()
        return 0
    print(format_table(rows, args.markdown))
    fence = "```\n" if args.markdown else ""
    for plan in dict.fromkeys(row.plan for row in rows):
        print(f"\nplan:\n{fence}{plan}\n{fence}".rstrip())
    print(
        f"\n{', '.join(f'{k}: {v}' for k, v in env.items())}; warm-up {args.warmup}, timed {args.iters} "
        f"passes per variant in {args.rounds} interleaved rounds; FPS = 1 / mean latency."
    )
    return 0


def _compare_runners(args: argparse.Namespace, device: torch.device) -> int:
    from liteseg_ros.model.bundled import bundled_model_path
    from liteseg_ros.tools.runner_comparison import COLUMNS, comparison_rows, run_comparison

    if device.type != "cpu":
        raise ConfigError("--runners compares CPU runners: use --device cpu")
    checkpoint = args.weights or bundled_model_path()
    for size in args.size_list:
        variants, scores, timings = run_comparison(checkpoint, size, frames=args.frames, warmup=args.warmup,
                                                   iters=args.iters, rounds=args.rounds)
        print(f"\n{checkpoint.name}, input = image = {size[0]}x{size[1]}, {args.frames} unseen frames:\n")
        print(format_cells([list(COLUMNS)] + comparison_rows(variants, scores, timings), args.markdown))
    env = environment(device, args.threads)
    print(f"\n{', '.join(f'{k}: {v}' for k, v in env.items())}; warm-up {args.warmup}, timed {args.iters} "
          f"passes per variant in {args.rounds} interleaved rounds.")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, argv, "liteseg-bench")


if __name__ == "__main__":
    sys.exit(main())
