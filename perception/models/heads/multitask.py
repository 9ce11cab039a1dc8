"""The multi-task head: task queries -> shared decoder -> detection / BEV-map / occupancy heads and losses.

Inputs: ``task_bevs`` ``{task: (B, in_channels, X, Y)}`` from the fusion neck, x-first, augmented LiDAR frame
over ``point_cloud_range`` with ``bev_cell`` metre cells; ``batch`` as in ``docs/architecture.md``.

Flow: each task BEV -> 3x3 conv-BN-ReLU to ``d_model``; queries are initialised on these task BEVs
(:mod:`perception.models.queries`); the decoder's shared BEV is their mean; the shared decoder refines all
queries layer by layer against TCS-gated task BEVs; the heads read the last layer only. Dense outputs are
sampled on the evaluation grids through ``batch['bev_aug']`` (and ``batch['lidar2ego']`` for an ego-frame
occupancy grid).
"""

import torch
import torch.nn as nn

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, DETECTION_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.models.decoder.shared_decoder import SharedDecoder
from perception.models.heads.bev_sampling import map_grid_points, occ_grid_points, sample_bev
from perception.models.heads.det_head import DetHead
from perception.models.heads.map_head import MapHead, map_seg_loss
from perception.models.heads.occ_head import OccHead, occ_losses
from perception.models.heads.occ_lidar_cues import NUM_CUES, LidarOccCues
from perception.models.queries.common import conv_bn_relu
from perception.models.queries.det_queries import NO_NMS_CLASSES, DetQueryInit
from perception.models.queries.map_queries import MapQueryInit
from perception.models.queries.occ_queries import OccQueryInit
from perception.models.queries.position import PositionEmbedding
from perception.models.timing import stage

TASKS = ("det", "map", "occ")
# M3Net's loss weights (shared/docs/m3net.md). 'det' scales both the classification and the box loss.
# 'offset': the dense centre-offset map (det_offset_head), not in the published design.
DEFAULT_LOSS_WEIGHTS = {"map": 40.0, "map_aux": 20.0, "det": 2.0, "heatmap": 6.0, "occ": 1.0, "offset": 2.0}


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


class MultiTaskHead(nn.Module):
    """See the module docstring. ``occ_free_index`` is the "empty" class (Occ3D 17, OpenOccupancy 0);
    ``occ_ignore_index`` labels never count; ``occ_class_weights`` (``occ_num_classes`` floats) weight the CE.

    Training-time cost cuts (CPU): ``occ_train_voxels`` K: in training the occupancy logits and losses are
    computed on K voxels per sample only (up to K/2 drawn from the occupied voxels, the rest uniformly from
    all supervised voxels; None = the whole grid); ``occ_sample_balance`` b in [0, 1] draws an occupied voxel
    with probability ~ (voxels of its class) ** -b (0 = uniform, 1 = every class equally often). ``map_train_stride`` s: in training the map logits and
    losses are computed on every s-th cell of the map grid in x and y, at a random offset per step (1 = all).
    Inference (``eval()``) always predicts the full grids.

    ``occ_lidar_cues``: the occupancy head's cue refiner corrects the logits from per-voxel cues of the raw
    LiDAR points (:class:`LidarOccCues`: point counts at 0.4 m, free / occluded along the sensor ray; loss
    ``loss_occ_refine``, weight ``occ``); needs ``batch['points']`` from a LiDAR the model uses (M3Net refuses
    it without a LiDAR encoder).

    ``det_nms_kernel`` / ``det_nms_exempt_classes``: the local-max NMS that picks the detection query peaks
    and the classes that skip it (:class:`DetQueryInit`; names from ``DETECTION_CLASSES``).

    ``det_offset_head``: a dense centre-offset map anchors the detection queries (:class:`DetQueryInit`),
    trained on the cells within ``det_offset_radius`` of each GT centre (loss weight ``offset``)."""

    def __init__(
        self,
        tasks,
        in_channels,
        point_cloud_range,
        bev_cell,
        decoder="transformer",
        num_layers=6,
        d_model=256,
        num_heads=8,
        ffn_dim=1024,
        num_det_queries=200,
        det_upsample=1,
        det_nms_kernel=3,
        det_nms_exempt_classes=NO_NMS_CLASSES,
        map_grid=BEV_MAP_GRID,
        occ_grid=OCC3D_GRID,
        occ_frame="ego",
        occ_num_classes=18,
        occ_free_index=OCC3D_FREE,
        occ_ignore_index=255,
        occ_class_weights=None,
        occ_query_stride=4,
        occ_height_bins=8,
        occ_channels=32,
        occ_bev_height_bins=16,
        occ_lidar_cues=False,
        map_num_strips=5,
        num_points=4,
        tcs_hidden=None,
        loss_weights=None,
        occ_train_voxels=None,
        occ_sample_balance=0.0,
        occ_prior_correction=1.0,
        map_train_stride=1,
        det_offset_head=False,
        det_offset_radius=1,
    ):
        super().__init__()
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks) or any(t not in TASKS for t in tasks):
            raise ValueError(f"tasks must be distinct names from {TASKS}, got {tasks}")
        if len(point_cloud_range) != 6:
            raise ValueError(f"point_cloud_range must be [x0, y0, z0, x1, y1, z1], got {point_cloud_range}")
        self.bev_shape = tuple(
            int(round((point_cloud_range[i + 3] - point_cloud_range[i]) / bev_cell)) for i in range(2)
        )
        if occ_frame not in ("ego", "lidar"):
            raise ValueError(f"occ_frame must be 'ego' or 'lidar', got {occ_frame!r}")
        if not 0 <= occ_free_index < occ_num_classes:
            raise ValueError(f"occ_free_index {occ_free_index} outside [0, {occ_num_classes})")
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"loss_weights: unknown keys {sorted(unknown)} (known: {sorted(DEFAULT_LOSS_WEIGHTS)})")
        self.tasks, self.pc_range, self.bev_cell = tasks, list(point_cloud_range), float(bev_cell)
        self.map_grid, self.occ_grid, self.occ_frame = map_grid, occ_grid, occ_frame
        self.occ_free_index, self.occ_ignore_index = occ_free_index, occ_ignore_index
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        if occ_train_voxels is not None and int(occ_train_voxels) < 2:
            raise ValueError(f"occ_train_voxels must be None or >= 2, got {occ_train_voxels}")
        if int(map_train_stride) < 1:
            raise ValueError(f"map_train_stride must be >= 1, got {map_train_stride}")
        self.occ_train_voxels = None if occ_train_voxels is None else int(occ_train_voxels)
        if not 0.0 <= float(occ_sample_balance) <= 1.0:
            raise ValueError(f"occ_sample_balance must lie in [0, 1], got {occ_sample_balance}")
        self.occ_sample_balance = float(occ_sample_balance)
        if float(occ_prior_correction) < 0:
            raise ValueError(f"occ_prior_correction must be >= 0, got {occ_prior_correction}")
        self.occ_prior_correction = float(occ_prior_correction)
        # Class counts of the supervised voxels (all of them, and the ones the sampler trained on), accumulated in
        # training and saved with the weights; decode() uses them to undo the sampler's class prior.
        self.register_buffer("occ_count_all", torch.zeros(occ_num_classes, dtype=torch.float64))
        self.register_buffer("occ_count_sampled", torch.zeros(occ_num_classes, dtype=torch.float64))
        self.map_train_stride = int(map_train_stride)
        if occ_class_weights is not None:
            if len(occ_class_weights) != occ_num_classes:
                raise ValueError(f"occ_class_weights needs {occ_num_classes} values, got {len(occ_class_weights)}")
            occ_class_weights = torch.as_tensor(occ_class_weights, dtype=torch.float32)
        self.register_buffer("occ_class_weights", occ_class_weights, persistent=False)

        self.input_proj = nn.ModuleDict({t: conv_bn_relu(in_channels, d_model) for t in tasks})
        self.pos_embed = PositionEmbedding(d_model)
        self.decoder = SharedDecoder(decoder, tasks, num_layers, d_model, num_heads, ffn_dim, num_points, tcs_hidden)
        if "det" in tasks:
            if int(det_upsample) < 1:
                raise ValueError(f"det_upsample must be an integer >= 1, got {det_upsample}")
            self.det_up = det_upsampler(d_model, int(det_upsample))
            self.det_init = DetQueryInit(d_model, num_det_queries, len(DETECTION_CLASSES), det_nms_kernel,
                                         offset_head=det_offset_head, nms_exempt_classes=tuple(det_nms_exempt_classes))
            if int(det_offset_radius) < 0:
                raise ValueError(f"det_offset_radius must be >= 0 (cells), got {det_offset_radius}")
            self.det_offset_radius = int(det_offset_radius)
            # The heatmap, the query cells and the box offsets live on the up-sampled grid.
            self.det_head = DetHead(d_model, point_cloud_range, bev_cell / int(det_upsample), len(DETECTION_CLASSES))
        if "map" in tasks:
            self.map_init = MapQueryInit(d_model, map_num_strips, len(BEV_MAP_CLASSES))
            self.map_head = MapHead(d_model, point_cloud_range, map_num_strips, len(BEV_MAP_CLASSES))
        if "occ" in tasks:
            self.occ_init = OccQueryInit(d_model, occ_query_stride)
            self.occ_cues = LidarOccCues(point_cloud_range) if occ_lidar_cues else None
            self.occ_head = OccHead(d_model, point_cloud_range, occ_num_classes, occ_height_bins, occ_channels,
                                    occ_bev_height_bins, cue_channels=NUM_CUES if occ_lidar_cues else 0)

    def _check_inputs(self, task_bevs, batch):
        for t in self.tasks:
            if t not in task_bevs:
                raise ValueError(f"task_bevs has no {t!r} BEV (got {sorted(task_bevs)})")
            if task_bevs[t].dim() != 4 or tuple(task_bevs[t].shape[-2:]) != self.bev_shape:
                raise ValueError(f"task_bevs[{t!r}] must be (B, C, {self.bev_shape[0]}, {self.bev_shape[1]}), got {tuple(task_bevs[t].shape)}")
        need = ["bev_aug"] + (["lidar2ego"] if "occ" in self.tasks and self.occ_frame == "ego" else [])
        need += ["points", "lidar_mask"] if getattr(self, "occ_cues", None) is not None else []
        for key in need:
            if key not in batch:
                raise ValueError(f"batch is missing {key!r}, needed to sample the target grids")

    def dense_inputs(self, batch, device):
        """What :meth:`forward` computes from the batch outside the network (inference, full grids): the
        map-grid points ``map_points (B, NX, NY, 3)``, the occupancy-grid points ``occ_points (B, NX, NY, NZ,
        3)`` (augmented LiDAR frame) and the LiDAR cues there ``occ_cues (B, 6, NX, NY, NZ)`` (with the cue
        refiner). The ONNX export takes them as graph inputs (``perception.export``)."""
        bev_aug = batch["bev_aug"].to(device)
        out = {}
        if "map" in self.tasks:
            out["map_points"] = map_grid_points(self.map_grid, bev_aug)
        if "occ" in self.tasks:
            lidar2ego = batch["lidar2ego"].to(device) if self.occ_frame == "ego" else None
            out["occ_points"] = occ_grid_points(self.occ_grid, bev_aug, lidar2ego, self.occ_frame)
            if self.occ_cues is not None:
                with stage("occ_cues"):
                    out["occ_cues"] = self._occ_cues(batch, out["occ_points"])
        return out

    def forward(self, task_bevs, batch, dense=None):
        """-> ``{'det': {...}, 'map': {...}, 'occ': {...}}`` (enabled tasks only); see the heads for keys.

        ``dense``: precomputed :meth:`dense_inputs` (inference only; the ONNX export passes them as inputs,
        and ``batch`` may then be empty)."""
        if dense is None:
            self._check_inputs(task_bevs, batch)
        with stage("queries"):
            bevs = {t: self.input_proj[t](task_bevs[t]) for t in self.tasks}
            shared = torch.stack(list(bevs.values())).mean(0)
            inits, queries, refs = {}, {}, {}
            for t, init in (("det", "det_init"), ("map", "map_init"), ("occ", "occ_init")):
                if t in self.tasks:
                    inits[t] = getattr(self, init)(self.det_up(bevs[t]) if t == "det" else bevs[t])
                    queries[t], refs[t] = inits[t]["query"], inits[t]["ref"]
            masks = {"map": self.map_init.attention_mask(shared.device)} if "map" in self.tasks else None
        with stage("decoder"):
            task_bev, q_out = self.decoder(shared, queries, refs, self.pos_embed, masks)
        device = shared.device
        if dense is None and not self.training:
            dense = self.dense_inputs(batch, device)
        bev_aug = batch["bev_aug"].to(device) if dense is None else None
        outputs = {}
        if "det" in self.tasks:
            with stage("det_head"):
                cls_logits, code = self.det_head(q_out["det"])
                keep = [k for k in ("heatmap", "cells", "labels", "heat_score", "offset_map", "anchor_offset") if k in inits["det"]]
                outputs["det"] = {**{k: inits["det"][k] for k in keep}, "cls_logits": cls_logits, "code": code}
        if "map" in self.tasks:
            with stage("map_head"):
                outputs["map"] = self._map_outputs(q_out, inits, task_bev, bev_aug, dense)
        if "occ" in self.tasks:
            with stage("occ_head"):
                outputs["occ"] = self._occ_forward(q_out, inits, task_bev, batch, bev_aug, dense)
        return outputs

    def _map_outputs(self, q_out, inits, task_bev, bev_aug, dense):
        if dense is not None:
            pts = dense["map_points"]
            subgrid = None
        else:
            pts = map_grid_points(self.map_grid, bev_aug)
            subgrid = None
            if self.training and self.map_train_stride > 1:
                s = self.map_train_stride
                ox, oy = (int(v) for v in torch.randint(s, (2,)))
                pts, subgrid = pts[:, ox::s, oy::s], (ox, oy, s)
        aux_emb = sample_bev(inits["map"]["pixel_embed"], pts[..., :2], self.pc_range)
        out = {
            "logits": self.map_head(q_out["map"], task_bev["map"], pts),
            "aux_logits": self.map_init.class_logits(aux_emb),
        }
        if subgrid is not None:
            out["subgrid"] = subgrid
        return out

    def _occ_forward(self, q_out, inits, task_bev, batch, bev_aug, dense):
        if dense is not None:
            return self._occ_outputs(q_out, inits, task_bev, batch, dense["occ_points"], dense.get("occ_cues"))
        device = bev_aug.device
        lidar2ego = batch["lidar2ego"].to(device) if self.occ_frame == "ego" else None
        pts = occ_grid_points(self.occ_grid, bev_aug, lidar2ego, self.occ_frame)
        if self.training and self.occ_train_voxels is not None and "gt_occ" in batch:
            b = pts.shape[0]
            labels, mask = (t.reshape(b, -1) for t in self._occ_targets(batch, device))  # (B, NX*NY*NZ)
            index = self._sample_occ_voxels(labels, mask)  # (B, K)
            s_labels, s_mask = labels.gather(1, index), mask.gather(1, index)
            self._count_occ_prior(labels, mask, s_labels, s_mask)
            pts = pts.reshape(b, -1, 3).gather(1, index[..., None].expand(-1, -1, 3))[:, :, None, None]
            out = self._occ_outputs(q_out, inits, task_bev, batch, pts)  # logits (B, C, K, 1, 1)
            out.update(labels=s_labels[:, :, None, None], mask=s_mask[:, :, None, None])
            return out
        return self._occ_outputs(q_out, inits, task_bev, batch, pts)

    def _occ_outputs(self, q_out, inits, task_bev, batch, pts, cues=None):
        """``{'logits'}`` at the voxel centres ``pts``; with the cue refiner ``logits`` are the refined ones and
        ``base_logits`` the BEV-only ones. ``cues``: precomputed (:meth:`dense_inputs`) or computed here."""
        if cues is None:
            cues = self._occ_cues(batch, pts)
        out = self.occ_head(q_out["occ"], inits["occ"]["shape"], task_bev["occ"], pts, cues)
        if isinstance(out, tuple):
            return {"base_logits": out[0], "logits": out[1]}
        return {"logits": out}

    def _occ_cues(self, batch, pts):
        """LiDAR cues at the voxel centres ``pts`` ``(B, ..., 3)`` (augmented LiDAR frame), or None when off."""
        if self.occ_cues is None:
            return None
        bev_aug = batch["bev_aug"].to(pts.device, pts.dtype)  # the sensor origin moves with the BEV augmentation
        points = [p.to(pts.device) for p in batch["points"]]
        return self.occ_cues(points, batch["lidar_mask"], bev_aug[:, :3, 3], pts)

    def _occ_targets(self, batch, device):
        """``(labels int64, mask bool)`` ``(B, NX, NY, NZ)``: the voxels that count (mask, valid sample, not ignored)."""
        labels = batch["gt_occ"].to(device).long()
        mask = batch["gt_occ_mask"].to(device).bool() if "gt_occ_mask" in batch else torch.ones_like(labels, dtype=torch.bool)
        mask = mask & batch["gt_occ_valid"].to(device).bool()[:, None, None, None] & (labels != self.occ_ignore_index)
        return labels, mask

    @torch.no_grad()
    def _count_occ_prior(self, labels, mask, s_labels, s_mask):
        """Add the class counts of all supervised voxels (``labels``/``mask``) and of the sampled ones
        (``s_labels``/``s_mask`` ``(B, K)``) to the buffers."""
        n = self.occ_count_all.numel()
        for buffer, lab, m in ((self.occ_count_all, labels, mask), (self.occ_count_sampled, s_labels, s_mask)):
            buffer += torch.bincount(lab[m & (lab < n)], minlength=n)[:n].to(buffer)

    def occ_logit_adjustment(self):
        """``(C,)`` added to the occupancy logits at inference: ``tau * log(prior of all supervised voxels /
        prior of the sampled training voxels)`` (Bayes' rule for a changed class prior; Menon et al. 2021,
        logit adjustment), ``tau = occ_prior_correction``. The sampler trains on half occupied voxels where a
        scene has ~4 %, so uncorrected argmax labels ~6 % of the free voxels occupied. Zeros before any training
        statistics exist (or without voxel sampling, where the two priors are the same)."""
        all_, sampled = self.occ_count_all, self.occ_count_sampled
        if self.occ_prior_correction == 0 or all_.sum() == 0 or sampled.sum() == 0:
            return torch.zeros_like(all_, dtype=torch.float32)
        p_all = (all_ + 1) / (all_ + 1).sum()  # +1: a class never seen gets a finite, strongly negative shift
        p_sampled = (sampled + 1) / (sampled + 1).sum()
        return (self.occ_prior_correction * (p_all.log() - p_sampled.log())).float()

    def _sample_occ_voxels(self, labels, mask):
        """Flat voxel indices ``(B, K)``: up to K/2 occupied supervised voxels, the rest uniform over the
        supervised voxels (with replacement); a sample with none gets arbitrary voxels (masked out later)."""
        k = self.occ_train_voxels
        out = []
        for lab, m in zip(labels, mask):
            valid = m.nonzero().squeeze(1)
            if valid.numel() == 0:
                out.append(torch.randint(lab.numel(), (k,), device=lab.device))
                continue
            occupied = (m & (lab != self.occ_free_index)).nonzero().squeeze(1)
            n_occ = min(occupied.numel(), k // 2)
            if self.occ_sample_balance > 0 and occupied.numel() > n_occ:  # fewer than K/2: all are taken
                # P(voxel) ~ count(its class) ** -balance: rare classes (cones, pedestrians) are not swamped by
                # the ground layer (with replacement: a rare class may be drawn more often than it occurs).
                occ_lab = lab[occupied]
                counts = torch.bincount(occ_lab, minlength=int(occ_lab.max()) + 1).float()
                weights = counts[occ_lab].pow(-self.occ_sample_balance)
                picked = occupied[torch.multinomial(weights, n_occ, replacement=True)]
            else:
                picked = occupied[torch.randperm(occupied.numel(), device=lab.device)[:n_occ]]
            rest = valid[torch.randint(valid.numel(), (k - n_occ,), device=lab.device)]
            out.append(torch.cat([picked, rest]))
        return torch.stack(out)

    def loss(self, outputs, batch):
        """Named, weighted losses. Samples with ``gt_bev_valid``/``gt_occ_valid`` False add nothing to that task."""
        w = self.loss_weights
        losses = {}
        if "det" in self.tasks:
            d = self.det_head.loss(outputs["det"], batch["gt_boxes"], batch["gt_labels"], self.det_offset_radius)
            losses.update(loss_det_heatmap=w["heatmap"] * d["heatmap"], loss_det_cls=w["det"] * d["cls"],
                          loss_det_box=w["det"] * d["box"])
            if "offset" in d:
                losses["loss_det_offset"] = w["offset"] * d["offset"]
        if "map" in self.tasks:
            logits, aux = outputs["map"]["logits"], outputs["map"]["aux_logits"]
            gt = batch["gt_bev"].to(logits.device, torch.float32)
            if "subgrid" in outputs["map"]:
                ox, oy, stride = outputs["map"]["subgrid"]
                gt = gt[..., ox::stride, oy::stride]
            if gt.shape != logits.shape:
                raise ValueError(f"gt_bev must be {tuple(logits.shape)} (map_grid), got {tuple(gt.shape)}")
            valid = batch["gt_bev_valid"].to(logits.device).bool()
            if valid.any():
                losses["loss_map"] = w["map"] * map_seg_loss(logits[valid], gt[valid])
                losses["loss_map_aux"] = w["map_aux"] * map_seg_loss(aux[valid], gt[valid])
            else:
                losses["loss_map"], losses["loss_map_aux"] = logits.sum() * 0.0, aux.sum() * 0.0
        if "occ" in self.tasks:
            logits = outputs["occ"].get("base_logits", outputs["occ"]["logits"])
            if "labels" in outputs["occ"]:  # training on sampled voxels (occ_train_voxels)
                labels, mask = outputs["occ"]["labels"], outputs["occ"]["mask"]
            else:
                labels = batch["gt_occ"].to(logits.device).long()
                if labels.shape != logits.shape[:1] + logits.shape[2:]:
                    raise ValueError(f"gt_occ must be {(logits.shape[0],) + tuple(logits.shape[2:])} (occ_grid), got {tuple(labels.shape)}")
                mask = batch["gt_occ_mask"].to(logits.device).bool() if "gt_occ_mask" in batch else torch.ones_like(labels, dtype=torch.bool)
                mask = mask & batch["gt_occ_valid"].to(logits.device).bool()[:, None, None, None]
            ce, lov, aff = occ_losses(logits, labels, mask, self.occ_class_weights, self.occ_free_index, self.occ_ignore_index)
            losses.update(loss_occ_ce=w["occ"] * ce, loss_occ_lovasz=w["occ"] * lov, loss_occ_affinity=w["occ"] * aff)
            if "base_logits" in outputs["occ"]:  # the cue refiner: the same losses on the refined logits
                refined = occ_losses(outputs["occ"]["logits"], labels, mask, self.occ_class_weights,
                                     self.occ_free_index, self.occ_ignore_index)
                losses["loss_occ_refine"] = w["occ"] * sum(refined)
        return losses

    @torch.no_grad()
    def decode(self, outputs, batch, score_threshold=0.0, max_boxes=500):
        """One dict per sample with the keys of the enabled tasks: ``boxes (K, 9)``, ``scores (K,)``,
        ``labels (K,)`` (augmented LiDAR frame = LiDAR frame at inference, K <= ``max_boxes``, score >
        ``score_threshold``); ``bev_probs (6, NX, NY)`` on ``map_grid``; ``occ_labels (NX, NY, NZ)`` uint8 on
        ``occ_grid``."""
        b = next(iter(next(iter(outputs.values())).values())).shape[0]
        results = [{} for _ in range(b)]
        if "det" in self.tasks:
            for r, d in zip(results, self.det_head.decode(outputs["det"], score_threshold, max_boxes)):
                r.update(d)
        if "map" in self.tasks:
            probs = outputs["map"]["logits"].sigmoid()
            for i, r in enumerate(results):
                r["bev_probs"] = probs[i]
        if "occ" in self.tasks:
            logits = outputs["occ"]["logits"]
            shift = self.occ_logit_adjustment().to(logits.device, logits.dtype)
            labels = (logits + shift.view(1, -1, *([1] * (logits.dim() - 2)))).argmax(1).to(torch.uint8)
            for i, r in enumerate(results):
                r["occ_labels"] = labels[i]
        return results
