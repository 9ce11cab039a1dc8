"""Modality-adaptive feature integration (MAFI) and the plain conv fuser baseline.

All maps are BEV ``(B, C, X, Y)`` x-first in the augmented LiDAR frame. MAFI (M3Net):
``fused = conv3x3-BN-ReLU(concat(camera, lidar))``; each modality has its OWN squeeze-excitation branch
(conv3x3-BN-ReLU -> global average pool -> 1x1 conv -> sigmoid) giving one channel-weight vector per
task; per task ``out_t = F * w_lidar_t + F * w_camera_t`` where ``F`` is the (backbone-processed) fused map.
A modality's weights are zeroed for samples where it is missing.
"""

import torch
from torch import nn

from perception.models.bev.second import conv_bn_relu


class ConvFuser(nn.Module):
    """``conv3x3-BN-ReLU(concat(camera, lidar))`` -> ``(B, out_channels, X, Y)``."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = conv_bn_relu(in_channels, out_channels, 3)

    def forward(self, camera_bev, lidar_bev):
        return self.conv(torch.cat([camera_bev, lidar_bev], dim=1))


class TaskChannelWeights(nn.Module):
    """One modality's SE branch: conv3x3-BN-ReLU -> GAP -> 1x1 conv -> sigmoid, ``weight_channels`` per task.

    ``forward(bev (B, C, X, Y), present (B,) bool) -> dict task -> (B, weight_channels, 1, 1)``, zero for
    samples where the modality is absent.
    """

    def __init__(self, in_channels, hidden_channels, weight_channels, tasks):
        super().__init__()
        self.tasks = tuple(tasks)
        self.weight_channels = weight_channels
        self.conv = conv_bn_relu(in_channels, hidden_channels, 3)
        self.fc = nn.Conv2d(hidden_channels, weight_channels * len(self.tasks), 1)

    def forward(self, bev, present):
        pooled = self.conv(bev).mean(dim=(2, 3), keepdim=True)
        weights = torch.sigmoid(self.fc(pooled)) * present.to(bev.dtype)[:, None, None, None]
        return dict(zip(self.tasks, weights.split(self.weight_channels, dim=1), strict=True))


class MAFI(nn.Module):
    """The fusion conv plus the two SE branches (one per modality). :meth:`fuse` gives the fused map and
    :meth:`task_weights` the per-task ``(w_lidar, w_camera)``; :class:`FusedBEVNeck` runs the BEV backbone
    between the two and applies :meth:`apply`."""

    def __init__(self, lidar_channels, camera_channels, fused_channels, weight_channels, tasks):
        super().__init__()
        self.fuser = ConvFuser(lidar_channels + camera_channels, fused_channels)
        self.tasks = tuple(tasks)
        self.weight_channels = weight_channels
        # A modality disabled at construction (0 channels) has no SE branch: its weights are always zero.
        self.lidar_weights = self.camera_weights = None
        if lidar_channels:
            self.lidar_weights = TaskChannelWeights(lidar_channels, fused_channels, weight_channels, tasks)
        if camera_channels:
            self.camera_weights = TaskChannelWeights(camera_channels, fused_channels, weight_channels, tasks)

    def fuse(self, camera_bev, lidar_bev):
        return self.fuser(camera_bev, lidar_bev)

    def task_weights(self, lidar_bev, camera_bev, lidar_present, camera_present):
        """``(w_lidar, w_camera)``: dicts task -> ``(B, weight_channels, 1, 1)``, zero where absent."""
        return (
            self._weights(self.lidar_weights, lidar_bev, lidar_present),
            self._weights(self.camera_weights, camera_bev, camera_present),
        )

    def _weights(self, branch, bev, present):
        if branch is None:
            zeros = bev.new_zeros(bev.shape[0], self.weight_channels, 1, 1)
            return {t: zeros for t in self.tasks}
        return branch(bev, present)

    @staticmethod
    def apply(features, lidar_weights, camera_weights):
        """``out_t = F * w_lidar_t + F * w_camera_t`` for every task."""
        return {t: features * lidar_weights[t] + features * camera_weights[t] for t in lidar_weights}
