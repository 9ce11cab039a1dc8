"""The repository is a pip package and an ament_python ROS 2 package at once: check what colcon and pip
read (package.xml, setup.py's data_files and entry points) without a ROS install."""

import xml.etree.ElementTree as ET

from conftest import REPO


def _setup():
    import os

    import setuptools  # noqa: F401  (provides distutils on Python >= 3.12 and patches it before run_setup)
    from distutils.core import run_setup

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
