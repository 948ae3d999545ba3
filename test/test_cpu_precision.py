"""CPU precision: flag detection, what precision=auto picks and why, bf16 (OpenVINO) agreement with fp32 on the
trained model, the fallbacks when OpenVINO or onnx is missing, and the band-parallel pre/post-processing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from liteseg_ros.inference.bands import BandPool
from liteseg_ros.inference.cpu_features import cpu_flags, cpu_model, native_bf16_flags
from liteseg_ros.inference.plan import Machine, Request, auto_cpu_precision
from liteseg_ros.inference.runners import package_available
from liteseg_ros.inference.segmenter import Segmenter, plan_for
from liteseg_ros.metrics import ConfusionMatrix
from liteseg_ros.model.bundled import bundled_model_path
from liteseg_ros.tools.synthetic.scenes import unseen_frames

from segmenter_fixtures import core_log

SIZE = (360, 640)
pytestmark = pytest.mark.plan
needs_openvino = pytest.mark.skipif(not package_available("openvino"), reason="OpenVINO is not installed")

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_vnni avx512_bf16 vaes
"""
SKYLAKE = "model name\t: Intel(R) Xeon(R) Gold 6148\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx512f amx_tile amx_bf16 amx_int8 avx512_bf16\n"
ORIN = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp\n"


def test_cpu_flags_are_read_from_the_x86_and_the_arm_lines():
    assert {"avx512_bf16", "avx512_vnni"} <= cpu_flags(ZEN4) and "amx_bf16" not in cpu_flags(ZEN4)
    assert "asimddp" in cpu_flags(ORIN) and cpu_flags("") == frozenset()
    assert cpu_model(ZEN4) == "AMD EPYC 9R14 96-Core Processor"


@pytest.mark.parametrize("cpuinfo, native", [(ZEN4, ("avx512_bf16",)), (SKYLAKE, ()), (ORIN, ()),
                                             (SAPPHIRE_RAPIDS, ("amx_bf16", "avx512_bf16")), ("", ())])
def test_native_bf16_needs_avx512_bf16_or_amx(cpuinfo, native):
    assert native_bf16_flags(cpu_flags(cpuinfo)) == native


def _auto(cpuinfo: str, optimize: str = "auto", packages=frozenset({"onnx", "onnxruntime", "openvino"})):
    precision, why, _ = auto_cpu_precision(Request(optimize=optimize),
                                           Machine(cpu_flags=cpu_flags(cpuinfo), packages=packages))
    return precision, why


def test_auto_is_fp32_without_native_bf16_nor_an_int8_model_and_says_why():
    precision, why = _auto(SKYLAKE)
    assert precision == "fp32" and "no native bf16 (amx_bf16 or avx512_bf16)" in why and "no INT8 model" in why


def test_auto_is_fp32_without_openvino_and_says_how_to_get_bf16():
    precision, why = _auto(ZEN4, packages=frozenset({"onnx", "onnxruntime"}))
    assert precision == "fp32" and "avx512_bf16 but OpenVINO" in why and "pip install openvino" in why


def test_auto_is_bf16_with_native_bf16_and_openvino_unless_optimize_excludes_it():
    assert _auto(ZEN4) == ("bf16", "auto: the CPU has avx512_bf16; OpenVINO runs bf16 natively")
    precision, why = _auto(SAPPHIRE_RAPIDS, "fold_bn,onnxruntime")
    assert precision == "fp32" and "does not run OpenVINO" in why


@needs_openvino
def test_openvino_runs_bf16_where_the_flags_make_it_native_and_rehearses_flags_the_cpu_lacks(monkeypatch, tmp_path):
    """OpenVINO's bf16 follows the flags the plan reads: refused where they lack it (the plan falls back); where
    LITESEG_CPU_FLAGS claims bf16 that this CPU lacks, compiled as fp32 with one warning (the guard's rehearsal)."""
    from liteseg_ros.errors import OptimizationError
    from liteseg_ros.inference import cpu_features, onnx_runners

    (tmp_path / "cpuinfo").write_text(SKYLAKE)
    monkeypatch.setattr(cpu_features, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(onnx_runners, "_REHEARSAL_WARNED", [])
    monkeypatch.delenv("LITESEG_CPU_FLAGS", raising=False)
    assert onnx_runners.openvino_precision("int8", ["FP32"]) == "int8"
    with pytest.raises(OptimizationError, match="no native bf16 \\(neither amx_bf16 nor avx512_bf16\\)"):
        onnx_runners.openvino_precision("bf16", ["FP32", "BF16"])
    monkeypatch.setenv("LITESEG_CPU_FLAGS", "avx2 avx512f avx512_bf16")
    assert cpu_features.rehearsed_flags() == frozenset({"avx512_bf16"})
    assert onnx_runners.openvino_precision("bf16", ["FP32", "BF16"]) == "bf16"
    with core_log() as logged:
        assert [onnx_runners.openvino_precision("bf16", ["FP32"]) for _ in range(2)] == ["fp32", "fp32"]
    assert logged == ["LITESEG_CPU_FLAGS claims avx512_bf16, which this CPU lacks: OpenVINO runs the planned bf16 as "
                      "fp32 (a rehearsal of that CPU class: its plan, this machine's speed)"]
    (tmp_path / "cpuinfo").write_text(ZEN4)  # the flag is this CPU's own, yet OpenVINO lists no BF16
    with pytest.raises(OptimizationError, match="OpenVINO lists no BF16 capability"):
        onnx_runners.openvino_precision("bf16", ["FP32"])


@pytest.fixture(scope="module")
def frames():
    return unseen_frames(3, *SIZE)  # the demo model never saw seed 2


@pytest.fixture(scope="module")
def fp32():
    return Segmenter(bundled_model_path(), device="cpu", input_size=SIZE, precision="fp32")


def _miou(segmenter, frames) -> float:
    confusion = ConfusionMatrix()
    for frame in frames:
        confusion.update(frame.train_ids, segmenter.segment(frame.image, outputs=("mask",)).mask)
    return confusion.scores().miou


@needs_openvino
def test_bf16_on_openvino_agrees_with_fp32_on_unseen_frames(fp32, frames):
    """The thresholds of the CPU default: >= 99.5 % of pixels equal, class mIoU within 0.005 (trained model)."""
    bf16 = Segmenter(bundled_model_path(), device="cpu", input_size=SIZE, precision="bf16")
    if native_bf16_flags():
        assert bf16.description == "mobilenetv2 bf16 cpu 360x640 (bn-folded, openvino)"
    else:  # OpenVINO refuses bf16 without the hardware: fp32 on onnxruntime, with a warning
        assert bf16.description == "mobilenetv2 fp32 cpu 360x640 (bn-folded, onnxruntime)"
    equal = [np.mean(bf16.segment(f.image).mask == fp32.segment(f.image).mask) for f in frames]
    assert min(equal) >= 0.995, equal
    assert abs(_miou(bf16, frames) - _miou(fp32, frames)) <= 0.005


def test_auto_precision_is_logged_with_its_reason(frames):
    """The precision auto chose (bf16 on a CPU with native bf16, INT8 from the bundled model's twin on other x86-64
    CPUs with OpenVINO, fp32 elsewhere), with its reason, as liteseg-info --plan computes it beforehand."""
    expected = plan_for(bundled_model_path(), device="cpu", input_size=SIZE)
    with core_log(level=20) as logged:
        segmenter = Segmenter(bundled_model_path(), device="cpu", input_size=SIZE)
    ready = [line for line in logged if line.startswith("segmenter ready:")]
    plans = [line for line in logged if line.startswith("plan:\n")]
    assert len(ready) == 1 and ready[0] == f"segmenter ready: {segmenter.description}", logged
    assert len(plans) == 1 and plans[0] == f"plan:\n{segmenter.plan.describe()}"
    why = expected.reasons["precision"]
    assert f"precision  {expected.precision}" in plans[0] and why in plans[0] and why.startswith("auto: ")
    assert segmenter.precision == expected.precision
    if not native_bf16_flags() and package_available("openvino") and Machine.detect().x86_64:
        assert segmenter.precision == "int8" and "the INT8 twin liteseg_mobilenetv2_synthetic.int8.onnx" in why


@pytest.mark.skipif(not package_available("onnx"), reason="onnxruntime runs the ONNX export: it needs onnx")
def test_without_openvino_auto_runs_fp32_on_onnxruntime(monkeypatch, fp32, frames):
    monkeypatch.setitem(sys.modules, "openvino", None)
    segmenter = Segmenter(bundled_model_path(), device="cpu", input_size=SIZE)
    assert segmenter.description == "mobilenetv2 fp32 cpu 360x640 (bn-folded, onnxruntime)"
    assert np.array_equal(segmenter.segment(frames[0].image).mask, fp32.segment(frames[0].image).mask)


@needs_openvino
def test_bf16_without_onnx_falls_back_to_fp32_torchscript_with_one_warning(monkeypatch, fp32, frames, tmp_path):
    """OpenVINO and onnxruntime both take the ONNX export: without onnx the next runner is TorchScript (fp32). Its
    own cache: an entry an earlier test made for these weights would need no export."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    with core_log() as logged:
        segmenter = Segmenter(bundled_model_path(), device="cpu", input_size=SIZE, precision="bf16",
                              optimize="fold_bn,openvino", cache=tmp_path / "cache")
    assert logged == ["optimize: openvino could not be set up (onnx is not installed; pip install onnx); using "
                      "torchscript_freeze (fp32) instead"]
    assert segmenter.precision == "fp32" and segmenter.description.endswith("(bn-folded, torchscript)")
    assert np.mean(segmenter.segment(frames[0].image).mask == fp32.segment(frames[0].image).mask) >= 0.999


# ------------------------------------------------------------------------------------------- row bands
def test_bands_cover_the_rows_once_in_order():
    for threads, rows in ((1, 360), (2, 360), (2, 1024), (4, 50), (3, 1)):
        bands = BandPool(threads).bands(rows)
        assert bands[0][0] == 0 and bands[-1][1] == rows
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bands, bands[1:]))
    assert BandPool(1).bands(360) == [(0, 360)] and len(BandPool(2).bands(1024)) == 8


def test_a_band_error_reaches_the_caller_and_the_pool_keeps_working():
    pool = BandPool(2)
    done = []

    def work(first, end):
        if first == 256:
            raise ValueError("band 256")
        done.append(first)

    with pytest.raises(ValueError, match="band 256"):
        pool.run(work, 1024)
    done.clear()
    pool.run(lambda first, end: done.append((first, end)), 1024)
    assert sorted(done) == pool.bands(1024)
    pool.close()


@pytest.mark.parametrize("upsample", ["logits", "mask"])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_banded_pre_and_post_processing_equal_one_piece(upsample, encoding):
    """Row bands on 3 threads give the very bytes of the one-thread, one-piece path (camera image larger than
    the input: resize, resampling maps), and leave torch's thread count as it was."""
    image = unseen_frames(1, 300, 500)[0].image
    image = image[:, :, :1] if encoding == "mono8" else image
    threads = torch.get_num_threads()
    one, banded = (Segmenter(bundled_model_path(), device="cpu", input_size=(192, 320), precision="fp32",
                             upsample=upsample, postprocess_threads=count) for count in (1, 3))
    for name in ("mask", "color", "overlay"):
        assert np.array_equal(getattr(one.segment(image, encoding), name), getattr(banded.segment(image, encoding),
                                                                                   name)), name
    assert torch.get_num_threads() == threads
