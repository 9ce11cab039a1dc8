"""Occupancy head: query outputs lifted into height bins, sampled on the target voxel grid, MLP to classes.

Each occupancy query (a BEV column of the coarse query grid) is mapped by a Linear to ``height_bins x C``
features: a coarse volume ``(B, C, Zq, Xq, Yq)`` over the ``point_cloud_range`` heights. The logits of a
target voxel = MLP(trilinear sample of that volume + bilinear sample of the gated occ BEV), both read at the
voxel centre mapped into the augmented LiDAR frame (``A @ inv(lidar2ego) @ p`` for Occ3D's ego grid).
"""

import torch.nn as nn
import torch.nn.functional as F

from perception.models.heads.bev_sampling import sample_bev, sample_volume
from perception.models.losses.lovasz import lovasz_softmax_flat
from perception.models.losses.scene_affinity import geo_scal_loss, sem_scal_loss


class OccHead(nn.Module):
    """``forward(query (B, Xq*Yq, d), query_shape (Xq, Yq), occ_bev (B, d, X, Y), points (B, NX, NY, NZ, 3))
    -> logits (B, num_classes, NX, NY, NZ)``."""

    def __init__(self, d_model, point_cloud_range, num_classes, height_bins=8, channels=32):
        super().__init__()
        self.pc_range, self.height_bins, self.channels = list(point_cloud_range), height_bins, channels
        self.lift = nn.Linear(d_model, height_bins * channels)
        self.bev_proj = nn.Conv2d(d_model, channels, 1)
        self.mlp = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.ReLU(inplace=True), nn.Conv1d(channels, num_classes, 1))

    def forward(self, query, query_shape, occ_bev, points):
        b = query.shape[0]
        nxq, nyq = query_shape
        vol = self.lift(query).reshape(b, nxq, nyq, self.height_bins, self.channels).permute(0, 4, 3, 1, 2)
        feat = sample_volume(vol, points, self.pc_range) + sample_bev(self.bev_proj(occ_bev), points[..., :2], self.pc_range)
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
