"""Detection head: per-query FFNs, Hungarian-matched losses and NMS-free decoding.

Boxes are ``(M, 9)`` in the augmented LiDAR frame (see :mod:`perception.models.heads.box_coder`); at
inference ``A = I`` so they are in the LiDAR frame.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from perception.constants import DETECTION_CLASSES
from perception.models.heads.box_coder import cell_centers_xy, decode_boxes, encode_boxes
from perception.models.heads.heatmap_target import centre_cells, draw_heatmap_target, offset_targets, on_grid
from perception.models.heads.matcher import hungarian_match
from perception.models.losses.focal import gaussian_focal_loss, sigmoid_focal_loss

# L1 weight per code entry: offsets, z, log-size, sin, cos, velocity (TransFusion's code_weights).
CODE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
BOX_LOSS_SCALE = 0.25  # TransFusion's L1 loss weight relative to the classification loss


def _mlp(d_model, out):
    return nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, out))


class DetHead(nn.Module):
    """``forward(query (B, Q, d)) -> (cls_logits (B, Q, K), code (B, Q, 10))``."""

    def __init__(self, d_model, point_cloud_range, bev_cell, num_classes=len(DETECTION_CLASSES)):
        super().__init__()
        self.pc_range, self.bev_cell, self.num_classes = list(point_cloud_range), float(bev_cell), num_classes
        self.center, self.height, self.size = _mlp(d_model, 2), _mlp(d_model, 1), _mlp(d_model, 3)
        self.rot, self.vel, self.cls = _mlp(d_model, 2), _mlp(d_model, 2), _mlp(d_model, num_classes)
        nn.init.constant_(self.cls[-1].bias, -2.19)
        self.register_buffer("code_weights", torch.tensor(CODE_WEIGHTS), persistent=False)

    def forward(self, query):
        rot = self.rot(query)  # (sin, cos)
        code = torch.cat([self.center(query), self.height(query), self.size(query), rot, self.vel(query)], dim=-1)
        return self.cls(query), code

    def anchors(self, out):
        """``(B, Q, 2)`` metres: the query cells' centres, moved by ``anchor_offset`` (cells) when present."""
        centers = cell_centers_xy(out["cells"], self.pc_range, self.bev_cell, out["heatmap"].shape[-2:])
        if "anchor_offset" in out:
            centers = centers + out["anchor_offset"].to(centers.dtype) * self.bev_cell
        return centers

    def loss(self, out, gt_boxes, gt_labels, offset_radius=1):
        """Unweighted losses over the batch: ``{'heatmap', 'cls', 'box'}`` (+ ``'offset'`` with a dense offset
        map); ``gt_boxes``/``gt_labels`` lists of B tensors.

        Heatmap: Gaussian focal loss against the drawn targets; ``cls``, ``box``: :meth:`query_loss`; offset: L1
        (cells) of the offset map on the cells within ``offset_radius`` of each GT centre, per such cell.
        """
        heatmap = out["heatmap"]
        bev_shape = heatmap.shape[-2:]
        if len(gt_boxes) != heatmap.shape[0] or len(gt_labels) != heatmap.shape[0]:
            raise ValueError(f"gt_boxes/gt_labels must be lists of {heatmap.shape[0]} tensors")
        targets = torch.stack([
            draw_heatmap_target(bx, lb, self.num_classes, self.pc_range, self.bev_cell, bev_shape)
            for bx, lb in zip(gt_boxes, gt_labels, strict=True)
        ]).to(heatmap.device)
        # avg_factor = max(number of objects whose centre lies on the heatmap grid, 1) (CenterPoint/TransFusion)
        loss_heat = gaussian_focal_loss(heatmap, targets, avg_factor=self._num_on_grid(gt_boxes, bev_shape))
        loss_cls, loss_box = self.query_loss(out["cls_logits"], out["code"], self.anchors(out), gt_boxes, gt_labels)
        losses = {"heatmap": loss_heat, "cls": loss_cls, "box": loss_box}
        if "offset_map" in out:
            losses["offset"] = self.offset_loss(out["offset_map"], gt_boxes, offset_radius)
        return losses

    def offset_loss(self, offset_map, gt_boxes, radius):
        """Mean L1 (cells) of ``offset_map`` ``(B, 2, X, Y)`` on the dense targets of :func:`offset_targets`."""
        flat = offset_map.flatten(2)  # (B, 2, X*Y)
        errors = []
        for b, bx in enumerate(gt_boxes):
            if bx.numel() == 0:
                continue
            cells, target = offset_targets(bx, self.pc_range, self.bev_cell, offset_map.shape[-2:], radius)
            pred = flat[b][:, cells.to(flat.device)].T  # (N, 2)
            errors.append((pred - target.to(pred)).abs().sum(-1))
        if not errors or sum(e.numel() for e in errors) == 0:
            return offset_map.sum() * 0.0
        return torch.cat(errors).mean()

    def query_loss(self, cls_logits, code, centers, gt_boxes, gt_labels):
        """``(cls, box)`` losses of one set of query outputs (``centers`` ``(B, Q, 2)`` their anchors in metres,
        :meth:`anchors`), Hungarian-matched to the GT boxes.

        Classification: sigmoid focal over all queries (matched -> one-hot of the GT class), box: weighted L1 of
        the code on matched queries (NaN velocities masked), both divided by the number of GT boxes (>= 1).
        """
        pred_boxes = decode_boxes(code.detach(), centers, self.bev_cell)
        cls_target = torch.zeros_like(cls_logits)
        box_loss = code.sum() * 0.0
        num_gt = 0
        for i, (bx, lb) in enumerate(zip(gt_boxes, gt_labels, strict=True)):
            bx, lb = bx.to(code.device, torch.float32), lb.to(code.device)
            if bx.ndim != 2 or bx.shape[1] != 9 or lb.shape != bx.shape[:1]:
                raise ValueError(f"gt_boxes[{i}] must be (M, 9) with gt_labels[{i}] (M,), got {tuple(bx.shape)}, "
                                 f"{tuple(lb.shape)}")
            qi, gi = hungarian_match(cls_logits[i].detach(), pred_boxes[i], bx, lb)
            num_gt += bx.shape[0]
            if qi.numel() == 0:
                continue
            cls_target[i, qi, lb[gi]] = 1.0
            target = encode_boxes(bx[gi], centers[i, qi], self.bev_cell)
            weight = self.code_weights.expand_as(target) * torch.isfinite(target)
            box_loss = box_loss + ((code[i, qi] - target.nan_to_num(0.0)).abs() * weight).sum()
        norm = max(num_gt, 1)
        loss_cls = sigmoid_focal_loss(cls_logits, cls_target).sum() / norm
        return loss_cls, BOX_LOSS_SCALE * box_loss / norm

    def _num_on_grid(self, gt_boxes, bev_shape):
        n = sum(int(on_grid(centre_cells(bx, self.pc_range, self.bev_cell)[1], bev_shape).sum())
                for bx in gt_boxes if bx.numel())
        return max(n, 1)

    @torch.no_grad()
    def decode(self, out, score_threshold, max_boxes=500):
        """Per sample ``{'boxes' (K, 9), 'scores' (K,), 'labels' (K,)}``, K <= ``max_boxes``, sorted by score.

        Score of a query = sigmoid(class logit) x heatmap score at its cell, for the class of the heatmap peak
        that created it (TransFusion); no NMS.
        """
        cls_prob = out["cls_logits"].sigmoid()
        one_hot = F.one_hot(out["labels"], self.num_classes).to(cls_prob.dtype)
        scores, labels = (cls_prob * out["heat_score"] * one_hot).max(-1)
        boxes = decode_boxes(out["code"], self.anchors(out), self.bev_cell)
        results = []
        for b in range(scores.shape[0]):
            order = scores[b].argsort(descending=True)
            order = order[scores[b, order] > score_threshold][:max_boxes]
            results.append({"boxes": boxes[b, order], "scores": scores[b, order], "labels": labels[b, order]})
        return results
