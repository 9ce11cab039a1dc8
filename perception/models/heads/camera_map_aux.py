"""Auxiliary map supervision of the camera branch alone (training only; ``model.camera_map_weight``).

Why: the fusion model's map comes from LiDAR; with the map memory on, LiDAR-only scores the same BEV mIoU as
fusion (docs/benchmarks.md), and without its LiDAR the fusion model's map falls to the no-input prior. This head
makes the camera BEV carry the map by itself: a small conv head on the camera encoder's BEV, BEFORE the fusion,
predicts the BEV map, with the map task's focal + Dice loss. It is not used at inference (nor exported): it only
shapes what the camera branch learns.

Frames: the camera BEV ``(B, C_c, X, Y)`` is in the augmented LiDAR frame; the logits are sampled at the cell
centres of ``grid`` (``BEV_MAP_GRID``, original LiDAR frame) mapped through ``batch['bev_aug']``, so the
un-augmented ``gt_bev`` is the target as it is (as :class:`perception.models.heads.map_task.MapTask` does).
"""

import torch
from torch import nn

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.models.heads.bev_sampling import map_grid_points, sample_bev
from perception.models.heads.map_head import map_seg_loss
from perception.models.queries.common import conv_bn_relu


class CameraMapAux(nn.Module):
    """``forward(camera_bev (B, C_c, X, Y), bev_aug (B, 4, 4)) -> logits (B, K, NX, NY)`` on ``grid``;
    :meth:`loss` -> the weighted focal + Dice loss against ``batch['gt_bev']``."""

    def __init__(self, in_channels, point_cloud_range, weight, grid=BEV_MAP_GRID):
        super().__init__()
        if float(weight) <= 0:
            raise ValueError(f"model.camera_map_weight must be > 0 to build CameraMapAux, got {weight}")
        self.weight, self.grid, self.pc_range = float(weight), grid, list(point_cloud_range)
        num_classes = len(BEV_MAP_CLASSES)
        self.net = nn.Sequential(conv_bn_relu(in_channels, in_channels), nn.Conv2d(in_channels, num_classes, 1))

    def forward(self, camera_bev, bev_aug):
        pts = map_grid_points(self.grid, bev_aug.to(camera_bev.device))  # (B, NX, NY, 3) augmented frame, metres
        return sample_bev(self.net(camera_bev), pts[..., :2], self.pc_range)  # (B, K, NX, NY)

    def loss(self, logits, batch):
        """``weight * (focal + Dice)`` over the samples with a map label (``gt_bev_valid``) that had cameras
        (``cam_mask`` any); zero when none has both."""
        gt = batch["gt_bev"].to(logits.device, torch.float32)  # (B, K, NX, NY)
        valid = batch["gt_bev_valid"].to(logits.device).bool() & batch["cam_mask"].to(logits.device).bool().any(1)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return self.weight * map_seg_loss(logits.float()[valid], gt[valid])
