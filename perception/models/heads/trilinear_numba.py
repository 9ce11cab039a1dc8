"""Numba CPU kernel for :func:`perception.models.heads.bev_sampling.sample_volume` (the reference), channels-last.

``F.grid_sample`` on a 5D volume is the slowest op of the tiny model on CPU (~0.5 s for 640k Occ3D voxel
centres in a 32-channel ``20 x 64 x 64`` volume, one thread). This kernel computes the same trilinear
interpolation (``align_corners=False``, ``'border'`` or ``'zeros'`` padding, the same coordinate arithmetic
in float32) point by point, reading the volume channels-last so each corner is one contiguous row, and can
add into an existing output (the occupancy head sums two sampled volumes). With ``torch.get_num_threads()``
> 1 the points are split over that many Python threads (the kernel releases the GIL); numba's own parallel
pool is not used: its OpenMP workers keep spinning after a parallel region and slowed the torch ops that
followed by ~3x on the 2-core machine.
Equal to the reference up to float rounding (``tests/test_speed_equivalence.py``).

Frames/units as the reference: volume ``(C, Z, X, Y)`` over ``point_cloud_range`` (x-first BEV, heights
over ``[z0, z1]``), points ``(P, 3)`` metres in the same (augmented LiDAR) frame.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    import numba

    NUMBA_AVAILABLE = True
except ImportError:  # numba is optional: the grid_sample path is the reference
    numba = None
    NUMBA_AVAILABLE = False

_POOL = {}  # threads -> ThreadPoolExecutor


def _unnormalize(v, lo, span, size, border):
    # grid_sample: g = frac * 2 - 1 (the reference's metric -> grid), then ((g + 1) * size - 1) / 2
    g = (v - lo) / span * np.float32(2.0) - np.float32(1.0)
    c = ((g + np.float32(1.0)) * np.float32(size) - np.float32(1.0)) / np.float32(2.0)
    if border:
        if c < 0:
            c = np.float32(0.0)
        elif c > size - 1:
            c = np.float32(size - 1)
    return c


def _kernel(volume, points, lo, span, border, out, accumulate):
    """``volume (Z, X, Y, C)`` float32, ``points (P, 3)`` float32, ``lo``/``span`` (3,) x, y, z;
    writes (or adds into) ``out (P, C)``."""
    nz, nx, ny, nc = volume.shape
    for p in range(points.shape[0]):
        if not accumulate:
            for c in range(nc):
                out[p, c] = 0.0
        cx = _unnormalize(points[p, 0], lo[0], span[0], nx, border)
        cy = _unnormalize(points[p, 1], lo[1], span[1], ny, border)
        cz = _unnormalize(points[p, 2], lo[2], span[2], nz, border)
        if not (np.isfinite(cx) and np.isfinite(cy) and np.isfinite(cz)):
            continue
        x0, y0, z0 = int(np.floor(cx)), int(np.floor(cy)), int(np.floor(cz))
        fx, fy, fz = cx - x0, cy - y0, cz - z0
        for dz in range(2):
            zi = z0 + dz
            if zi < 0 or zi >= nz:
                continue
            wz = fz if dz else np.float32(1.0) - fz
            for dx in range(2):
                xi = x0 + dx
                if xi < 0 or xi >= nx:
                    continue
                wx = fx if dx else np.float32(1.0) - fx
                for dy in range(2):
                    yi = y0 + dy
                    if yi < 0 or yi >= ny:
                        continue
                    w = wz * wx * (fy if dy else np.float32(1.0) - fy)
                    if w == 0:
                        continue
                    for c in range(nc):
                        out[p, c] += w * volume[zi, xi, yi, c]


if NUMBA_AVAILABLE:
    _unnormalize = numba.njit(inline="always", cache=True)(_unnormalize)
    _compiled = numba.njit(cache=True, nogil=True)(_kernel)
else:
    _compiled = None


def sample_volume_numba(volume, xyz, point_cloud_range, padding_mode="border", out=None):
    """Channels-last :func:`sample_volume`: ``volume (B, C, Z, X, Y)``, ``xyz (B, ..., 3)`` CPU float32 ->
    ``(B, P, C)`` (``P`` = the points of one sample). ``out``: an existing ``(B, P, C)`` float32 tensor to
    add the samples into (returned)."""
    if not NUMBA_AVAILABLE:
        raise ImportError("sample_volume_numba needs numba; use perception.models.heads.bev_sampling.sample_volume")
    if padding_mode not in ("border", "zeros"):
        raise ValueError(f"padding_mode must be 'border' or 'zeros', got {padding_mode!r}")
    b, c = volume.shape[:2]
    pts = xyz.reshape(b, -1, 3).detach().to(torch.float32).contiguous()
    vol = volume.detach().to(torch.float32).permute(0, 2, 3, 4, 1).contiguous()  # (B, Z, X, Y, C)
    accumulate = out is not None
    if out is None:
        out = torch.empty(b, pts.shape[1], c, dtype=torch.float32)
    elif tuple(out.shape) != (b, pts.shape[1], c) or out.dtype != torch.float32 or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous float32 {(b, pts.shape[1], c)} tensor, "
                         f"got {tuple(out.shape)} {out.dtype}")
    x0, y0, z0, x1, y1, z1 = (float(v) for v in point_cloud_range)
    lo = np.array([x0, y0, z0], np.float32)
    span = np.array([x1 - x0, y1 - y0, z1 - z0], np.float32)
    border = padding_mode == "border"
    threads = max(1, torch.get_num_threads())
    for i in range(b):
        v, p, o = vol[i].numpy(), pts[i].numpy(), out[i].numpy()
        if threads == 1 or p.shape[0] < 4096:
            _compiled(v, p, lo, span, border, o, accumulate)
            continue
        pool = _POOL.get(threads) or _POOL.setdefault(threads, ThreadPoolExecutor(threads))
        bounds = np.linspace(0, p.shape[0], threads + 1).astype(np.int64)
        jobs = [pool.submit(_compiled, v, p[s:e], lo, span, border, o[s:e], accumulate)
                for s, e in zip(bounds[:-1], bounds[1:], strict=False)]
        for job in jobs:
            job.result()
    return out
