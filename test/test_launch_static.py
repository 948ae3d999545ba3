"""Static checks of the launch file, the parameter file, the rviz config and package.xml.

launch / launch_ros are not installed here, so the launch file is checked as source: it parses,
defines generate_launch_description, declares every documented argument, starts an executable
that setup.py installs, and references config files that exist and are installed.
"""

from __future__ import annotations

import ast
import os
import runpy
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
from liteseg_ros.ros.parameters import PARAMETER_NAMES, PARAMETERS, NodeConfig

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
    """First arguments of DeclareLaunchArgument(...) calls, following names of module-level dicts."""
    names = set()
    module_dicts = {
        target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
        for target in node.targets if isinstance(target, ast.Name) and isinstance(node.value, ast.Dict)
    }
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument":
            first = call.args[0]
            if isinstance(first, ast.Constant):
                names.add(first.value)
            elif isinstance(first, ast.Name):  # a comprehension over a dict such as PARAMETER_ARGUMENTS
                loops = [
                    n
                    for n in ast.walk(tree)
                    if isinstance(n, ast.comprehension)
                    and isinstance(n.target, ast.Tuple)
                    and first.id in {getattr(e, "id", None) for e in n.target.elts}
                ]
                for loop in loops:
                    source = loop.iter.func.value if isinstance(loop.iter, ast.Call) else loop.iter
                    names |= {key.value for key in module_dicts[source.id].keys}
    return names


def test_launch_file_defines_generate_launch_description(launch_tree):
    functions = {node.name for node in launch_tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_every_documented_launch_argument_is_declared(launch_tree):
    assert DOCUMENTED_LAUNCH_ARGUMENTS <= _declared_arguments(launch_tree)


def test_parameter_arguments_are_node_parameters(launch_tree):
    overrides = next(
        node.value
        for node in launch_tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARAMETER_ARGUMENTS"
    )
    assert {key.value for key in overrides.keys} <= set(PARAMETER_NAMES)


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
        assert (spec.integer_range is not None) == isinstance(spec.default, int), spec.name
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


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)


def test_rviz_without_rviz2_is_a_warning_and_no_process(launch_tree, tmp_path, monkeypatch):
    """The launch file's own rviz2 check, run with the real ament_index_python on prefixes with and without
    rviz2, and the rviz2 Node only created where that check found it (so nothing is left running)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    scope = {"get_package_share_directory": get_package_share_directory, "PackageNotFoundError": PackageNotFoundError,
             "os": os}
    check = ast.Module(body=[_function(launch_tree, "_rviz2_missing")], type_ignores=[])
    exec(compile(check, str(LAUNCH_FILE), "exec"), scope)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    assert "rviz2 is not installed (sudo apt install ros-jazzy-rviz2)" in scope["_rviz2_missing"]()
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").touch()
    (tmp_path / "share" / "rviz2").mkdir()
    assert scope["_rviz2_missing"]() is None

    setup = _function(launch_tree, "_launch_setup")
    guards = [node for node in ast.walk(setup) if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "missing"]
    assert len(guards) == 1
    rviz_nodes = [call for call in ast.walk(setup) if isinstance(call, ast.Call)
                  and getattr(call.func, "id", "") == "Node"
                  and getattr(_keyword(call, "executable"), "value", None) == "rviz2"]
    guarded = [call for statement in guards[0].orelse for call in ast.walk(statement) if call in rviz_nodes]
    assert rviz_nodes and guarded == rviz_nodes, "rviz2 must only be started where _rviz2_missing() found it"
    assigned = [node for node in ast.walk(setup) if isinstance(node, ast.Assign)
                and getattr(node.targets[0], "id", "") == "missing"]
    assert len(assigned) == 1 and assigned[0].value.func.id == "_rviz2_missing"


def test_launch_fails_with_the_node_and_only_then(launch_tree):
    """The handler the launch file registers on the node's exit, run: a non-zero exit before shutdown raises (launch
    then shuts down and returns 1), a clean exit or one during shutdown does not; _launch_setup registers it."""
    registered = []
    scope = {"RegisterEventHandler": lambda handler: registered.append(handler) or handler,
             "OnProcessExit": lambda **kwargs: kwargs}
    exec(compile(ast.Module(body=[_class(launch_tree, "NodeFailed"), _function(launch_tree, "_fail_when_node_fails")],
                            type_ignores=[]), str(LAUNCH_FILE), "exec"), scope)
    node = object()
    handler = scope["_fail_when_node_fails"](node)
    assert registered == [handler] and handler["target_action"] is node

    class Exited:
        process_name, returncode = "segmentation_node-1", 1

    class Context:
        is_shutdown = False

    with pytest.raises(scope["NodeFailed"], match="segmentation_node-1 exited with status 1"):
        handler["on_exit"](Exited(), Context())
    Exited.returncode = 0
    assert handler["on_exit"](Exited(), Context()) is None
    Exited.returncode, Context.is_shutdown = -2, True
    assert handler["on_exit"](Exited(), Context()) is None
    setup = _function(launch_tree, "_launch_setup")
    calls = [call for call in ast.walk(setup) if isinstance(call, ast.Call)
             and getattr(call.func, "id", "") == "_fail_when_node_fails"]
    assert len(calls) == 1 and calls[0].args[0].id == "segmentation_node"


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def test_the_node_gets_the_dds_profile_unless_the_environment_names_one(launch_tree, setup_kwargs, monkeypatch):
    """The launch file's own choice of the node's environment, run; the profile it names is installed and is a
    Fast DDS profile whose shared-memory segment holds a 1920x1080 rgb8 frame."""
    scope = {"os": os}
    exec(compile(ast.Module(body=[node for node in launch_tree.body if isinstance(node, ast.Assign)
                                  and getattr(node.targets[0], "id", "").startswith("DDS_")]
                            + [_function(launch_tree, "_dds_environment")], type_ignores=[]),
                 str(LAUNCH_FILE), "exec"), scope)
    for variable in scope["DDS_PROFILE_VARIABLES"]:
        monkeypatch.delenv(variable, raising=False)
    assert scope["_dds_environment"]("/opt/x.xml") == {"FASTRTPS_DEFAULT_PROFILES_FILE": "/opt/x.xml"}
    assert scope["_dds_environment"]("") == {}
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/home/robot/mine.xml")
    assert scope["_dds_environment"]("/opt/x.xml") == {}
    installed = {destination: set(files) for destination, files in setup_kwargs["data_files"]}
    assert f"config/{scope['DDS_PROFILE_NAME']}" in installed["share/liteseg_ros/config"]
    assert (scope["DDS_PROFILE_NAME"], scope["DDS_PROFILE_VARIABLES"]) == (DDS_PROFILE_NAME, DDS_PROFILE_VARIABLES)
    profile = ElementTree.parse(ROOT / "config" / scope["DDS_PROFILE_NAME"]).getroot()
    namespace = {"dds": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    assert int(profile.find(".//dds:transport_descriptor/dds:segment_size", namespace).text) > 1920 * 1080 * 3
    assert profile.find(".//dds:participant", namespace).get("is_default_profile") == "true"


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
    """parameter name -> (type cell, default cell) of the README's parameter table."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
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
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, list):
        return f"`{value}`"
    return str(value)


def test_the_readme_parameter_table_agrees_with_the_parameter_table():
    """The README lists every parameter once, with the default and range of PARAMETERS."""
    rows = _readme_parameter_rows()
    assert list(rows) == list(PARAMETER_NAMES)
    for spec in PARAMETERS:
        kind, default = rows[spec.name]
        assert default == _readme_default(spec.default), spec.name
        bounds = spec.integer_range or spec.float_range
        if bounds:
            low, high = (int(b) if float(b).is_integer() else b for b in bounds)
            assert kind.endswith(f"[{low}, {high}]"), (spec.name, kind)
