"""liteseg-bench with tiny sizes and few passes: table structure and positive numbers (no timing asserts)."""

from __future__ import annotations

import json

import pytest
import torch

from liteseg_ros.inference.runners import package_available
from liteseg_ros.tools.cli.bench import HEADER, main


@pytest.fixture(autouse=True)
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


TINY = ["--backbones", "mobilenetv2", "--warmup", "1", "--iters", "2", "--rounds", "2", "--optimize", "fold_bn",
        "--threads", "1"]


def test_markdown_table_has_one_row_per_backbone_size_mode_and_scene(capsys):
    code = main(
        TINY + ["--sizes", "64x128", "64x64", "--upsample", "logits,mask", "--image-size", "80x150", "--markdown"]
    )
    out = capsys.readouterr().out
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(HEADER) + " |"
    assert set(table[1].replace("|", "")) == {"-"}
    rows = [dict(zip(HEADER, (cell.strip() for cell in line.strip("|").split("|")))) for line in table[2:]]
    assert [(r["input"], r["image"], r["upsample"], r["scene"]) for r in rows] == [
        (size, "80x150", mode, scene) for size in ("64x128", "64x64") for mode in ("logits", "mask")
        for scene in ("street", "fragmented")
    ]
    for row in rows:
        assert len(row) == len(HEADER) and row["backbone"] == "mobilenetv2" and row["device"] == "cpu"
        assert row["prec."] == "fp32" and row["optimisations"] == "bn-folded"
        for column in ("eager fp32 model FPS (med ms)", "optimised model FPS (med/p95 ms)",
                       "end-to-end FPS (med/p95 ms)"):
            fps, latencies = row[column].split(" ", 1)
            assert float(fps) > 0 and all(float(v) > 0 for v in latencies.strip("()").split("/"))
        assert float(row["post-processing med ms"]) > 0
        assert float(row["e2e / eager"].rstrip("x")) > 0 and float(row["model / eager"].rstrip("x")) > 0
        with_agreement = row["upsample"] == "mask" and row["scene"] == "street"
        agreement = row["mask-mode agreement"]
        assert agreement == "-" if not with_agreement else 0 < float(agreement.rstrip("%")) <= 100
    assert "threads: 1" in out and "torch:" in out
    plans = out.split("\nplan:\n")[1:]
    assert len(plans) == 1, "one plan for rows that ran alike"
    assert plans[0].startswith("```\n")
    block = plans[0].split("```")[1].strip().splitlines()
    decisions = {line.split()[0]: line.split()[1:] for line in block}
    assert decisions["device"][0] == "cpu" and decisions["runner"][0] == "eager"
    assert decisions["precision"][:2] == ["fp32", "auto:"] and decisions["fallbacks"][0] == "none"


def test_json_rows_hold_positive_timings(capsys):
    assert main(TINY + ["--sizes", "64x96", "--scenes", "fragmented", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["environment"]["threads"] == "1" and report["iters"] == 2
    (row,) = report["rows"]
    assert row["scene"] == "fragmented" and row["postprocess_ms"] > 0
    for variant in ("eager_fp32", "model", "end_to_end"):
        timing = row[variant]
        assert timing["fps"] > 0 and 0 < timing["median_ms"] <= timing["p95_ms"]
    assert row["speedup_end_to_end"] == pytest.approx(row["end_to_end"]["fps"] / row["eager_fp32"]["fps"])
    assert row["plan"].splitlines()[0].split()[:2] == ["device", "cpu"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backbones", "resnet50"], "unknown"),
        (["--sizes", "64by128"], "HEIGHTxWIDTH"),
        (["--iters", "0"], "--iters"),
        (["--upsample", "cubic"], "--upsample"),
        (["--scenes", "forest"], "--scenes"),
        (["--device", "quantum"], "device"),
    ],
)
def test_bad_arguments_are_one_line_errors(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(not package_available("onnx"), reason="the ONNX runners and INT8 need the onnx package")
def test_runners_table_compares_every_runnable_variant_against_the_previous_default(capsys):
    """--runners on the bundled model at a small size: one row per variant this machine can run, the baseline
    at 1.00x, the fp32 variants exactly equal to fp32, every variant close to it (trained weights)."""
    from liteseg_ros.tools.runner_comparison import COLUMNS

    code = main(["--runners", "--sizes", "96x160", "--warmup", "0", "--iters", "2", "--rounds", "1", "--frames", "2",
                 "--threads", "1", "--markdown"])
    out = capsys.readouterr().out
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}
    expected = {"0.2 auto", "auto", "fp32 onnxruntime", "bf16 torchscript", "int8 onnxruntime"}
    if package_available("openvino"):
        expected |= {"fp32 openvino", "bf16 openvino", "openvino fp32 pipeline", "int8 openvino"}
    assert set(rows) == expected
    assert rows["0.2 auto"][5] == "1.00x" and rows["0.2 auto"][6] == "100.00%"
    for name in ("fp32 onnxruntime", "fp32 openvino", "openvino fp32 pipeline"):
        if name in rows:
            assert rows[name][2] == "fp32" and float(rows[name][6].rstrip("%")) >= 99.9, rows[name]
    for name, cells in rows.items():
        assert float(cells[6].rstrip("%")) >= 95.0, cells
    assert "native bf16:" in out and "load average:" in out
