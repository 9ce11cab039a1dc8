"""Auxiliary occupancy supervision of the camera branch alone (training only; ``model.camera_occ_weight``).

Why: without its LiDAR the fusion model's Occ3D mIoU stays below camera-only's even with the camera map loss
(:mod:`perception.models.heads.camera_map_aux`) and the depth-input dropout: neither asks the camera BEV to say
what stands in each column (docs/benchmarks.md, "Teaching the camera branch"). This head does, as the map one
does for the map: a small conv head on the camera encoder's BEV, BEFORE the fusion, lifts each cell into
``height_bins`` x ``channels`` features (FlashOcc's channel-to-height, as the occupancy head's BEV lift), a
per-voxel MLP gives class logits, and the occupancy cross-entropy + Lovasz loss trains it on the voxels the
occupancy task sampled this step. It is not used at inference (nor exported).

Frames: the camera BEV ``(B, C_c, X, Y)`` and the voxel centres ``points (B, ..., 3)`` are in the augmented
LiDAR frame (metres): the occupancy task maps its grid there (:meth:`OccTask.grid_points`), so its labels,
which stay on the original grid, are the targets as they are.
"""

from torch import nn

from perception.models.heads.bev_sampling import sample_volume
from perception.models.heads.occ_head import occ_losses
from perception.models.queries.common import conv_bn_relu


class CameraOccAux(nn.Module):
    """``forward(camera_bev (B, C_c, X, Y), points (B, ..., 3)) -> logits (B, num_classes, ...)``;
    :meth:`loss` -> ``weight * (cross-entropy + Lovasz)`` over the supervised voxels of samples with cameras.

    ``height_bins`` bins over the heights of ``point_cloud_range``, ``channels`` features per bin, ``hidden`` the
    voxel MLP's width; ``free_index`` / ``ignore_index`` / ``class_weights`` as the occupancy task's."""

    def __init__(self, in_channels, point_cloud_range, weight, num_classes, free_index, ignore_index=255,
                 class_weights=None, height_bins=16, channels=16, hidden=32):
        super().__init__()
        if float(weight) <= 0:
            raise ValueError(f"model.camera_occ_weight must be > 0 to build CameraOccAux, got {weight}")
        self.weight, self.pc_range = float(weight), list(point_cloud_range)
        self.height_bins, self.channels = int(height_bins), int(channels)
        self.free_index, self.ignore_index = free_index, ignore_index
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.lift = nn.Sequential(conv_bn_relu(in_channels, in_channels),
                                  nn.Conv2d(in_channels, self.height_bins * self.channels, 1))
        self.mlp = nn.Sequential(nn.Conv1d(self.channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(hidden, num_classes, 1))

    def forward(self, camera_bev, points):
        b, _, nx, ny = camera_bev.shape
        # (B, ch, Z, X, Y): x-first volume over the point_cloud_range heights, as OccHead's BEV lift
        volume = self.lift(camera_bev).reshape(b, self.channels, self.height_bins, nx, ny)
        # fp32 sampling also under bf16 autocast: bf16 metres would be off by up to 0.2 m at 51 m
        feat = sample_volume(volume.float(), points.float(), self.pc_range)  # (B, ch, ...)
        lead = feat.shape[2:]
        return self.mlp(feat.reshape(b, self.channels, -1).to(volume.dtype)).reshape(b, -1, *lead)  # (B, K, ...)

    def loss(self, logits, labels, mask, cam_mask):
        """``logits (B, C, NX, NY, NZ)`` (or ``(B, C, K, 1, 1)`` on sampled voxels), ``labels`` int64 / ``mask`` bool
        ``(B, NX, NY, NZ)``, ``cam_mask (B, N_cam)``: samples without any camera add nothing."""
        has_cams = cam_mask.to(logits.device).bool().any(1)  # (B,)
        keep = mask.to(logits.device).bool() & has_cams.view(-1, *([1] * (mask.dim() - 1)))
        ce, lovasz, _ = occ_losses(logits.float(), labels.to(logits.device), keep, self.class_weights,
                                   self.free_index, self.ignore_index)
        return self.weight * (ce + lovasz)
