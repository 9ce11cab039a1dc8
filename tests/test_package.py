"""The repository is a pip package and an ament_python ROS 2 package at once: check what colcon and pip
read (package.xml, setup.py's data_files and entry points) without a ROS install."""

import xml.etree.ElementTree as ET

from conftest import REPO


def _setup():
    import os
    from distutils.core import run_setup

    import setuptools  # noqa: F401  (provides distutils on Python >= 3.12 and patches it before run_setup)

    cwd = os.getcwd()
    os.chdir(REPO)  # setup.py globs relative paths
    try:
        return run_setup(str(REPO / "setup.py"), stop_after="init")
    finally:
        os.chdir(cwd)


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "m3_perception"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "visualization_msgs", "diagnostic_msgs", "vision_msgs"} <= deps
    assert root.findtext("version") == _setup().get_version()


def test_setup_installs_the_ament_resource_package_xml_and_configs():
    dist = _setup()
    files = {dest: srcs for dest, srcs in dist.data_files}
    assert files["share/ament_index/resource_index/packages"] == ["resource/m3_perception"]
    assert (REPO / "resource" / "m3_perception").is_file()
    assert files["share/m3_perception"] == ["package.xml"]
    configs = files["share/m3_perception/configs"]
    assert "configs/tiny.py" in configs and "configs/nuscenes_full.py" in configs
    assert all((REPO / p).is_file() for srcs in files.values() for p in srcs)
    assert "perception = perception.cli.main:main" in dist.entry_points["console_scripts"]


def test_setup_cfg_puts_scripts_where_ros2_run_looks():
    text = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/m3_perception" in text and "install_scripts=$base/lib/m3_perception" in text


def _console_scripts():
    return dict(line.replace(" ", "").split("=", 1) for line in _setup().entry_points["console_scripts"])


def test_ros_executables_launch_file_and_parameter_file_are_installed():
    import importlib

    scripts = _console_scripts()
    for name in ("perception_node", "sensor_player"):
        module, func = scripts[name].split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
    files = {dest: srcs for dest, srcs in _setup().data_files}
    assert "launch/perception.launch.py" in files["share/m3_perception/launch"]
    assert files["share/m3_perception/configs/ros"] == ["configs/ros/perception.yaml"]


def test_launch_file_names_the_installed_executables_and_parameter_file():
    """`launch` is not on PyPI: read the launch file's syntax tree for the Node actions it creates."""
    import ast

    tree = ast.parse((REPO / "launch" / "perception.launch.py").read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    assert len(nodes) == 2
    kwargs = [{k.arg: k.value for k in n.keywords} for n in nodes]
    assert {ast.literal_eval(k["executable"]) for k in kwargs} == {"perception_node", "sensor_player"}
    assert set(_console_scripts()) >= {"perception_node", "sensor_player"}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"configs", "ros", "perception.yaml"} <= strings  # share/m3_perception/configs/ros/perception.yaml
    assert "m3_perception" in strings


def test_parameter_file_matches_the_node_schema():
    import yaml

    from ros_nodes.perception_node import PARAMETERS

    params = yaml.safe_load((REPO / "configs" / "ros" / "perception.yaml").read_text())
    values = params["perception_node"]["ros__parameters"]
    assert set(values) == set(PARAMETERS)
    for name, (default, _) in PARAMETERS.items():
        assert values[name] == default and type(values[name]) is type(default), name
