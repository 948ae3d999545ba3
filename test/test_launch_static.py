"""The launch file's decisions (liteseg_ros.ros.launching, which it calls), the parameter file, the rviz config and
package.xml.

launch / launch_ros are not installed here (not on PyPI), so what the launch file decides is tested by calling the
functions it calls: the arguments that override parameters and how their text is read, the node's DDS
environment, the rviz2 check, the exit handler. The file itself is read for what it is made of (its declared
arguments, executables and config files): that it is wired to those functions is run by the launch_testing tests
where launch is installed.
"""

from __future__ import annotations

import ast
import os
import runpy
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import setuptools
import yaml

from liteseg_ros.outputs import NODE_NAME
from liteseg_ros.ros.environment import (
    DDS_PROFILE_NAME,
    DDS_PROFILE_VARIABLES,
    large_frames_dds_profile,
    use_large_frames_dds_profile,
)
from liteseg_ros.ros.launching import (
    PARAMETER_ARGUMENTS,
    NodeFailed,
    argument_description,
    dds_environment,
    node_exit_handler,
    parameter_overrides,
    rviz2_missing,
    rviz_config,
)
from liteseg_ros.ros.parameters import PARAMETER_NAMES, PARAMETER_SPECS, PARAMETERS, NodeConfig

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILE = ROOT / "launch" / "segment.launch.py"
PARAMS_FILE = ROOT / "config" / "liteseg.yaml"
RVIZ_FILE = ROOT / "config" / "liteseg.rviz"
DOCUMENTED_LAUNCH_ARGUMENTS = {
    "backbone", "weights", "image_topic", "input_width", "input_height", "device", "params_file", "namespace", "rviz",
    "managed", "autostart", "cameras", "output_size", "dds_profile", "class_map",
}


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"), filename=str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def setup_kwargs(tmp_path_factory) -> dict:
    """Run setup.py with setuptools.setup replaced by a recorder (the file's globs run for real)."""
    captured: dict = {}
    original, original_cwd = setuptools.setup, Path.cwd()
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        os.chdir(ROOT)
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
        os.chdir(original_cwd)
    return captured


def _string_constants(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _declared_arguments(tree: ast.Module) -> set[str]:
    """First arguments of DeclareLaunchArgument(...) calls: constants, and the names of a comprehension over
    PARAMETER_ARGUMENTS (launching's)."""
    names = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument" \
                and isinstance(call.args[0], ast.Constant):
            names.add(call.args[0].value)
    for loop in ast.walk(tree):
        if isinstance(loop, ast.comprehension) and getattr(loop.iter, "id", None) == "PARAMETER_ARGUMENTS":
            names |= set(PARAMETER_ARGUMENTS)
    return names


def test_launch_file_defines_generate_launch_description(launch_tree):
    functions = {node.name for node in launch_tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_every_documented_launch_argument_is_declared(launch_tree):
    assert DOCUMENTED_LAUNCH_ARGUMENTS <= _declared_arguments(launch_tree)


def test_parameter_arguments_override_their_parameters_typed_as_the_parameters():
    assert set(PARAMETER_ARGUMENTS) <= set(PARAMETER_NAMES)
    overrides = parameter_overrides({"backbone": "shufflenet", "input_width": " 320 ", "input_height": "",
                                     "cameras": "[front, rear]", "weights": "", "output_size": "360x640"})
    assert overrides == {"backbone": "shufflenet", "input_width": 320, "cameras": ["front", "rear"],
                         "output_size": "360x640"}
    assert parameter_overrides({}) == {}
    with pytest.raises(ValueError, match="launch argument input_width:=wide must be int"):
        parameter_overrides({"input_width": "wide"})
    for name in PARAMETER_ARGUMENTS:  # each launch argument says what its parameter is
        assert argument_description(name).startswith(PARAMETER_SPECS[name].description), name


def test_launched_executables_exist(launch_tree, setup_kwargs):
    calls = [n for n in ast.walk(launch_tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) in ("Node", "LifecycleNode")]
    executables = {_keyword(call, "executable").value for call in calls}
    assert executables == {"segmentation_node", "segmentation_lifecycle_node", "rviz2"}
    options = next(node.value for node in ast.walk(launch_tree) if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", "") == "node_options")
    assert _keyword(options, "name").id == "NODE_NAME"  # both segmentation nodes are named liteseg
    assert "from liteseg_ros.outputs import NODE_NAME" in LAUNCH_FILE.read_text() and NODE_NAME == "liteseg"
    scripts = {
        entry.split("=")[0].strip(): entry.split("=")[1].strip()
        for entry in setup_kwargs["entry_points"]["console_scripts"]
    }
    assert scripts["segmentation_node"] == "liteseg_ros.ros.entry:main"
    assert scripts["segmentation_lifecycle_node"] == "liteseg_ros.ros.entry:lifecycle_main"


def test_referenced_config_files_exist_and_are_installed(launch_tree, setup_kwargs):
    constants = _string_constants(launch_tree)
    assert {"config", "liteseg.yaml", "liteseg.rviz"} <= constants
    installed = {destination: set(files) for destination, files in setup_kwargs["data_files"]}
    assert {"config/liteseg.yaml", "config/liteseg.rviz"} <= installed["share/liteseg_ros/config"]
    assert "launch/segment.launch.py" in installed["share/liteseg_ros/launch"]
    assert "package.xml" in installed["share/liteseg_ros"]
    assert PARAMS_FILE.is_file() and RVIZ_FILE.is_file()


def test_params_file_holds_exactly_the_declared_parameters_with_their_defaults():
    document = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    assert list(document) == [f"/**/{NODE_NAME}"]
    parameters = document[f"/**/{NODE_NAME}"]["ros__parameters"]
    assert list(parameters) == list(PARAMETER_NAMES)
    assert parameters == {spec.name: spec.default for spec in PARAMETERS}
    for spec in PARAMETERS:  # same type as the declaration, or rclpy rejects the file
        assert type(parameters[spec.name]) is type(spec.default), spec.name


def test_parameters_have_descriptions_ranges_and_dataclass_defaults():
    assert NodeConfig().validated() == NodeConfig(**{spec.name: spec.default for spec in PARAMETERS}).validated()
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        integer = isinstance(spec.default, int) and not isinstance(spec.default, bool)
        assert (spec.integer_range is not None) == integer, spec.name
        assert (spec.float_range is not None) == isinstance(spec.default, float), spec.name


def test_rviz_config_shows_overlay_and_colour_mask():
    config = yaml.safe_load(RVIZ_FILE.read_text(encoding="utf-8"))
    displays = config["Visualization Manager"]["Displays"]
    images = {d["Topic"]["Value"]: d for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert set(images) == {f"/{NODE_NAME}/overlay", f"/{NODE_NAME}/color_mask", f"/{NODE_NAME}/confidence"}
    assert all(display["Enabled"] for display in images.values())
    assert {panel["Class"] for panel in config["Panels"]} >= {"rviz_common/Displays"}
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]


# Every dependency key of package.xml, and where rosdep resolves it on Jazzy (checked by hand against
# ros/rosdistro on 2026-12-01: jazzy/distribution.yaml for ROS packages, rosdep/python.yaml for python3-*).
# A key that is not here must be checked the same way before it is added; `ament_python` (a build type) and
# `onnx` (no key: pip) are known not to resolve.
ROSDEP_KEYS = {
    "rclpy": "ros: rclpy", "sensor_msgs": "ros: common_interfaces", "std_msgs": "ros: common_interfaces",
    "diagnostic_msgs": "ros: common_interfaces", "rcl_interfaces": "ros: rcl_interfaces",
    "lifecycle_msgs": "ros: rcl_interfaces",
    "vision_msgs": "ros: vision_msgs", "ament_index_python": "ros: ament_index", "launch": "ros: launch",
    "launch_ros": "ros: launch_ros", "launch_testing": "ros: launch", "launch_testing_ros": "ros: launch_ros",
    "rviz2": "ros: rviz", "python3-numpy": "apt", "python3-pil": "apt", "python3-yaml": "apt",
    "python3-torch": "apt", "python3-opencv": "apt", "python3-pytest": "apt", "python3-pytest-timeout": "apt",
    "python3-onnxruntime-pip": "pip: onnxruntime", "python3-rosbags-pip": "pip: rosbags",
    "python3-ruff-pip": "pip: ruff",
}


def test_package_xml_declares_the_runtime_dependencies_with_keys_rosdep_resolves():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "liteseg_ros"
    assert root.find("export").findtext("build_type") == "ament_python"
    declared = {element.text for element in root if element.tag.endswith("depend")}
    assert declared <= set(ROSDEP_KEYS), f"keys rosdep cannot resolve: {sorted(declared - set(ROSDEP_KEYS))}"
    exec_depends = {element.text for element in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy", "python3-pil", "python3-yaml",
            "python3-torch", "python3-opencv", "python3-onnxruntime-pip", "python3-rosbags-pip", "ament_index_python",
            "launch",
            "launch_ros"} <= exec_depends
    assert "rviz2" not in exec_depends, "rviz2 is optional: a robot need not install it"
    assert {element.text for element in root.findall("test_depend")} >= {"python3-pytest", "launch_testing"}


def test_rviz_without_rviz2_is_a_warning_and_no_process(tmp_path, monkeypatch):
    """The launch file's rviz2 check, run with the real ament_index_python on prefixes with and without rviz2 (the
    launch file starts rviz2 only where it returns None)."""
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    assert "rviz2 is not installed (sudo apt install ros-jazzy-rviz2)" in rviz2_missing()
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").touch()
    (tmp_path / "share" / "rviz2").mkdir()
    assert rviz2_missing() is None


def test_rviz_topics_move_into_the_namespace():
    assert rviz_config(RVIZ_FILE, "") == str(RVIZ_FILE)
    moved = yaml.safe_load(Path(rviz_config(RVIZ_FILE, "robot/front")).read_text(encoding="utf-8"))
    topics = {d["Topic"]["Value"] for d in moved["Visualization Manager"]["Displays"] if "Topic" in d}
    assert topics and all(topic.startswith(f"/robot/front/{NODE_NAME}/") for topic in topics)


def test_launch_fails_with_the_node_and_only_then():
    """The handler the launch file registers on the node's exit: a non-zero exit before shutdown raises (launch then
    shuts down and returns 1), a clean exit or one during shutdown does not."""
    on_exit = node_exit_handler()

    class Exited:
        process_name, returncode = "segmentation_node-1", 1

    class Context:
        is_shutdown = False

    with pytest.raises(NodeFailed, match="segmentation_node-1 exited with status 1"):
        on_exit(Exited(), Context())
    Exited.returncode = 0
    assert on_exit(Exited(), Context()) is None
    Exited.returncode, Context.is_shutdown = -2, True
    assert on_exit(Exited(), Context()) is None


def test_the_node_gets_the_dds_profile_unless_the_environment_names_one(setup_kwargs):
    """The node's environment as the launch file chooses it; the profile it names is installed and is a Fast DDS
    profile whose shared-memory segment holds a 1920x1080 rgb8 frame."""
    assert dds_environment("/opt/x.xml", {}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": "/opt/x.xml"}
    assert dds_environment("", {}) == {}
    assert dds_environment("/opt/x.xml", {"FASTDDS_DEFAULT_PROFILES_FILE": "/home/robot/mine.xml"}) == {}
    installed = {destination: set(files) for destination, files in setup_kwargs["data_files"]}
    assert f"config/{DDS_PROFILE_NAME}" in installed["share/liteseg_ros/config"]
    profile = ElementTree.parse(ROOT / "config" / DDS_PROFILE_NAME).getroot()
    namespace = {"dds": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    assert int(profile.find(".//dds:transport_descriptor/dds:segment_size", namespace).text) > 1920 * 1080 * 3
    assert profile.find(".//dds:participant", namespace).get("is_default_profile") == "true"


def test_the_launch_file_imports_what_it_decides_with_and_no_torch():
    """``ros2 launch`` imports the launch file's helpers: quickly (no torch, rclpy or message package)."""
    code = ("import sys, liteseg_ros.ros.launching; print(sorted({n.split('.')[0] for n in sys.modules} & "
            "{'torch', 'rclpy', 'sensor_msgs', 'cv2', 'onnxruntime', 'openvino'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr


def test_the_demo_names_the_packaged_profile_unless_one_is_named(monkeypatch):
    for variable in DDS_PROFILE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert use_large_frames_dds_profile() == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(large_frames_dds_profile())}
    assert large_frames_dds_profile().read_bytes() == (ROOT / "config" / DDS_PROFILE_NAME).read_bytes()
    assert os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(large_frames_dds_profile())
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/home/robot/mine.xml")
    assert use_large_frames_dds_profile() == {}
    assert os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] == "/home/robot/mine.xml"


def test_default_image_topic_is_relative_so_a_namespace_moves_it(launch_tree):
    image_topic = next(call for call in ast.walk(launch_tree) if isinstance(call, ast.Call)
                       and getattr(call.func, "id", "") == "DeclareLaunchArgument"
                       and isinstance(call.args[0], ast.Constant) and call.args[0].value == "image_topic")
    default = _keyword(image_topic, "default_value").value
    assert default == "camera/image_raw" and not default.startswith("/")


def _readme_parameter_rows() -> dict[str, tuple[str, str]]:
    """parameter name -> (type cell, default cell) of the node page's parameter table (docs/ros.md)."""
    lines = (ROOT / "docs" / "ros.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| parameter | type | default | meaning |")
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        names, kind, default = (cell.strip() for cell in line.strip("|").split("|")[:3])
        for name in names.split(","):
            rows[name.strip().strip("`")] = (kind, default)
    return rows


def _readme_default(value) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, list):
        return f"`{value}`"
    return str(value)


def test_the_node_pages_parameter_table_agrees_with_the_parameter_table():
    """docs/ros.md lists every parameter once, with the default and range of PARAMETERS."""
    rows = _readme_parameter_rows()
    assert list(rows) == list(PARAMETER_NAMES)
    for spec in PARAMETERS:
        kind, default = rows[spec.name]
        assert default == _readme_default(spec.default), spec.name
        bounds = spec.integer_range or spec.float_range
        if bounds:
            low, high = (int(b) if float(b).is_integer() else b for b in bounds)
            assert kind.endswith(f"[{low}, {high}]"), (spec.name, kind)
