"""Numba box kernels of world v2: binned ray casting (exactly :func:`perception.synth.raycast.cast_rays`
without the ground plane, faster), near-to-far pixel-rectangle casting for the cameras, points-in-boxes counts.

Frames and units: rays, boxes and points in one frame (metres); boxes are the ``(M, 8)`` kernel rows of
:func:`perception.synth.raycast.pack_boxes`.
"""

import numba
import numpy as np

from perception.synth.raycast import _hit_box


@numba.njit(cache=True)
def count_in_boxes(points, boxes):
    """How many of ``points`` (N, 3) lie inside each box ``(M, 8)`` (same frame; a point may count twice)."""
    m = boxes.shape[0]
    counts = np.zeros(m, np.int64)
    for j in range(m):
        cx, cy, cz, hl, hw, hh, c, s = boxes[j]
        r2 = hl * hl + hw * hw
        for i in range(points.shape[0]):
            x, y = points[i, 0] - cx, points[i, 1] - cy
            if x * x + y * y > r2 or abs(points[i, 2] - cz) > hh:
                continue
            if abs(c * x + s * y) <= hl and abs(-s * x + c * y) <= hw:
                counts[j] += 1
    return counts


@numba.njit(cache=True)
def cast_boxes_binned(origin, dirs, max_t, boxes, n_bins):
    """Same result as :func:`perception.synth.raycast.cast_rays` with ``use_ground=False``, faster: boxes are
    binned by the azimuth sector (about ``origin``, ``n_bins`` sectors) their footprint circle spans, and a
    ray tests only the boxes of its own sector."""
    m = boxes.shape[0]
    lo = np.empty(m, np.int64)
    hi = np.empty(m, np.int64)
    width = 2 * np.pi / n_bins
    for j in range(m):
        dx, dy = boxes[j, 0] - origin[0], boxes[j, 1] - origin[1]
        dist = np.sqrt(dx * dx + dy * dy)
        r = np.sqrt(boxes[j, 3] ** 2 + boxes[j, 4] ** 2) + 1e-6
        if dist <= r * 1.0001:
            lo[j], hi[j] = 0, n_bins - 1
            continue
        half = np.arcsin(r / dist)
        az = np.arctan2(dy, dx) + np.pi
        lo[j] = int(np.floor((az - half) / width))
        hi[j] = int(np.floor((az + half) / width))
        if hi[j] - lo[j] >= n_bins - 1:
            lo[j], hi[j] = 0, n_bins - 1
    counts = np.zeros(n_bins + 1, np.int64)
    for j in range(m):
        for b in range(lo[j], hi[j] + 1):
            counts[(b % n_bins) + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    members = np.empty(start[-1], np.int64)
    for j in range(m):
        for b in range(lo[j], hi[j] + 1):
            bb = b % n_bins
            members[fill[bb]] = j
            fill[bb] += 1
    n = dirs.shape[0]
    t_out = max_t.copy()
    hit = np.full(n, -2, np.int64)
    face = np.zeros(n, np.int64)
    for i in range(n):
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        b = int(np.floor((np.arctan2(dy, dx) + np.pi) / width))
        b = min(max(b, 0), n_bins - 1)
        best = max_t[i]
        for k in range(start[b], start[b + 1]):
            j = members[k]
            tnear, axis = _hit_box(origin, dx, dy, dz, boxes, j)
            if 0.0 < tnear < best:
                best = tnear
                hit[i] = j
                face[i] = axis
        t_out[i] = best
    return t_out, hit, face


@numba.njit(cache=True)
def cast_rects_sorted(origin, dirs, boxes, rects, t_buf, hit_buf, face_buf):
    """:func:`perception.synth.raycast.cast_rays_in_rects` (same result) with the boxes taken near to far and a
    pixel skipped when its current hit is nearer than the box's bounding sphere."""
    m = boxes.shape[0]
    tmin = np.empty(m)
    for j in range(m):
        dx, dy, dz = boxes[j, 0] - origin[0], boxes[j, 1] - origin[1], boxes[j, 2] - origin[2]
        r = np.sqrt(boxes[j, 3] ** 2 + boxes[j, 4] ** 2 + boxes[j, 5] ** 2)
        tmin[j] = max(np.sqrt(dx * dx + dy * dy + dz * dz) - r, 0.0)
    for j in np.argsort(tmin):
        for v in range(rects[j, 1], rects[j, 3]):
            for u in range(rects[j, 0], rects[j, 2]):
                if t_buf[v, u] <= tmin[j]:
                    continue
                tnear, axis = _hit_box(origin, dirs[v, u, 0], dirs[v, u, 1], dirs[v, u, 2], boxes, j)
                if 0.0 < tnear < t_buf[v, u]:
                    t_buf[v, u] = tnear
                    hit_buf[v, u] = j
                    face_buf[v, u] = axis
