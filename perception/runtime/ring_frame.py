"""A synthetic frame for checks without sensors: points uniform in the range, cameras on a ring.

Used where a frame of the right shapes is needed and its content does not matter: the ONNX export's example
input (``perception export``), ``perception bench``'s synthetic rig, the speed equivalence tests. Frames as in
:mod:`perception.runtime.frame` (LiDAR frame: x right, y forward, z up; metres; pixels).
"""

import math

import numpy as np

from perception.constants import CAMERA_NAMES
from perception.runtime.frame import CameraFrame, Frame


def ring_rig(n_cams, width, height):
    """A synthetic camera rig: ``n_cams`` cameras evenly around the LiDAR (LiDAR frame: x right, y forward,
    z up; the first looks along +y), each with a nuScenes-like 70 degree horizontal field of view. Returns
    ``K (3, 3)`` (pixels, shared) and ``lidar2cam (n_cams, 4, 4)`` (LiDAR -> camera optical frame), float64."""
    f = 0.5 * width / math.tan(math.radians(35))
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    lidar2cam = np.tile(np.eye(4), (n_cams, 1, 1))
    for i in range(n_cams):
        yaw = 2 * math.pi * i / n_cams
        d = np.array([math.sin(yaw), math.cos(yaw), 0.0])  # viewing direction in the LiDAR frame
        lidar2cam[i, :3, :3] = np.stack([[d[1], -d[0], 0.0], [0.0, 0.0, -1.0], d])  # rows: camera x, y, z axes
    return K, lidar2cam


def synth_image_size(cfg):
    """``(width, height)`` of the synthetic camera JPEGs that the config's test-time resize expects: the
    tiny configs resize 640 x 360 images (``test_resize`` ~0.42), the full-size ones nuScenes' 1600 x 900."""
    data = cfg["data"]
    width = float(data["image_size"][1])
    resize = float(data["augment"]["test_resize"] or 1.0)  # None: the smallest scale covering image_size
    return (1600, 900) if width / resize > 1000 else (640, 360)


def ring_frame(cfg, num_points=30000, seed=0):
    """A synthetic :class:`perception.runtime.Frame`: points uniform in the range, the config's cameras on a
    ring (nuScenes-like 70 deg field of view) with random images of the size its test-time resize expects."""
    rng = np.random.default_rng(seed)
    x0, y0, z0, x1, y1, z1 = cfg["model"]["point_cloud_range"]
    lo, hi = np.array([x0, y0, z0 + 3.0]), np.array([x1, y1, min(z1, z0 + 6.0)])
    xyz = lo + rng.random((num_points, 3)) * (hi - lo)
    points = np.concatenate([xyz, rng.random((num_points, 1)) * 255], 1).astype(np.float32)
    width, height = synth_image_size(cfg)
    names = [c for c in CAMERA_NAMES if c in cfg["data"]["cameras"]]
    K, lidar2cam = ring_rig(len(names), width, height)
    cams = {}
    for name, T in zip(names, lidar2cam, strict=True):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cams[name] = CameraFrame(image, K, T, timestamp=1)
    lidar2ego = np.eye(4)
    lidar2ego[:3, 3] = [0.9, 0.0, 1.8]
    return Frame(points=points, cameras=cams, lidar2ego=lidar2ego, timestamp=1)
