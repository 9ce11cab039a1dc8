"""Occupancy queries: one query per BEV column of a coarse grid (stride ``stride`` over the occ BEV).

Simplification of M3Net (which keeps one query per non-empty LiDAR voxel): each query is the average-pooled
occ-BEV feature of its ``stride x stride`` block; the occupancy head lifts query outputs into height bins.
"""

import torch.nn as nn
import torch.nn.functional as F

from perception.models.decoder.shared_decoder import bev_reference_points


class OccQueryInit(nn.Module):
    """``forward(bev (B, d, X, Y)) -> dict``: ``query`` ``(B, Xq*Yq, d)``, ``ref`` ``(B, Xq*Yq, 2)``,
    ``shape`` ``(Xq, Yq)`` (x-first flattening, ``Xq = X / stride``)."""

    def __init__(self, d_model, stride=4):
        super().__init__()
        self.stride = stride
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, bev):
        b, _, nx, ny = bev.shape
        if nx % self.stride or ny % self.stride:
            raise ValueError(f"model.head.occ.query_stride {self.stride} must divide the BEV size {nx} x {ny}")
        pooled = F.avg_pool2d(bev, self.stride)
        nxq, nyq = pooled.shape[-2:]
        query = self.proj(pooled.flatten(2).transpose(1, 2))
        ref = bev_reference_points(nxq, nyq, bev.device).expand(b, -1, -1)
        return {"query": query, "ref": ref, "shape": (nxq, nyq)}
