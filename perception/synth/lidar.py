"""A 32-beam spinning LiDAR (Velodyne HDL-32E geometry) ray cast against the synthetic world.

Output points are in the LiDAR frame (nuScenes LIDAR_TOP: x right, y forward, z up, metres) as float32
``x, y, z, intensity (0-255), ring (0-31, bottom beam = 0)``, the nuScenes ``.pcd.bin`` layout.
"""

import numpy as np

from perception.geometry import invert, make_transform, transform_points, yaw_to_quat
from perception.synth.raycast import GROUND, boxes_near, cast

# nuScenes-like LIDAR_TOP extrinsics (ego frame, metres): LiDAR x = ego -y, i.e. a yaw of -90 degrees.
LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)
LIDAR_ROTATION = tuple(float(v) for v in yaw_to_quat(-np.pi / 2))
ELEVATION_DEG = np.linspace(-30.67, 10.67, 32)  # HDL-32E beam elevations, ring 0 = lowest
MAX_RANGE = 70.0  # metres
# Intensity of the ground, indexed by its Occ3D class (11 driveable, 12 other_flat, 13 sidewalk, 14 terrain).
GROUND_REFLECTIVITY = np.array([0.0] * 11 + [8.0, 18.0, 30.0, 14.0] + [0.0] * 3)
MARKING_REFLECTIVITY = 110.0


def lidar2ego():
    """4x4 LiDAR -> ego transform of the synthetic LIDAR_TOP."""
    return make_transform(LIDAR_ROTATION, LIDAR_TRANSLATION)


def beam_directions(n_azimuth=1084):
    """Unit ray directions ``(32 * n_azimuth, 3)`` in the LiDAR frame and their ring index ``(N,)``.

    Azimuths sweep clockwise from the LiDAR +y axis (forward), like a spinning sensor seen from above.
    """
    if n_azimuth < 1:
        raise ValueError(f"n_azimuth must be >= 1, got {n_azimuth}")
    el = np.deg2rad(ELEVATION_DEG)
    az = -2 * np.pi * np.arange(n_azimuth) / n_azimuth
    el_g, az_g = np.meshgrid(el, az, indexing="ij")  # (32, n_azimuth)
    dirs = np.stack([-np.sin(az_g) * np.cos(el_g), np.cos(az_g) * np.cos(el_g), np.sin(el_g)], axis=-1)
    ring = np.repeat(np.arange(32), n_azimuth)
    return dirs.reshape(-1, 3), ring


def scan(scene, packed, reflectivity, lidar2global, rng, n_azimuth=1084):
    """One LiDAR sweep of ``scene`` with the world boxes ``packed`` (global frame, at the sweep time).

    Args:
        scene: :class:`perception.synth.scene.Scene` (for the ground classes and paint).
        packed: ``(M, 8)`` kernel boxes (:func:`perception.synth.raycast.pack_boxes`), global frame.
        reflectivity: ``(M,)`` intensity (0-255) per box.
        lidar2global: 4x4 LiDAR -> global at the sweep timestamp.
        rng: ``numpy.random.Generator`` for the intensity noise (deterministic per seed).

    Returns:
        ``points`` ``(N, 5)`` float32 in the LiDAR frame (x, y, z, intensity, ring), and ``hit`` ``(N,)`` int64:
        the index into ``packed`` each point hit, or ``GROUND`` (-1); rays that hit nothing are dropped and
        their unit directions (LiDAR frame) returned as ``miss_dirs`` ``(K, 3)``.
    """
    dirs_l, ring = beam_directions(n_azimuth)
    origin = lidar2global[:3, 3]
    dirs_g = dirs_l @ lidar2global[:3, :3].T
    t, hit, _ = cast(origin, dirs_g, MAX_RANGE, packed, boxes_near(packed, origin, MAX_RANGE))
    keep = t < MAX_RANGE
    miss_dirs = dirs_l[~keep]
    t, hit, ring, dirs_g = t[keep], hit[keep], ring[keep], dirs_g[keep]
    # Nudge hits 5 mm into the surface so a point lies inside the box it hit despite float32 rounding.
    xyz_g = origin + dirs_g * (t[:, None] + 0.005)
    is_ground = hit == GROUND
    xyz_g[is_ground, 2] = 0.0
    intensity = np.empty(len(t))
    intensity[~is_ground] = reflectivity[hit[~is_ground]]
    g_xy = xyz_g[is_ground, :2]
    g_int = GROUND_REFLECTIVITY[scene.ground_class(g_xy)]
    intensity[is_ground] = np.where(scene.ground_marking(g_xy), MARKING_REFLECTIVITY, g_int)
    intensity = np.clip(intensity * rng.uniform(0.8, 1.2, len(t)) / (1 + 0.01 * t), 0, 255)
    xyz_l = transform_points(invert(lidar2global), xyz_g)
    points = np.concatenate([xyz_l, intensity[:, None], ring[:, None]], axis=1).astype(np.float32)
    return points, hit, miss_dirs
