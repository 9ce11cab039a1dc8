"""The multi-task head: task BEVs -> task queries -> one shared decoder -> the task modules' outputs and losses.

Inputs: ``task_bevs`` ``{task: (B, in_channels, X, Y)}`` from the fusion neck, x-first, augmented LiDAR frame
over ``point_cloud_range`` with ``bev_cell`` metre cells; ``batch`` as in ``docs/architecture.md``.

This class only wires; each task lives in its own module, which holds that task's query init, head, targets,
losses and decoding (as DETR keeps model, criterion and post-processing apart):
:class:`~perception.models.heads.det_task.DetTask` (``self.det``),
:class:`~perception.models.heads.map_task.MapTask` (``self.map``) and
:class:`~perception.models.heads.occ_task.OccTask` (``self.occ``), None when the task is off.

Flow: each task BEV -> 3x3 conv-BN-ReLU to ``d_model`` (``input_proj``); each task module initialises its
queries on its BEV; the decoder's shared BEV is the mean of the task BEVs; the shared decoder refines all
queries layer by layer against TCS-gated task BEVs; each task module turns the last layer's queries into its
outputs. Dense outputs are sampled on the evaluation grids through ``batch['bev_aug']`` (and
``batch['lidar2ego']`` for an ego-frame occupancy grid).
"""

import torch
import torch.nn as nn

from perception.constants import TASKS
from perception.models.decoder.shared_decoder import SharedDecoder
from perception.models.heads.det_task import DetTask
from perception.models.heads.map_task import MapTask
from perception.models.heads.occ_task import OccTask
from perception.models.queries.common import conv_bn_relu
from perception.models.queries.position import PositionEmbedding
from perception.models.timing import stage

# M3Net's loss weights (shared/docs/m3net.md). 'det' scales both the classification and the box loss.
# 'offset': the dense centre-offset map (model.head.det.offset_head), not in the published design.
DEFAULT_LOSS_WEIGHTS = {"map": 40.0, "map_aux": 20.0, "det": 2.0, "heatmap": 6.0, "occ": 1.0, "offset": 2.0}
# The task module of each task: config section model.head.<task> = its keyword arguments.
TASK_MODULES = {"det": DetTask, "map": MapTask, "occ": OccTask}


class MultiTaskHead(nn.Module):
    """See the module docstring.

    Shared settings: ``decoder`` ('transformer' | 'mamba'), ``num_layers``, ``d_model``, ``num_heads``,
    ``ffn_dim``, ``num_points`` (deformable sampling points), ``tcs_hidden`` (:class:`SharedDecoder`),
    ``loss_weights`` (merged into :data:`DEFAULT_LOSS_WEIGHTS`). ``det`` / ``map`` / ``occ``: keyword arguments of
    the task modules (config ``model.head.det`` / ``.map`` / ``.occ``); a disabled task's are not used.

    Construction order (= the order in which parameter init draws from the RNG): ``input_proj``, ``pos_embed``,
    ``decoder``, then the task modules in :data:`TASKS` order (det: ``up``, ``queries``, ``head``; map:
    ``queries``, ``head``; occ: ``queries``, ``cues``, ``head``).
    """

    def __init__(self, tasks, in_channels, point_cloud_range, bev_cell, decoder="transformer", num_layers=6,
                 d_model=256, num_heads=8, ffn_dim=1024, num_points=4, tcs_hidden=None, loss_weights=None,
                 det=None, map=None, occ=None):  # noqa: A002 (the config section's name)
        super().__init__()
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks) or any(t not in TASKS for t in tasks):
            raise ValueError(f"tasks must be distinct names from {TASKS}, got {tasks}")
        if len(point_cloud_range) != 6:
            raise ValueError(f"point_cloud_range must be [x0, y0, z0, x1, y1, z1], got {point_cloud_range}")
        self.bev_shape = tuple(
            int(round((point_cloud_range[i + 3] - point_cloud_range[i]) / bev_cell)) for i in range(2)
        )
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"loss_weights: unknown keys {sorted(unknown)} (known: {sorted(DEFAULT_LOSS_WEIGHTS)})")
        self.tasks, self.pc_range, self.bev_cell = tasks, list(point_cloud_range), float(bev_cell)
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}

        self.input_proj = nn.ModuleDict({t: conv_bn_relu(in_channels, d_model) for t in tasks})
        self.pos_embed = PositionEmbedding(d_model)
        self.decoder = SharedDecoder(decoder, tasks, num_layers, d_model, num_heads, ffn_dim, num_points, tcs_hidden)
        pcr = point_cloud_range
        self.det = DetTask(d_model, pcr, bev_cell, **(det or {})) if "det" in tasks else None
        self.map = MapTask(d_model, pcr, **(map or {})) if "map" in tasks else None
        self.occ = OccTask(d_model, pcr, **(occ or {})) if "occ" in tasks else None

    @property
    def task_modules(self):
        """``{task: module}`` of the enabled tasks, in :data:`TASKS` order (the order of every loop below)."""
        return {t: m for t, m in zip(TASKS, (self.det, self.map, self.occ), strict=True) if m is not None}

    def _check_inputs(self, task_bevs, batch):
        for t in self.tasks:
            if t not in task_bevs:
                raise ValueError(f"task_bevs has no {t!r} BEV (got {sorted(task_bevs)})")
            if task_bevs[t].dim() != 4 or tuple(task_bevs[t].shape[-2:]) != self.bev_shape:
                raise ValueError(f"task_bevs[{t!r}] must be (B, C, {self.bev_shape[0]}, {self.bev_shape[1]}), "
                                 f"got {tuple(task_bevs[t].shape)}")
        need = ["bev_aug"] + [k for m in self.task_modules.values() for k in m.batch_keys()]
        for key in need:
            if key not in batch:
                raise ValueError(f"batch is missing {key!r}, needed to sample the target grids")

    def dense_inputs(self, batch, device):
        """What :meth:`forward` computes from the batch outside the network (inference, full grids): the
        map-grid points ``map_points (B, NX, NY, 3)`` (and their LiDAR cues ``map_cues (B, 5, NX, NY)`` with the
        map's cue refiner), the occupancy-grid points ``occ_points (B, NX, NY, NZ,
        3)`` (augmented LiDAR frame) and the LiDAR cues there ``occ_cues (B, 6, NX, NY, NZ)`` (with the cue
        refiner). The ONNX export takes them as graph inputs (``perception.export``)."""
        out = {}
        for m in self.task_modules.values():
            out.update(m.dense_inputs(batch, device))
        return out

    def forward(self, task_bevs, batch, dense=None):
        """-> ``{'det': {...}, 'map': {...}, 'occ': {...}}`` (enabled tasks only); see the task modules' ``outputs``.

        ``dense``: precomputed :meth:`dense_inputs` (inference only; the ONNX export passes them as inputs,
        and ``batch`` may then be empty)."""
        if dense is None:
            self._check_inputs(task_bevs, batch)
        tasks = self.task_modules
        with stage("queries"):
            bevs = {t: self.input_proj[t](task_bevs[t]) for t in self.tasks}  # (B, d, X, Y) each
            shared = torch.stack(list(bevs.values())).mean(0)  # (B, d, X, Y)
            inits = {t: m.init_queries(bevs[t]) for t, m in tasks.items()}
            queries = {t: init["query"] for t, init in inits.items()}  # (B, Q_t, d)
            refs = {t: init["ref"] for t, init in inits.items()}  # (B, Q_t, 2) normalized BEV positions
            masks = {t: m.attention_mask(shared.device) for t, m in tasks.items()}
            masks = {t: mask for t, mask in masks.items() if mask is not None} or None
        with stage("decoder"):
            task_bev, q_out = self.decoder(shared, queries, refs, self.pos_embed, masks)  # TCS-gated BEVs, queries
        if dense is None and not self.training:
            dense = self.dense_inputs(batch, shared.device)
        outputs = {}
        for t, m in tasks.items():
            with stage(f"{t}_head"):
                outputs[t] = m.outputs(q_out[t], inits[t], task_bev[t], batch, dense)
        return outputs

    def loss(self, outputs, batch):
        """Named, weighted losses of the enabled tasks (det, map, occ order). Samples with ``gt_bev_valid`` /
        ``gt_occ_valid`` False add nothing to that task."""
        losses = {}
        for t, m in self.task_modules.items():
            losses.update(m.loss(outputs[t], batch, self.loss_weights))
        return losses

    @torch.no_grad()
    def decode(self, outputs, batch, score_threshold=0.0, max_boxes=500):
        """One dict per sample with the keys of the enabled tasks: ``boxes (K, 9)``, ``scores (K,)``,
        ``labels (K,)`` (augmented LiDAR frame = LiDAR frame at inference, K <= ``max_boxes``, score >
        ``score_threshold``); ``bev_probs (6, NX, NY)`` on the map grid; ``occ_labels (NX, NY, NZ)`` uint8 on the
        occupancy grid."""
        b = next(iter(next(iter(outputs.values())).values())).shape[0]
        results = [{} for _ in range(b)]
        for t, m in self.task_modules.items():
            for r, d in zip(results, m.decode(outputs[t], score_threshold, max_boxes), strict=True):
                r.update(d)
        return results
