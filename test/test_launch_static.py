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

from liteseg_ros.node_config import NODE_NAME, PARAMETERS, PARAMETER_NAMES, NodeConfig

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILE = ROOT / "launch" / "segment.launch.py"
PARAMS_FILE = ROOT / "config" / "liteseg.yaml"
RVIZ_FILE = ROOT / "config" / "liteseg.rviz"
DOCUMENTED_LAUNCH_ARGUMENTS = {
    "backbone", "weights", "image_topic", "input_width", "input_height", "device", "params_file", "namespace", "rviz",
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
                loops = [n for n in ast.walk(tree) if isinstance(n, ast.comprehension)
                         and isinstance(n.target, ast.Tuple) and first.id in {getattr(e, "id", None) for e in n.target.elts}]
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
    overrides = next(node.value for node in launch_tree.body if isinstance(node, ast.Assign)
                     and getattr(node.targets[0], "id", "") == "PARAMETER_ARGUMENTS")
    assert {key.value for key in overrides.keys} <= set(PARAMETER_NAMES)


def test_launched_executables_exist(launch_tree, setup_kwargs):
    calls = [n for n in ast.walk(launch_tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    executables = {_keyword(call, "executable").value for call in calls}
    names = {_keyword(call, "name").id if isinstance(_keyword(call, "name"), ast.Name) else _keyword(call, "name").value
             for call in calls}
    assert executables == {"segmentation_node", "rviz2"}
    assert "NODE_NAME" in names
    assert f'NODE_NAME = "{NODE_NAME}"' in LAUNCH_FILE.read_text()
    scripts = {entry.split("=")[0].strip(): entry.split("=")[1].strip()
               for entry in setup_kwargs["entry_points"]["console_scripts"]}
    assert scripts["segmentation_node"] == "liteseg_ros.node:main"


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
    assert NodeConfig() == NodeConfig(**{spec.name: spec.default for spec in PARAMETERS})
    for spec in PARAMETERS:
        assert len(spec.description) > 20, spec.name
        assert (spec.integer_range is not None) == isinstance(spec.default, int), spec.name
        assert (spec.float_range is not None) == isinstance(spec.default, float), spec.name


def test_rviz_config_shows_overlay_and_colour_mask():
    config = yaml.safe_load(RVIZ_FILE.read_text(encoding="utf-8"))
    displays = config["Visualization Manager"]["Displays"]
    images = {d["Topic"]["Value"]: d for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert set(images) == {f"/{NODE_NAME}/overlay", f"/{NODE_NAME}/color_mask"}
    assert all(display["Enabled"] for display in images.values())
    assert {panel["Class"] for panel in config["Panels"]} >= {"rviz_common/Displays"}
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]


def test_package_xml_declares_the_runtime_dependencies():
    root = ElementTree.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "liteseg_ros"
    assert root.find("export").findtext("build_type") == "ament_python"
    exec_depends = {element.text for element in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "python3-numpy", "python3-pil", "python3-yaml",
            "python3-torch", "ament_index_python", "launch", "launch_ros", "rviz2"} <= exec_depends
    assert {element.text for element in root.findall("test_depend")} >= {"python3-pytest", "launch_testing"}
