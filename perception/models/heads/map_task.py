"""The BEV-map task of :class:`perception.models.heads.multitask.MultiTaskHead`: strip x class queries picked on
an auxiliary map prediction, the map head on the evaluation grid, the focal + Dice losses and the probabilities.

Frames: the logits come on ``grid`` (``BEV_MAP_GRID``: 200 x 200 cells of 0.5 m, ORIGINAL LiDAR frame), sampled
from the BEV (augmented LiDAR frame) at the cell centres mapped through ``batch['bev_aug']`` (``A @ p``), so
the un-augmented ``gt_bev`` is the target as it is. Config section ``model.head.map``.
"""

import torch
import torch.nn as nn

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.models.heads.bev_sampling import map_grid_points, sample_bev
from perception.models.heads.map_head import MapHead, map_seg_loss
from perception.models.heads.map_lidar_cues import MapCueRefiner, map_cues
from perception.models.queries.map_queries import MapQueryInit


class MapTask(nn.Module):
    """Map queries, head, losses and decoding.

    - ``grid``: the output grid (a ``GridSpec``, LiDAR frame); ``num_strips``: strips along x (M3Net).
    - ``train_stride`` s: in training the logits and losses are computed on every s-th cell of ``grid`` in x and y,
      at a random offset per step (a CPU cost cut; 1 = all cells). Inference always predicts the full grid.
    - ``lidar_cues``: a refiner corrects the logits from per-cell cues of the raw LiDAR points on ``grid``
      (:mod:`perception.models.heads.map_lidar_cues`: point count, intensity, height at 0.5 m); needs
      ``train_stride`` 1 (its convolutions must see the grid they see at inference).
    - ``aux_blend`` w in [0, 1], or one w per class (``BEV_MAP_CLASSES`` order), inference only: class k's logits
      become ``(1 - w_k)`` the query head's (refined, with ``lidar_cues``) and ``w_k`` the auxiliary prediction's
      (the class embeddings dotted with the per-pixel embedding, which picks the queries and has its own loss,
      ``map_aux``); 0: the query head alone. On every frame; training and the losses do not see it.

    Sub-modules (construction order = order of the random parameter init): ``queries``, ``head``[, ``refiner``].
    """

    name = "map"

    def __init__(self, d_model, point_cloud_range, grid=BEV_MAP_GRID, num_strips=5, train_stride=1,
                 lidar_cues=False, aux_blend=0.0):
        super().__init__()
        if int(train_stride) < 1:
            raise ValueError(f"model.head.map.train_stride must be >= 1, got {train_stride}")
        if lidar_cues and int(train_stride) != 1:
            raise ValueError(f"model.head.map.lidar_cues needs model.head.map.train_stride=1, got {train_stride}")
        self.grid, self.pc_range, self.train_stride = grid, list(point_cloud_range), int(train_stride)
        self.aux_blend = blend_weights(aux_blend, len(BEV_MAP_CLASSES))  # K floats in [0, 1]
        self.queries = MapQueryInit(d_model, num_strips, len(BEV_MAP_CLASSES))
        self.head = MapHead(d_model, point_cloud_range, num_strips, len(BEV_MAP_CLASSES))
        self.refiner = MapCueRefiner(len(BEV_MAP_CLASSES)) if lidar_cues else None

    def batch_keys(self):
        """Batch entries the task reads besides ``bev_aug``."""
        return ("points", "lidar_mask") if self.refiner is not None else ()

    def dense_inputs(self, batch, device):
        """``{'map_points' (B, NX, NY, 3)[, 'map_cues' (B, 5, NX, NY)]}``: the centres of ``grid`` in the augmented
        LiDAR frame (metres) and, with the cue refiner, the LiDAR cues of its cells."""
        out = {"map_points": map_grid_points(self.grid, batch["bev_aug"].to(device))}
        if self.refiner is not None:
            out["map_cues"] = self.lidar_cues(batch, device)
        return out

    def lidar_cues(self, batch, device):
        """The LiDAR cues ``(B, 5, NX, NY)`` of the cells of ``grid`` (:func:`map_cues`)."""
        return map_cues(batch["points"], batch["lidar_mask"], batch["bev_aug"].to(device), self.grid)

    def attention_mask(self, device):
        """``(S*K, S*K)`` bool self-attention mask of the map queries (True = not attended; :class:`MapQueryInit`)."""
        return self.queries.attention_mask(device)

    def init_queries(self, bev):
        """``bev (B, d, X, Y)`` -> ``{pixel_embed (B, d, X, Y), aux_logits (B, K, X, Y), query (B, S*K, d), ref
        (B, S*K, 2)}``."""
        return self.queries(bev)

    def outputs(self, query, init, bev, batch, dense):
        """``{'logits' (B, K, NX, NY), 'aux_logits' (B, K, NX, NY)[, 'base_logits']}`` on ``grid`` from the decoder
        output ``query (B, S*K, d)`` and the TCS-gated map BEV ``bev (B, d, X, Y)``. ``dense``: :meth:`dense_inputs`
        (inference); None in training: the grid points from ``batch['bev_aug']``, every ``train_stride``-th cell at
        a random offset (one ``torch.randint``; then ``subgrid = (ox, oy, stride)`` is in the outputs and NX, NY
        shrink). With the cue refiner ``logits`` are the refined ones and ``base_logits`` the BEV-only ones."""
        if dense is not None:
            pts, subgrid, cues = dense["map_points"], None, dense.get("map_cues")  # (B, NX, NY, 3)
        else:
            cues = self.lidar_cues(batch, bev.device) if self.refiner is not None else None  # (B, 5, NX, NY)
            pts, subgrid = map_grid_points(self.grid, batch["bev_aug"].to(bev.device)), None  # (B, NX, NY, 3)
            if self.training and self.train_stride > 1:
                s = self.train_stride
                ox, oy = (int(v) for v in torch.randint(s, (2,)))
                pts, subgrid = pts[:, ox::s, oy::s], (ox, oy, s)  # (B, NX/s, NY/s, 3)
        aux_emb = sample_bev(init["pixel_embed"], pts[..., :2], self.pc_range)  # (B, d, NX, NY)
        out = {
            "logits": self.head(query, bev, pts),  # (B, K, NX, NY)
            "aux_logits": self.queries.class_logits(aux_emb),  # (B, K, NX, NY)
        }
        if self.refiner is not None:
            out["base_logits"] = out["logits"]
            out["logits"] = self.refiner(out["logits"], cues)  # (B, K, NX, NY)
        if any(self.aux_blend) and not self.training:  # (B, K, NX, NY): the two map predictions' logits blended
            w = out["logits"].new_tensor(self.aux_blend).view(1, -1, 1, 1)  # (1, K, 1, 1), one weight per class
            out["logits"] = torch.lerp(out["logits"], out["aux_logits"], w)
        if subgrid is not None:
            out["subgrid"] = subgrid
        return out

    def loss(self, outputs, batch, weights):
        """``loss_map`` / ``loss_map_aux`` (focal + Dice, weights ``map`` / ``map_aux``) against ``batch['gt_bev']
        (B, 6, NX, NY)`` (+ ``loss_map_refine``, weight ``map``, on the refined logits with the cue refiner:
        ``loss_map`` then trains the BEV-only logits, which a frame without LiDAR uses as they are); samples with
        ``gt_bev_valid`` False add nothing (zero losses when none is valid)."""
        logits, aux = outputs.get("base_logits", outputs["logits"]), outputs["aux_logits"]  # (B, K, NX, NY)
        gt = batch["gt_bev"].to(logits.device, torch.float32)  # (B, K, 200, 200), original LiDAR frame
        if "subgrid" in outputs:
            ox, oy, stride = outputs["subgrid"]
            gt = gt[..., ox::stride, oy::stride]
        if gt.shape != logits.shape:
            raise ValueError(f"gt_bev must be {tuple(logits.shape)} (map grid), got {tuple(gt.shape)}")
        valid = batch["gt_bev_valid"].to(logits.device).bool()  # (B,)
        terms = {"loss_map": (logits, "map"), "loss_map_aux": (aux, "map_aux")}  # name -> (logits, weight key)
        if "base_logits" in outputs:
            terms["loss_map_refine"] = (outputs["logits"], "map")
        if valid.any():
            return {k: weights[w] * map_seg_loss(t[valid], gt[valid]) for k, (t, w) in terms.items()}
        return {k: t.sum() * 0.0 for k, (t, _) in terms.items()}

    def decode(self, outputs, score_threshold=0.0, max_boxes=500):
        """Per sample ``{'bev_probs' (K, NX, NY)}``: sigmoid of the logits (the detection settings are unused)."""
        probs = outputs["logits"].sigmoid()  # (B, K, NX, NY)
        return [{"bev_probs": p} for p in probs]


def blend_weights(value, num_classes):
    """``model.head.map.aux_blend`` (one weight, or one per class) -> a tuple of ``num_classes`` floats in [0, 1]."""
    values = list(value) if isinstance(value, list | tuple) else [value] * num_classes
    if len(values) != num_classes:
        raise ValueError(f"model.head.map.aux_blend needs one weight or {num_classes} (one per map class: "
                         f"{', '.join(BEV_MAP_CLASSES)}), got {len(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"model.head.map.aux_blend must be a weight in [0, 1], got {v!r}")
    return tuple(float(v) for v in values)
