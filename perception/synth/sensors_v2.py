"""World v2 sensors: the 32-beam LiDAR with range noise, dropout and material intensities, the six cameras with
per-instance colours, surface patterns, sun shading and noise, camera visibility and LiDAR point counts.

Frames and units: rays and boxes in the GLOBAL frame (metres); LiDAR points returned in the LiDAR frame
(nuScenes LIDAR_TOP: x right, y forward, z up) as float32 ``x, y, z, intensity (0-255), ring (0-31)``;
images RGB uint8. Boxes passed to the sensors are the PHYSICAL ones (``Scene2.boxes_at(t, margin)``); the
annotated boxes enclose them.
"""

import numpy as np

from perception.geometry import invert, transform_points
from perception.synth import camera, kernels, raycast_v2
from perception.synth.camera import RENDER_RANGE, pixel_rays
from perception.synth.lidar import MAX_RANGE, beam_directions
from perception.synth.raycast import GROUND, NO_HIT, box_corners, boxes_near


def _terrain(sc, origin, dirs, t_max, tol=0.002):
    r = sc.raster
    return kernels.march_terrain(np.ascontiguousarray(origin, dtype=np.float64), dirs,
                                 np.ascontiguousarray(np.broadcast_to(t_max, (len(dirs),)), dtype=np.float64),
                                 sc.terrain.params, r.code, r.meta, tol)


def cast_world(sc, packed, origin, dirs, t_max):
    """Nearest hit of unit ``dirs`` (N, 3) from ``origin`` against the terrain and the boxes ``packed``:
    ``t`` (N,) metres (``t_max`` when nothing), ``hit`` (N,) box row, ``GROUND`` or ``NO_HIT``."""
    dirs = np.ascontiguousarray(dirs, dtype=np.float64)
    t_max = np.broadcast_to(np.asarray(t_max, dtype=np.float64), (len(dirs),))
    t_ter = _terrain(sc, origin, dirs, t_max)
    subset = boxes_near(packed, origin, float(t_max.max()) if len(t_max) else 0.0)
    t, hit, _ = raycast_v2.cast_boxes_binned(np.ascontiguousarray(origin, dtype=np.float64), dirs, t_ter,
                                          np.ascontiguousarray(packed[subset]), 720)
    is_box = hit >= 0
    hit[is_box] = subset[hit[is_box]]
    hit[~is_box & (t_ter < t_max)] = GROUND
    return t, hit


def scan(sc, packed, lidar2global, rng, n_azimuth=1084, truth=False):
    """One LiDAR sweep (see :func:`perception.synth.lidar.scan` for the outputs ``points, hit, miss_dirs``).

    Returns: ranges get Gaussian noise (``lidar_range_noise`` m); a return is lost with probability
    ``lidar_dropout + lidar_dropout_grazing (1 - |cos|)^2 + lidar_dropout_dark max(0, 1 - I / 12)`` (cos of the
    incidence angle, I the intensity); lost rays appear in neither ``points`` nor ``miss_dirs``. Intensity =
    surface reflectivity x (0.35 + 0.65 |cos|) x log-normal noise x per-ring gain / (1 + 0.01 range). With
    ``truth`` a dict ``t_true``, ``t_meas`` (kept points) and ``valid``, ``dropped``, ``cos`` (all rays) follows.
    """
    p = sc.params
    dirs_l, ring = beam_directions(n_azimuth)
    origin = lidar2global[:3, 3].copy()
    dirs_g = np.ascontiguousarray(dirs_l @ lidar2global[:3, :3].T)
    n = len(dirs_g)
    t, hit = cast_world(sc, packed, origin, dirs_g, MAX_RANGE)
    valid = hit != NO_HIT
    is_box = hit >= 0
    part, normal = kernels.box_surface(origin, dirs_g, t, hit, packed, sc.patterns)
    refl = np.zeros(n)
    refl[is_box] = sc.materials[hit[is_box], 9 + part[is_box]]
    g = np.nonzero(hit == GROUND)[0]
    r = sc.raster
    alb = kernels.ground_albedo(origin[:2] + dirs_g[g, :2] * t[g, None], sc.terrain.params, r.code, r.meta,
                                sc.ground, sc.texture_seed)
    refl[g], normal[g] = alb[:, 3], alb[:, 5:8]
    cos = np.abs(np.einsum("ij,ij->i", normal, dirs_g))
    noise_i = np.exp(rng.normal(0.0, p.intensity_noise, n))
    intensity = np.clip(refl * (0.35 + 0.65 * cos) * noise_i * sc.ring_gain[ring] / (1 + 0.01 * t), 0, 255)
    p_drop = (p.lidar_dropout + p.lidar_dropout_grazing * (1 - cos) ** 2
              + p.lidar_dropout_dark * np.clip(1 - intensity / 12.0, 0, 1))
    dropped = valid & (rng.random(n) < p_drop)
    t_meas = t + rng.normal(0.0, 1.0, n) * p.lidar_range_noise
    keep = valid & ~dropped
    xyz_g = origin + dirs_g[keep] * t_meas[keep, None]
    xyz_l = transform_points(invert(lidar2global), xyz_g)
    points = np.concatenate([xyz_l, intensity[keep, None], ring[keep, None]], axis=1).astype(np.float32)
    out = points, hit[keep], dirs_l[~valid]
    if truth:
        return out + ({"t_true": t[keep], "t_meas": t_meas[keep], "valid": valid, "dropped": dropped, "cos": cos},)
    return out


def count_points(points, boxes_global, lidar2global):
    """``(M,)`` LiDAR points (float32 rows of :func:`scan`, LiDAR frame) inside each annotated box
    ``(M, 7)`` (global frame: centre, l, w, h, yaw), as the nuScenes ``num_lidar_pts`` counts them."""
    from perception.synth.raycast import pack_boxes

    b = np.asarray(boxes_global, dtype=np.float64).copy()
    b[:, :3] = transform_points(invert(lidar2global), b[:, :3])
    b[:, 6] -= np.arctan2(lidar2global[1, 0], lidar2global[0, 0])  # level sensor: yaw-only rotation
    pts = np.ascontiguousarray(points[:, :3], dtype=np.float64)
    packed = pack_boxes(b)
    near = boxes_near(packed, np.zeros(3), float(np.hypot(pts[:, 0], pts[:, 1]).max()) if len(pts) else 0.0)
    counts = np.zeros(len(b), dtype=np.int64)
    counts[near] = raycast_v2.count_in_boxes(pts, np.ascontiguousarray(packed[near]))
    return counts


_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if (a ^ b).bit_count() == 1])  # 12 box edges


def _box_rects(corners, cam2global, K, width, height, near=0.1):
    """``(M, 4)`` int64 pixel rectangles ``u0, v0, u1, v1`` (end exclusive) covering each box's projection; the
    box is clipped at the camera's ``near`` plane (m), so a box beside the camera gets only the part of the
    image it can cover (an empty rectangle when wholly behind)."""
    cam = (corners - cam2global[:3, 3]) @ cam2global[:3, :3]  # global -> camera (rotation transpose)
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]  # (M, 12, 3) edge ends
    za, zb = a[..., 2:3], b[..., 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = a + (near - za) / (zb - za) * (b - a)
    crossing = ((za - near) * (zb - near) < 0)[..., 0]
    pts = np.concatenate([cam, cut], axis=1)  # (M, 20, 3)
    ok = np.concatenate([cam[..., 2] >= near, crossing], axis=1)
    z = np.where(ok, np.maximum(pts[..., 2], near), 1.0)
    uv = (pts @ K.T)[..., :2] / z[..., None]
    u = np.where(ok, uv[..., 0], np.nan)
    v = np.where(ok, uv[..., 1], np.nan)
    any_ok = ok.any(axis=1)
    with np.errstate(invalid="ignore"):
        rects = np.stack([np.floor(np.nanmin(np.where(any_ok[:, None], u, 0), 1)) - 1,
                          np.floor(np.nanmin(np.where(any_ok[:, None], v, 0), 1)) - 1,
                          np.ceil(np.nanmax(np.where(any_ok[:, None], u, 0), 1)) + 2,
                          np.ceil(np.nanmax(np.where(any_ok[:, None], v, 0), 1)) + 2], axis=1)
    rects = np.clip(np.nan_to_num(rects), 0, [width, height, width, height]).astype(np.int64)
    rects[~any_ok] = 0
    return rects


_RAYS = {}  # (K, width, height) -> unit pixel rays in the camera frame (the same for every frame)


def _pixel_rays(K, width, height):
    key = (K.tobytes(), width, height)
    if key not in _RAYS:
        if len(_RAYS) > 32:
            _RAYS.clear()
        _RAYS[key] = pixel_rays(K, width, height).reshape(-1, 3)
    return _RAYS[key]


def render(sc, packed, cam2global, K, width, height, rng):
    """One camera image (see :func:`perception.synth.camera.render` for the outputs): object materials by
    surface part, Lambertian shading from the scene's sun, ground materials with patches, paint and speckle,
    distance haze, an exposure gain and Gaussian pixel noise (``camera_noise``)."""
    flat = np.ascontiguousarray(_pixel_rays(K, width, height) @ cam2global[:3, :3].T)  # (H W, 3) global
    origin = cam2global[:3, 3].copy()
    t_ter = _terrain(sc, origin, flat, RENDER_RANGE, 0.01)
    t_buf = t_ter.reshape(height, width)
    hit_buf = np.where(t_buf < RENDER_RANGE, GROUND, NO_HIT).astype(np.int64)
    face_buf = np.full((height, width), 2, dtype=np.int64)
    near = boxes_near(packed, origin, RENDER_RANGE)
    rects = _box_rects(box_corners(packed[near]), cam2global, K, width, height)
    keep = rects[:, 2] > rects[:, 0]
    raycast_v2.cast_rects_sorted(origin, flat.reshape(height, width, 3), np.ascontiguousarray(packed[near[keep]]),
                              np.ascontiguousarray(rects[keep]), t_buf, hit_buf, face_buf)
    t, hit = t_buf.ravel(), hit_buf.ravel()
    b = np.nonzero(hit >= 0)[0]
    hit[b] = near[keep][hit[b]]
    img = np.empty((len(t), 3), dtype=np.float32)
    sky = np.nonzero(hit == NO_HIT)[0]
    img[sky] = sc.sky * (1.0 - 0.25 * np.clip(flat[sky, 2:3], 0, 1))
    part, normal = kernels.box_surface(origin, flat[b], t[b], hit[b], packed, sc.patterns)
    shade = sc.ambient + (1 - sc.ambient) * np.clip(normal @ sc.sun, 0, 1)
    img[b] = sc.materials[hit[b][:, None], 3 * part[:, None] + np.arange(3)] * shade[:, None]
    g = np.nonzero(hit == GROUND)[0]
    r = sc.raster
    alb = kernels.ground_albedo(origin[:2] + flat[g, :2] * t[g, None], sc.terrain.params, r.code, r.meta, sc.ground,
                                sc.texture_seed)
    img[g] = alb[:, :3] * (sc.ambient + (1 - sc.ambient) * np.clip(alb[:, 5:8] @ sc.sun, 0, 1))[:, None]
    solid = np.concatenate([b, g])
    haze = np.clip(t[solid] * (1 / 400.0), 0, 0.3)[:, None].astype(np.float32)
    img[solid] += haze * (sc.sky.astype(np.float32) - img[solid])
    # Pixel noise: a random window of a per-scene buffer of Gaussian samples (cheaper than fresh samples).
    n = img.size
    if getattr(sc, "_noise", None) is None or len(sc._noise) < 2 * n:
        sc._noise = rng.standard_normal(2 * n, dtype=np.float32)
    off = int(rng.integers(0, len(sc._noise) - n))
    img = img.ravel() * np.float32(rng.uniform(0.9, 1.1)) + sc._noise[off:off + n] * np.float32(sc.params.camera_noise)
    return np.clip(img, 0, 255).astype(np.uint8).reshape(height, width, 3), hit.reshape(height, width)


def visible_fraction(sc, packed, targets, cams):
    """:func:`perception.synth.camera.visible_fraction` (27 points inside each target box, seen when the first
    thing a camera's ray meets is the target) with the terrain as an occluder too."""
    def first_hit(origin, dirs, dist):
        return cast_world(sc, packed, origin, dirs, dist)[1]

    return camera.visible_fraction(packed, targets, cams, first_hit)
