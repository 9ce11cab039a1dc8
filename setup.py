"""m3_perception: a pip package and an ament_python ROS 2 package at once.

``pip install -e .[ros,dev]`` for development; ``colcon build`` in a ROS 2 workspace installs the same
library plus launch/config files (``data_files``) and the ROS nodes as console scripts.
"""

import glob
import os

from setuptools import find_packages, setup

PACKAGE = "m3_perception"


def _files(pattern):
    return [p for p in glob.glob(pattern) if os.path.isfile(p)]


# Pinned: torch/torchvision are the builds that lie on the project machines' disk; nuscenes-devkit pins
# numpy < 2 and is the detection referee.
INSTALL_REQUIRES = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "numpy>=1.24,<2",
    "nuscenes-devkit==1.2.0",
    "numba>=0.59",
    "mmengine==0.10.7",
    "rosbags>=0.10",
    "mcap>=1.2",
    "mcap-ros2-support>=0.5",
    "mcap-protobuf-support>=0.5",  # log replay reads Foxglove-protobuf MCAPs (the public nuScenes conversions)
    "pillow",
    "pyyaml",
    "tqdm",
    "shapely",
    "matplotlib",
    "pyquaternion",
    "scipy",
]

EXTRAS = {
    "ros": [
        "ros-rclpy[fastrtps]",
        "ros-std-msgs",
        "ros-sensor-msgs",
        "ros-geometry-msgs",
        "ros-nav-msgs",
        "ros-visualization-msgs",
        "ros-diagnostic-msgs",
    ],
    "viz": ["open3d"],
    "cuda": ["mamba-ssm", "spconv-cu126"],
    # replay --video (mp4 from the rendered frames)
    "video": ["imageio-ffmpeg"],
    # perception export / bench --backend onnxruntime (ONNX opset 17+ and its CPU runtime)
    "export": ["onnx>=1.17", "onnxruntime>=1.20", "onnxscript>=0.2"],
    # timm (any image backbone by name) and tensorboard (training curves) are optional at run time;
    # dev installs them so their code paths are tested.
    "dev": ["pytest", "pytest-timeout", "timm", "tensorboard",
            "onnx>=1.17", "onnxruntime>=1.20", "onnxscript>=0.2",  # tests/test_export.py
            "foxglove-schemas-protobuf",  # tests write Foxglove-protobuf MCAPs
            "imageio-ffmpeg",  # tests/test_replay.py assembles a video
            "ruff==0.17.6"],  # tests/test_lint.py; pinned: a newer ruff brings new rules and findings
}

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Camera + LiDAR multi-task perception: 3D boxes, BEV map segmentation, 3D occupancy",
    python_requires=">=3.10",
    packages=find_packages(include=["perception", "perception.*", "ros_nodes", "ros_nodes.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", _files("launch/*.launch.py")),
        ("share/" + PACKAGE + "/configs", _files("configs/*.py")),
        ("share/" + PACKAGE + "/configs/_base_", _files("configs/_base_/*.py")),
        ("share/" + PACKAGE + "/configs/ros", _files("configs/ros/*.yaml")),
    ],
    entry_points={
        "console_scripts": [
            "perception = perception.cli.main:main",
            # ROS 2 nodes (also `ros2 run m3_perception <name>` after colcon build: setup.cfg puts them in lib/)
            "perception_node = ros_nodes.perception_node:main",
            "sensor_player = ros_nodes.sensor_player:main",
        ],
    },
    zip_safe=False,
)
