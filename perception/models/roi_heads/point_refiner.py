"""A LiDAR-RCNN-style second stage: each detected box is corrected from the raw points around it.

Why: the tiny model's BEV cells are 1.6 m, and in a CPU training budget neither the query regression nor a
dense offset map reads box centres off the pooled BEV features to better than ~0.6 m (docs/benchmarks.md).
The points themselves pin the visible faces of an object to centimetres. A small PointNet sees the points in
the box's frame (Li et al., "LiDAR R-CNN", CVPR 2021) and predicts the residual to the true box.

The box regression learns from the GT boxes jittered (centre, height, size, yaw, and a heading flip half of
the time, as the detector's errors are), so it learns from the first step, and from the detector's own top
boxes of each step that have a GT of their class within 2 m (the errors it will meet at inference). The
refiner also rates each box: a quality in [0, 1] trained to be the fraction of the nuScenes centre-distance
thresholds (0.5, 1, 2, 4 m) at which the refined box lies from a GT box of its class, on the detector's top
boxes (its false positives are the negatives) and on the jittered GT boxes. At inference it corrects the
first stage's boxes (two passes, the second from the first's output) and rescores them,
``score = first_score ** (1 - a) * quality ** a`` (``score_weight`` a); labels and velocities are kept.

Frames/units: points and boxes in one frame (augmented LiDAR frame in training, LiDAR frame at inference),
boxes ``(M, 9)`` ``x, y, z`` gravity centre (m), ``l, w, h`` (m), ``yaw`` (rad), ``vx, vy`` (m/s). Residuals
are in the proposal's box frame: ``dx, dy, dz`` metres, ``log`` size ratios, ``dyaw`` modulo pi (the heading
direction is the first stage's; the point cloud of a car barely tells front from back).
"""

import math

import torch
import torch.nn as nn

from perception.constants import DETECTION_CLASSES
from perception.models.roi_heads.box_points import gather_box_points, to_box_frame

NUM_RESIDUALS = 7  # dx, dy, dz, dlog l, dlog w, dlog h, dyaw
DISTANCE_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)  # metres, the nuScenes detection matching thresholds


def wrap_half_pi(angle):
    """Angle difference modulo pi, in [-pi/2, pi/2)."""
    return (angle + math.pi / 2) % math.pi - math.pi / 2


def box_residuals(proposals, targets):
    """``(M, 7)`` residuals taking ``proposals`` ``(M, 9)`` to ``targets`` ``(M, 9)`` (see module docstring)."""
    dxy = to_box_frame(targets[:, :2], proposals)
    dz = targets[:, 2:3] - proposals[:, 2:3]
    dsize = (targets[:, 3:6].clamp(min=1e-3) / proposals[:, 3:6].clamp(min=1e-3)).log()
    dyaw = wrap_half_pi(targets[:, 6:7] - proposals[:, 6:7])
    return torch.cat([dxy, dz, dsize, dyaw], dim=1)


def apply_residuals(proposals, residuals):
    """Inverse of :func:`box_residuals`: ``(M, 9)`` boxes; velocities are the proposals'."""
    c, s = proposals[:, 6].cos(), proposals[:, 6].sin()
    dx, dy = residuals[:, 0], residuals[:, 1]
    xy = proposals[:, :2] + torch.stack([c * dx - s * dy, s * dx + c * dy], dim=1)
    z = proposals[:, 2:3] + residuals[:, 2:3]
    size = proposals[:, 3:6] * residuals[:, 3:6].exp()
    yaw = proposals[:, 6:7] + residuals[:, 6:7]
    yaw = torch.atan2(yaw.sin(), yaw.cos())
    return torch.cat([xy, z, size, yaw, proposals[:, 7:9]], dim=1)


def _mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def nearest_same_class(boxes, labels, gt_boxes, gt_labels):
    """``(distance (M,), index (M,))``: BEV centre distance (m, as the nuScenes matching) from each box to the
    nearest GT box of its class, and that GT's index; ``inf`` (index 0) when there is none."""
    if gt_boxes.shape[0] == 0:
        none = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
        return boxes.new_full((boxes.shape[0],), float("inf")), none
    dist = torch.cdist(boxes[:, :2], gt_boxes[:, :2].to(boxes))  # (M, G)
    dist = dist.masked_fill(labels[:, None] != gt_labels[None, :].to(labels.device), float("inf"))
    return dist.min(dim=1)


def quality_target(boxes, labels, gt_boxes, gt_labels):
    """``(M,)`` fraction of :data:`DISTANCE_THRESHOLDS` within which a GT box of the same class has its
    centre: 1 on a GT centre, 0 when none is within 4 m."""
    dist, _ = nearest_same_class(boxes, labels, gt_boxes, gt_labels)
    return torch.stack([(dist < t).to(boxes.dtype) for t in DISTANCE_THRESHOLDS]).mean(0)


class PointBoxRefiner(nn.Module):
    """``forward(local (M, P, C), mask (M, P), proposals (M, 9), labels (M,)) -> (residuals (M, 7),
    quality logits (M,))``.

    Per point: its box-frame ``x, y, z`` (m) and the same divided by the grown half-size, intensity / 255
    and time lag; per box: log size, the direction and log distance of the sensor seen from the box (which
    faces the scan can see), log point count and a class embedding, appended to every point. Shared MLP ->
    max over the box's points (zeros for a box with no point) -> MLP -> residuals and a quality logit. The
    last layers start at zero: an untrained refiner returns the proposals unchanged, with quality 0.5.

    ``margin`` (m): how far around a box points are gathered; ``max_points`` per box; ``max_refine``:
    boxes refined per sample at inference (the highest-scoring); ``jitter_xy`` (m, std, at most half the
    box's larger side, times a random 0.3-1.7 per proposal, capped at 3x), ``jitter_z`` (m), ``jitter_size``
    (log), ``jitter_yaw`` (rad): the training proposals' noise; ``proposals_per_box``: jittered copies of
    each GT box per step; ``det_proposals``: the detector's top boxes per sample used in training (all rated;
    those with a GT of their class within ``match_radius`` metres also learn the residual to it);
    ``score_weight``: a in the rescoring (0 keeps the first stage's scores); ``iterations``: refinement passes
    at inference, each from the previous one's boxes (the residual is learned for proposals up to ~1 m off, so
    a second pass corrects what the first left; the quality of the last pass rates the output).
    """

    def __init__(self, num_classes=len(DETECTION_CLASSES), point_channels=5, margin=1.0, max_points=128,
                 channels=(64, 128), max_refine=200, jitter_xy=0.6, jitter_z=0.2, jitter_size=0.1,
                 jitter_yaw=0.15, proposals_per_box=2, det_proposals=32, score_weight=0.5, loss_weight=1.0,
                 score_loss_weight=1.0, iterations=2, match_radius=2.0):
        super().__init__()
        if margin < 0 or int(max_points) < 1 or int(max_refine) < 0 or int(proposals_per_box) < 1:
            raise ValueError("refiner: margin >= 0, max_points >= 1, max_refine >= 0 and proposals_per_box >= 1 "
                             f"required, got {margin}, {max_points}, {max_refine}, {proposals_per_box}")
        if point_channels < 5:
            raise ValueError(f"refiner: point_channels must be >= 5 (x, y, z, intensity, time_lag), "
                             f"got {point_channels}")
        self.num_classes, self.margin, self.max_points = num_classes, float(margin), int(max_points)
        if not 0.0 <= float(score_weight) <= 1.0:
            raise ValueError(f"refiner: score_weight must lie in [0, 1], got {score_weight}")
        self.max_refine, self.proposals_per_box = int(max_refine), int(proposals_per_box)
        self.loss_weight = float(loss_weight)
        self.det_proposals, self.score_weight = int(det_proposals), float(score_weight)
        self.score_loss_weight = float(score_loss_weight)
        if int(iterations) < 1:
            raise ValueError(f"refiner: iterations must be >= 1, got {iterations}")
        self.iterations = int(iterations)
        self.match_radius = float(match_radius)
        self.jitter = dict(xy=float(jitter_xy), z=float(jitter_z), size=float(jitter_size), yaw=float(jitter_yaw))
        self.class_embed = nn.Embedding(num_classes, 8)
        box_features = 3 + 3 + 1 + 8
        # First layer of the shared point MLP = Linear(point features) + Linear(box features): the same as a
        # Linear over their concatenation, without repeating the box part for every point.
        self.point_in, self.box_in = nn.Linear(8, channels[0]), nn.Linear(box_features, channels[0], bias=False)
        self.point_mlp = _mlp(tuple(channels))
        self.box_mlp = _mlp((channels[-1] + box_features, channels[-1]))
        self.out = nn.Linear(channels[-1], NUM_RESIDUALS)
        self.quality = nn.Linear(channels[-1], 1)
        for layer in (self.out, self.quality):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, local, mask, proposals, labels):
        half = proposals[:, None, 3:6] / 2 + self.margin
        point = torch.cat([local[..., :3], local[..., :3] / half, local[..., 3:4] / 255.0, local[..., 4:5]], dim=-1)
        sensor = to_box_frame(proposals.new_zeros(proposals.shape[0], 2), proposals)  # the LiDAR origin, box frame
        dist = sensor.norm(dim=-1, keepdim=True).clamp(min=1e-3)
        count = mask.sum(1, keepdim=True).float()
        box = torch.cat([proposals[:, 3:6].clamp(min=1e-3).log(), sensor / dist, dist.log(), (1 + count).log(),
                         self.class_embed(labels.long().clamp(0, self.num_classes - 1))], dim=-1)
        x = self.point_mlp((self.point_in(point) + self.box_in(box)[:, None]).relu())
        x = x.masked_fill(~mask[..., None], 0.0).max(dim=1).values  # ReLU outputs >= 0: padding never wins
        x = self.box_mlp(torch.cat([x, box], dim=-1))
        return self.out(x), self.quality(x).squeeze(-1)

    def jitter_boxes(self, boxes):
        """``proposals_per_box`` noisy copies of ``boxes`` ``(M, 9)`` -> ``(M * k, 9)`` (see the class docstring)."""
        b = boxes.repeat(self.proposals_per_box, 1)
        j = self.jitter
        # A mixture of scales (x 0.3 ... 1.7 per proposal): the first stage's errors are heavy-tailed, many
        # boxes a few decimetres off and some well over a metre.
        sigma = (0.5 * b[:, 3:5].max(dim=1).values).clamp(max=j["xy"]) * (0.3 + 1.4 * torch.rand_like(b[:, 0]))
        noise_xy = (torch.randn_like(b[:, :2]) * sigma[:, None]).clamp(-3 * j["xy"], 3 * j["xy"])
        flip = (torch.rand_like(b[:, 6]) < 0.5).to(b.dtype) * math.pi
        return torch.cat([
            b[:, :2] + noise_xy,
            b[:, 2:3] + torch.randn_like(b[:, 2:3]) * j["z"],
            b[:, 3:6] * (torch.randn_like(b[:, 3:6]) * j["size"]).exp(),
            b[:, 6:7] + torch.randn_like(b[:, 6:7]) * j["yaw"] + flip[:, None],
            b[:, 7:9],
        ], dim=1)

    def loss(self, points, gt_boxes, gt_labels, det_boxes=None, det_labels=None):
        """``{'refine': weighted L1 of the residuals, 'refine_score': weighted BCE of the quality}``.

        Lists over the batch: ``points`` (samples without LiDAR pass an empty cloud and add nothing),
        ``gt_boxes`` / ``gt_labels``, and optionally the detector's boxes of this step ``det_boxes`` (K, 9) /
        ``det_labels`` (K,), sorted by score (detached; the first ``det_proposals`` are used). Residuals are
        learned on the jittered GT boxes and on the detector's boxes with a GT of their class within
        ``match_radius`` (those with a point within ``margin``), the quality on all of them."""
        res_pred, res_target, q_logit, q_target = [], [], [], []
        for i, (pts, bx, lb) in enumerate(zip(points, gt_boxes, gt_labels, strict=True)):
            if pts.shape[0] == 0:
                continue
            bx, lb = bx.to(pts.device, torch.float32), lb.to(pts.device).long()
            proposals = self.jitter_boxes(bx)
            labels = lb.repeat(self.proposals_per_box)
            targets = bx.repeat(self.proposals_per_box, 1)
            regress = torch.ones(targets.shape[0], dtype=torch.bool, device=pts.device)
            if det_boxes is not None and det_boxes[i].shape[0] and self.det_proposals:
                det_b = det_boxes[i][:self.det_proposals].to(proposals).detach()
                det_l = det_labels[i][:self.det_proposals].to(labels)
                det_t, det_ok = self._match(det_b, det_l, bx, lb)
                proposals, labels = torch.cat([proposals, det_b]), torch.cat([labels, det_l])
                targets, regress = torch.cat([targets, det_t]), torch.cat([regress, det_ok])
            if proposals.shape[0] == 0:
                continue
            local, mask = gather_box_points(pts.float(), proposals, self.margin, self.max_points, random_pick=True)
            residuals, quality = self(local, mask, proposals, labels)
            has_points = mask.any(1)
            learn = regress & has_points
            res_pred.append(residuals[learn])
            res_target.append(box_residuals(proposals[learn], targets[learn]))
            # The quality is rated on the box inference would output (a box with no point keeps its geometry).
            refined = torch.where(has_points[:, None], apply_residuals(proposals, residuals.detach()), proposals)
            q_logit.append(quality)
            q_target.append(quality_target(refined, labels, bx, lb))
        zero = self.out.weight.sum() * 0.0
        losses = {"refine": zero, "refine_score": zero}
        if res_pred and sum(r.shape[0] for r in res_pred):
            losses["refine"] = self.loss_weight * (torch.cat(res_pred) - torch.cat(res_target)).abs().sum(1).mean()
        if q_logit:
            losses["refine_score"] = self.score_loss_weight * nn.functional.binary_cross_entropy_with_logits(
                torch.cat(q_logit), torch.cat(q_target))
        return losses

    def _match(self, boxes, labels, gt_boxes, gt_labels):
        """``(targets (K, 9), ok (K,))``: the nearest GT box of each box's class (:func:`nearest_same_class`),
        and whether it lies within ``match_radius``."""
        if gt_boxes.shape[0] == 0:
            return boxes.clone(), torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
        best, index = nearest_same_class(boxes, labels, gt_boxes, gt_labels)
        return gt_boxes[index], best <= self.match_radius

    @torch.no_grad()
    def refine(self, points, boxes, scores, labels, net=None):
        """One sample: ``(boxes (K, 9), scores (K,))`` with the ``max_refine`` highest-scoring boxes corrected
        from ``points (N, C)`` (a box with no point within ``margin`` keeps its geometry) and rescored
        (``score_weight``); the other boxes keep theirs. ``net``: what computes ``(residuals, quality)`` from
        the gathered points (default this module; the ONNX runtime passes its session)."""
        net = self if net is None else net
        if boxes.shape[0] == 0 or points.shape[0] == 0 or self.max_refine == 0:
            return boxes, scores
        top = scores.argsort(descending=True)[:self.max_refine]
        refined = boxes[top].float()
        for _ in range(self.iterations):  # each pass starts from the previous pass's boxes
            local, mask = gather_box_points(points.float(), refined, self.margin, self.max_points)
            residuals, quality = net(local, mask, refined, labels[top])
            refined = torch.where(mask.any(1)[:, None], apply_residuals(refined, residuals), refined)
        out_boxes, out_scores = boxes.clone(), scores.clone()
        out_boxes[top] = refined.to(boxes.dtype)
        a = self.score_weight
        out_scores[top] = (scores[top].clamp(min=0) ** (1 - a) * quality.sigmoid() ** a).to(scores.dtype)
        return out_boxes, out_scores
