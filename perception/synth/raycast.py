"""Numba ray casting kernels shared by the LiDAR, the cameras, visibility and the occupancy masks.

Boxes are passed as ``(M, 8)`` float64 rows ``cx, cy, cz, l/2, w/2, h/2, cos(yaw), sin(yaw)`` (yaw-only
oriented boxes) in the same frame as the rays (the generator uses the GLOBAL frame, metres); the ground is the
plane ``z = 0`` of that frame. Voxel kernels work on grids indexed ``[ix, iy, iz]`` with the lower corner
``lower`` and cell ``size`` (metres) in the frame of the rays (the ego frame for Occ3D).
"""

import numba
import numpy as np

NO_HIT = -2
GROUND = -1


def pack_boxes(boxes):
    """``(M, 7)`` boxes (centre x, y, z, l, w, h, yaw) -> ``(M, 8)`` kernel rows (see module doc)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    out = np.empty((len(boxes), 8))
    out[:, :3] = boxes[:, :3]
    out[:, 3:6] = boxes[:, 3:6] / 2
    out[:, 6] = np.cos(boxes[:, 6])
    out[:, 7] = np.sin(boxes[:, 6])
    return out


@numba.njit(cache=True, inline="always")
def _slab(o, d, half):
    """Entry/exit distances of a ray (local origin ``o``, direction ``d``) through the slab ``|x| <= half``."""
    if abs(d) < 1e-12:
        return -1e30, 1e30, abs(o) > half
    t1 = (-half - o) / d
    t2 = (half - o) / d
    if t1 > t2:
        return t2, t1, False
    return t1, t2, False


@numba.njit(cache=True, inline="always")
def _hit_box(origin, dx, dy, dz, boxes, j):
    """Entry distance (-1 when missed or starting inside) and entry face axis of a ray into box ``j``."""
    c, s = boxes[j, 6], boxes[j, 7]
    px, py, pz = origin[0] - boxes[j, 0], origin[1] - boxes[j, 1], origin[2] - boxes[j, 2]
    # Ray in the box's local frame (yaw-only rotation), then the slab test axis by axis.
    ax0, ax1, miss0 = _slab(c * px + s * py, c * dx + s * dy, boxes[j, 3])
    ay0, ay1, miss1 = _slab(-s * px + c * py, -s * dx + c * dy, boxes[j, 4])
    az0, az1, miss2 = _slab(pz, dz, boxes[j, 5])
    tnear, axis = ax0, 0
    if ay0 > tnear:
        tnear, axis = ay0, 1
    if az0 > tnear:
        tnear, axis = az0, 2
    if miss0 or miss1 or miss2 or tnear > min(ax1, min(ay1, az1)) or tnear <= 0.0:
        return -1.0, 0
    return tnear, axis


@numba.njit(cache=True)
def cast_rays_in_rects(origin, dirs, boxes, rects, t_buf, hit_buf, face_buf):
    """Image-space variant of :func:`cast_rays`: ``dirs`` (H, W, 3) per pixel; box ``j`` is only tested on the
    pixel rectangle ``rects[j] = (u0, v0, u1, v1)`` (exclusive ends) that holds its projection.
    ``t_buf``/``hit_buf``/``face_buf`` (H, W) hold the nearest hit so far (e.g. the ground) and are updated."""
    for j in range(boxes.shape[0]):
        for v in range(rects[j, 1], rects[j, 3]):
            for u in range(rects[j, 0], rects[j, 2]):
                tnear, axis = _hit_box(origin, dirs[v, u, 0], dirs[v, u, 1], dirs[v, u, 2], boxes, j)
                if 0.0 < tnear < t_buf[v, u]:
                    t_buf[v, u] = tnear
                    hit_buf[v, u] = j
                    face_buf[v, u] = axis


@numba.njit(cache=True)
def cast_rays(origin, dirs, max_t, boxes, use_ground):
    """Nearest hit of rays from one ``origin`` (3,) along unit ``dirs`` (N, 3) up to ``max_t`` (N,) metres.

    Returns ``t`` (N,) hit distance (``max_t`` when nothing is hit), ``hit`` (N,) int64 box index, ``GROUND``
    or ``NO_HIT``, and ``face`` (N,) int64: the local axis (0 = x, 1 = y, 2 = z) of the box face hit
    (2 for the ground). Rays starting inside a box ignore that box.
    """
    n = dirs.shape[0]
    t_out = max_t.copy()
    hit = np.full(n, NO_HIT, np.int64)
    face = np.zeros(n, np.int64)
    for i in range(n):
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        best = max_t[i]
        if use_ground and dz < -1e-9:
            tg = -origin[2] / dz
            if 0.0 < tg < best:
                best = tg
                hit[i] = GROUND
                face[i] = 2
        for j in range(boxes.shape[0]):
            tnear, axis = _hit_box(origin, dx, dy, dz, boxes, j)
            if 0.0 < tnear < best:
                best = tnear
                hit[i] = j
                face[i] = axis
        t_out[i] = best
    return t_out, hit, face


@numba.njit(cache=True)
def fill_boxes(sem, boxes, labels, lower, size):
    """Write ``labels[j]`` into every voxel of ``sem`` whose centre lies inside box ``j`` (later boxes win)."""
    nx, ny, nz = sem.shape
    for j in range(boxes.shape[0]):
        cx, cy, cz, hl, hw, hh, c, s = boxes[j]
        r = np.sqrt(hl * hl + hw * hw)
        i0 = max(int(np.floor((cx - r - lower[0]) / size[0])), 0)
        i1 = min(int(np.ceil((cx + r - lower[0]) / size[0])), nx)
        j0 = max(int(np.floor((cy - r - lower[1]) / size[1])), 0)
        j1 = min(int(np.ceil((cy + r - lower[1]) / size[1])), ny)
        k0 = max(int(np.floor((cz - hh - lower[2]) / size[2])), 0)
        k1 = min(int(np.ceil((cz + hh - lower[2]) / size[2])), nz)
        for ix in range(i0, i1):
            x = lower[0] + (ix + 0.5) * size[0] - cx
            for iy in range(j0, j1):
                y = lower[1] + (iy + 0.5) * size[1] - cy
                lx, ly = c * x + s * y, -s * x + c * y
                if abs(lx) > hl or abs(ly) > hw:
                    continue
                for iz in range(k0, k1):
                    z = lower[2] + (iz + 0.5) * size[2] - cz
                    if abs(z) <= hh:
                        sem[ix, iy, iz] = labels[j]


@numba.njit(cache=True)
def traverse(mask, sem, free, origin, dirs, t_end, lower, size, stop_at_occupied):
    """3D DDA (Amanatides-Woo) from ``origin`` (inside the grid) along unit ``dirs`` (N, 3).

    Sets ``mask`` to 1 for every voxel a ray passes through until ``t_end`` (N,) metres (the voxel holding the
    end point included) or the grid border. With ``stop_at_occupied`` a ray also stops after the first voxel
    whose ``sem`` is not ``free`` (that voxel is marked).
    """
    nx, ny, nz = mask.shape
    shape = np.array([nx, ny, nz])
    for r in range(dirs.shape[0]):
        idx = np.empty(3, np.int64)
        step = np.empty(3, np.int64)
        t_max = np.empty(3)
        t_delta = np.empty(3)
        inside = True
        for a in range(3):
            f = (origin[a] - lower[a]) / size[a]
            idx[a] = int(np.floor(f))
            if idx[a] < 0 or idx[a] >= shape[a]:
                inside = False
            d = dirs[r, a]
            if d > 1e-12:
                step[a] = 1
                t_max[a] = (lower[a] + (idx[a] + 1) * size[a] - origin[a]) / d
                t_delta[a] = size[a] / d
            elif d < -1e-12:
                step[a] = -1
                t_max[a] = (lower[a] + idx[a] * size[a] - origin[a]) / d
                t_delta[a] = -size[a] / d
            else:
                step[a] = 0
                t_max[a] = 1e30
                t_delta[a] = 1e30
        if not inside:
            continue
        t = 0.0
        while t <= t_end[r]:
            mask[idx[0], idx[1], idx[2]] = 1
            if stop_at_occupied and sem[idx[0], idx[1], idx[2]] != free:
                break
            a = 0
            if t_max[1] < t_max[a]:
                a = 1
            if t_max[2] < t_max[a]:
                a = 2
            t = t_max[a]
            t_max[a] += t_delta[a]
            idx[a] += step[a]
            if idx[a] < 0 or idx[a] >= shape[a]:
                break


def boxes_near(packed, origin, radius):
    """Indices of packed boxes whose footprint may come within ``radius`` metres (xy) of ``origin``."""
    reach = radius + np.hypot(packed[:, 3], packed[:, 4])
    return np.nonzero(np.hypot(packed[:, 0] - origin[0], packed[:, 1] - origin[1]) < reach)[0]


def cast(origin, dirs, max_t, packed, subset):
    """:func:`cast_rays` against ``packed[subset]``; hit indices are mapped back to rows of ``packed``."""
    origin = np.ascontiguousarray(origin, dtype=np.float64)
    dirs = np.ascontiguousarray(dirs, dtype=np.float64)
    max_t = np.ascontiguousarray(np.broadcast_to(max_t, (len(dirs),)), dtype=np.float64)
    t, hit, face = cast_rays(origin, dirs, max_t, np.ascontiguousarray(packed[subset]), True)
    is_box = hit >= 0
    hit[is_box] = subset[hit[is_box]]
    return t, hit, face


def box_corners(packed):
    """``(M, 8, 3)`` corners of packed boxes, in their frame."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    local = signs[None] * packed[:, None, 3:6]
    c, s = packed[:, None, 6], packed[:, None, 7]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + packed[:, None, :3]
