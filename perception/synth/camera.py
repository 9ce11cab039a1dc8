"""Six nuScenes-like pinhole cameras rendered by per-pixel ray casting (occlusion = nearest hit).

Camera frame: x right, y down, z forward (metres). Extrinsics are camera -> ego (nuScenes calibrated_sensor:
translation in metres, rotation quaternion ``[w, x, y, z]``), copied from a real nuScenes vehicle; intrinsics
are the real 1600x900 ones scaled to the requested image size.
"""

import numpy as np

from perception.constants import CAMERA_NAMES
from perception.geometry import make_transform
from perception.synth.raycast import GROUND, NO_HIT, box_corners, boxes_near, cast, cast_rays_in_rects

FULL_SIZE = (1600, 900)  # (width, height) of the real nuScenes images the calibrations belong to
# name -> (translation (m, ego frame), rotation [w, x, y, z] camera -> ego, (fx, cx, cy) at 1600x900)
CAMERA_CALIBRATION = {
    "CAM_FRONT": ((1.70079119, 0.01594563, 1.51095764),
                  (0.49980154, -0.50303163, 0.49977981, -0.49737084), (1266.417, 816.267, 491.507)),
    "CAM_FRONT_RIGHT": ((1.55084775, -0.49340480, 1.49574801),
                        (0.20603480, -0.20269406, 0.68245078, -0.67136109), (1260.847, 807.968, 495.334)),
    "CAM_FRONT_LEFT": ((1.52387798, 0.49463134, 1.50932822),
                       (0.67572650, -0.67362665, 0.21214015, -0.21122827), (1272.598, 826.615, 479.752)),
    "CAM_BACK": ((0.02832603, 0.00345137, 1.57910346),
                 (0.50378727, -0.49740250, -0.49418502, 0.50454961), (809.221, 829.220, 481.778)),
    "CAM_BACK_LEFT": ((1.03569100, 0.48479503, 1.59097015),
                      (0.69241856, -0.70316194, -0.11648343, 0.11203318), (1256.741, 792.113, 492.776)),
    "CAM_BACK_RIGHT": ((1.01487810, -0.48056822, 1.56239545),
                       (0.12280980, -0.13240084, -0.70043058, 0.69049603), (1259.514, 807.253, 501.196)),
}
# Camera timestamp minus LiDAR keyframe timestamp (seconds), as on a real nuScenes keyframe (log n015): the
# cameras trigger one after the other as the LiDAR spins clockwise past them, all before the LiDAR timestamp.
CAMERA_OFFSET = {"CAM_FRONT_LEFT": -0.044, "CAM_FRONT": -0.036, "CAM_FRONT_RIGHT": -0.028, "CAM_BACK_RIGHT": -0.021,
                 "CAM_BACK": -0.011, "CAM_BACK_LEFT": -0.002}

# Ground colours (RGB) by Occ3D class, the paint, and the sky.
GROUND_COLOUR = {11: (85, 85, 90), 12: (120, 115, 105), 13: (175, 170, 160), 14: (90, 140, 60)}
PAINT_COLOUR = (235, 235, 235)
SKY_COLOUR = (150, 190, 235)
RENDER_RANGE = 120.0  # metres: farther geometry shows the sky


def palette():
    """Every flat colour the renderer paints, before shading and JPEG: ``(names, (K, 3) float64 RGB)`` with names
    ``class:<detection name>``, ``ground:<Occ3D class>``, ``paint``, ``sky``, ``building``, ``tree`` (tests
    classify a pixel by its nearest palette colour)."""
    from perception.synth.scene import BUILDING_COLOUR, CLASS_SPECS, TREE_COLOUR

    named = {f"class:{k}": v.colour for k, v in CLASS_SPECS.items()}
    named.update({f"ground:{k}": v for k, v in GROUND_COLOUR.items()})
    named.update(paint=PAINT_COLOUR, sky=SKY_COLOUR, building=BUILDING_COLOUR, tree=TREE_COLOUR)
    return list(named), np.array(list(named.values()), dtype=np.float64)


def intrinsics(name, width, height):
    """3x3 pixel intrinsics of camera ``name`` for a ``width`` x ``height`` image (the 1600x900 ones scaled)."""
    if name not in CAMERA_CALIBRATION:
        raise ValueError(f"unknown camera name {name!r}; expected one of {CAMERA_NAMES}")
    f, cx, cy = CAMERA_CALIBRATION[name][2]
    sx, sy = width / FULL_SIZE[0], height / FULL_SIZE[1]
    return np.array([[f * sx, 0.0, cx * sx], [0.0, f * sy, cy * sy], [0.0, 0.0, 1.0]])


def cam2ego(name):
    """4x4 camera -> ego transform of camera ``name``."""
    translation, rotation, _ = CAMERA_CALIBRATION[name]
    return make_transform(rotation, translation)


def pixel_rays(K, width, height, step=1):
    """Unit ray directions ``(H', W', 3)`` in the camera frame through pixel centres (every ``step`` pixels)."""
    u = np.arange(0, width, step) + 0.5
    v = np.arange(0, height, step) + 0.5
    uu, vv = np.meshgrid(u, v)
    pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1)
    rays = pix @ np.linalg.inv(K).T
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


def _texture(xy):
    """Deterministic per-10-cm speckle in [-1, 1] from global ground coordinates (metres)."""
    q = np.floor(xy * 10).astype(np.int64)
    h = (q[..., 0] * 73856093) ^ (q[..., 1] * 19349663)
    return (np.mod(h, 257) / 128.0) - 1.0


def _box_rects(corners, cam2global, K, width, height):
    """``(M, 4)`` int64 pixel rectangles ``u0, v0, u1, v1`` (end exclusive) covering each box's projection;
    a box with a corner behind the camera gets the whole image, one with all corners behind an empty one."""
    cam = (corners - cam2global[:3, 3]) @ cam2global[:3, :3]  # global -> camera (rotation transpose)
    z = cam[..., 2]
    uv = (cam @ K.T)[..., :2] / np.maximum(z, 1e-6)[..., None]
    rects = np.stack([np.floor(uv[..., 0].min(1)) - 1, np.floor(uv[..., 1].min(1)) - 1,
                      np.ceil(uv[..., 0].max(1)) + 2, np.ceil(uv[..., 1].max(1)) + 2], axis=1)
    rects = np.clip(rects, 0, [width, height, width, height]).astype(np.int64)
    partly_behind = (z < 0.1).any(1)
    rects[partly_behind] = [0, 0, width, height]
    rects[(z < 0.1).all(1)] = 0
    return rects


def render(scene, packed, colours, cam2global, K, width, height):
    """Render one camera image of ``scene``.

    Args:
        packed: ``(M, 8)`` world boxes (global frame) at the camera timestamp.
        colours: ``(M, 3)`` RGB per box.
        cam2global: 4x4 camera -> global at the camera timestamp.
        K: 3x3 intrinsics for a ``width`` x ``height`` image.

    Returns ``(height, width, 3)`` uint8 RGB and the ``(height, width)`` int64 index of the box each pixel
    shows (``GROUND`` / ``NO_HIT`` for ground and sky).
    """
    dirs_g = pixel_rays(K, width, height) @ cam2global[:3, :3].T  # (H, W, 3)
    origin = cam2global[:3, 3].copy()
    # Ground plane z = 0 first, then every box on the pixel rectangle covering its projection.
    dz = dirs_g[..., 2]
    t_ground = np.where(dz < -1e-9, -origin[2] / np.minimum(dz, -1e-9), np.inf)
    is_ground = t_ground < RENDER_RANGE
    t_buf = np.where(is_ground, t_ground, RENDER_RANGE)
    hit_buf = np.where(is_ground, GROUND, NO_HIT).astype(np.int64)
    face_buf = np.full((height, width), 2, dtype=np.int64)
    near = boxes_near(packed, origin, RENDER_RANGE)
    rects = _box_rects(box_corners(packed[near]), cam2global, K, width, height)
    keep = rects[:, 2] > rects[:, 0]
    cast_rays_in_rects(origin, np.ascontiguousarray(dirs_g), np.ascontiguousarray(packed[near[keep]]),
                       np.ascontiguousarray(rects[keep]), t_buf, hit_buf, face_buf)
    sel = hit_buf >= 0
    hit_buf[sel] = near[keep][hit_buf[sel]]
    t, hit, face, dirs_g = t_buf.ravel(), hit_buf.ravel(), face_buf.ravel(), dirs_g.reshape(-1, 3)

    img = np.empty((len(t), 3))
    sky = hit == NO_HIT
    # Sky: brighter towards the horizon.
    img[sky] = np.asarray(SKY_COLOUR) * (1.0 - 0.25 * np.clip(dirs_g[sky, 2:3], 0, 1))
    is_box = hit >= 0
    # Boxes: flat class colour, faces shaded slightly so shapes read as 3D while the hue stays the class's.
    shade = np.array([1.0, 0.88, 0.94])[face[is_box]]
    img[is_box] = colours[hit[is_box]] * shade[:, None]
    ground = hit == GROUND
    xy = origin[:2] + dirs_g[ground, :2] * t[ground, None]
    cls = scene.ground_class(xy)
    col = np.zeros((len(xy), 3))
    for c, rgb in GROUND_COLOUR.items():
        col[cls == c] = rgb
    col[scene.ground_marking(xy)] = PAINT_COLOUR
    img[ground] = col * (1.0 + 0.06 * _texture(xy))[:, None]
    return np.clip(img, 0, 255).astype(np.uint8).reshape(height, width, 3), hit.reshape(height, width)


def visible_fraction(packed, targets, cams, first_hit=None):
    """Fraction (0-1) of each target box seen by at least one camera, from 27 sample points inside it.

    Args:
        packed: ``(M, 8)`` world boxes (global frame). targets: ``(T,)`` indices into ``packed``.
        cams: list of ``(cam2global 4x4, K 3x3, width, height)``.
        first_hit: ``(origin (3,), unit dirs (N, 3), dist (N,)) -> (N,)`` index of the first box each ray
            meets (-1 or another negative code for none / the ground); default: the boxes of ``packed`` only.
            World v2 passes one that also stops at its terrain.

    A point counts as seen when it projects inside the image in front of the camera and the first box its
    camera ray hits is the target itself (no other box in between).
    """
    if first_hit is None:
        def first_hit(origin, dirs, dist):
            return cast(origin, dirs, dist, packed, boxes_near(packed, origin, float(dist.max())))[1]

    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) == 0:
        return np.zeros(0)
    f = np.array([-0.8, 0.0, 0.8])
    grid = np.stack(np.meshgrid(f, f, f, indexing="ij"), axis=-1).reshape(-1, 3)  # (27, 3) in half-sizes
    b = packed[targets]
    local = grid[None] * b[:, None, 3:6]  # (T, 27, 3)
    c, s = b[:, None, 6], b[:, None, 7]
    pts = np.stack([c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1], local[..., 2]], -1)
    pts = (pts + b[:, None, :3]).reshape(-1, 3)
    owner = np.repeat(targets, len(grid))
    seen = np.zeros(len(pts), dtype=bool)
    for cam2global, K, width, height in cams:
        origin = cam2global[:3, 3]
        p_cam = (pts - origin) @ cam2global[:3, :3]  # global -> camera rotation (inverse = transpose)
        z = p_cam[:, 2]
        uv = (p_cam @ K.T)[:, :2] / np.maximum(z, 1e-6)[:, None]
        inside = (z > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
        idx = np.nonzero(inside & ~seen)[0]
        if len(idx) == 0:
            continue
        vec = pts[idx] - origin
        dist = np.linalg.norm(vec, axis=1)
        seen[idx] = first_hit(origin, vec / dist[:, None], dist) == owner[idx]
    return seen.reshape(len(targets), -1).mean(axis=1)
