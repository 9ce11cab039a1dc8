"""PointPillars-style pillar feature net (PFN) and the scatter of pillar features onto a BEV canvas.

Frames/units: points are rows ``x, y, z, intensity, time_lag`` (metres, 0-255, seconds) in the augmented
LiDAR frame; pillars are voxels spanning the whole z range, with integer coordinates ``[b, ix, iy]``.
The canvas is ``(B, C, nx, ny)`` indexed x-first: pillar ``(ix, iy)`` lands at ``canvas[b, :, ix, iy]``.
"""

import torch
from torch import nn


class PillarFeatureNet(nn.Module):
    """Per-point features -> Linear-BN-ReLU -> max over the pillar's points.

    Point features (``in_channels + 5``): the raw point (``x, y, z, intensity, time_lag``), the offset
    ``(dx, dy, dz)`` to the mean of the pillar's points and the offset ``(dx, dy)`` to the pillar's centre.
    """

    def __init__(self, in_channels, out_channels, point_cloud_range, pillar_size):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.register_buffer("lower", torch.tensor(point_cloud_range[:2], dtype=torch.float32), persistent=False)
        self.register_buffer("size", torch.tensor(pillar_size[:2], dtype=torch.float32), persistent=False)
        self.linear = nn.Linear(in_channels + 5, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, voxels, num_points, coords):
        """``voxels (V, P, C)`` zero-padded points, ``num_points (V,)`` int64, ``coords (V, 4)`` int64
        ``[b, ix, iy, iz]``. Returns ``(V, out_channels)``."""
        if voxels.shape[-1] != self.in_channels:
            raise ValueError(f"PillarFeatureNet: points have {voxels.shape[-1]} channels, expected {self.in_channels}")
        valid = torch.arange(voxels.shape[1], device=voxels.device)[None, :] < num_points[:, None]  # (V, P)
        mask = valid[..., None].to(voxels.dtype)
        xyz = voxels[..., :3]
        mean = (xyz * mask).sum(1, keepdim=True) / num_points.clamp(min=1)[:, None, None].to(voxels.dtype)
        centre = (coords[:, 1:3].to(voxels.dtype) + 0.5) * self.size + self.lower  # (V, 2) metres
        features = torch.cat([voxels, xyz - mean, xyz[..., :2] - centre[:, None, :]], dim=-1) * mask
        x = self.linear(features)  # (V, P, out)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2).relu()
        # Padded slots must not win the max: ReLU outputs are >= 0, so zero them.
        x = x.masked_fill(~valid[..., None], 0.0)
        return x.max(dim=1).values


def scatter_to_bev(features, coords, batch_size, grid_xy):
    """Place pillar features on a BEV canvas.

    ``features (V, C)``; ``coords (V, 3 or 4)`` int64 ``[b, ix, iy(, iz)]`` (x FIRST); ``grid_xy`` = ``(nx, ny)``.
    Returns ``(batch_size, C, nx, ny)`` with ``canvas[b, :, ix, iy] = features[v]``, zeros elsewhere.
    """
    nx, ny = grid_xy
    b, ix, iy = coords[:, 0], coords[:, 1], coords[:, 2]
    if features.shape[0] and (ix.min() < 0 or ix.max() >= nx or iy.min() < 0 or iy.max() >= ny
                              or b.max() >= batch_size):
        raise ValueError(f"scatter_to_bev: coords outside the {batch_size}x{nx}x{ny} canvas")
    canvas = features.new_zeros(batch_size * nx * ny, features.shape[1])
    canvas = canvas.index_copy(0, (b * nx + ix) * ny + iy, features)
    return canvas.view(batch_size, nx, ny, -1).permute(0, 3, 1, 2).contiguous()
