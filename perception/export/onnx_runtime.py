"""Run an exported model with ONNX Runtime behind the :class:`perception.runtime.Predictor` interface.

:class:`OnnxPredictor` is a Predictor (the same test-time transform, bad-input handling and outputs) whose
model is an :class:`OnnxModel`: the Python side (:func:`perception.export.inputs.prepare_inputs`), the ONNX
graph in an ``onnxruntime.InferenceSession``, then the PyTorch path's own decoding
(``MultiTaskHead.decode``) and box refinement (``PointBoxRefiner.refine`` with the refiner's ONNX network).
The non-learned parts come from a model built from the config stored in the file; its weights are never
used (the occupancy head's class-prior shift, learned statistics, comes from the file's metadata). A frame
without a sensor runs that condition's graph when the export wrote one (``OUT.<condition>.onnx``), and a frame
without LiDAR gets the occupancy fill from ``OUT.occ_prior.npy`` when the config sets ``model.occ_prior_fill``,
and its map the camera map head's share (the graph's ``camera_map_logits``) with ``model.camera_map_blend``.
"""

import ast
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import torch

from perception.config import _wrap
from perception.export.inputs import prepare_inputs
from perception.models import build_model
from perception.models.heads.camera_map_aux import blend_camera_map, camera_map_frames
from perception.models.timing import stage
from perception.runtime import Predictor
from perception.runtime.occ_prior import check_occ_prior, fill_classes


def _session(path, device="cpu"):
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=providers)


def load_config_from_onnx(path):
    """The resolved config stored by ``perception export`` (a :class:`perception.config.Config`)."""
    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    if "m3_config" not in meta:
        raise ValueError(f"{path}: no m3_config metadata (not written by perception export)")
    return _wrap(ast.literal_eval(meta["m3_config"]), meta.get("m3_config_file") or str(path)), meta


class _RefinerNet:
    """The refiner's ONNX network called like ``PointBoxRefiner.__call__``."""

    def __init__(self, session):
        self.session = session

    def __call__(self, local, mask, proposals, labels):
        feeds = {"local": local.numpy().astype(np.float32), "mask": mask.numpy(),
                 "proposals": proposals.numpy().astype(np.float32), "labels": labels.long().numpy()}
        names = {i.name for i in self.session.get_inputs()}
        residuals, quality = self.session.run(None, {k: v for k, v in feeds.items() if k in names})
        return torch.from_numpy(residuals), torch.from_numpy(quality)


class OnnxModel:
    """Quacks like :class:`perception.models.m3net.M3Net` for the Predictor: ``predict(batch)``, ``tasks``,
    ``head``, ``lidar_encoder``, ``camera_encoder``, ``refiner``."""

    def __init__(self, path, cfg, meta, device="cpu", torch_model=None):
        self.torch_model = (torch_model if torch_model is not None else build_model(cfg["model"])).eval()
        for name in ("tasks", "head", "lidar_encoder", "camera_encoder", "refiner", "score_threshold", "max_boxes"):
            setattr(self, name, getattr(self.torch_model, name))
        if "m3_occ_logit_shift" in meta:
            shift = torch.tensor(json.loads(meta["m3_occ_logit_shift"]), dtype=torch.float32)
            self.head.occ.logit_adjustment = lambda: shift
        self.session = _session(path, device)
        # one graph per sensor condition with its own BatchNorm statistics; _ConditionGraphs picks one per frame
        folder = os.path.dirname(os.path.abspath(str(path)))
        self.condition_sessions = {c: _session(os.path.join(folder, f), device)
                                   for c, f in json.loads(meta.get("m3_condition_files", "{}")).items()}
        self.condition = None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = json.loads(meta["m3_outputs"])
        self.refiner_net = None
        if self.refiner is not None:
            rpath = os.path.join(os.path.dirname(os.path.abspath(str(path))), meta["m3_refiner_file"])
            self.refiner_net = _RefinerNet(_session(rpath, device))

    def to(self, device):
        return self

    def eval(self):
        return self

    def parameters(self):
        return self.torch_model.parameters()

    def run_graph(self, x):
        """``{output name: numpy array}`` of the ONNX graph on prepared inputs ``x``."""
        feeds = {}
        for name in self.inputs:
            v = x[name].detach().cpu()
            feeds[name] = v.numpy() if v.dtype == torch.bool else v.numpy().astype(
                np.float32 if v.is_floating_point() else np.int64)
        session = self.condition_sessions.get(self.condition, self.session)
        return dict(zip(self.outputs, session.run(self.outputs, feeds), strict=True))

    def predict(self, batch):
        x = prepare_inputs(self.torch_model, batch)
        with stage("network"):
            raw = {k: torch.from_numpy(v) for k, v in self.run_graph(x).items()}
        outputs = {}
        if "det" in self.tasks:
            keys = ("heatmap", "cls_logits", "code", "cells", "labels", "heat_score", "anchor_offset")
            outputs["det"] = {k: raw[k] for k in keys if k in raw}
        if "map" in self.tasks:
            outputs["map"] = {"logits": raw["map_logits"]}
        if "occ" in self.tasks:
            outputs["occ"] = {"logits": raw["occ_logits"]}
        with stage("decode"):
            results = self.head.decode(outputs, batch, self.score_threshold, max_boxes=self.max_boxes)
            if "camera_map_logits" in raw:  # model.camera_map_blend: as M3Net.predict does
                use = camera_map_frames(batch["lidar_mask"], batch["cam_mask"])
                blend_camera_map(results, raw["camera_map_logits"], use, self.torch_model.camera_map_blend)
        with stage("refiner"):
            if self.refiner is not None:
                for r, points in zip(results, self.torch_model._lidar_points(batch), strict=True):
                    boxes, scores = self.refiner.refine(points, r["boxes"], r["scores"], r["labels"],
                                                        net=self.refiner_net)
                    order = scores.argsort(descending=True)
                    r.update(boxes=boxes[order], scores=scores[order], labels=r["labels"][order])
        return results


class _ConditionGraphs:
    """Stands in for the Predictor's :class:`perception.models.sensor_norms.SensorNorms`: ``use(condition)``
    selects that condition's graph (None, or a condition without one: the main graph) and returns it, so the
    Predictor decides and notes the condition the same way for both paths."""

    def __init__(self, model):
        self.model = model

    def use(self, condition):
        self.model.condition = condition if condition in self.model.condition_sessions else None
        return self.model.condition


class OnnxPredictor:
    """A :class:`perception.runtime.Predictor` running ``path`` (from ``perception export``) with ONNX Runtime.
    ``score_threshold``: override of the config's detection threshold."""

    def __new__(cls, path, device="cpu", score_threshold=None):
        cfg, meta = load_config_from_onnx(path)
        if score_threshold is not None:
            cfg["model"]["score_threshold"] = float(score_threshold)
        predictor = Predictor(cfg, None, device="cpu")
        predictor.model = OnnxModel(path, cfg, meta, device, torch_model=predictor.model)
        predictor.onnx_path = str(path)
        predictor.torch_model = predictor.model.torch_model
        if predictor.model.condition_sessions:
            predictor.sensor_norms = _ConditionGraphs(predictor.model)
        if meta.get("m3_occ_prior_file"):  # model.occ_prior_fill: the prior the checkpoint carried
            prior_path = os.path.join(os.path.dirname(os.path.abspath(path)), meta["m3_occ_prior_file"])
            if not os.path.isfile(prior_path):
                raise FileNotFoundError(f"{path}: its occupancy prior {prior_path} is missing (perception export "
                                        "writes it beside the .onnx file)")
            prior = np.load(prior_path)
            predictor.occ_fill = (check_occ_prior({"labels": torch.from_numpy(prior)}, where=str(path)),
                                  fill_classes(cfg["model"]["occ_prior_fill"]))
        return predictor
