"""Auxiliary map supervision of one sensor branch alone (training only; ``model.camera_map_weight``,
``model.lidar_map_weight``), and the camera head's blend into the map of a frame without LiDAR.

Why: the fusion model's map comes from LiDAR; with the map memory on, LiDAR-only scores the same BEV mIoU as
fusion (docs/benchmarks.md), and without its LiDAR the fusion model's map falls to the no-input prior. The camera
head makes the camera BEV carry the map by itself: a small conv head on the camera encoder's BEV, BEFORE the
fusion, predicts the BEV map, with the map task's focal + Dice loss. At inference it is used only with
``model.camera_map_blend`` = w > 0, on frames that have cameras but no LiDAR: the BEV map probabilities become
``(1 - w) * fused head + w * this head`` (:func:`blend_camera_map`; chosen on val, docs/benchmarks.md candidate
H). Frames with LiDAR keep the fused head's map alone. The LiDAR head does the same for the LiDAR encoder's BEV
(candidate K): the fusion model's map is worse than LiDAR-only's on the classes that only the LiDAR sees well
(crossings), so its LiDAR BEV is asked to carry the map by itself too; it is never used at inference.

Frames: the branch BEV ``(B, C, X, Y)`` is in the augmented LiDAR frame; the logits are sampled at the cell
centres of ``grid`` (``BEV_MAP_GRID``, original LiDAR frame) mapped through ``batch['bev_aug']``, so the
un-augmented ``gt_bev`` is the target as it is (as :class:`perception.models.heads.map_task.MapTask` does).
"""

import torch
from torch import nn

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.models.heads.bev_sampling import map_grid_points, sample_bev
from perception.models.heads.map_head import map_seg_loss
from perception.models.queries.common import conv_bn_relu


class BranchMapAux(nn.Module):
    """``forward(branch_bev (B, C, X, Y), bev_aug (B, 4, 4)) -> logits (B, K, NX, NY)`` on ``grid``;
    :meth:`loss` -> the weighted focal + Dice loss against ``batch['gt_bev']``. ``sensor``: the branch,
    ``'camera'`` or ``'lidar'`` (which samples had it)."""

    def __init__(self, in_channels, point_cloud_range, weight, grid=BEV_MAP_GRID, sensor="camera"):
        super().__init__()
        if float(weight) <= 0:
            raise ValueError(f"model.{sensor}_map_weight must be > 0 to build BranchMapAux, got {weight}")
        if sensor not in ("camera", "lidar"):
            raise ValueError(f"BranchMapAux: sensor must be 'camera' or 'lidar', got {sensor!r}")
        self.weight, self.grid, self.pc_range, self.sensor = float(weight), grid, list(point_cloud_range), sensor
        num_classes = len(BEV_MAP_CLASSES)
        self.net = nn.Sequential(conv_bn_relu(in_channels, in_channels), nn.Conv2d(in_channels, num_classes, 1))

    def forward(self, branch_bev, bev_aug):
        pts = map_grid_points(self.grid, bev_aug.to(branch_bev.device))  # (B, NX, NY, 3) augmented frame, metres
        return self.logits_at(branch_bev, pts)  # (B, K, NX, NY)

    def logits_at(self, branch_bev, points):
        """Logits ``(B, K, NX, NY)`` at the map-grid cell centres ``points (B, NX, NY, 3)`` (augmented LiDAR frame,
        metres): the export's graph passes the points it is given, as the map head does."""
        return sample_bev(self.net(branch_bev), points[..., :2], self.pc_range)

    def loss(self, logits, batch):
        """``weight * (focal + Dice)`` over the samples with a map label (``gt_bev_valid``) that had the branch's
        sensor (cameras: ``cam_mask`` any; LiDAR: ``lidar_mask``); zero when none has both."""
        gt = batch["gt_bev"].to(logits.device, torch.float32)  # (B, K, NX, NY)
        present = batch["cam_mask"].bool().any(1) if self.sensor == "camera" else batch["lidar_mask"].bool()
        valid = batch["gt_bev_valid"].to(logits.device).bool() & present.to(logits.device)
        if not bool(valid.any()):
            return logits.sum() * 0.0
        return self.weight * map_seg_loss(logits.float()[valid], gt[valid])


def build_branch_map(model_cfg, sensor, encoder, point_cloud_range, filename):
    """The :class:`BranchMapAux` of ``sensor`` ('camera' | 'lidar') when ``model.<sensor>_map_weight`` > 0, else
    None; ``encoder``: that branch's encoder (its ``out_channels``) or None. ``ValueError`` naming the key when the
    model has no such branch or no 'map' task."""
    weight = float(model_cfg.get(f"{sensor}_map_weight") or 0.0)
    if weight <= 0:
        return None
    if encoder is None or "map" not in model_cfg["tasks"]:
        raise ValueError(f"config key model.{sensor}_map_weight in {filename}: needs model.{sensor} and the 'map' "
                         f"task, got tasks {tuple(model_cfg['tasks'])} and {sensor} {'on' if encoder else 'None'}")
    return BranchMapAux(encoder.out_channels, point_cloud_range, weight, sensor=sensor)


def camera_map_frames(lidar_mask, cam_mask):
    """``(B,)`` bool: the samples whose map takes the camera head in (cameras, no LiDAR)."""
    return ~lidar_mask.bool() & cam_mask.bool().any(dim=1)


def blend_camera_map(results, camera_logits, use, weight):
    """In place: ``results[i]['bev_probs'] = (1 - weight) * it + weight * sigmoid(camera_logits[i])`` for each sample
    ``i`` with ``use[i]`` (:func:`camera_map_frames`); both ``(K, NX, NY)`` on the map grid. Returns ``results``.
    The PyTorch model and the ONNX runtime both call this."""
    for r, logits, on in zip(results, camera_logits, use.tolist(), strict=True):
        if on:
            probs = logits.float().sigmoid().to(r["bev_probs"].device)  # (K, NX, NY)
            r["bev_probs"] = (1.0 - weight) * r["bev_probs"] + weight * probs
    return results
