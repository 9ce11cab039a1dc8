"""Numba CPU kernel for hard voxelization, same contract and output as
:func:`perception.models.lidar.voxelize.hard_voxelize` (bit-identical; see that module for frames/units).

The sequential kernel visits points in input order, so the first-point voxel order and the in-voxel point
order fall out naturally. Index arithmetic is float32 like the torch reference, so boundaries agree.
"""

import numpy as np
import torch

from perception.models.lidar.voxelize import _check_points, grid_shape

try:
    import numba

    NUMBA_AVAILABLE = True
except ImportError:  # numba is optional: the torch path is the reference
    numba = None
    NUMBA_AVAILABLE = False


def _kernel(points, lower, size, shape, max_points, max_voxels, voxels, coords, num_points):
    """Fill ``voxels``/``coords``/``num_points`` in place; returns the number of voxels used."""
    voxel_index = numba.typed.Dict.empty(key_type=numba.types.int64, value_type=numba.types.int64)
    num_voxels = 0
    for i in range(points.shape[0]):
        ix = np.int64(np.floor((points[i, 0] - lower[0]) / size[0]))
        iy = np.int64(np.floor((points[i, 1] - lower[1]) / size[1]))
        iz = np.int64(np.floor((points[i, 2] - lower[2]) / size[2]))
        if ix < 0 or ix >= shape[0] or iy < 0 or iy >= shape[1] or iz < 0 or iz >= shape[2]:
            continue
        key = (ix * shape[1] + iy) * shape[2] + iz
        if key in voxel_index:
            v = voxel_index[key]
        else:
            if num_voxels >= max_voxels:
                continue
            v = num_voxels
            voxel_index[key] = v
            coords[v, 0] = ix
            coords[v, 1] = iy
            coords[v, 2] = iz
            num_voxels += 1
        n = num_points[v]
        if n < max_points:
            voxels[v, n, :] = points[i, :]
            num_points[v] = n + 1
    return num_voxels


_compiled = numba.njit(cache=True)(_kernel) if NUMBA_AVAILABLE else None


def hard_voxelize_numba(points, point_cloud_range, voxel_size, max_points, max_voxels):
    """Numba hard voxelization of a CPU ``(N, C)`` float32 tensor; returns torch tensors
    ``voxels (V, max_points, C)``, ``coords (V, 3)`` int64 ``[ix, iy, iz]``, ``num_points (V,)`` int64."""
    if not NUMBA_AVAILABLE:
        raise ImportError("hard_voxelize_numba needs numba; use perception.models.lidar.voxelize.hard_voxelize")
    _check_points(points)
    if points.device.type != "cpu" or points.dtype != torch.float32:
        raise ValueError(f"points must be a CPU float32 tensor, got {points.device} {points.dtype}")
    if max_points < 1 or max_voxels < 1:
        raise ValueError(f"max_points and max_voxels must be >= 1, got {max_points}, {max_voxels}")
    shape = np.array(grid_shape(point_cloud_range, voxel_size), dtype=np.int64)
    pts = points.detach().contiguous().numpy()
    capacity = int(min(max_voxels, pts.shape[0]))
    voxels = np.zeros((capacity, max_points, pts.shape[1]), np.float32)
    coords = np.zeros((capacity, 3), np.int64)
    num_points = np.zeros((capacity,), np.int64)
    lower = np.asarray(point_cloud_range[:3], np.float32)
    size = np.asarray(voxel_size, np.float32)
    n = _compiled(pts, lower, size, shape, max_points, max_voxels, voxels, coords, num_points)
    return torch.from_numpy(voxels[:n]), torch.from_numpy(coords[:n]), torch.from_numpy(num_points[:n])
