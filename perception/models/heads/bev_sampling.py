"""Sampling x-first BEV tensors at metric points, and the target-grid cell centres to sample at.

BEV tensors are ``(B, C, X, Y)`` in the augmented LiDAR frame covering ``point_cloud_range``
``[x0, y0, z0, x1, y1, z1]`` (metres). ``F.grid_sample`` reads its grid's last dim as (W index, H index),
i.e. for a ``(B, C, X, Y)`` tensor the FIRST grid component runs along Y and the second along X. Every
sampler in the project goes through :func:`metric_to_grid` so that this swap lives in one place.
"""

import numpy as np
import torch
import torch.nn.functional as F


def normalized_to_grid(fxy):
    """Normalized BEV coordinates ``(..., 2)`` = (fraction along x, fraction along y) in [0, 1] -> ``grid_sample``
    grid ``(..., 2)`` for an x-first ``(B, C, X, Y)`` tensor: component 0 = y in [-1, 1], component 1 = x
    (``align_corners=False``: -1 and 1 are the outer edges of the first/last cell)."""
    return torch.stack([fxy[..., 1] * 2 - 1, fxy[..., 0] * 2 - 1], dim=-1)


def metric_to_normalized(xy, point_cloud_range):
    """Metric ``(..., 2)`` x, y (augmented LiDAR frame, metres) -> fractions of the range ``(..., 2)``."""
    x0, y0, _, x1, y1, _ = point_cloud_range
    return torch.stack([(xy[..., 0] - x0) / (x1 - x0), (xy[..., 1] - y0) / (y1 - y0)], dim=-1)


def metric_to_grid(xy, point_cloud_range):
    """Metric ``(..., 2)`` x, y (augmented LiDAR frame, metres) -> ``grid_sample`` grid (see
    :func:`normalized_to_grid`)."""
    return normalized_to_grid(metric_to_normalized(xy, point_cloud_range))


def sample_bev(bev, xy, point_cloud_range, padding_mode="zeros"):
    """Bilinear samples of ``bev`` ``(B, C, X, Y)`` at metric points ``xy`` ``(B, ..., 2)`` -> ``(B, C, ...)``.

    Points outside the BEV range read zeros (``padding_mode='zeros'``) or the nearest edge cell (``'border'``).
    """
    if bev.dim() != 4:
        raise ValueError(f"sample_bev: bev must be (B, C, X, Y), got {tuple(bev.shape)}")
    b = bev.shape[0]
    lead = xy.shape[1:-1]
    grid = metric_to_grid(xy.reshape(b, -1, 1, 2), point_cloud_range).to(bev.dtype)
    out = F.grid_sample(bev, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.reshape(b, bev.shape[1], *lead)


def grid_cell_centers(grid):
    """Cell centres of a :class:`perception.constants.GridSpec`: ``(*grid.shape, ndim)`` float32 numpy array,
    indexed x-first (``[ix, iy]`` or ``[ix, iy, iz]``), in the grid's own frame (metres)."""
    axes = [np.asarray(grid.centers(a), dtype=np.float32) for a in range(len(grid.shape))]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def map_points_to_aug_frame(points, transform):
    """Apply per-sample 4x4 transforms ``(B, 4, 4)`` to points ``(..., 3)`` (shared) -> ``(B, ..., 3)``."""
    transform = transform.to(torch.float32)
    flat = points.reshape(-1, 3).to(transform.device, torch.float32)
    out = torch.einsum("bij,pj->bpi", transform[:, :3, :3], flat) + transform[:, None, :3, 3]
    return out.reshape(transform.shape[0], *points.shape[:-1], 3)


def map_grid_points(grid, bev_aug):
    """Centres of the 2D map grid (original LiDAR frame, z = 0) mapped by ``A = bev_aug`` ``(B, 4, 4)`` into
    the augmented LiDAR frame -> ``(B, NX, NY, 3)`` metres."""
    c2 = torch.from_numpy(grid_cell_centers(grid))
    pts = torch.cat([c2, torch.zeros_like(c2[..., :1])], dim=-1)
    return map_points_to_aug_frame(pts, bev_aug)


def occ_grid_points(grid, bev_aug, lidar2ego, frame):
    """Centres of the 3D occupancy grid mapped into the augmented LiDAR frame -> ``(B, NX, NY, NZ, 3)``.

    ``frame='ego'`` (Occ3D): ``p_aug = A @ inv(lidar2ego) @ p_ego``; ``frame='lidar'`` (OpenOccupancy):
    ``p_aug = A @ p_lidar``. ``bev_aug``, ``lidar2ego``: ``(B, 4, 4)``.
    """
    pts = torch.from_numpy(grid_cell_centers(grid))
    if frame == "ego":
        transform = bev_aug.double() @ torch.linalg.inv(lidar2ego.double().to(bev_aug.device))
    elif frame == "lidar":
        transform = bev_aug
    else:
        raise ValueError(f"occupancy grid frame (model.head.occ.frame) must be 'ego' or 'lidar', got {frame!r}")
    return map_points_to_aug_frame(pts, transform)


def sample_volume(volume, xyz, point_cloud_range, padding_mode="border"):
    """Trilinear samples of an x-first volume ``(B, C, Z, X, Y)`` (height bins over [z0, z1] of
    ``point_cloud_range``) at metric points ``xyz`` ``(B, ..., 3)`` (augmented LiDAR frame) -> ``(B, C, ...)``.

    ``grid_sample`` on 5D input reads (W, H, D) = (y, x, z) components; heights outside [z0, z1] read the
    nearest bin with the default ``'border'`` padding.
    """
    b, c = volume.shape[:2]
    lead = xyz.shape[1:-1]
    pts = xyz.reshape(b, 1, 1, -1, 3)
    gxy = metric_to_grid(pts[..., :2], point_cloud_range)
    z0, z1 = point_cloud_range[2], point_cloud_range[5]
    gz = (pts[..., 2:3] - z0) / (z1 - z0) * 2 - 1
    grid = torch.cat([gxy, gz], dim=-1).to(volume.dtype)
    out = F.grid_sample(volume, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
    return out.reshape(b, c, *lead)
