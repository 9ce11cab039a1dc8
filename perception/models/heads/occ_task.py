"""The occupancy task of :class:`perception.models.heads.multitask.MultiTaskHead`: BEV-column queries, the
occupancy head on the target grid (with the optional LiDAR cue refiner), the voxel targets, losses and labels.

Frames: the logits come on ``grid`` (a ``GridSpec``, metres): ``frame='ego'`` (Occ3D, ORIGINAL ego frame) or
``'lidar'`` (OpenOccupancy, ORIGINAL LiDAR frame). The head samples the BEV (augmented LiDAR frame) at the
voxel centres mapped through ``batch['bev_aug']`` A (``A @ inv(lidar2ego) @ p`` for the ego grid, ``A @ p``
for the LiDAR grid), so the un-augmented ``gt_occ`` ``(B, NX, NY, NZ)`` is the target as it is. In training
the head runs on sampled voxels (:mod:`perception.models.heads.occ_sampling`). Config section ``model.head.occ``.
"""

import torch
import torch.nn as nn

from perception.constants import DEFAULT_OCC_GRID, OCC3D_FREE, OCC_GRIDS
from perception.models.heads.bev_sampling import occ_grid_points
from perception.models.heads.occ_head import OccHead, occ_losses
from perception.models.heads.occ_lidar_cues import NUM_CUES, PRESENT_CUE, LidarOccCues
from perception.models.heads.occ_sampling import OccVoxelSampler
from perception.models.queries.occ_queries import OccQueryInit
from perception.models.timing import stage


class OccTask(nn.Module):
    """Occupancy queries, head, targets, losses and decoding.

    - ``grid`` / ``frame``: the output grid and its frame (see the module docstring); ``num_classes`` labels,
      ``free_index`` the "empty" class (Occ3D 17, OpenOccupancy 0), ``ignore_index`` labels that never count,
      ``class_weights`` (``num_classes`` floats) weight the cross-entropy.
    - ``query_stride``: one query per ``query_stride`` x ``query_stride`` BEV cells (:class:`OccQueryInit`);
      ``height_bins`` / ``bev_height_bins`` / ``channels``: the query volume and the BEV lift (:class:`OccHead`).
    - ``lidar_cues``: the cue refiner corrects the logits from per-voxel cues of the raw LiDAR points
      (:class:`LidarOccCues`; loss ``loss_occ_refine``, weight ``occ``); needs ``batch['points']`` from a LiDAR the
      model uses (the config refuses it without ``model.lidar``).
    - ``train_voxels`` / ``sample_balance`` / ``prior_correction``: :class:`OccVoxelSampler`.

    Sub-modules (construction order = order of the random parameter init): ``queries``, ``cues`` (no
    parameters; None without ``lidar_cues``), ``head``; ``sampler`` holds the class-count buffers.
    """

    name = "occ"

    def __init__(self, d_model, point_cloud_range, grid=OCC_GRIDS[DEFAULT_OCC_GRID], frame="ego", num_classes=18,
                 free_index=OCC3D_FREE, ignore_index=255, class_weights=None, query_stride=4, height_bins=8,
                 channels=32, bev_height_bins=16, lidar_cues=False, train_voxels=None, sample_balance=0.0,
                 prior_correction=1.0):
        super().__init__()
        if frame not in ("ego", "lidar"):
            raise ValueError(f"model.head.occ.frame must be 'ego' or 'lidar', got {frame!r}")
        if not 0 <= free_index < num_classes:
            raise ValueError(f"model.head.occ.free_index {free_index} outside [0, {num_classes})")
        if class_weights is not None:
            if len(class_weights) != num_classes:
                raise ValueError(f"model.head.occ.class_weights needs {num_classes} values, got {len(class_weights)}")
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
        self.grid, self.frame, self.free_index, self.ignore_index = grid, frame, free_index, ignore_index
        self.num_classes = num_classes
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.sampler = OccVoxelSampler(num_classes, free_index, train_voxels, sample_balance, prior_correction)
        self.queries = OccQueryInit(d_model, query_stride)
        self.cues = LidarOccCues(point_cloud_range) if lidar_cues else None
        self.head = OccHead(d_model, point_cloud_range, num_classes, height_bins, channels, bev_height_bins,
                            cue_channels=NUM_CUES if lidar_cues else 0)

    def batch_keys(self):
        """Batch entries the task reads besides ``bev_aug``."""
        ego = ["lidar2ego"] if self.frame == "ego" else []
        return ego + (["points", "lidar_mask"] if self.cues is not None else [])

    def grid_points(self, batch, device):
        """``(B, NX, NY, NZ, 3)``: the centres of ``grid`` in the augmented LiDAR frame (metres)."""
        lidar2ego = batch["lidar2ego"].to(device) if self.frame == "ego" else None
        return occ_grid_points(self.grid, batch["bev_aug"].to(device), lidar2ego, self.frame)

    def lidar_cues(self, batch, pts):
        """LiDAR cues ``(B, 6, ...)`` at the voxel centres ``pts`` ``(B, ..., 3)`` (augmented LiDAR frame), or None
        without the cue refiner."""
        if self.cues is None:
            return None
        bev_aug = batch["bev_aug"].to(pts.device, pts.dtype)  # the sensor origin moves with the BEV augmentation
        points = [p.to(pts.device) for p in batch["points"]]
        return self.cues(points, batch["lidar_mask"], bev_aug[:, :3, 3], pts)

    def dense_inputs(self, batch, device):
        """``{'occ_points' (B, NX, NY, NZ, 3) [, 'occ_cues' (B, 6, NX, NY, NZ)]}`` for the full grid."""
        out = {"occ_points": self.grid_points(batch, device)}
        if self.cues is not None:
            with stage("occ_cues"):
                out["occ_cues"] = self.lidar_cues(batch, out["occ_points"])
        return out

    def attention_mask(self, device):
        """Self-attention mask of the occupancy queries in the decoder (none)."""
        return None

    def init_queries(self, bev):
        """``bev (B, d, X, Y)`` -> ``{query (B, Xq*Yq, d), ref (B, Xq*Yq, 2), shape (Xq, Yq)}``."""
        return self.queries(bev)

    def targets(self, batch, device):
        """``(labels int64, mask bool)`` ``(B, NX, NY, NZ)``: the voxels that count (mask, valid sample, not
        ignored)."""
        labels = batch["gt_occ"].to(device).long()
        mask = batch["gt_occ_mask"].to(device).bool() if "gt_occ_mask" in batch else torch.ones_like(labels).bool()
        mask = mask & batch["gt_occ_valid"].to(device).bool()[:, None, None, None] & (labels != self.ignore_index)
        return labels, mask

    def outputs(self, query, init, bev, batch, dense):
        """``{'logits' (B, C, NX, NY, NZ)}`` on ``grid`` from the decoder output ``query (B, Xq*Yq, d)`` and the
        TCS-gated occupancy BEV ``bev (B, d, X, Y)``; with the cue refiner ``logits`` are the refined ones and
        ``base_logits`` the BEV-only ones. ``dense``: :meth:`dense_inputs` (inference). In training with
        ``train_voxels`` K and ``gt_occ`` in the batch: logits ``(B, C, K, 1, 1)`` at K sampled voxels, with their
        ``labels`` and ``mask`` ``(B, K, 1, 1)`` and centres ``points`` ``(B, K, 1, 1, 3)`` (augmented LiDAR frame)."""
        if dense is not None:
            return self._logits(query, init, bev, batch, dense["occ_points"], dense.get("occ_cues"))
        pts = self.grid_points(batch, bev.device)  # (B, NX, NY, NZ, 3)
        if self.training and self.sampler.train_voxels is not None and "gt_occ" in batch:
            b = pts.shape[0]
            labels, mask = (t.reshape(b, -1) for t in self.targets(batch, bev.device))  # (B, NX*NY*NZ)
            index = self.sampler.sample(labels, mask)  # (B, K)
            s_labels, s_mask = labels.gather(1, index), mask.gather(1, index)  # (B, K)
            self.sampler.count(labels, mask, s_labels, s_mask)
            # (B, K, 1, 1, 3)
            pts = pts.reshape(b, -1, 3).gather(1, index[..., None].expand(-1, -1, 3))[:, :, None, None]
            out = self._logits(query, init, bev, batch, pts)  # logits (B, C, K, 1, 1)
            # points: the sampled voxel centres, for the camera occupancy loss (heads/camera_occ_aux.py)
            out.update(labels=s_labels[:, :, None, None], mask=s_mask[:, :, None, None], points=pts)
            return out
        return self._logits(query, init, bev, batch, pts)

    def _logits(self, query, init, bev, batch, pts, cues=None):
        """``{['base_logits',] 'logits'}`` at the voxel centres ``pts`` ``(B, ..., 3)``; ``cues``: precomputed
        (:meth:`dense_inputs`) or computed here."""
        if cues is None:
            cues = self.lidar_cues(batch, pts)
        logits = self.head(query, init["shape"], bev, pts, cues)
        if logits.refined is None:
            return {"logits": logits.base}
        # A sample without LiDAR points has no cues: its logits are the BEV-only ones, not a correction from all-zero
        # cues the refiner never learned on (val without LiDAR: Occ3D mIoU 0.022 -> 0.041, docs/benchmarks.md).
        present = cues[:, PRESENT_CUE].reshape(cues.shape[0], -1)[:, 0] > 0  # (B,): the cue is 1 or 0 per sample
        refined = logits.refined  # (B, C, ...)
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()  # a traced graph takes no branch
        if tracing or not bool(present.all()):  # (the copy costs ~50 MB per Occ3D frame: only when needed)
            present = present.reshape(-1, *([1] * (refined.dim() - 1)))  # (B, 1, ..., 1)
            refined = torch.where(present, refined, logits.base.detach())  # (B, C, ...)
        return {"base_logits": logits.base, "logits": refined}

    def loss(self, outputs, batch, weights):
        """``loss_occ_ce``, ``loss_occ_lovasz``, ``loss_occ_affinity`` on the BEV-only logits (+ ``loss_occ_refine``,
        their sum on the refined logits, with the cue refiner), all weighted by ``weights['occ']``. Samples with
        ``gt_occ_valid`` False add nothing."""
        logits = outputs.get("base_logits", outputs["logits"])  # (B, C, NX, NY, NZ)
        if "labels" in outputs:  # training on sampled voxels (train_voxels)
            labels, mask = outputs["labels"], outputs["mask"]
        else:
            labels = batch["gt_occ"].to(logits.device).long()  # (B, NX, NY, NZ)
            if labels.shape != logits.shape[:1] + logits.shape[2:]:
                raise ValueError(f"gt_occ must be {(logits.shape[0],) + tuple(logits.shape[2:])} (occupancy grid), "
                                 f"got {tuple(labels.shape)}")
            if "gt_occ_mask" in batch:
                mask = batch["gt_occ_mask"].to(logits.device).bool()
            else:
                mask = torch.ones_like(labels, dtype=torch.bool)
            mask = mask & batch["gt_occ_valid"].to(logits.device).bool()[:, None, None, None]
        w = weights["occ"]
        ce, lov, aff = occ_losses(logits, labels, mask, self.class_weights, self.free_index, self.ignore_index)
        losses = {"loss_occ_ce": w * ce, "loss_occ_lovasz": w * lov, "loss_occ_affinity": w * aff}
        if "base_logits" in outputs:  # the cue refiner: the same losses on the refined logits
            refined = occ_losses(outputs["logits"], labels, mask, self.class_weights, self.free_index,
                                 self.ignore_index)
            losses["loss_occ_refine"] = w * sum(refined)
        return losses

    def logit_adjustment(self):
        """``(C,)`` added to the logits at inference: the sampler's class-prior correction
        (:meth:`OccVoxelSampler.logit_adjustment`; an ONNX model replaces it with the exported values)."""
        return self.sampler.logit_adjustment()

    def decode(self, outputs, score_threshold=0.0, max_boxes=500):
        """Per sample ``{'occ_labels' (NX, NY, NZ) uint8}`` on ``grid``: argmax of the prior-corrected logits (the
        detection settings are unused)."""
        logits = outputs["logits"]  # (B, C, NX, NY, NZ)
        shift = self.logit_adjustment().to(logits.device, logits.dtype)  # (C,)
        labels = (logits + shift.view(1, -1, *([1] * (logits.dim() - 2)))).argmax(1).to(torch.uint8)
        return [{"occ_labels": lab} for lab in labels]
