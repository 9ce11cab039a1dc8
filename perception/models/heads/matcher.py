"""Hungarian matching of detection queries to ground-truth boxes (one sample)."""

import torch
from scipy.optimize import linear_sum_assignment


def focal_class_cost(cls_logits, gt_labels, alpha=0.25, gamma=2.0):
    """DETR-style focal cost ``(Q, M)``: pos focal term minus neg focal term of each query at each GT's class."""
    p = cls_logits.sigmoid()
    neg = (1 - alpha) * p.pow(gamma) * (-(1 - p + 1e-8).log())
    pos = alpha * (1 - p).pow(gamma) * (-(p + 1e-8).log())
    return (pos - neg)[:, gt_labels]


def bev_iou_aligned(boxes_a, boxes_b):
    """Axis-aligned BEV IoU ``(Q, M)`` of ``(Q, 9)`` and ``(M, 9)`` boxes, using l along x and w along y
    (yaw ignored: a cheap "IoU-ish" matching cost)."""
    a_lo, a_hi = boxes_a[:, None, :2] - boxes_a[:, None, 3:5] / 2, boxes_a[:, None, :2] + boxes_a[:, None, 3:5] / 2
    b_lo, b_hi = boxes_b[None, :, :2] - boxes_b[None, :, 3:5] / 2, boxes_b[None, :, :2] + boxes_b[None, :, 3:5] / 2
    inter = (torch.minimum(a_hi, b_hi) - torch.maximum(a_lo, b_lo)).clamp(min=0).prod(-1)
    area_a = boxes_a[:, None, 3:5].prod(-1)
    area_b = boxes_b[None, :, 3:5].prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-6)


@torch.no_grad()
def hungarian_match(cls_logits, pred_boxes, gt_boxes, gt_labels, w_cls=0.15, w_center=0.25, w_iou=0.25):
    """Match queries to GT boxes minimising ``w_cls * focal + w_center * L1(centre xy, metres) - w_iou * IoU``.

    ``cls_logits`` ``(Q, K)``, ``pred_boxes`` ``(Q, 9)``, ``gt_boxes`` ``(M, 9)``, ``gt_labels`` ``(M,)``
    (same frame). Returns ``(query_idx, gt_idx)`` int64 tensors of length ``min(Q, M)``.
    """
    if gt_boxes.shape[0] == 0:
        empty = torch.zeros(0, dtype=torch.long, device=cls_logits.device)
        return empty, empty
    cost = w_cls * focal_class_cost(cls_logits.float(), gt_labels)
    cost = cost + w_center * torch.cdist(pred_boxes[:, :2].float(), gt_boxes[:, :2].float(), p=1)
    if w_iou:
        cost = cost - w_iou * bev_iou_aligned(pred_boxes.float(), gt_boxes.float())
    q, g = linear_sum_assignment(cost.cpu().numpy())
    dev = cls_logits.device
    return torch.as_tensor(q, dtype=torch.long, device=dev), torch.as_tensor(g, dtype=torch.long, device=dev)
