"""Vectorized torch voxelization (hard and dynamic) of LiDAR points.

Frames and units: points are ``(N, C)`` float32 rows ``x, y, z, ...`` in the (augmented) LiDAR frame,
metres. ``point_cloud_range`` is ``[x0, y0, z0, x1, y1, z1]`` (metres) and ``voxel_size`` ``[vx, vy, vz]``
(metres). Voxel coordinates are integer ``[ix, iy, iz]`` (x FIRST, the project-wide grid layout) with
``ix = floor((x - x0) / vx)``; a point is in range when ``0 <= ix < nx`` (and the same for y, z), i.e.
``x0 <= x < x1`` up to float32 rounding.

Hard voxelization keeps voxels in the order of their first point and points inside a voxel in input
order; voxels beyond ``max_voxels`` and points beyond ``max_points`` per voxel are dropped (as mmcv's
hard voxelization). ``perception.models.lidar.voxelize_numba`` implements the same contract with numba.
"""

import torch


def grid_shape(point_cloud_range, voxel_size):
    """``(nx, ny, nz)`` number of voxels along x, y, z; raises ``ValueError`` on a bad range or size."""
    if len(point_cloud_range) != 6:
        raise ValueError(f"point_cloud_range must be [x0, y0, z0, x1, y1, z1], got {point_cloud_range}")
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise ValueError(f"voxel_size must be 3 positive sizes in metres, got {voxel_size}")
    shape = []
    for axis in range(3):
        extent = point_cloud_range[axis + 3] - point_cloud_range[axis]
        if extent <= 0:
            raise ValueError(f"point_cloud_range is empty along axis {axis}: {point_cloud_range}")
        shape.append(int(round(extent / voxel_size[axis])))
    return tuple(shape)


def _check_points(points):
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] < 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a (N, C>=3) tensor (x, y, z, ... in the LiDAR frame), got {shape}")


def dynamic_voxelize(points, point_cloud_range, voxel_size):
    """Voxel coordinate of every point: ``(N, 3)`` int64 ``[ix, iy, iz]``, rows of ``-1`` for points out of
    range (nothing is dropped, so features stay aligned with the input points)."""
    _check_points(points)
    nx, ny, nz = grid_shape(point_cloud_range, voxel_size)
    lower = points.new_tensor(point_cloud_range[:3])
    size = points.new_tensor(voxel_size)
    coords = torch.floor((points[:, :3] - lower) / size).long()
    upper = torch.tensor([nx, ny, nz], device=points.device)
    inside = ((coords >= 0) & (coords < upper)).all(dim=1)
    return torch.where(inside[:, None], coords, torch.full_like(coords, -1))


def voxel_mean(points, coords):
    """Mean feature per occupied voxel (the mean-VFE of the sparse path).

    ``points`` ``(N, C)``, ``coords`` ``(N, K)`` int64 integer coordinates (e.g. ``[b, ix, iy, iz]``) with
    rows of ``-1`` for points to ignore. Returns ``(features (V, C), voxel_coords (V, K), counts (V,))``.
    """
    valid = (coords >= 0).all(dim=1)
    coords, points = coords[valid], points[valid]
    voxel_coords, inverse, counts = torch.unique(coords, dim=0, return_inverse=True, return_counts=True)
    sums = points.new_zeros(voxel_coords.shape[0], points.shape[1]).index_add_(0, inverse, points)
    return sums / counts[:, None].to(points.dtype), voxel_coords, counts


def hard_voxelize(points, point_cloud_range, voxel_size, max_points, max_voxels):
    """Group points into at most ``max_voxels`` voxels of at most ``max_points`` points each.

    Returns ``voxels (V, max_points, C)`` (zero padded), ``coords (V, 3)`` int64 ``[ix, iy, iz]`` and
    ``num_points (V,)`` int64. See the module docstring for the ordering contract.
    """
    if max_points < 1 or max_voxels < 1:
        raise ValueError(f"max_points and max_voxels must be >= 1, got {max_points}, {max_voxels}")
    _check_points(points)
    nx, ny, nz = grid_shape(point_cloud_range, voxel_size)
    coords = dynamic_voxelize(points, point_cloud_range, voxel_size)
    point_ids = torch.nonzero(coords[:, 0] >= 0).squeeze(1)
    coords = coords[point_ids]
    linear = (coords[:, 0] * ny + coords[:, 1]) * nz + coords[:, 2]
    unique, inverse = torch.unique(linear, return_inverse=True)
    # Order voxels by their first point (sequential semantics): first point index per voxel, then rank.
    first = torch.full((unique.shape[0],), points.shape[0], dtype=torch.long, device=points.device)
    first = first.scatter_reduce(0, inverse, point_ids, reduce="amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(first.shape[0], device=points.device)
    voxel_of_point = rank[inverse]
    num_voxels = min(unique.shape[0], max_voxels)
    keep = voxel_of_point < num_voxels
    point_ids, voxel_of_point, coords = point_ids[keep], voxel_of_point[keep], coords[keep]
    # Slot of each point inside its voxel: position after a STABLE sort by voxel minus the voxel's start.
    sorted_voxel, order = torch.sort(voxel_of_point, stable=True)
    counts = torch.bincount(sorted_voxel, minlength=num_voxels)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(sorted_voxel.shape[0], device=points.device) - starts[sorted_voxel]
    fits = slot < max_points
    voxels = points.new_zeros(num_voxels, max_points, points.shape[1])
    voxels[sorted_voxel[fits], slot[fits]] = points[point_ids[order[fits]]]
    voxel_coords = torch.zeros(num_voxels, 3, dtype=torch.long, device=points.device)
    voxel_coords[sorted_voxel] = coords[order]
    return voxels, voxel_coords, counts.clamp(max=max_points)
