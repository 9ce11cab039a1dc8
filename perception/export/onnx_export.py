"""``perception export``: :class:`perception.export.graph.ExportGraph` (and the refiner's network) to ONNX.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) traces the graph on one synthetic
frame; the number of pillars and of pooled frustum points (and the refiner's boxes) are dynamic axes.
Opset 20 by default: the occupancy head samples 3D volumes (``GridSample`` on 5D inputs needs opset 20);
a config without occupancy also exports at 17. The metadata holds what the runtime needs besides the graph:
the resolved config, the occupancy logit shift (the head's class-prior correction, computed from buffers of
the checkpoint), the refiner file name, the graphs per sensor condition (:func:`_export_conditions`) and,
with ``model.occ_prior_fill``, the occupancy prior's file (``OUT.occ_prior.npy``, :mod:`perception.runtime.occ_prior`).
"""

import dataclasses
import json
import os
import warnings

import numpy as np
import onnx
import torch

from perception.config import load_config
from perception.export.graph import ExportGraph, RefinerGraph
from perception.export.inputs import prepare_inputs
from perception.runtime import Predictor
from perception.runtime.frame import frame_to_sample
from perception.runtime.ring_frame import ring_frame

DYNAMIC = {"voxels": {0: "pillars"}, "num_points": {0: "pillars"}, "voxel_coords": {0: "pillars"},
           "pool_depth_index": {0: "frustum_points"}, "pool_context_index": {0: "frustum_points"},
           "pool_cell_index": {0: "frustum_points"}}


def config_text(cfg):
    """The resolved config as a Python literal (``ast.literal_eval`` reads it back, tuples kept)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, tuple):
            return tuple(plain(x) for x in v)
        return v
    return repr(plain(cfg))


def example_batch(predictor, frame=None):
    frame = frame or ring_frame(predictor.cfg)
    sample, has_lidar = frame_to_sample(frame, [], predictor.needs_lidar2ego)
    batch, _ = predictor.batch_for(sample, has_lidar)
    return batch


def _export(module, args, path, names, outputs, dynamic, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on the Python-side shape checks
        torch.onnx.export(module, tuple(args), path, input_names=list(names), output_names=list(outputs),
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False, do_constant_folding=True)


def _export_graph(graph, args, path, opset):
    """:class:`ExportGraph` ``graph`` traced on ``args`` into ``path`` (its inputs, outputs and dynamic axes)."""
    with torch.no_grad():
        _export(graph, args, path, graph.inputs, graph.outputs, {k: v for k, v in DYNAMIC.items() if k in graph.inputs},
                opset)


def export_onnx(config, checkpoint, out_path, opset=20, cfg_options=(), predictor=None):
    """Write ``out_path`` (and ``<stem>.refiner.onnx`` with a refiner). Returns the files written."""
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    if predictor is None:
        cfg = load_config(config, list(cfg_options)) if isinstance(config, (str, os.PathLike)) else config
        predictor = Predictor(cfg, checkpoint, device="cpu")
    model = predictor.model.eval()
    if predictor.sensor_norms is not None:
        predictor.sensor_norms.use(None)  # the main graph holds the trained statistics, whatever ran before
    if "occ" in model.tasks and opset < 20:
        raise ValueError("the occupancy head samples 3D volumes: ONNX GridSample on 5D inputs needs opset >= 20")
    batch = example_batch(predictor)
    graph = ExportGraph(model).eval()
    with torch.inference_mode():
        x = prepare_inputs(model, batch)
    args = [x[n].clone() for n in graph.inputs]
    out_path = str(out_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    _export_graph(graph, args, out_path, opset)
    files = [out_path]
    condition_files = _export_conditions(predictor, graph, args, out_path, opset)
    files += [os.path.join(os.path.dirname(os.path.abspath(out_path)), f) for f in condition_files.values()]
    refiner_file = ""
    if model.refiner is not None:
        refiner_file = os.path.splitext(os.path.basename(out_path))[0] + ".refiner.onnx"
        m = 4
        local = torch.randn(m, model.refiner.max_points, model.lidar_encoder.in_channels)
        mask = torch.rand(m, model.refiner.max_points) > 0.5
        proposals = torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 1.6, 0.3, 0.0, 0.0]]).repeat(m, 1)
        labels = torch.zeros(m, dtype=torch.long)
        path = os.path.join(os.path.dirname(os.path.abspath(out_path)), refiner_file)
        with torch.no_grad():
            _export(RefinerGraph(model.refiner).eval(), [local, mask, proposals, labels], path,
                    ["local", "mask", "proposals", "labels"], ["residuals", "quality"],
                    {n: {0: "boxes"} for n in ("local", "mask", "proposals", "labels", "residuals", "quality")}, opset)
        files.append(path)
    prior_file = ""
    if predictor.occ_fill is not None:  # frames without LiDAR: the runtime fills from the training prior
        prior_file = os.path.splitext(os.path.basename(out_path))[0] + ".occ_prior.npy"
        files.append(os.path.join(os.path.dirname(os.path.abspath(out_path)), prior_file))
        np.save(files[-1], predictor.occ_fill[0])
    proto = onnx.load(out_path, load_external_data=False)
    meta = {
        "m3_config": config_text(predictor.cfg),
        "m3_config_file": str(getattr(predictor.cfg, "filename", "") or ""),
        "m3_refiner_file": refiner_file,
        "m3_condition_files": json.dumps(condition_files),
        "m3_occ_prior_file": prior_file,
        "m3_inputs": json.dumps(graph.inputs),
        "m3_outputs": json.dumps(graph.outputs),
        "m3_torch": torch.__version__,
    }
    if "occ" in model.tasks:
        meta["m3_occ_logit_shift"] = json.dumps(model.head.occ.logit_adjustment().tolist())
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, out_path)
    return files


def _export_conditions(predictor, graph, args, out_path, opset):
    """One more graph per sensor condition the checkpoint has BatchNorm statistics for (``calibrate-norms``):
    the same network with that condition's statistics, ``<stem>.<condition>.onnx``. Returns ``{condition: file
    name}``; the model gets its trained statistics back."""
    norms = predictor.sensor_norms
    if norms is None:
        return {}
    stem, folder = os.path.splitext(os.path.basename(out_path))[0], os.path.dirname(os.path.abspath(out_path))
    files = {}
    try:
        for condition in norms.conditions:
            norms.use(condition)
            files[condition] = f"{stem}.{condition}.onnx"
            _export_graph(graph, args, os.path.join(folder, files[condition]), opset)
    finally:
        norms.use(None)
    return files


QUERY_OUTPUTS = ("cls_logits", "code", "cells", "labels", "heat_score", "anchor_offset")


def _query_order(cells, labels, num_cells):
    """Permutation sorting the detection queries by (class, cell): the decoder treats its queries as a set
    (self-attention, per-query FFNs), so two runs that pick the same peaks in another order are the same."""
    key = labels.long() * num_cells + cells.long()
    return key.argsort(dim=-1)


def compare_outputs(reference, onnx_outputs, names):
    """``{name: relative error}`` (max abs difference / max abs reference; integer outputs: fraction of
    entries that differ). Detection query outputs are compared in (class, cell) order (:func:`_query_order`:
    equal heatmap peaks may come out of torch.topk and ONNX TopK in different orders)."""
    errors = {}
    got_all = {n: torch.as_tensor(onnx_outputs[n]).reshape(reference[n].shape) for n in names}
    ref_all = {n: reference[n].detach().cpu() for n in names}
    if "cells" in names:
        num_cells = int(ref_all["heatmap"].shape[-1] * ref_all["heatmap"].shape[-2])
        r_order = _query_order(ref_all["cells"], ref_all["labels"], num_cells)
        g_order = _query_order(got_all["cells"], got_all["labels"], num_cells)
        for n in QUERY_OUTPUTS:
            if n in names:
                idx_r = r_order if ref_all[n].dim() == 2 else r_order[..., None].expand_as(ref_all[n])
                idx_g = g_order if got_all[n].dim() == 2 else g_order[..., None].expand_as(got_all[n])
                ref_all[n], got_all[n] = ref_all[n].gather(1, idx_r), got_all[n].gather(1, idx_g)
    for name in names:
        ref, got = ref_all[name], got_all[name]
        if ref.is_floating_point():
            scale = float(ref.abs().max()) or 1.0
            errors[name] = float((got.float() - ref.float()).abs().max()) / scale
        else:
            errors[name] = float((got.long() != ref.long()).float().mean())
    return errors


def reference_outputs(model, x, names):
    """The PyTorch graph's outputs on prepared inputs ``x`` (eval, no grad), by name."""
    graph = ExportGraph(model).eval()
    with torch.inference_mode():
        out = graph(*[x[n] for n in graph.inputs])
    return dict(zip(graph.outputs, out, strict=True))


def same_boxes(a, b, tol=1e-3):
    """Two :class:`Prediction` s hold the same decoded boxes, scores and labels (up to ``tol``, in any order
    of equal scores)."""
    if len(a.boxes) != len(b.boxes):
        return False
    if not len(a.boxes):
        return True

    rows_a = np.concatenate([a.labels[:, None] * 1000.0, a.boxes, a.scores[:, None]], 1).astype(np.float64)
    rows_b = np.concatenate([b.labels[:, None] * 1000.0, b.boxes, b.scores[:, None]], 1).astype(np.float64)
    rows_a, rows_b = np.nan_to_num(rows_a), np.nan_to_num(rows_b)
    return matched_fraction(rows_a, rows_b, tol) == 1.0


def matched_fraction(rows_a, rows_b, tol=1e-3):
    """Fraction of the rows of ``rows_a`` with a row of ``rows_b`` equal within ``tol`` (rtol and atol)."""
    if not len(rows_a):
        return 1.0
    close = np.abs(rows_a[:, None, :] - rows_b[None, :, :]) <= tol + tol * np.abs(rows_b[None, :, :])
    return float(close.all(-1).any(1).mean())


def box_rows(p):
    return np.nan_to_num(np.concatenate([p.labels[:, None] * 1000.0, p.boxes, p.scores[:, None]], 1).astype(np.float64))


def check_export(onnx_path, config=None, checkpoint=None, cfg_options=(), frame=None, tolerance=1e-3):
    """Run ONNX Runtime and PyTorch on one synthetic frame: every graph output (relative error), the raw
    network path against ``M3Net.predict`` and the decoded boxes. Returns ``{'ok', 'errors', 'lines'}``."""
    from perception.export.onnx_runtime import OnnxPredictor  # optional: ONNX Runtime (the export extra), --check only

    ort_pred = OnnxPredictor(onnx_path)
    cfg = ort_pred.cfg
    torch_pred = Predictor(cfg, checkpoint, device="cpu") if checkpoint else None
    if torch_pred is None:
        raise ValueError("check_export needs the checkpoint the file was exported from")
    frame = frame or ring_frame(cfg)
    batch = example_batch(torch_pred, frame)
    with torch.inference_mode():
        x = prepare_inputs(torch_pred.model, batch)
    ref = reference_outputs(torch_pred.model, x, ort_pred.model.outputs)
    got = ort_pred.model.run_graph(x)
    errors = compare_outputs(ref, got, ort_pred.model.outputs)
    a, b = torch_pred.predict(frame), ort_pred.predict(frame)
    lines = [f"{n:14s} relative error {e:.2e}" for n, e in errors.items()]
    ok = all(e < tolerance for e in errors.values())
    if not same_boxes(a, b):
        ok = False
        lines.append(f"decoded boxes differ: {len(a.boxes)} (PyTorch) vs {len(b.boxes)} (ONNX Runtime)")
    else:
        lines.append(f"decoded boxes: {len(a.boxes)} equal (1e-3)")
    if a.occ_labels is not None:
        lines.append(f"occupancy labels equal on {100 * float((a.occ_labels == b.occ_labels).mean()):.4f} % of voxels")
    for condition in ort_pred.model.condition_sessions:
        condition_ok, line = _check_condition(torch_pred, ort_pred, frame, condition, tolerance)
        ok &= condition_ok
        lines.append(line)
    return {"ok": ok, "errors": errors, "lines": lines}


def _check_condition(torch_pred, ort_pred, frame, condition, tolerance):
    """The frame with ``condition``'s sensor withheld through both paths (PyTorch with the condition's
    statistics, ONNX Runtime with its graph): the BEV map within ``tolerance``, the occupancy labels, and at
    least 90 % of the boxes (near-equal scores of a camera-only heatmap may trade places)."""
    withheld = (dataclasses.replace(frame, points=np.zeros((0, 4), np.float32)) if condition == "no_lidar"
                else dataclasses.replace(frame, cameras={}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Predictor warns of the withheld sensor
        a, b = torch_pred.predict(withheld), ort_pred.predict(withheld)
    bev = float(np.abs(a.bev_probs - b.bev_probs).max()) if a.bev_probs is not None else 0.0
    occ = float((a.occ_labels == b.occ_labels).mean()) if a.occ_labels is not None else 1.0
    boxes = matched_fraction(box_rows(a), box_rows(b)) if len(a.boxes) == len(b.boxes) else 0.0
    ok = bev < tolerance and occ > 0.9999 and boxes > 0.9
    return ok, (f"{condition} graph: BEV max difference {bev:.1e}, occupancy labels equal on {100 * occ:.4f} %, "
                f"boxes matched {100 * boxes:.1f} %" + ("" if ok else "  <- differs"))
