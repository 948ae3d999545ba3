"""liteseg-info prints the figures of LITESEG.md for every backbone."""

import json
import subprocess
import sys

import pytest
import torch

from liteseg_ros.model import build_liteseg, save_checkpoint

from conftest import installed_script


def _run(*args):
    run = subprocess.run([installed_script("liteseg-info"), *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_json_figures_for_all_backbones():
    rows = {row["backbone"]: row for row in json.loads(_run("--json"))}
    assert rows["mobilenetv2"]["params_used"] == 3_101_707
    assert rows["mobilenetv2"]["params_with_imagenet_head"] == 4_382_707
    assert rows["shufflenet"]["params_with_imagenet_head"] == 3_508_451
    assert rows["darknet19"]["params_used"] == 20_545_459
    assert abs(rows["mobilenetv2"]["gmacs"] / 4.31 - 1) < 0.01
    assert abs(rows["shufflenet"]["gmacs"] / 2.29 - 1) < 0.01
    assert abs(rows["darknet19"]["gmacs"] / 57.13 - 1) < 0.01
    assert (rows["darknet19"]["output_stride"], rows["darknet19"]["low_level_stride"]) == (16, 4)
    assert (rows["shufflenet"]["output_stride"], rows["shufflenet"]["low_level_stride"]) == (32, 8)


def test_table_names_counter_and_timing_column(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_liteseg("shufflenet"))
    out = _run("--weights", str(tmp_path / "m.pt"), "--size", "64x128", "--time", "--iters", "2", "--threads", "1")
    assert "FlopCounterMode" in out and "eager CPU fwd ms" in out
    line = next(row for row in out.splitlines() if row.strip().startswith("shufflenet"))
    assert "64x128" in line and "1,971,451" in line and "3,508,451" in line


def test_weights_are_described_from_their_metadata_at_their_training_size(tmp_path):
    """A checkpoint or an INT8 model: the architecture at the size it was trained (made) for, its classes, and an
    INT8 model's check against fp32 as its file records it."""
    import onnx

    from liteseg_ros.classes import ClassSet
    from liteseg_ros.inference.int8.models import write_quantized_model
    from liteseg_ros.model import CheckpointMeta

    torch.manual_seed(0)
    classes = ClassSet(names=("floor", "wall", "person"), colors=((1, 2, 3), (4, 5, 6), (7, 8, 9)))
    model = build_liteseg("shufflenet", num_classes=3)
    save_checkpoint(tmp_path / "robot.pt", model, CheckpointMeta.for_model(model, classes=classes,
                                                                           input_size=(192, 256)))
    row = json.loads(_run("--weights", str(tmp_path / "robot.pt"), "--json"))[0]
    assert (row["backbone"], row["input"], row["classes"]["names"]) == ("shufflenet", "192x256",
                                                                       ["floor", "wall", "person"])
    tiny = tiny_int8_file(tmp_path / "m.int8.onnx")
    report = {"summary": "99.50% of pixels equal to fp32 over 16 frames"}
    meta = CheckpointMeta(backbone="mobilenetv2", input_size=(360, 640))
    write_quantized_model(onnx.load(str(tiny)), meta, (360, 640), report, tmp_path / "n.int8.onnx")
    out = _run("--weights", str(tmp_path / "n.int8.onnx"))
    line = next(row for row in out.splitlines() if row.strip().startswith("mobilenetv2"))
    assert "360x640" in line and "3,101,707" in line
    assert "n.int8.onnx: trained at 360x640" in out
    assert "INT8 model for 360x640 input (CPU only): 99.50% of pixels equal to fp32 over 16 frames" in out


def test_bad_size_is_a_usage_error():
    run = subprocess.run(
        [installed_script("liteseg-info"), "--backbone", "darknet19", "--size", "362x640"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "multiples of 4" in run.stderr and "Traceback" not in run.stderr


def _plan_json(*args):
    return json.loads(_run("--plan", "--json", *args))


@pytest.mark.plan
def test_plan_shows_what_the_node_would_do_here():
    """The installed tool in its own process plans as a Segmenter with the node's defaults does here."""
    from liteseg_ros.model.bundled import bundled_model_path

    printed = _plan_json()
    detect = ("import json; from liteseg_ros.inference.segmenter import plan_for; "
              "from liteseg_ros.ros.parameters import NodeConfig; config = NodeConfig().validated(); "
              "print(json.dumps(plan_for(config.weights_file(), config.segmenter_config()).to_dict()))")
    # in a fresh process: torch's thread count is this pytest's to change
    expected = json.loads(subprocess.run([sys.executable, "-c", detect], capture_output=True, text=True,
                                         check=True).stdout)
    assert printed["weights"] == str(bundled_model_path())
    assert {key: printed[key] for key in ("device", "precision", "runner", "threads", "fallbacks", "reasons")} == {
        key: expected[key] for key in ("device", "precision", "runner", "threads", "fallbacks", "reasons")}
    table = _run("--plan")
    assert [line.split()[0] for line in table.splitlines()[:7]] == [
        "weights", "device", "precision", "runner", "threads", "options", "fallbacks"]


@pytest.mark.plan
def test_plan_reads_the_parameters_file_and_the_flags_override_it(tmp_path):
    params = tmp_path / "robot.yaml"
    params.write_text("/**/liteseg:\n  ros__parameters:\n    device: cpu\n    precision: fp32\n    threads: 3\n"
                      "    optimize: fold_bn,channels_last,torchscript_freeze\n", encoding="utf-8")
    printed = _plan_json("--params-file", str(params))
    assert (printed["device"], printed["precision"], printed["runner"], printed["threads"]) == (
        "cpu", "fp32", "torchscript_freeze", 3)
    assert printed["fallbacks"] == ["eager fp32"]
    assert printed["options"] == ["bn-folded", "channels-last", "torchscript"]
    overridden = _plan_json("--params-file", str(params), "--optimize", "none", "--threads", "1")
    assert (overridden["runner"], overridden["threads"], overridden["options"]) == ("eager", 1, [])
    int8 = tiny_int8_file(tmp_path / "m.int8.onnx")
    printed = _plan_json("--params-file", str(params), "--precision", "auto", "--weights", str(int8))
    assert (printed["device"], printed["precision"]) == ("cpu", "int8") and printed["runner"] in (
        "openvino", "onnxruntime")


def tiny_int8_file(path):
    """A file with the metadata of an INT8 model (the plan reads it, not the network: an Identity graph)."""
    import onnx
    from onnx import TensorProto, helper

    from liteseg_ros.inference.int8.models import write_quantized_model
    from liteseg_ros.model import CheckpointMeta

    value = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 360, 640])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "tiny", [value],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 360, 640])])
    model = helper.make_model(graph)
    onnx.checker.check_model(model)
    return write_quantized_model(model, CheckpointMeta(backbone="mobilenetv2"), (360, 640), {}, path)


@pytest.mark.plan
def test_plan_errors_are_one_line_with_status_2(tmp_path):
    run = subprocess.run([installed_script("liteseg-info"), "--plan", "--device", "cuda:7"], capture_output=True,
                         text=True)
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "liteseg-info: error: device=cuda:7" in run.stderr
    run = subprocess.run([installed_script("liteseg-info"), "--plan", "--params-file", str(tmp_path / "none.yaml")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "--params-file" in run.stderr and run.stderr.count("\n") == 1


# The parameters Nav2's semantic_segmentation_layer declares per observation source and per class type (its
# src/semantic_segmentation_layer.cpp, onInitialize), with the types it declares them with.
LAYER_SOURCE_PARAMETERS = {"segmentation_topic": str, "confidence_topic": str, "labels_topic": str,
                           "pointcloud_topic": str, "observation_persistence": float, "sensor_frame": str,
                           "expected_update_rate": float, "class_types": list, "max_obstacle_distance": float,
                           "min_obstacle_distance": float, "tile_map_decay_time": float, "visualize_tile_map": bool,
                           "use_cost_selection": bool}
LAYER_CLASS_TYPE_PARAMETERS = {"classes": list, "base_cost": int, "max_cost": int, "mark_confidence": int,
                               "samples_to_max_cost": int, "dominant_priority": bool}


def test_nav2_layer_names_the_nodes_topics_and_groups_the_published_classes(tmp_path):
    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**/liteseg": {"ros__parameters": {
        "class_map": "config/class_map_robot.yaml", "cameras": ["front", "rear"], "depth_slop": 0.02}}}))
    run = subprocess.run([installed_script("liteseg-info"), "--nav2-layer", "--params-file", params, "--namespace",
                          "/robot", "--camera", "front"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Classes left out (the layer ignores them): background" in run.stdout
    layer = yaml.safe_load(run.stdout)["semantic_segmentation_layer"]
    assert layer["plugin"] == "semantic_segmentation_layer::SemanticSegmentationLayer"
    assert layer["observation_sources"] == "liteseg" and layer["use_approximate_time_sync"] is True
    source = layer["liteseg"]
    assert {key: source[key] for key in ("segmentation_topic", "confidence_topic", "labels_topic",
                                         "pointcloud_topic")} == {
        "segmentation_topic": "/robot/liteseg/front/mask", "confidence_topic": "/robot/liteseg/front/confidence",
        "labels_topic": "/robot/liteseg/front/label_info", "pointcloud_topic": "/robot/liteseg/front/points"}
    assert source["class_types"] == ["traversable", "obstacle"]
    assert source["traversable"]["classes"] == ["drivable", "walkable"] and source["traversable"]["max_cost"] == 0
    assert source["obstacle"]["classes"] == ["obstacle", "structure"] and source["obstacle"]["base_cost"] == 254
    for key, value in source.items():
        if key in source["class_types"]:
            assert {name: type(v) for name, v in value.items()} == LAYER_CLASS_TYPE_PARAMETERS
        else:
            assert isinstance(value, LAYER_SOURCE_PARAMETERS[key]), key


def test_nav2_layer_refuses_a_camera_the_node_does_not_serve():
    run = subprocess.run([installed_script("liteseg-info"), "--nav2-layer", "--camera", "front"], capture_output=True,
                         text=True)
    assert run.returncode == 2 and "not one of the node's cameras (none: it serves one camera" in run.stderr
