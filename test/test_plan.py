"""How a Segmenter runs, planned by a pure function: a table of (what was asked, what the machine has) -> plan,
without a network; the fallbacks a plan takes; and a Segmenter carrying a plan out (the plan it reports is the
one that ran)."""

from __future__ import annotations

import sys

import pytest

from liteseg_ros.errors import ConfigError
from liteseg_ros.inference.plan import Int8Option, Machine, Request, make_plan

pytestmark = pytest.mark.plan
AMX = frozenset({"avx512f", "amx_bf16", "avx512_bf16"})
SKYLAKE = frozenset({"avx2", "avx512f"})
AVX2 = frozenset({"avx2", "fma"})  # Zen 3, Intel Core without AVX-512: the class of most x86 robot computers
ALL = frozenset({"onnx", "onnxruntime", "openvino"})
ORT = frozenset({"onnx", "onnxruntime"})


def machine(cuda: int = 0, flags=SKYLAKE, packages=ALL, threads: int = 4, cuda_bf16: bool = True,
            x86_64: bool = True) -> Machine:
    return Machine(cuda_devices=cuda, cuda_bf16=cuda_bf16, cpu_flags=flags, cpu_threads=threads, packages=packages,
                   x86_64=x86_64)


TWIN = Int8Option("the INT8 twin m.int8.onnx of these weights")
REFUSED = Int8Option("the INT8 twin m.int8.onnx of these weights", refused="not faster than fp32 here")
FP32_CHAIN = (("onnxruntime", "fp32"), ("torchscript_freeze", "fp32"), ("eager", "fp32"))

# (request, machine) -> (device, precision, runner, threads, fallbacks, substrings of the reasons)
TABLE = [
    (Request(), machine(cuda=1), ("cuda:0", "fp16", "eager", 4, (), {"device": "CUDA is available",
                                                                     "precision": "auto on CUDA"})),
    (Request(device="cuda:1", precision="bf16"), machine(cuda=2), ("cuda:1", "bf16", "eager", 4, (), {})),
    (Request(device="cpu"), machine(flags=AMX), ("cpu", "bf16", "openvino", 4, FP32_CHAIN,
                                                 {"precision": "amx_bf16, avx512_bf16; OpenVINO runs bf16"})),
    (Request(device="cpu", int8=TWIN, calibrate=True), machine(flags=AMX),  # native bf16 comes first
     ("cpu", "bf16", "openvino", 4, FP32_CHAIN, {})),
    (Request(device="cpu"), machine(flags=SKYLAKE), ("cpu", "fp32", "onnxruntime", 4,
                                                     (("torchscript_freeze", "fp32"), ("eager", "fp32")),
                                                     {"precision": "no native bf16 (amx_bf16 or avx512_bf16), and no "
                                                      "INT8 model of these weights",
                                                      "runner": "onnxruntime runs fp32 fastest"})),
    (Request(device="cpu", int8=TWIN), machine(flags=AVX2),
     ("cpu", "int8", "openvino", 4, FP32_CHAIN, {"precision": "no native bf16 (amx_bf16 or avx512_bf16): the INT8 "
                                                 "twin m.int8.onnx", "runner": "OpenVINO runs int8 fastest"})),
    (Request(device="cpu", int8=REFUSED), machine(flags=AVX2),
     ("cpu", "fp32", "onnxruntime", 4, FP32_CHAIN[1:], {"precision": "was refused here: not faster than fp32 here"})),
    (Request(device="cpu", calibrate=True), machine(flags=AVX2),
     ("cpu", "fp32", "onnxruntime", 4, FP32_CHAIN[1:], {"precision": "fp32 until an INT8 model calibrated on the "
                                                        "first frames passes its check"})),
    (Request(device="cpu", calibrate=True), machine(flags=AVX2, packages=frozenset({"openvino", "onnxruntime"})),
     ("cpu", "fp32", "torchscript_freeze", 4, (("eager", "fp32"),), {"precision": "needs onnx and onnxruntime"})),
    (Request(device="cpu", int8=TWIN, calibrate=True), machine(flags=AVX2, packages=ORT),
     ("cpu", "fp32", "onnxruntime", 4, FP32_CHAIN[1:], {"precision": "OpenVINO, which is not installed"})),
    (Request(device="cpu", int8=TWIN), machine(flags=AVX2, x86_64=False),
     ("cpu", "fp32", "onnxruntime", 4, FP32_CHAIN[1:], {"precision": "INT8 was measured on x86-64 only"})),
    (Request(device="cpu", int8=TWIN, precision="fp32"), machine(flags=AVX2),
     ("cpu", "fp32", "onnxruntime", 4, FP32_CHAIN[1:], {"precision": "asked for"})),
    (Request(device="cpu", int8=TWIN, optimize="fold_bn,onnxruntime"), machine(flags=AVX2),
     ("cpu", "fp32", "onnxruntime", 4, FP32_CHAIN[1:], {"precision": "names its runner (INT8 needs auto)"})),
    (Request(device="cpu", int8=TWIN), machine(flags=AVX2, packages=frozenset({"openvino"})),  # no onnx: no export
     ("cpu", "int8", "openvino", 4, (("torchscript_freeze", "fp32"), ("eager", "fp32")), {})),
    (Request(device="cpu"), machine(flags=AMX, packages=ORT),
     ("cpu", "fp32", "onnxruntime", 4, (("torchscript_freeze", "fp32"), ("eager", "fp32")),
      {"precision": "OpenVINO, which runs bf16, is not installed: pip install"})),
    (Request(device="cpu"), machine(packages=frozenset()),
     ("cpu", "fp32", "torchscript_freeze", 4, (("eager", "fp32"),), {"runner": "onnx and onnxruntime not installed"})),
    (Request(device="auto"), machine(flags=AMX, packages=frozenset({"openvino"})),  # no onnx: no ONNX runner
     ("cpu", "fp32", "torchscript_freeze", 4, (("eager", "fp32"),), {"device": "CUDA is not available"})),
    (Request(device="cpu", optimize="fold_bn,onnxruntime"), machine(flags=AMX),
     ("cpu", "fp32", "onnxruntime", 4, (("torchscript_freeze", "fp32"), ("eager", "fp32")),
      {"precision": "does not run OpenVINO", "runner": "asked for"})),
    (Request(device="cpu", precision="bf16", optimize="fold_bn,openvino"), machine(flags=AMX, packages=frozenset()),
     ("cpu", "bf16", "openvino", 4, (("torchscript_freeze", "fp32"), ("eager", "fp32")), {})),
    (Request(device="cpu", precision="bf16", optimize="fold_bn,channels_last,torchscript_freeze"), machine(),
     ("cpu", "bf16", "torchscript_freeze", 4, (("eager", "bf16"),), {})),
    (Request(device="cpu", optimize="none", threads=2), machine(), ("cpu", "fp32", "eager", 2, (),
                                                                    {"threads": "asked for"})),
    (Request(device="auto", int8_model="m.int8.onnx"), machine(cuda=1), ("cpu", "int8", "openvino", 4,
                                                                        (("onnxruntime", "int8"),),
                                                                        {"runner": "OpenVINO runs int8 fastest"})),
    (Request(int8_model="m.int8.onnx", optimize="onnxruntime"), machine(), ("cpu", "int8", "onnxruntime", 4, (), {})),
    (Request(int8_model="m.int8.onnx"), machine(packages=ORT), ("cpu", "int8", "onnxruntime", 4, (),
                                                                 {"runner": "onnxruntime runs int8"})),
]


@pytest.mark.parametrize("request_, machine_, expected", TABLE)
def test_the_plan_table(request_, machine_, expected):
    device, precision, runner, threads, fallbacks, reasons = expected
    plan = make_plan(request_, machine_)
    assert (plan.device, plan.precision, plan.runner, plan.threads, plan.fallbacks) == expected[:5]
    for decision, text in reasons.items():
        assert text in plan.reasons[decision], (decision, plan.reasons[decision])
    assert all(plan.reasons[name] for name in ("device", "precision", "runner", "threads"))


@pytest.mark.parametrize("request_, machine_, message", [
    (Request(device="cuda"), machine(), "CUDA is not available"),
    (Request(device="cuda:3"), machine(cuda=2), "only 2 GPU(s) are visible"),
    (Request(device="gpu0"), machine(), "unknown device 'gpu0': use auto, cpu, cuda or cuda:N"),
    (Request(device="mps"), machine(), "unsupported device 'mps': use auto, cpu, cuda or cuda:N"),
    (Request(device="cuda", precision="bf16"), machine(cuda=1, cuda_bf16=False), "does not support bfloat16"),
    (Request(precision="fp8"), machine(), "precision must be auto, fp32, fp16, bf16"),
    (Request(device="cpu", optimize="cuda_graphs"), machine(), "cuda_graphs needs device=cuda"),
    (Request(threads=-1), machine(), "threads must be a positive integer"),
    (Request(int8_model="m.int8.onnx", precision="fp16"), machine(), "m.int8.onnx is an INT8 model: use precision"),
    (Request(int8_model="m.int8.onnx", device="cuda"), machine(cuda=1), "which runs on the CPU"),
    (Request(int8_model="m.int8.onnx", optimize="openvino"), machine(packages=ORT),
     "openvino is not installed: pip install openvino"),
    (Request(precision="int8"), machine(), "precision=int8 comes with an INT8 model"),
])
def test_what_cannot_run_is_a_config_error_saying_what_to_use(request_, machine_, message):
    with pytest.raises(ConfigError) as raised:
        make_plan(request_, machine_)
    assert message in str(raised.value)


def test_warnings_are_part_of_the_plan():
    assert make_plan(Request(), machine()).warnings == (
        "CUDA is not available: running on the CPU (expect a few frames per second)",)
    assert "fp16 on the CPU is slow" in make_plan(Request(device="cpu", precision="fp16"), machine()).warnings[0]
    assert make_plan(Request(device="cpu"), machine()).warnings == ()


def test_falling_back_gives_the_next_plan_with_its_reason():
    plan = make_plan(Request(device="cpu"), machine(flags=AMX))
    after = plan.fell_back("RuntimeError: no BF16 here")
    assert (after.runner, after.precision, after.fallbacks) == (
        "onnxruntime", "fp32", (("torchscript_freeze", "fp32"), ("eager", "fp32")))
    assert after.options.runner == "onnxruntime" and after.options.fold_bn
    assert after.reasons["runner"] == "openvino could not be set up (RuntimeError: no BF16 here)"
    assert after.history == ("openvino bf16 -> onnxruntime fp32: RuntimeError: no BF16 here",)
    assert plan.runner == "openvino"  # plans are values: the first one is unchanged
    last = after.fell_back("a").fell_back("b")
    assert (last.runner, last.fallbacks, len(last.history)) == ("eager", (), 3)
    with pytest.raises(ConfigError, match="nothing to fall back to"):
        last.fell_back("c")
    without = plan.without("fold_bn", "no pairs")
    assert not without.options.fold_bn and without.history == ("without fold_bn: no pairs",)


def test_the_plan_describes_itself_as_a_table_and_a_line():
    plan = make_plan(Request(device="cpu", threads=2, postprocess_threads=1), machine(flags=AMX))
    lines = plan.describe().splitlines()
    assert [line.split()[0] for line in lines] == ["device", "precision", "runner", "threads", "options",
                                                   "fallbacks"]
    assert lines[2].split()[1] == "openvino" and "OpenVINO runs bf16 fastest" in lines[2]
    assert "onnxruntime fp32 -> torchscript_freeze fp32 -> eager fp32" in lines[5]
    assert plan.summary() == "cpu bf16 openvino (bn-folded, openvino), 2 threads (post-processing 1)"
    assert plan.to_dict()["fallbacks"] == ["onnxruntime fp32", "torchscript_freeze fp32", "eager fp32"]
    assert "history    openvino bf16 -> onnxruntime fp32: x" in plan.fell_back("x").describe()
    cuda = make_plan(Request(), machine(cuda=1))
    assert "fallbacks  the stages without cuda_graphs" in cuda.describe()
    assert "none" in cuda.without("cuda_graphs", "capture failed").describe().splitlines()[5]


def test_machine_detect_sees_this_process(monkeypatch):
    import torch

    detected = Machine.detect()
    assert detected.cpu_threads == torch.get_num_threads() and detected.cuda_devices == torch.cuda.device_count()
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` fails as if it were not installed
    assert "openvino" not in Machine.detect().packages


def test_a_pending_switch_is_made_or_refused_as_a_new_plan():
    plan = make_plan(Request(device="cpu", calibrate=True), machine(flags=AVX2))
    assert plan.pending == "int8: calibrating on the first frames"
    assert "pending    int8: calibrating on the first frames" in plan.describe()
    assert plan.summary().endswith("; int8: calibrating on the first frames")
    switched = plan.switched("int8", "openvino", "switched to INT8 at 08:00: 99.1% of pixels equal to fp32")
    assert (switched.precision, switched.runner, switched.pending, switched.fallbacks) == ("int8", "openvino", None, ())
    assert switched.reasons["precision"] == "switched to INT8 at 08:00: 99.1% of pixels equal to fp32"
    assert switched.history == ("fp32 onnxruntime -> int8 openvino: switched to INT8 at 08:00: 99.1% of pixels equal "
                                "to fp32",)
    stayed = plan.switched("fp32", "onnxruntime", "stays fp32: INT8 refused: only 96.60% of its pixels equal fp32's")
    assert (stayed.precision, stayed.runner, stayed.pending) == ("fp32", "onnxruntime", None)
    assert stayed.reasons["precision"].endswith("; stays fp32: INT8 refused: only 96.60% of its pixels equal fp32's")
    assert plan.pending and plan.precision == "fp32"  # plans are values


def test_the_cpu_probe_can_be_told_another_cpu_class(monkeypatch):
    """LITESEG_CPU_FLAGS replaces the flags the probe reads (to see or measure another CPU class)."""
    from liteseg_ros.inference.cpu_features import cpu_flags, cpu_identity

    real = cpu_identity()
    monkeypatch.setenv("LITESEG_CPU_FLAGS", "avx2 fma amx_bf16")
    assert cpu_flags() == frozenset({"avx2", "fma", "amx_bf16"}) and Machine.detect().cpu_flags == cpu_flags()
    assert cpu_identity() != real  # the network cache keys compiled networks by the flags it sees
    assert cpu_flags("flags\t: sse avx2\n") == frozenset({"sse", "avx2"})  # a given cpuinfo is read as it is


def test_each_cpu_class_the_guard_rehearses_gets_its_own_plan():
    """The classes of CPU_CLASSES (test/classes/run_cpu_classes.py reruns the plan tests under each) are told
    apart by the plan: bf16 on OpenVINO where it is native, the INT8 twin elsewhere; each is named back."""
    from liteseg_ros.inference.cpu_features import CPU_CLASSES, cpu_class

    planned = {name: make_plan(Request(device="cpu", int8=TWIN), machine(flags=frozenset(flags)))
               for name, flags in CPU_CLASSES.items()}
    assert {name: (plan.precision, plan.runner) for name, plan in planned.items()} == {
        "avx2": ("int8", "openvino"), "avx512-vnni": ("int8", "openvino"), "avx512-bf16": ("bf16", "openvino"),
        "amx": ("bf16", "openvino")}
    assert [cpu_class(frozenset(flags)) for flags in CPU_CLASSES.values()] == list(CPU_CLASSES)
    assert cpu_class(frozenset({"sse2", "neon"})) == "other"
