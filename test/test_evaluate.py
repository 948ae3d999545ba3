"""liteseg-eval: equal to cityscapesscripts' evaluation, pairing rules, errors, plots, model mode."""

import copy
import glob
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liteseg_ros.labels import CATEGORY_NAMES, CLASS_NAMES, LABELS, TRAIN_ID_TO_ID
from liteseg_ros.training.evaluate import main

EVALUATED_IDS = [lb.id for lb in LABELS if lb.id >= 0 and not lb.ignore_in_eval]
IGNORED_IDS = [lb.id for lb in LABELS if lb.id >= 0 and lb.ignore_in_eval]
ALL_IDS = EVALUATED_IDS + IGNORED_IDS
H, W = 24, 32
REPO = Path(__file__).resolve().parents[1]


def structured_label(rng, ids, background=None):
    """A labelId image made of overlapping rectangles."""
    label = np.full((H, W), rng.choice(ids) if background is None else background, dtype=np.uint8)
    for _ in range(10):
        y, x = rng.integers(0, H), rng.integers(0, W)
        label[y:y + rng.integers(2, H // 2), x:x + rng.integers(2, W // 2)] = rng.choice(ids)
    return label


def noisy_prediction(rng, gt, pred_ids):
    pred = np.roll(gt, int(rng.integers(-2, 3)), axis=1)
    noise = rng.random(gt.shape) < 0.2
    pred[noise] = rng.choice(pred_ids, int(noise.sum()))
    y, x = rng.integers(0, H - 4), rng.integers(0, W - 4)
    pred[y:y + 4, x:x + 4] = rng.choice(pred_ids)
    return pred


# name -> (ground-truth ids, predicted ids, ground-truth background)
CASES = {
    # every id, ignored ones in both ground truth and prediction
    "all_ids": (ALL_IDS, ALL_IDS, None),
    # few classes: most are absent (None), one (person, 24) is only ever predicted (IoU 0)
    "absent_classes": ([0, 7, 8, 11, 21, 23, 26], [0, 7, 8, 11, 21, 23, 24, 26], None),
    # mostly ignore regions; predictions are trainIds written back as labelIds (no ignored ids)
    "ignore_heavy": (IGNORED_IDS + [7, 26], [int(TRAIN_ID_TO_ID[t]) for t in range(19)], 0),
}


def write_case(root: Path, name: str, seed: int, frames: int = 4) -> tuple[Path, Path]:
    """gt/<split>/<city>/<frame>_gtFine_labelIds.png and pred/[sub/]<frame>_leftImg8bit.png."""
    gt_ids, pred_ids, background = CASES[name]
    rng = np.random.default_rng(seed)
    gt_root, pred_root = root / "gt", root / "pred"
    for i in range(frames):
        city = ("aachen", "bochum")[i % 2]
        frame = f"{city}_{i:06d}_000019"
        gt = structured_label(rng, gt_ids, background)
        gt_dir = gt_root / "val" / city
        pred_dir = pred_root / ("sub" if i % 2 else "")
        gt_dir.mkdir(parents=True, exist_ok=True)
        pred_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gt).save(gt_dir / f"{frame}_gtFine_labelIds.png")
        Image.fromarray(gt).save(gt_dir / f"{frame}_gtFine_color.png")  # must not be taken for ground truth
        Image.fromarray(noisy_prediction(rng, gt, pred_ids)).save(pred_dir / f"{frame}_leftImg8bit.png")
    return pred_root, gt_root


def official_scores(pred_root: Path, gt_root: Path) -> dict:
    official = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling",
                                   reason="cityscapesscripts (a test-only reference) is not installed")

    args = copy.copy(official.args)
    args.evalInstLevelScore = False
    args.quiet = True
    args.JSONOutput = False
    args.colorized = False
    args.predictionPath = str(pred_root)
    args.predictionWalk = None
    args.groundTruthSearch = str(gt_root / "*" / "*" / "*_gtFine_labelIds.png")
    gts = sorted(glob.glob(args.groundTruthSearch))
    preds = [official.getPrediction(args, gt) for gt in gts]
    return official.evaluateImgLists(preds, gts, args)


def run_eval(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same(ours, theirs):
    if ours is None:
        assert math.isnan(theirs)
    else:
        assert abs(ours - theirs) <= 1e-9


@pytest.mark.parametrize("case,seed", [("all_ids", 1), ("absent_classes", 2), ("ignore_heavy", 3)])
def test_equals_cityscapesscripts(tmp_path, capsys, case, seed):
    pred_root, gt_root = write_case(tmp_path, case, seed)
    code, out, _ = run_eval(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root, "--json")
    assert code == 0
    ours = json.loads(out)
    theirs = official_scores(pred_root, gt_root)
    assert ours["frames"] == 4
    assert list(ours["per_class"]) == list(CLASS_NAMES)
    assert list(ours["per_category"]) == list(CATEGORY_NAMES)
    for name in CLASS_NAMES:
        assert_same(ours["per_class"][name], theirs["classScores"][name])
    for name in CATEGORY_NAMES:
        assert_same(ours["per_category"][name], theirs["categoryScores"][name])
    assert_same(ours["miou"], theirs["averageScoreClasses"])
    assert_same(ours["category_miou"], theirs["averageScoreCategories"])
    if case == "absent_classes":
        assert ours["per_class"]["bus"] is None
        assert ours["per_class"]["person"] == 0.0


def test_table_output(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "absent_classes", 2)
    code, out, _ = run_eval(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root)
    assert code == 0
    _, json_out, _ = run_eval(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root, "--json")
    scores = json.loads(json_out)
    lines = out.splitlines()
    assert "Evaluated 4 frames" in lines
    assert f"road          : {scores['per_class']['road']:5.3f}" in lines
    assert "bus           :   nan" in lines
    assert f"Score Average : {scores['miou']:5.3f}" in lines
    assert f"Score Average : {scores['category_miou']:5.3f}" in lines


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="--plots needs matplotlib (train extra)")
def test_plots_are_written(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "all_ids", 1, frames=2)
    code, _, _ = run_eval(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root, "--plots", tmp_path / "plots")
    assert code == 0
    for name in ("class_iou.png", "confusion_matrix.png"):
        with Image.open(tmp_path / "plots" / name) as chart:
            assert chart.format == "PNG" and chart.width > 300
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["class_iou.png", "confusion_matrix.png"]


def expect_error(capsys, *argv, match: str) -> str:
    code, out, err = run_eval(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("liteseg-eval: error: ") and match in err, err
    return err


def test_missing_prediction_names_the_ground_truth(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "all_ids", 1)
    (pred_root / "sub" / "bochum_000001_000019_leftImg8bit.png").unlink()
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root,
                 match="for 1 of 4 ground-truth frames (expected <frame>*.png): "
                       f"{gt_root}/val/bochum/bochum_000001_000019_gtFine_labelIds.png")


def test_duplicate_prediction_is_an_error(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "all_ids", 1)
    source = pred_root / "aachen_000000_000019_leftImg8bit.png"
    (pred_root / "aachen_000000_000019_pred.png").write_bytes(source.read_bytes())
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root,
                 match="several predictions for one ground truth: aachen_000000_000019")


def test_prediction_of_another_size_is_an_error(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "all_ids", 1)
    Image.fromarray(np.zeros((H // 2, W // 2), np.uint8)).save(pred_root / "aachen_000000_000019_leftImg8bit.png")
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root, match="is 12x16 (HxW) but its ground truth")


def test_bad_prediction_content_is_an_error(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "all_ids", 1)
    target = pred_root / "aachen_000000_000019_leftImg8bit.png"
    Image.fromarray(np.full((H, W), 200, np.uint8)).save(target)
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root, match="not Cityscapes labelIds")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(target)
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", gt_root, match="3 channels")


def test_bad_folders_are_errors(tmp_path, capsys):
    pred_root, gt_root = write_case(tmp_path, "all_ids", 1, frames=1)
    expect_error(capsys, "--pred-dir", tmp_path / "nope", "--gt-dir", gt_root, match="prediction folder")
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", tmp_path / "nope", match="ground-truth folder")
    expect_error(capsys, "--pred-dir", pred_root, "--gt-dir", pred_root, match="no *_gtFine_labelIds.png under")


def test_mode_arguments_are_checked(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--json"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["--pred-dir", "a", "--weights", "w"])
    assert "either --pred-dir and --gt-dir, or --weights and --data" in capsys.readouterr().err


def test_runs_as_a_process(tmp_path):
    pred_root, gt_root = write_case(tmp_path, "absent_classes", 2, frames=2)
    command = [sys.executable, "-m", "liteseg_ros.training.evaluate", "--pred-dir", str(pred_root)]
    done = subprocess.run(command + ["--gt-dir", str(gt_root), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == 2
    failed = subprocess.run(command + ["--gt-dir", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert failed.returncode == 2
    expected = f"liteseg-eval: error: ground-truth folder {tmp_path / 'none'} does not exist"
    assert failed.stderr.strip().splitlines() == [expected]


def test_model_mode_equals_scoring_its_masks(tmp_path, capsys):
    """--weights/--data scores the Segmenter's masks exactly as the official script scores them as files."""
    import torch

    from liteseg_ros.inference.segmenter import Segmenter
    from liteseg_ros.labels import train_ids_to_label_ids
    from liteseg_ros.model import build_liteseg, load_weights, save_checkpoint
    from liteseg_ros.tools.synthetic import write_cityscapes_tree

    torch.manual_seed(0)
    torch.set_num_threads(1)
    root = tmp_path / "data"
    write_cityscapes_tree(root, train=0, val=2, height=48, width=96, seed=5, coarse=False)
    weights = save_checkpoint(tmp_path / "tiny.pt", build_liteseg("mobilenetv2").eval())
    code, out, err = run_eval(
        capsys,
        "--weights",
        weights,
        "--data",
        root,
        "--split",
        "val",
        "--input-size",
        "64x128",
        "--device",
        "cpu",
        "--json",
    )
    assert code == 0, err
    ours = json.loads(out)
    assert ours["frames"] == 2

    model, _ = load_weights(weights)
    segmenter = Segmenter(model, device="cpu", input_size=(64, 128))
    pred_root = tmp_path / "pred"
    pred_root.mkdir()
    for image_path in sorted((root / "leftImg8bit" / "val").glob("*/*_leftImg8bit.png")):
        mask = segmenter.segment(np.asarray(Image.open(image_path).convert("RGB")), outputs=("mask",)).mask
        assert mask.shape == (48, 96)
        Image.fromarray(train_ids_to_label_ids(mask)).save(pred_root / image_path.name)
    theirs = official_scores(pred_root, root / "gtFine")
    for name in CLASS_NAMES:
        assert_same(ours["per_class"][name], theirs["classScores"][name])
    for name in CATEGORY_NAMES:
        assert_same(ours["per_category"][name], theirs["categoryScores"][name])
    assert_same(ours["miou"], theirs["averageScoreClasses"])


def test_model_mode_errors(tmp_path, capsys):
    expect_error(capsys, "--weights", tmp_path / "w.pt", "--data", tmp_path, match="is not a data set this")
    (tmp_path / "leftImg8bit" / "val" / "x").mkdir(parents=True)
    expect_error(capsys, "--weights", tmp_path / "w.pt", "--data", tmp_path, match="split 'val' is empty")
    from liteseg_ros.tools.synthetic import write_cityscapes_tree

    write_cityscapes_tree(tmp_path / "data", train=0, val=1, height=32, width=64, seed=1, coarse=False)
    expect_error(
        capsys,
        "--weights",
        tmp_path / "w.pt",
        "--data",
        tmp_path / "data",
        "--device",
        "cpu",
        match=f"weights file {tmp_path / 'w.pt'} does not exist",
    )
