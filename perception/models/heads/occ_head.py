"""Occupancy head: a BEV channel-to-height lift plus the decoder's column queries, sampled on the target grid.

Two height-resolved feature volumes over the ``point_cloud_range`` heights, both x-first ``(B, C, Z, X, Y)``
in the augmented LiDAR frame:

- the *BEV lift* (FlashOcc's channel-to-height): a 1x1 conv maps each cell of the gated occ BEV
  (``bev_cell`` metres) to ``bev_height_bins x C`` features, so a BEV cell can say "car from 0 to 1.7 m,
  ground below" at the full BEV resolution;
- the *query volume* (M3Net's occupancy queries): each query output of the shared decoder (a BEV column of
  the coarse query grid) is mapped by a Linear to ``height_bins x C`` features.

The logits of a target voxel = MLP(trilinear sample of both volumes at the voxel centre), the centre mapped
into the augmented LiDAR frame (``A @ inv(lidar2ego) @ p`` for Occ3D's ego grid).
"""

import torch.nn as nn
import torch.nn.functional as F

from perception.models.heads.bev_sampling import sample_volume
from perception.models.losses.lovasz import lovasz_softmax_flat
from perception.models.losses.scene_affinity import geo_scal_loss, sem_scal_loss


class OccHead(nn.Module):
    """``forward(query (B, Xq*Yq, d), query_shape (Xq, Yq), occ_bev (B, d, X, Y), points (B, NX, NY, NZ, 3))
    -> logits (B, num_classes, NX, NY, NZ)``.

    ``height_bins``: bins of the query volume; ``bev_height_bins``: bins of the BEV lift (0 disables it);
    ``channels``: features per bin; ``hidden``: width of the voxel MLP."""

    def __init__(self, d_model, point_cloud_range, num_classes, height_bins=8, channels=32, bev_height_bins=16,
                 hidden=64):
        super().__init__()
        self.pc_range, self.height_bins, self.channels = list(point_cloud_range), height_bins, channels
        self.bev_height_bins = int(bev_height_bins)
        self.lift = nn.Linear(d_model, height_bins * channels)
        if self.bev_height_bins > 0:
            self.bev_lift = nn.Sequential(
                nn.Conv2d(d_model, d_model, 3, padding=1), nn.BatchNorm2d(d_model), nn.ReLU(inplace=True),
                nn.Conv2d(d_model, self.bev_height_bins * channels, 1),
            )
        self.mlp = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv1d(hidden, hidden, 1), nn.ReLU(inplace=True), nn.Conv1d(hidden, num_classes, 1))

    def forward(self, query, query_shape, occ_bev, points):
        b = query.shape[0]
        nxq, nyq = query_shape
        vol = self.lift(query).reshape(b, nxq, nyq, self.height_bins, self.channels).permute(0, 4, 3, 1, 2)
        feat = sample_volume(vol, points, self.pc_range)
        if self.bev_height_bins > 0:
            nx, ny = occ_bev.shape[-2:]
            lifted = self.bev_lift(occ_bev).reshape(b, self.channels, self.bev_height_bins, nx, ny)
            feat = feat + sample_volume(lifted, points, self.pc_range)
        grid_shape = points.shape[1:-1]
        return self.mlp(feat.reshape(b, self.channels, -1)).reshape(b, -1, *grid_shape)


def occ_losses(logits, labels, mask, class_weights, free_index, ignore_index):
    """``(ce, lovasz, affinity)`` over the voxels where ``mask`` is True and the label is not ``ignore_index``.

    ``logits`` ``(B, C, NX, NY, NZ)``; ``labels`` int64 and ``mask`` bool ``(B, NX, NY, NZ)``; class-weighted
    cross-entropy (weighted mean); Lovasz-softmax; MonoScene semantic + geometric scale-affinity.
    """
    keep = mask & (labels != ignore_index)
    flat_logits = logits.permute(0, 2, 3, 4, 1)[keep]  # (P, C)
    flat_labels = labels[keep]
    if flat_labels.numel() == 0:
        zero = logits.sum() * 0.0
        return zero, zero, zero
    if int(flat_labels.max()) >= logits.shape[1] or int(flat_labels.min()) < 0:
        raise ValueError(f"gt_occ: labels outside [0, {logits.shape[1]}) (ignore_index {ignore_index})")
    ce = F.cross_entropy(flat_logits, flat_labels, weight=class_weights)
    probs = flat_logits.softmax(-1)
    affinity = sem_scal_loss(probs, flat_labels) + geo_scal_loss(probs, flat_labels, free_index)
    return ce, lovasz_softmax_flat(probs, flat_labels), affinity
