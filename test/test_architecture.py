"""docs/ARCHITECTURE.md stays true: every module and every name it mentions exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "ARCHITECTURE.md"


def test_every_module_the_page_names_exists():
    text = PAGE.read_text(encoding="utf-8")
    short = ("inference", "ros", "depth", "mining", "labelling", "datasets", "replay", "tools")
    paths = set(re.findall(r"`((?:liteseg_ros|training|%s)/[\w/]+\.py)`" % "|".join(short), text))
    folders = {f"{name}/": f"liteseg_ros/{name}/" for name in short}
    assert len(paths) >= 30
    for path in sorted(paths):
        resolved = next((replacement + path[len(prefix):] for prefix, replacement in folders.items()
                         if path.startswith(prefix)), path)
        assert (ROOT / resolved).is_file(), path


def test_every_class_and_function_the_page_names_exists():
    text = PAGE.read_text(encoding="utf-8")
    named = {
        "liteseg_ros.ros.channels": ["CameraChannel", "FrameMailbox"],
        "liteseg_ros.ros.runtime": ["SegmentationRuntime"],
        "liteseg_ros.ros.messages": ["OutputBuffers"],
        "liteseg_ros.inference.segmenter": ["Segmenter"],
        "liteseg_ros.inference.cpu": ["CpuPath"],
        "liteseg_ros.inference.cuda": ["CudaPath"],
        "liteseg_ros.inference.plan": ["make_plan"],
        "liteseg_ros.inference.networks": ["build_network", "module_runner", "load_entry"],
        "liteseg_ros.inference.runners": ["RunnerSpec"],
        "liteseg_ros.inference.cache": ["CacheKey"],
        "liteseg_ros.datasets.folders": ["open_split"],
        "liteseg_ros.tools.cli.conventions": ["OneLineArgumentParser", "run_cli"],
        "liteseg_ros.training.engine": ["Trainer"],
        "liteseg_ros.ros.parameters": ["NodeConfig"],
        "liteseg_ros.ros.depth": ["DepthChannel"],
        "liteseg_ros.depth.pairing": ["DepthPairing"],
        "liteseg_ros.stamps": ["StampJoin"],
        "liteseg_ros.depth.cloud": ["CloudMaker"],
        "liteseg_ros.mining.scores": ["score_frame"],
        "liteseg_ros.mining.selection": ["choose"],
        "liteseg_ros.mining.output": ["write_outputs"],
        "liteseg_ros.comparison": ["SharedClasses"],
    }
    for module, names in named.items():
        loaded = importlib.import_module(module)
        for name in names:
            assert name in text and hasattr(loaded, name), (module, name)
    for method in ("infer", "finish"):
        assert hasattr(importlib.import_module("liteseg_ros.inference.segmenter").Segmenter, method)
    runtime = importlib.import_module("liteseg_ros.ros.runtime").SegmentationRuntime
    assert hasattr(runtime, "_network_stage") and hasattr(runtime, "_publish")
