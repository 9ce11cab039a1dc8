"""Numba kernels of world v2: rays against the terrain, surface parts and normals of box hits, ground albedo
(box casting and point counts: :mod:`perception.synth.raycast_v2`).

Frames and units: rays, boxes and terrain in the GLOBAL frame (metres) unless stated. Terrain ``q`` and ground
raster ``code``/``meta`` follow :mod:`perception.synth.ground`; boxes are the ``(M, 8)`` kernel rows of
:func:`perception.synth.raycast.pack_boxes` (centre, half sizes, cos / sin yaw).
"""

import numba
import numpy as np

RAISED = np.array([1, 0, 1, 0], dtype=np.float64)  # by ground class code (terrain, road, walkway, car park)

# Surface patterns of objects (materials.py assigns one per actor); a box hit falls on part 0, 1 or 2.
P_PLAIN, P_CAR, P_BUS, P_TRUCK, P_TRAILER, P_PED, P_CYCLE, P_CONE, P_BARRIER, P_BUILDING = range(10)


@numba.njit(cache=True, inline="always")
def _base(q, x, y):
    x = x - q[0]
    y = y - q[1]
    h = q[2] * x + q[3] * y
    for j in range(3):
        h += q[6 + 4 * j] * np.sin(q[7 + 4 * j] * x + q[8 + 4 * j] * y + q[9 + 4 * j])
    return h


@numba.njit(cache=True, inline="always")
def _code(code, meta, x, y):
    ix = int(np.floor((x - meta[0]) / meta[2]))
    iy = int(np.floor((y - meta[1]) / meta[2]))
    if ix < 0 or iy < 0 or ix >= code.shape[1] or iy >= code.shape[0]:
        return 0
    return code[iy, ix]


@numba.njit(cache=True)
def march_terrain(origin, dirs, t_max, q, code, meta, tol):
    """Distance ``(N,)`` along unit ``dirs`` (N, 3) from ``origin`` (3,) to the terrain (``t_max`` (N,) when
    not reached), within ``tol`` metres (+0.1 % of the distance) of height. Sphere tracing against the base
    surface (slope bound ``q[5]``) above the kerb band; inside it, steps of at most 0.2 m (+1 % of the
    distance) horizontally, and a bisection onto the first point below the surface (a kerb face or a top)."""
    n = dirs.shape[0]
    out = t_max.copy()
    kerb, lip = q[4], q[5]
    ox, oy, oz = origin[0], origin[1], origin[2]
    for r in range(n):
        dx, dy, dz = dirs[r, 0], dirs[r, 1], dirs[r, 2]
        dxy = np.sqrt(dx * dx + dy * dy)
        rate = -dz + lip * dxy
        t, t_prev, tm = 0.0, 0.0, t_max[r]
        for _ in range(600):
            x, y, z = ox + t * dx, oy + t * dy, oz + t * dz
            b = _base(q, x, y)
            f = z - b - kerb * RAISED[_code(code, meta, x, y) & 7]
            if f <= 0.0:
                lo, hi = t_prev, t
                for _ in range(12):
                    mid = 0.5 * (lo + hi)
                    xm, ym = ox + mid * dx, oy + mid * dy
                    if oz + mid * dz - _base(q, xm, ym) - kerb * RAISED[_code(code, meta, xm, ym) & 7] <= 0.0:
                        hi = mid
                    else:
                        lo = mid
                out[r] = 0.5 * (lo + hi)
                break
            if f < tol + 0.001 * t:
                out[r] = t
                break
            t_prev = t
            gap = z - b - kerb
            if gap > 0.0:
                if rate <= 1e-9:
                    break
                step = max(gap / rate, 0.5 * tol)
            else:
                cap = (0.2 + 0.01 * t) / max(dxy, 1e-6)
                step = min(max(f / rate, 0.5 * tol), cap) if rate > 1e-9 else cap
            t += step
            if t >= tm:
                break
    return out


@numba.njit(cache=True)
def box_surface(origin, dirs, t, hit, boxes, pattern):
    """For rays ``r`` with ``hit[r] >= 0``: the surface part (0, 1, 2; see :func:`_part`) and the global unit
    normal ``(N, 3)`` of the face hit at distance ``t[r]``. Other rays get part 0 and normal +z."""
    n = dirs.shape[0]
    part = np.zeros(n, np.int64)
    normal = np.zeros((n, 3))
    normal[:, 2] = 1.0
    for r in range(n):
        j = hit[r]
        if j < 0:
            continue
        px = origin[0] + t[r] * dirs[r, 0] - boxes[j, 0]
        py = origin[1] + t[r] * dirs[r, 1] - boxes[j, 1]
        pz = origin[2] + t[r] * dirs[r, 2] - boxes[j, 2]
        c, s = boxes[j, 6], boxes[j, 7]
        lx, ly = c * px + s * py, -s * px + c * py
        u, v, w = lx / boxes[j, 3], ly / boxes[j, 4], pz / boxes[j, 5]
        au, av, aw = abs(u), abs(v), abs(w)
        if au >= av and au >= aw:
            axis, sg = 0, 1.0 if u > 0 else -1.0
            normal[r, 0], normal[r, 1], normal[r, 2] = sg * c, sg * s, 0.0
        elif av >= aw:
            axis, sg = 1, 1.0 if v > 0 else -1.0
            normal[r, 0], normal[r, 1], normal[r, 2] = -sg * s, sg * c, 0.0
        else:
            axis = 2
        part[r] = _part(pattern[j], u, v, w, axis, lx, ly, pz + boxes[j, 5])
    return part, normal


@numba.njit(cache=True, inline="always")
def _part(pat, u, v, w, axis, lx, ly, height):
    """Which of an object's three materials covers local point ``(u, v, w)`` (box coordinates scaled to
    [-1, 1]; ``lx``, ``ly`` metres from the centre, ``height`` metres above the bottom) on face ``axis``."""
    side = axis != 2
    if pat == P_CAR:
        if side and w < -0.55:
            return 2  # tyres and underbody
        if side and 0.2 < w < 0.8:
            return 1  # glass
    elif pat == P_BUS:
        if side and w < -0.75:
            return 2
        if side and -0.05 < w < 0.65:
            return 1
    elif pat == P_TRUCK:
        if side and w < -0.65:
            return 2
        if side and u > 0.55 and 0.15 < w < 0.7:
            return 1  # cab windows
    elif pat == P_TRAILER:
        if side and w < -0.6:
            return 2
        if side and -0.5 < w < -0.38:
            return 1  # reflective contour stripe
    elif pat == P_PED:
        if w > 0.68:
            return 2  # head
        if w < -0.08:
            return 1  # legs
    elif pat == P_CYCLE:
        if w < 0.0:
            return 2  # wheels
        if w > 0.25:
            return 1  # rider or saddle / tank
    elif pat == P_CONE:
        if w < -0.85:
            return 2
        if 0.0 < w < 0.25 or 0.45 < w < 0.62:
            return 1  # reflective collars
    elif pat == P_BARRIER:
        if int(np.floor(ly * 1.6 + height * 1.6)) % 2 == 0:
            return 1  # diagonal stripes
    elif pat == P_BUILDING:
        if side and height > 1.0:
            a = lx if axis == 1 else ly
            if (height % 3.2) > 1.0 and (height % 3.2) < 2.4 and (a % 3.0) > 0.8 and (a % 3.0) < 2.2:
                return 1  # windows
        if side and height < 1.0:
            return 2  # plinth
    return 0


@numba.njit(cache=True, inline="always")
def _hash01(ix, iy, seed):
    h = (ix * 73856093) ^ (iy * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF) / 65535.0


@numba.njit(cache=True, inline="always")
def _value_noise(x, y, cell, seed):
    """Smooth noise in [-1, 1] on a ``cell``-metre lattice (bilinear between hashed lattice values)."""
    fx, fy = x / cell, y / cell
    ix, iy = int(np.floor(fx)), int(np.floor(fy))
    ax, ay = fx - ix, fy - iy
    v00, v10 = _hash01(ix, iy, seed), _hash01(ix + 1, iy, seed)
    v01, v11 = _hash01(ix, iy + 1, seed), _hash01(ix + 1, iy + 1, seed)
    return 2.0 * ((v00 * (1 - ax) + v10 * ax) * (1 - ay) + (v01 * (1 - ax) + v11 * ax) * ay) - 1.0


@numba.njit(cache=True)
def ground_albedo(xy, q, code, meta, table, seed):
    """Ground material at global points ``xy`` (N, 2): ``(N, 8)`` red, green, blue (0-255, before lighting),
    LiDAR intensity (0-255), the class code (0-3) and the unit normal x, y, z of the base surface. ``table``
    (6, 4) holds RGB + intensity of the four classes and of white and yellow paint; patches (2.5 m) and speckle
    (0.1 m) vary them."""
    n = xy.shape[0]
    out = np.empty((n, 8))
    for i in range(n):
        x, y = xy[i, 0], xy[i, 1]
        c = _code(code, meta, x, y)
        cls, paint = c & 7, c >> 3
        row = cls if paint == 0 else 3 + paint
        patch = _value_noise(x, y, 2.5, seed + cls)
        speck = 2.0 * _hash01(int(np.floor(x * 10.0)), int(np.floor(y * 10.0)), seed) - 1.0
        g = 1.0 + 0.12 * patch + 0.07 * speck
        if paint > 0:
            g *= 0.8 + 0.2 * (0.5 + 0.5 * _value_noise(x, y, 0.7, seed + 7))  # worn paint
        out[i, 0], out[i, 1], out[i, 2] = table[row, 0] * g, table[row, 1] * g, table[row, 2] * g
        out[i, 3] = table[row, 3] * (1.0 + 0.3 * patch + 0.1 * speck)
        out[i, 4] = cls
        # Base-surface gradient (kerb faces are not modelled in the normal).
        gx, gy = q[2], q[3]
        for j in range(3):
            a = q[6 + 4 * j] * np.cos(q[7 + 4 * j] * (x - q[0]) + q[8 + 4 * j] * (y - q[1]) + q[9 + 4 * j])
            gx += a * q[7 + 4 * j]
            gy += a * q[8 + 4 * j]
        norm = np.sqrt(gx * gx + gy * gy + 1.0)
        out[i, 5], out[i, 6], out[i, 7] = -gx / norm, -gy / norm, 1.0 / norm
    return out
