"""Launch perception_node (and optionally sensor_player replaying a nuScenes-format scene).

    ros2 launch m3_perception perception.launch.py config:=/path/tiny.py checkpoint:=/path/model.pth \
        calibration:=/path/rig.yaml                         # live sensors, extrinsics from a YAML
    ros2 launch m3_perception perception.launch.py config:=... checkpoint:=... dataroot:=/data/nuscenes \
        version:=v1.0-mini scene:=scene-0103                # the player publishes the scene and writes the YAML

Parameters: ``configs/ros/perception.yaml`` (installed to ``share/m3_perception/configs/ros``), then the
arguments above on top. With ``dataroot`` set the player writes the scene's calibration to ``calibration``
(default ``/tmp/m3_perception_rig.yaml``) and the node waits for that file.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

from launch import LaunchDescription

PACKAGE = "m3_perception"


def generate_launch_description():
    params_file = os.path.join(get_package_share_directory(PACKAGE), "configs", "ros", "perception.yaml")
    args = {
        "config": ("", "model config file (e.g. configs/tiny.py)"),
        "checkpoint": ("", "trained checkpoint (.pth)"),
        "calibration": ("/tmp/m3_perception_rig.yaml", "rig calibration YAML (written by the player with dataroot)"),
        "device": ("cpu", "cpu or cuda"),
        "params_file": (params_file, "perception_node parameter file"),
        "dataroot": ("", "nuScenes-format dataroot: also start sensor_player on it"),
        "version": ("v1.0-trainval", "dataroot table folder"),
        "scene": ("", "scene to play (empty: the first)"),
        "rate": ("1.0", "player speed factor"),
        "loop": ("true", "player restarts the scene at its end"),
    }
    arg = {name: LaunchConfiguration(name) for name in args}
    with_player = IfCondition(PythonExpression(["'", arg["dataroot"], "' != ''"]))
    node = Node(
        package=PACKAGE, executable="perception_node", name="perception_node", output="screen",
        parameters=[arg["params_file"], {"config": arg["config"], "checkpoint": arg["checkpoint"],
                                         "calibration": arg["calibration"], "device": arg["device"],
                                         "calibration_wait": 30.0}],
    )
    player = Node(
        package=PACKAGE, executable="sensor_player", name="sensor_player", output="screen", condition=with_player,
        parameters=[{"dataroot": arg["dataroot"], "version": arg["version"], "scene": arg["scene"],
                     "rate": arg["rate"], "loop": arg["loop"], "calibration_out": arg["calibration"],
                     "wait_for_subscribers": 1}],
    )
    return LaunchDescription([DeclareLaunchArgument(n, default_value=d, description=t) for n, (d, t) in args.items()]
                             + [node, player])
