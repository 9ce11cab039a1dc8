"""The detection task of :class:`perception.models.heads.multitask.MultiTaskHead`: heatmap-peak queries, the
per-query box FFNs, their Hungarian-matched losses and the NMS-free decoding.

Frame: the augmented LiDAR frame (= LiDAR frame at inference), metres; BEV maps ``(B, d, X, Y)`` x-first over
``point_cloud_range`` with ``bev_cell`` metre cells (``bev_cell / upsample`` for the heatmap). Config section
``model.head.det`` (keyword arguments of :class:`DetTask`).
"""

import torch.nn as nn

from perception.constants import DETECTION_CLASSES
from perception.models.heads.det_head import DetHead
from perception.models.queries.det_queries import NO_NMS_CLASSES, DetQueryInit

# Entries of the query init's output that the detection outputs carry (offset ones with ``offset_head`` only).
INIT_OUTPUTS = ("heatmap", "cells", "labels", "heat_score", "offset_map", "anchor_offset")


def det_upsampler(d_model, factor):
    """The detection BEV brought to ``factor`` x the BEV resolution (a learned transposed conv), so that the
    class heatmap (its own 3x3 conv runs on the fine grid), its peak NMS and the box offsets work on finer
    cells than the shared BEV (1 = identity)."""
    if factor == 1:
        return nn.Identity()
    return nn.Sequential(
        nn.ConvTranspose2d(d_model, d_model, factor, stride=factor, bias=False), nn.BatchNorm2d(d_model),
        nn.ReLU(inplace=True),
    )


class DetTask(nn.Module):
    """Detection queries, head, losses and decoding.

    - ``num_queries``: heatmap peaks taken as queries (top-K after a ``nms_kernel`` x ``nms_kernel`` local-max
      NMS; ``nms_exempt_classes``, names from ``DETECTION_CLASSES``, keep every local value: :class:`DetQueryInit`).
    - ``upsample``: the heatmap, query cells and box offsets on a grid ``upsample`` x finer than the BEV.
    - ``offset_head``: a dense centre-offset map anchors each query (:class:`DetQueryInit`), trained on the
      cells within ``offset_radius`` cells of each GT centre (loss weight ``offset``).

    Sub-modules (construction order = order of the random parameter init): ``up``, ``queries``, ``head``.
    """

    name = "det"

    def __init__(self, d_model, point_cloud_range, bev_cell, num_queries=200, upsample=1, nms_kernel=3,
                 nms_exempt_classes=NO_NMS_CLASSES, offset_head=False, offset_radius=1):
        super().__init__()
        if int(upsample) < 1:
            raise ValueError(f"model.head.det.upsample must be an integer >= 1, got {upsample}")
        if int(offset_radius) < 0:
            raise ValueError(f"model.head.det.offset_radius must be >= 0 (cells), got {offset_radius}")
        self.offset_radius = int(offset_radius)
        self.up = det_upsampler(d_model, int(upsample))
        self.queries = DetQueryInit(d_model, num_queries, len(DETECTION_CLASSES), nms_kernel,
                                    offset_head=offset_head, nms_exempt_classes=tuple(nms_exempt_classes))
        # The heatmap, the query cells and the box offsets live on the up-sampled grid.
        self.head = DetHead(d_model, point_cloud_range, bev_cell / int(upsample), len(DETECTION_CLASSES))

    def batch_keys(self):
        """Batch entries the task reads besides ``bev_aug`` (none: boxes come from the queries alone)."""
        return ()

    def dense_inputs(self, batch, device):
        """Precomputed inputs of :meth:`outputs` (none)."""
        return {}

    def attention_mask(self, device):
        """Self-attention mask of the task's queries in the decoder (none: all detection queries attend)."""
        return None

    def init_queries(self, bev):
        """``bev (B, d, X, Y)`` -> :class:`DetQueryInit`'s dict (``query (B, Q, d)``, ``ref (B, Q, 2)``, ``heatmap
        (B, K, uX, uY)`` logits on the up-sampled grid, ``cells``, ``labels``, ``heat_score`` [, offsets])."""
        return self.queries(self.up(bev))  # (B, d, uX, uY) with u = upsample

    def outputs(self, query, init, bev, batch, dense):
        """Decoder output ``query (B, Q, d)`` -> ``{heatmap, cells, labels, heat_score [, offset_map,
        anchor_offset], cls_logits (B, Q, K), code (B, Q, 10)}`` (``bev``, ``batch``, ``dense``: unused)."""
        cls_logits, code = self.head(query)  # (B, Q, K), (B, Q, 10)
        return {**{k: init[k] for k in INIT_OUTPUTS if k in init}, "cls_logits": cls_logits, "code": code}

    def loss(self, outputs, batch, weights):
        """``loss_det_heatmap``, ``loss_det_cls``, ``loss_det_box`` [, ``loss_det_offset``], weighted by
        ``weights['heatmap' | 'det' | 'offset']``; GT ``batch['gt_boxes']`` / ``['gt_labels']`` (lists of B)."""
        d = self.head.loss(outputs, batch["gt_boxes"], batch["gt_labels"], self.offset_radius)
        losses = {"loss_det_heatmap": weights["heatmap"] * d["heatmap"], "loss_det_cls": weights["det"] * d["cls"],
                  "loss_det_box": weights["det"] * d["box"]}
        if "offset" in d:
            losses["loss_det_offset"] = weights["offset"] * d["offset"]
        return losses

    def decode(self, outputs, score_threshold=0.0, max_boxes=500):
        """Per sample ``{'boxes' (K, 9), 'scores' (K,), 'labels' (K,)}``: K <= ``max_boxes`` boxes scoring above
        ``score_threshold``, by descending score, in the augmented LiDAR frame (:meth:`DetHead.decode`)."""
        return self.head.decode(outputs, score_threshold, max_boxes)
