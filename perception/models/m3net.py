"""The assembled model: LiDAR / camera encoders -> fused BEV neck (MAFI) -> multi-task head.

``M3Net.forward(batch)`` returns the named, already-weighted losses (the head's plus the camera's
LiDAR-supervised depth loss); ``M3Net.predict(batch)`` returns one dict per sample in the format of
``docs/architecture.md`` (boxes in the LiDAR frame, ``bev_probs`` on ``BEV_MAP_GRID``, ``occ_labels`` on
the occupancy grid). ``batch`` is the training batch of ``docs/architecture.md`` (augmented LiDAR frame).

:func:`build_model` builds it from the ``model`` config section with explicit constructors. The
sub-sections ``lidar``, ``camera``, ``fusion``, ``head`` and ``refiner`` are keyword arguments of
``LidarEncoder``, ``CameraEncoder``, ``FusedBEVNeck``, ``MultiTaskHead`` and ``PointBoxRefiner``, and the head's
task sub-sections ``head.det`` / ``head.map`` / ``head.occ`` those of ``DetTask`` / ``MapTask`` / ``OccTask``; an
argument the constructor does not take is a ``ValueError`` naming ``model.<section>.<key>`` and the config file.
The rules across keys (what needs LiDAR, the occupancy grid name) are checked with the config
(``perception.config``), not here.
"""

import inspect

import torch
from torch import nn

from perception.config import check_head_section, head_task_section, occupancy_grid_name
from perception.constants import OCC_GRIDS
from perception.models.camera.encoder import CameraEncoder
from perception.models.fusion.neck import FusedBEVNeck
from perception.models.heads.camera_map_aux import blend_camera_map, build_branch_map, camera_map_frames
from perception.models.heads.camera_occ_aux import CameraOccAux
from perception.models.heads.multitask import TASK_MODULES, MultiTaskHead
from perception.models.lidar.encoder import LidarEncoder
from perception.models.roi_heads.point_refiner import PointBoxRefiner
from perception.models.sensor_norms import condition_layers, running_stats_frozen, sensor_condition
from perception.models.timing import stage


class M3Net(nn.Module):
    """Encoders (either may be ``None``, i.e. disabled) -> ``neck`` -> ``head``.

    - ``score_threshold`` / ``max_boxes``: detection decoding in :meth:`predict`.
    - ``depth_loss_weight``: weight of the camera encoder's depth loss (``'depth'`` in the losses).
    - ``refiner``: optional second stage (:class:`PointBoxRefiner`) that corrects and rescores the decoded
      boxes from the LiDAR points around them (``'loss_refine'``, ``'loss_refine_score'`` in the losses);
      samples without LiDAR keep the first stage's boxes and scores. It needs the LiDAR encoder and the 'det'
      task (and the head's occupancy LiDAR cues the LiDAR encoder): rules checked when the config is loaded
      (``perception.config``), not here.
    - ``camera_map_blend`` w: on a frame with cameras but no LiDAR the BEV map is ``(1 - w)`` the fused head's and
      ``w`` the camera branch's own map head's (``camera_map``, :func:`blend_camera_map`); 0: the fused head alone.
    - ``lidar_map``: a training-only map head on the LiDAR BEV alone (``'lidar_map'`` in the losses).
    """

    def __init__(
        self,
        tasks,
        lidar_encoder: nn.Module | None,
        camera_encoder: nn.Module | None,
        neck: nn.Module,
        head: nn.Module,
        score_threshold: float = 0.05,
        max_boxes: int = 500,
        depth_loss_weight: float = 1.0,
        refiner: nn.Module | None = None,
        camera_map: nn.Module | None = None,
        camera_occ: nn.Module | None = None,
        camera_map_blend: float = 0.0,
        lidar_map: nn.Module | None = None,
    ):
        super().__init__()
        if lidar_encoder is None and camera_encoder is None:
            raise ValueError("M3Net: at least one of lidar_encoder / camera_encoder is required")
        self.tasks = tuple(tasks)
        self.lidar_encoder = lidar_encoder
        self.camera_encoder = camera_encoder
        self.neck = neck
        self.head = head
        self.score_threshold = float(score_threshold)
        self.max_boxes = int(max_boxes)
        self.depth_loss_weight = float(depth_loss_weight)
        self.refiner = refiner
        self.camera_map = camera_map
        self.camera_occ = camera_occ
        self.camera_map_blend = float(camera_map_blend)
        self.lidar_map = lidar_map

    def encode(self, batch):
        """Batch -> (``{task: (B, C, X, Y)}`` task BEV maps, aux dict or None: the camera encoder's, and in training
        with ``lidar_map`` the LiDAR BEV as ``'lidar_bev'``)."""
        lidar_mask = batch["lidar_mask"]
        lidar_bev = camera_bev = aux = None
        if self.lidar_encoder is not None:
            lidar_bev = self.lidar_encoder(batch["points"], lidar_mask)
        if self.camera_encoder is not None:
            camera_bev, aux = self.camera_encoder(
                batch["images"], batch["cam_mask"], batch["intrinsics"], batch["lidar2cam"],
                points=batch["points"], lidar_mask=lidar_mask,
            )
            camera_alone = self.camera_map is not None or self.camera_occ is not None
            if camera_alone and self.training or self.camera_map_blend:
                aux["camera_bev"] = camera_bev  # (B, C_c, X, Y): the camera-alone losses, the no-LiDAR map blend
        if self.lidar_map is not None and self.training:  # (B, C_l, X, Y): the LiDAR-alone map loss
            aux = {} if aux is None else aux
            aux["lidar_bev"] = lidar_bev
        # A sample counts as having cameras when any of its cameras is valid.
        camera_mask = batch["cam_mask"].any(dim=1) if self.camera_encoder is not None else torch.zeros_like(lidar_mask)
        if self.lidar_encoder is None:
            lidar_mask = torch.zeros_like(lidar_mask)
        with stage("fusion"):
            return self.neck(lidar_bev, camera_bev, lidar_mask, camera_mask), aux

    def forward(self, batch) -> dict:
        """Training: named, weighted loss tensors (the trainer sums them).

        Under AMP autocast the network runs in fp16 but the losses are computed in fp32 (autocast off,
        outputs cast to float32): focal / BCE / Lovasz terms are not fp16-safe.

        A batch without a sensor (modality dropout) leaves the running BatchNorm statistics of the layers that
        depend on that sensor as they were: they stay those of full frames (its own come from calibrate-norms)."""
        condition = sensor_condition(batch, self.lidar_encoder is not None, self.camera_encoder is not None)
        with running_stats_frozen(condition_layers(self, condition) if condition else {}):
            task_bevs, aux = self.encode(batch)
            outputs = self.head(task_bevs, batch)
            camera_bev = aux.pop("camera_bev", None) if aux is not None else None
            lidar_bev = aux.pop("lidar_bev", None) if aux is not None else None
            camera_map = camera_occ = lidar_map = None
            if self.lidar_map is not None:  # (B, K, 200, 200) on BEV_MAP_GRID, from the LiDAR BEV alone
                lidar_map = self.lidar_map(lidar_bev, batch["bev_aug"])
            if self.camera_map is not None:  # (B, K, 200, 200) on BEV_MAP_GRID, from the camera BEV alone
                camera_map = self.camera_map(camera_bev, batch["bev_aug"])
            if self.camera_occ is not None:  # (B, C, ...) at the occupancy task's voxels, camera BEV alone
                camera_occ = self._camera_occ(camera_bev, outputs["occ"], batch)
            with torch.autocast(device_type=batch["lidar_mask"].device.type, enabled=False):
                losses = dict(self.head.loss(_float32(outputs), batch))
                if self.camera_encoder is not None and self.depth_loss_weight > 0:
                    losses["depth"] = self.depth_loss_weight * self.camera_encoder.depth_loss(_float32(aux))
                if camera_map is not None:
                    losses["camera_map"] = self.camera_map.loss(camera_map.float(), batch)
                if lidar_map is not None:
                    losses["lidar_map"] = self.lidar_map.loss(lidar_map.float(), batch)
                if camera_occ is not None:
                    logits, labels, mask = camera_occ
                    losses["camera_occ"] = self.camera_occ.loss(logits, labels, mask, batch["cam_mask"])
                if self.refiner is not None:
                    # The detector's own top boxes of this step (augmented LiDAR frame, detached): the errors the
                    # refiner meets at inference, and the false positives its quality score must rate low.
                    det = self.head.det.decode(_float32(outputs["det"]), 0.0, self.refiner.det_proposals)
                    refine = self.refiner.loss(self._lidar_points(batch), batch["gt_boxes"], batch["gt_labels"],
                                               [d["boxes"] for d in det], [d["labels"] for d in det])
                    losses.update(loss_refine=refine["refine"], loss_refine_score=refine["refine_score"])
        return losses

    def _camera_occ(self, camera_bev, occ_outputs, batch):
        """``(logits, labels, mask)`` of the camera occupancy loss: at the voxels the occupancy task sampled this
        step (``occ_outputs['points']``, popped: the head's loss does not read it), else on the whole grid."""
        device = camera_bev.device
        points = occ_outputs.pop("points", None)
        if points is None:  # no voxel sampling (train_voxels None): the whole grid
            points = self.head.occ.grid_points(batch, device)  # (B, NX, NY, NZ, 3) augmented LiDAR frame
            labels, mask = self.head.occ.targets(batch, device)  # (B, NX, NY, NZ)
        else:
            labels, mask = occ_outputs["labels"], occ_outputs["mask"]  # (B, K, 1, 1)
        return self.camera_occ(camera_bev, points), labels, mask

    @staticmethod
    def _lidar_points(batch):
        """The batch's point clouds, empty for the samples whose LiDAR is missing (``lidar_mask`` False)."""
        return [p if bool(m) else p[:0] for p, m in zip(batch["points"], batch["lidar_mask"], strict=True)]

    @torch.no_grad()
    def predict(self, batch) -> list:
        """One dict per sample: ``boxes (K, 9)``, ``scores (K,)``, ``labels (K,)`` (LiDAR frame) when 'det';
        ``bev_probs (6, 200, 200)`` when 'map'; ``occ_labels (200, 200, 16)`` uint8 when 'occ'."""
        task_bevs, aux = self.encode(batch)
        outputs = self.head(task_bevs, batch)
        # Decoding in fp32 also under fp16 / bf16 autocast: box centres in metres, sigmoid probabilities and
        # the occupancy argmax need more than bf16's 8 significant bits.
        with stage("decode"), torch.autocast(device_type=batch["lidar_mask"].device.type, enabled=False):
            results = self.head.decode(_float32(outputs), batch, self.score_threshold, max_boxes=self.max_boxes)
            use = camera_map_frames(batch["lidar_mask"], batch["cam_mask"]) if self.camera_map_blend else None  # (B,)
            if use is not None and bool(use.any()):
                logits = self.camera_map(aux["camera_bev"].float(), batch["bev_aug"])  # (B, K, 200, 200)
                blend_camera_map(results, logits, use, self.camera_map_blend)
        with stage("refiner"):
            return self.refine_boxes(results, batch)

    @torch.no_grad()
    def refine_boxes(self, results, batch):
        """The second stage on decoded ``results`` (in place, LiDAR frame): each sample's boxes corrected and
        rescored from its LiDAR points, then sorted by the new score. Unchanged without ``refiner``."""
        if self.refiner is not None:
            for r, points in zip(results, self._lidar_points(batch), strict=True):
                boxes, scores = self.refiner.refine(points.to(r["boxes"].device), r["boxes"], r["scores"], r["labels"])
                order = scores.argsort(descending=True)
                r.update(boxes=boxes[order], scores=scores[order], labels=r["labels"][order])
        return results


def _float32(value):
    """Floating tensors (also inside dicts / lists / tuples) cast to float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value


def _check_kwargs(cls, kwargs: dict, section: str, filename, injected=(), set_by="the model section"):
    """Every key of ``kwargs`` (config ``model.<section>``) must be a keyword argument of ``cls`` not in
    ``injected`` (those the model passes itself); else a ``ValueError`` naming the key and the file."""
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in kwargs:
        if key in injected:
            raise ValueError(f"config key model.{section}.{key} in {filename}: set by {set_by}, remove it here")
        if key not in params and not takes_any:
            allowed = sorted(k for k in params if k not in ("self", *injected))
            raise ValueError(
                f"unknown config key model.{section}.{key} in {filename} ({cls.__name__} takes {allowed})"
            )


def _construct(cls, kwargs: dict, section: str, filename, **injected):
    """``cls(**injected, **kwargs)`` after checking every key of ``kwargs`` against the signature."""
    _check_kwargs(cls, kwargs, section, filename, tuple(injected))
    return cls(**injected, **kwargs)


def _head_kwargs(model_cfg, filename):
    """``model.head`` as ``MultiTaskHead`` keyword arguments: each task sub-section checked against its task
    module's signature (the arguments without a default, ``d_model``, ``point_cloud_range``, ..., come from the
    head), the occupancy grid name turned into its ``GridSpec``."""
    head_kw = dict(model_cfg["head"])
    check_head_section(head_kw, filename)
    for task, cls in TASK_MODULES.items():
        params = inspect.signature(cls.__init__).parameters.values()
        required = tuple(p.name for p in params if p.default is inspect.Parameter.empty and p.name != "self")
        _check_kwargs(cls, head_task_section(model_cfg, task), f"head.{task}", filename, required,
                      set_by=f"MultiTaskHead ({', '.join(required)} from model.head / the model section)")
    grid = OCC_GRIDS[occupancy_grid_name(model_cfg, filename)]
    head_kw["occ"] = {**head_task_section(model_cfg, "occ"), "grid": grid}
    return head_kw


def build_model(model_cfg) -> M3Net:
    """``model`` config section (validated by :func:`perception.config.load_config`) -> :class:`M3Net`."""
    filename = getattr(model_cfg, "filename", None) or "<model config>"
    tasks = tuple(model_cfg["tasks"])
    pcr = tuple(float(v) for v in model_cfg["point_cloud_range"])
    bev_cell = float(model_cfg["bev_cell"])
    lidar = camera = None
    if model_cfg["lidar"] is not None:
        lidar = _construct(LidarEncoder, dict(model_cfg["lidar"]), "lidar", filename, point_cloud_range=pcr,
                           bev_cell=bev_cell)
    if model_cfg["camera"] is not None:
        kw = dict(model_cfg["camera"])
        if "image_size" in kw:
            kw["image_size"] = tuple(kw["image_size"])
        camera = _construct(CameraEncoder, kw, "camera", filename, point_cloud_range=pcr, bev_cell=bev_cell)
    neck = _construct(
        FusedBEVNeck, dict(model_cfg["fusion"]), "fusion", filename,
        lidar_channels=lidar.out_channels if lidar is not None else 0,
        camera_channels=camera.out_channels if camera is not None else 0,
        tasks=tasks,
    )
    head = _construct(
        MultiTaskHead, _head_kwargs(model_cfg, filename), "head", filename,
        tasks=tasks, in_channels=neck.out_channels, point_cloud_range=pcr, bev_cell=bev_cell,
    )
    refiner = None
    if model_cfg["refiner"] is not None:  # needs model.lidar and 'det' (perception.config checks it)
        refiner = _construct(PointBoxRefiner, dict(model_cfg["refiner"]), "refiner", filename,
                             point_channels=lidar.in_channels)
    camera_map = build_branch_map(model_cfg, "camera", camera, pcr, filename)
    blend = float(model_cfg.get("camera_map_blend") or 0.0)  # .get: configs of .onnx files exported before it
    if not 0.0 <= blend <= 1.0 or (blend and (camera_map is None or lidar is None)):
        raise ValueError(f"config key model.camera_map_blend in {filename}: a weight in [0, 1] of the camera map head "
                         f"(model.camera_map_weight > 0) in a fusion model's map without LiDAR, got {blend}; set "
                         "model.camera_map_blend=0 with model.camera_map_weight=0 or without model.lidar")
    camera_occ = None
    if float(model_cfg["camera_occ_weight"]) > 0:
        if camera is None or "occ" not in tasks:
            raise ValueError(f"config key model.camera_occ_weight in {filename}: needs model.camera and the "
                             f"'occ' task, got tasks {tasks} and camera {'on' if camera else 'None'}")
        occ = head.occ
        camera_occ = CameraOccAux(camera.out_channels, pcr, model_cfg["camera_occ_weight"],
                                  num_classes=occ.num_classes, free_index=occ.free_index,
                                  ignore_index=occ.ignore_index, class_weights=occ.class_weights)
    lidar_map = build_branch_map(model_cfg, "lidar", lidar, pcr, filename)  # built last: the others' init is kept
    return M3Net(
        tasks, lidar, camera, neck, head,
        score_threshold=model_cfg["score_threshold"],
        max_boxes=model_cfg["max_boxes"],
        depth_loss_weight=model_cfg["depth_loss_weight"],
        refiner=refiner,
        camera_map=camera_map,
        camera_occ=camera_occ,
        camera_map_blend=blend,
        lidar_map=lidar_map,
    )
