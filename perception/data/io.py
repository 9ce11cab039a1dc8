"""Sensor file readers: nuScenes ``.pcd.bin`` LiDAR clouds and camera JPEGs.

All readers validate their input and raise an error that names the file (and the sample when known).
"""

import os

import numpy as np
from PIL import Image

from perception.geometry import transform_points

# nuScenes LIDAR_TOP files: float32 x 5 per point (x, y, z in metres, intensity 0-255, ring index 0-31).
PCD_BIN_FEATURES = 5


def lidar_file_problem(path, num_features=PCD_BIN_FEATURES):
    """Why ``path`` cannot be read as a ``.pcd.bin`` without reading it: ``None`` when it can, ``"missing"``,
    or ``"truncated: ..."`` when its byte size is not a whole number of ``num_features`` float32 points."""
    if not os.path.isfile(path):
        return "missing"
    size = os.path.getsize(path)
    point_bytes = 4 * num_features
    if size % point_bytes != 0:
        return (f"truncated: {size} bytes is not a multiple of {point_bytes} "
                f"({num_features} float32 per point): truncated or not a .pcd.bin")
    return None


def load_points(path, num_features=PCD_BIN_FEATURES, sample_token=None):
    """Read a nuScenes ``.pcd.bin``: ``(N, num_features)`` float32, the sensor's own LiDAR frame (metres).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` when the byte size is not a whole
    number of ``num_features`` float32 points (a truncated or foreign file); both messages name the file
    (and ``sample_token`` when given). Non-finite values are returned as they are: a few NaN points do not
    make a frame unusable, so consumers (the dataset, the runtime) drop them and count them.
    """
    where = f" (sample {sample_token})" if sample_token else ""
    problem = lidar_file_problem(path, num_features)
    if problem == "missing":
        raise FileNotFoundError(f"LiDAR file not found: {path}{where}")
    if problem is not None:
        raise ValueError(f"LiDAR file {path}{where}: {problem}")
    points = np.fromfile(path, dtype=np.float32).reshape(-1, num_features)
    return points


def load_image(path, sample_token=None):
    """Read an image file as ``(H, W, 3)`` uint8 RGB (PIL). Missing file -> ``FileNotFoundError`` naming it."""
    where = f" (sample {sample_token})" if sample_token else ""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}{where}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as e:  # PIL raises OSError subclasses for unreadable/corrupt files
        raise ValueError(f"image file {path}{where} cannot be decoded: {e}") from e


def load_points_with_sweeps(sample, num_sweeps=10):
    """Keyframe plus up to ``num_sweeps`` motion-compensated sweeps of ``sample`` (a :class:`Sample`).

    Returns ``(N, 5)`` float32 in the keyframe LiDAR frame: x, y, z (m), intensity, time lag (s, keyframe
    timestamp minus the sweep's, 0 for the keyframe). Each sweep is moved by its ``sweep2lidar`` (sweep
    LiDAR -> ego at sweep time -> global -> ego at keyframe time -> keyframe LiDAR). With
    ``num_sweeps == 0`` only the keyframe is returned as ``(N, 4)`` (x, y, z, intensity).
    """
    if num_sweeps < 0:
        raise ValueError(f"num_sweeps must be >= 0, got {num_sweeps}")
    key = load_points(sample.lidar_path, sample_token=sample.token)[:, :4]
    if num_sweeps == 0:
        return key
    parts = [np.concatenate([key, np.zeros((len(key), 1), np.float32)], axis=1)]
    for sweep in sample.sweeps[:num_sweeps]:
        pts = load_points(sweep.path, sample_token=sample.token)[:, :4].copy()
        pts[:, :3] = transform_points(sweep.sweep2lidar, pts[:, :3])
        lag = np.full((len(pts), 1), sweep.time_lag, np.float32)
        parts.append(np.concatenate([pts, lag], axis=1))
    return np.concatenate(parts, axis=0)
