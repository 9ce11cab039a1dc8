"""Detection queries from heatmap peaks (TransFusion-style initialisation)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from perception.constants import DETECTION_CLASSES
from perception.models.queries.common import cells_to_normalized, conv_bn_relu, gather_cells

# Small objects keep every local value (1x1 "NMS"): at TransFusion's 0.6 m cells neighbouring pedestrian/cone
# peaks are real objects. At coarse cells (tiny: 1.6 m) one pedestrian's Gaussian lights up several cells and
# each becomes a query (~4 pedestrian boxes per GT pedestrian, crowding the other classes out of the top-K):
# such configs narrow ``model.head.det.nms_exempt_classes`` (tiny: cones only; docs/benchmarks.md).
NO_NMS_CLASSES = ("pedestrian", "traffic_cone")


class DetQueryInit(nn.Module):
    """Predicts a class heatmap on the det BEV and turns its top-K local maxima into queries.

    With ``offset_head`` it also predicts a dense centre-offset map (CenterPoint's ``reg`` head; supervised
    densely around every GT centre): each query's anchor is then its cell centre moved by the offset at
    that cell (``anchor_offset``, detached), its decoder reference point too, and the box regression only
    refines that anchor. The dense head learns sub-cell centres far faster than the Hungarian-matched
    query regression alone (docs/benchmarks.md).

    ``forward(bev (B, d, X, Y)) -> dict`` with ``heatmap`` ``(B, K, X, Y)`` logits, ``query`` ``(B, Q, d)``
    (BEV feature at the cell + learned class embedding), ``cells`` ``(B, Q)`` flat ``ix * Y + iy``,
    ``labels`` ``(B, Q)``, ``ref`` ``(B, Q, 2)`` normalized positions, ``heat_score`` ``(B, Q, K)`` sigmoid
    heatmap at the query's cell; with ``offset_head`` also ``offset_map`` ``(B, 2, X, Y)`` and
    ``anchor_offset`` ``(B, Q, 2)`` (x, y offsets from the cell centre, in cells).
    """

    MAX_OFFSET = 1.5  # cells: the dense targets reach 1.5 cells (3 x 3 neighbourhood of the centre cell)

    def __init__(self, d_model, num_queries, num_classes=len(DETECTION_CLASSES), nms_kernel=3, offset_head=False,
                 nms_exempt_classes=NO_NMS_CLASSES):
        super().__init__()
        unknown = [c for c in nms_exempt_classes if c not in DETECTION_CLASSES]
        if unknown:
            raise ValueError(f"model.head.det.nms_exempt_classes: {unknown} not in DETECTION_CLASSES "
                             f"{DETECTION_CLASSES}")
        if int(nms_kernel) < 1 or int(nms_kernel) % 2 == 0:
            raise ValueError(f"model.head.det.nms_kernel must be an odd integer >= 1 (cells), got {nms_kernel}")
        self.num_queries, self.num_classes, self.nms_kernel = num_queries, num_classes, int(nms_kernel)
        self.heatmap_head = nn.Sequential(conv_bn_relu(d_model, d_model), nn.Conv2d(d_model, num_classes, 1))
        nn.init.constant_(self.heatmap_head[-1].bias, -2.19)  # prior 0.1
        self.offset_head = None
        if offset_head:
            self.offset_head = nn.Sequential(conv_bn_relu(d_model, d_model), nn.Conv2d(d_model, 2, 1))
        self.class_embed = nn.Embedding(num_classes, d_model)
        nms = torch.ones(num_classes, dtype=torch.bool)
        for name in nms_exempt_classes:
            if DETECTION_CLASSES.index(name) < num_classes:
                nms[DETECTION_CLASSES.index(name)] = False
        self.register_buffer("nms_classes", nms, persistent=False)

    def select_peaks(self, heat):
        """Top-``num_queries`` (class, cell) pairs of ``heat`` ``(B, K, X, Y)`` after ``nms_kernel`` x
        ``nms_kernel`` local-max NMS (1x1 for the ``nms_exempt_classes``). Returns ``(labels, cells)``
        ``(B, Q)``. The kernel should span about one car width (3 cells of 0.6-1.6 m, 5 of 0.8 m): smaller
        leaves several peaks on one vehicle (duplicate boxes), larger merges neighbouring vehicles."""
        b, k, nx, ny = heat.shape
        if self.num_queries > k * nx * ny:
            raise ValueError(f"model.head.det.num_queries {self.num_queries} > classes x cells {k * nx * ny}")
        local_max = F.max_pool2d(heat, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        keep = (heat == local_max) | ~self.nms_classes[None, :, None, None]
        flat = (heat * keep).flatten(1)
        if self.training or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            top = flat.topk(self.num_queries, dim=1).indices  # (ONNX TopK orders ties by index)
        else:
            # Inference: equal values (flat BEV regions give many) in index order, as ONNX TopK orders them, so
            # the exported graph picks the same queries; torch.topk leaves the order of ties unspecified.
            top = flat.sort(dim=1, descending=True, stable=True).indices[:, : self.num_queries]
        return torch.div(top, nx * ny, rounding_mode="floor"), top % (nx * ny)

    def forward(self, bev):
        b, _, nx, ny = bev.shape
        heatmap = self.heatmap_head(bev)
        heat = heatmap.detach().sigmoid()
        labels, cells = self.select_peaks(heat)
        query = gather_cells(bev, cells) + self.class_embed(labels)
        out = {
            "heatmap": heatmap,
            "query": query,
            "cells": cells,
            "labels": labels,
            "ref": cells_to_normalized(cells, nx, ny),
            "heat_score": gather_cells(heat, cells),
        }
        if self.offset_head is not None:
            out["offset_map"] = self.offset_head(bev)
            offset = gather_cells(out["offset_map"].detach(), cells).clamp(-self.MAX_OFFSET, self.MAX_OFFSET)
            out["anchor_offset"] = offset
            out["ref"] = out["ref"] + offset / torch.tensor([nx, ny], dtype=offset.dtype, device=offset.device)
        return out
