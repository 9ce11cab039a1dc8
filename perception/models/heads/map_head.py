"""BEV-map head: map-query embeddings dotted with a per-pixel embedding, strip by strip, on the map grid.

Outputs are produced directly on the evaluation grid (``BEV_MAP_GRID``, original LiDAR frame) by sampling the
per-pixel embedding at the grid's cell centres mapped by ``A`` into the augmented frame.
"""

import math

import torch
import torch.nn as nn

from perception.models.heads.bev_sampling import metric_to_normalized, sample_bev
from perception.models.losses.dice import dice_loss
from perception.models.losses.focal import sigmoid_focal_loss
from perception.models.queries.common import conv_bn_relu
from perception.models.queries.map_queries import strip_of_fraction


def map_seg_loss(logits, target):
    """Mean sigmoid focal loss + Dice loss on ``(B, K, NX, NY)`` logits and 0/1 targets."""
    return sigmoid_focal_loss(logits, target).mean() + dice_loss(logits, target)


class MapHead(nn.Module):
    """``forward(query (B, S*K, d), map_bev (B, d, X, Y), points (B, NX, NY, 3)) -> logits (B, K, NX, NY)``.

    ``points`` are the map-grid cell centres in the augmented LiDAR frame (metres); each grid cell uses the
    queries of the strip its augmented x falls in (strips as in :mod:`perception.models.queries.map_queries`).
    """

    def __init__(self, d_model, point_cloud_range, num_strips, num_classes):
        super().__init__()
        self.pc_range, self.num_strips, self.num_classes = list(point_cloud_range), num_strips, num_classes
        self.pixel_embed = nn.Sequential(conv_bn_relu(d_model, d_model), nn.Conv2d(d_model, d_model, 1))
        self.scale = 1.0 / math.sqrt(d_model)

    def forward(self, query, map_bev, points):
        b, nxm, nym, _ = points.shape
        emb = sample_bev(self.pixel_embed(map_bev), points[..., :2], self.pc_range)  # (B, d, NX, NY)
        logits = torch.einsum("bqd,bdij->bqij", query, emb) * self.scale
        logits = logits.reshape(b, self.num_strips, self.num_classes, nxm, nym)
        strip = strip_of_fraction(metric_to_normalized(points[..., :2], self.pc_range)[..., 0], self.num_strips)
        index = strip[:, None, None].expand(-1, 1, self.num_classes, -1, -1)
        return logits.gather(1, index)[:, 0]
