"""LiDAR encoder: points -> BEV feature map ``(B, C_l, X, Y)`` (x-first, augmented LiDAR frame).

Two backbones:
- ``'pillar'`` (CPU-friendly, what tests exercise): hard voxelization into pillars of ``pillar_size`` metres
  (default ``bev_cell``) -> :class:`PillarFeatureNet` -> scatter to a canvas -> :class:`SECONDFPN`
  brought to the ``bev_cell`` resolution.
- ``'sparse'`` (published design): dynamic voxelization at ``voxel_size`` -> mean voxel features ->
  spconv ResNet (strides 1/2/4/8) -> height compression. Needs ``spconv`` and CUDA; otherwise a warning is
  logged and the pillar backbone is built instead (same output shape).
"""

import logging

import torch
from torch import nn

from perception.models.bev.second import SECONDFPN
from perception.models.lidar.pillar import PillarFeatureNet, scatter_to_bev
from perception.models.lidar.sparse import SPCONV_AVAILABLE, SparseEncoder
from perception.models.lidar.voxelize import dynamic_voxelize, grid_shape, hard_voxelize, voxel_mean
from perception.models.lidar.voxelize_numba import NUMBA_AVAILABLE, hard_voxelize_numba
from perception.models.timing import stage

logger = logging.getLogger(__name__)


def bev_grid_shape(point_cloud_range, bev_cell):
    """``(X, Y)`` cells of ``bev_cell`` metres covering ``point_cloud_range`` in x/y; ``ValueError`` when the
    range is not a whole number of cells."""
    shape = []
    for axis in range(2):
        extent = point_cloud_range[axis + 3] - point_cloud_range[axis]
        n = extent / bev_cell
        if bev_cell <= 0 or abs(n - round(n)) > 1e-6 or round(n) < 1:
            raise ValueError(f"bev_cell {bev_cell} m does not divide point_cloud_range {point_cloud_range} "
                             f"(axis {axis})")
        shape.append(int(round(n)))
    return tuple(shape)


def _integer_ratio(big, small, what):
    ratio = big / small
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ValueError(f"{what}: {big} / {small} must be a positive integer")
    return int(round(ratio))


class LidarEncoder(nn.Module):
    """``forward(points, lidar_mask) -> (B, out_channels, X, Y)``; see the module docstring.

    ``point_cloud_range`` ``[x0, y0, z0, x1, y1, z1]`` and ``voxel_size`` ``[vx, vy, vz]`` in metres (the
    sparse path's voxels; it needs ``bev_cell == 8 * vx == 8 * vy``), ``bev_cell`` metres per BEV cell.
    """

    def __init__(
        self,
        point_cloud_range,
        voxel_size,
        bev_cell,
        in_channels=5,
        backbone="pillar",
        out_channels=256,
        pillar_size=None,
        pillar_channels=64,
        max_points_per_pillar=32,
        max_pillars=40000,
        layer_channels=(64, 128),
        layer_nums=(3, 5),
    ):
        super().__init__()
        if backbone not in ("pillar", "sparse"):
            raise ValueError(f"LidarEncoder: backbone must be 'pillar' or 'sparse', got {backbone!r}")
        if out_channels % 2:
            raise ValueError(f"LidarEncoder: out_channels must be even (two FPN stages), got {out_channels}")
        self.point_cloud_range = [float(v) for v in point_cloud_range]
        self.voxel_size = [float(v) for v in voxel_size]
        self.bev_shape = bev_grid_shape(self.point_cloud_range, bev_cell)
        self.in_channels = in_channels
        self.out_channels = out_channels
        if backbone == "sparse" and not (SPCONV_AVAILABLE and torch.cuda.is_available()):
            logger.warning("LidarEncoder: spconv or CUDA unavailable; using the pillar backbone instead of 'sparse'")
            backbone = "pillar"
        self.backbone = backbone
        if backbone == "sparse":
            grid = grid_shape(self.point_cloud_range, self.voxel_size)
            for axis in range(2):
                if _integer_ratio(bev_cell, self.voxel_size[axis], "bev_cell / voxel_size") != 8:
                    raise ValueError(f"LidarEncoder(sparse): bev_cell {bev_cell} must be 8 x voxel_size {voxel_size}")
            self.sparse = SparseEncoder(in_channels, grid, out_channels)
            return
        pillar = float(pillar_size) if pillar_size is not None else float(bev_cell)
        ratio = _integer_ratio(bev_cell, pillar, "LidarEncoder: bev_cell / pillar_size")
        z_extent = self.point_cloud_range[5] - self.point_cloud_range[2]
        self.pillar_size = [pillar, pillar, z_extent]
        self.max_points_per_pillar = max_points_per_pillar
        self.max_pillars = max_pillars
        self.pfn = PillarFeatureNet(in_channels, pillar_channels, self.point_cloud_range, self.pillar_size)
        # First stage brings the pillar canvas to bev_cell, second halves it; both up-sampled back to bev_cell.
        self.bev_backbone = SECONDFPN(
            pillar_channels,
            layer_channels=layer_channels,
            layer_nums=layer_nums,
            layer_strides=(ratio, 2),
            upsample_strides=(1, 2),
            upsample_channels=(out_channels // 2, out_channels // 2),
        )

    def _check_inputs(self, points, lidar_mask):
        if lidar_mask.dim() != 1 or lidar_mask.shape[0] != len(points):
            raise ValueError(f"lidar_mask must be (B,) with B = len(points) = {len(points)}, "
                             f"got {tuple(lidar_mask.shape)}")
        for i, p in enumerate(points):
            if p.dim() != 2 or p.shape[1] != self.in_channels:
                raise ValueError(f"points[{i}] must be (N, {self.in_channels}) (x, y, z, intensity, time lag), "
                                 f"got {tuple(p.shape)}")

    def _hard_voxelize(self, points):
        use_numba = NUMBA_AVAILABLE and points.device.type == "cpu" and points.dtype == torch.float32
        fn = hard_voxelize_numba if use_numba else hard_voxelize
        return fn(points, self.point_cloud_range, self.pillar_size, self.max_points_per_pillar, self.max_pillars)

    def forward(self, points, lidar_mask):
        """``points``: list of B ``(N_i, in_channels)`` float32 (augmented LiDAR frame, metres/seconds);
        ``lidar_mask`` bool ``(B,)``: samples with False contribute nothing (their points are ignored).
        Returns ``(B, out_channels, X, Y)``."""
        self._check_inputs(points, lidar_mask)
        batch_size = len(points)
        if self.backbone == "sparse":
            return self._forward_sparse(points, lidar_mask, batch_size)
        with stage("voxelization"):
            voxels, counts, coords = self.voxelize(points, lidar_mask)
        with stage("lidar_backbone"):
            return self.encode_pillars(voxels, counts, coords, batch_size)

    def _forward_sparse(self, points, lidar_mask, batch_size):
        with stage("voxelization"):
            kept_points, kept_coords = [], []
            for b, p in enumerate(points):
                if bool(lidar_mask[b]):
                    c = dynamic_voxelize(p, self.point_cloud_range, self.voxel_size)  # -1 rows are skipped below
                    kept_points.append(p)
                    kept_coords.append(torch.cat([torch.full_like(c[:, :1], b), c], 1))
            if not kept_points:
                kept_points = [points[0].new_zeros(0, self.in_channels)]
                kept_coords = [torch.zeros(0, 4, dtype=torch.long, device=points[0].device)]
            features, voxel_coords, _ = voxel_mean(torch.cat(kept_points), torch.cat(kept_coords))
        with stage("lidar_backbone"):
            return self.sparse(features, voxel_coords, batch_size)

    def voxelize(self, points, lidar_mask):
        """Pillar path, the part that stays in Python (numba on CPU; not in the ONNX graph): hard
        voxelization of every sample with LiDAR -> ``voxels (V, P, C)``, ``counts (V,)``, ``coords (V, 4)``
        int64 ``[b, ix, iy, iz]`` (samples in batch order)."""
        all_voxels, all_counts, all_coords = [], [], []
        for b, p in enumerate(points):
            if not bool(lidar_mask[b]):
                continue
            voxels, coords, counts = self._hard_voxelize(p)
            device = points[b].device
            all_voxels.append(voxels.to(device))
            all_counts.append(counts.to(device))
            all_coords.append(torch.cat([torch.full_like(coords[:, :1], b), coords], 1).to(device))
        device = points[0].device if points else lidar_mask.device
        if all_voxels:
            voxels, counts, coords = torch.cat(all_voxels), torch.cat(all_counts), torch.cat(all_coords)
        else:
            voxels = torch.zeros(0, self.max_points_per_pillar, self.in_channels, device=device)
            counts = torch.zeros(0, dtype=torch.long, device=device)
            coords = torch.zeros(0, 4, dtype=torch.long, device=device)
        return voxels, counts, coords

    def encode_pillars(self, voxels, counts, coords, batch_size):
        """Pillar path, the network part: voxelized points (:meth:`voxelize`) -> ``(B, out_channels, X, Y)``."""
        if voxels.shape[0]:
            features = self.pfn(voxels, counts, coords)
        else:  # no LiDAR in the whole batch: an empty canvas (BatchNorm cannot run on zero pillars)
            features = voxels.new_zeros(0, self.pfn.out_channels)
        pillar_grid = grid_shape(self.point_cloud_range, self.pillar_size)[:2]
        canvas = scatter_to_bev(features, coords, batch_size, pillar_grid)
        return self.bev_backbone(canvas)
