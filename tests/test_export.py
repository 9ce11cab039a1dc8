"""ONNX export (perception export) against PyTorch on CPU with ONNX Runtime: every graph output within a
relative error of 1e-3, the same boxes after decoding (and refinement), the same BEV map and occupancy, and
`perception bench --backend onnxruntime` on the file."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from perception.config import load_config  # noqa: E402
from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID  # noqa: E402
from perception.export.inputs import prepare_inputs  # noqa: E402
from perception.export.onnx_export import (  # noqa: E402
    box_rows,
    check_export,
    compare_outputs,
    example_batch,
    export_onnx,
    matched_fraction,
    reference_outputs,
    same_boxes,
)
from perception.export.onnx_runtime import OnnxPredictor  # noqa: E402
from perception.models import build_model  # noqa: E402
from perception.models.sensor_norms import SENSOR_NORMS_KEY, condition_layers  # noqa: E402
from perception.runtime import Predictor  # noqa: E402
from perception.runtime.occ_prior import OCC_PRIOR_KEY  # noqa: E402
from perception.runtime.ring_frame import ring_frame  # noqa: E402
from perception.training.checkpoint import save_checkpoint  # noqa: E402

# the map's cue refiner too, the camera's learned no-depth feature (a frame without LiDAR runs it) and the
# camera map head, blended into the map of a frame without LiDAR (a graph output); the map head's two predictions
# blended per class (in the graph)
OPTIONS = ["model.score_threshold=0.0", "model.head.map.lidar_cues=True", "model.camera.lidar_depth_dropout=0.5",
           "model.camera_map_weight=10.0", "model.occ_prior_fill='ground'", "model.camera_map_blend=0.5",
           "model.occ_ground_from_map=0.5", "model.head.map.aux_blend=(0.5, 1.0, 0.5, 0.5, 0.0, 0.5)"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """tiny (all three tasks, the occupancy and the map cue refiners, box refiner) with random weights; a sharper
    heatmap so that the detection peaks are not all equal."""
    d = tmp_path_factory.mktemp("onnx")
    cfg = load_config("configs/tiny.py", OPTIONS)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    torch.nn.init.normal_(model.head.det.queries.heatmap_head[-1].weight, std=0.5)
    for p in [*model.head.occ.head.cue_refiner[-1].parameters(), *model.head.map.refiner.net[-1].parameters()]:
        torch.nn.init.normal_(p, std=0.1)  # cue refiners that do something
    for p in model.refiner.out.parameters():  # and a box refiner that moves boxes
        torch.nn.init.normal_(p, std=0.05)
    torch.nn.init.normal_(model.camera_encoder.missing_depth, std=1.0)
    model.head.occ.head.mlp[-1].bias.data[OCC3D_FREE] += 0.2  # some voxels free, for the no-LiDAR fill
    # BatchNorm statistics of the no-LiDAR condition (as perception calibrate-norms writes them), unlike the
    # trained ones, so that a frame without LiDAR must run the export's no-LiDAR graph to match PyTorch
    norms = {name: {"running_mean": m.running_mean + 0.3 * torch.randn_like(m.running_mean),
                    "running_var": m.running_var * (0.5 + torch.rand_like(m.running_var))}
             for name, m in condition_layers(model, "no_lidar").items()}
    ckpt, plain = d / "model.pth", d / "plain.pth"
    ground = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    ground[:100] = OCC3D_CLASSES.index("driveable_surface")  # a prior for the no-LiDAR fill (half the grid)
    save_checkpoint(ckpt, {"model": model.state_dict(), SENSOR_NORMS_KEY: {"conditions": {"no_lidar": norms}},
                           OCC_PRIOR_KEY: {"labels": torch.from_numpy(ground)}})
    save_checkpoint(plain, {"model": model.state_dict()})
    files = export_onnx("configs/tiny.py", ckpt, d / "tiny.onnx", cfg_options=OPTIONS)
    return {"onnx": d / "tiny.onnx", "ckpt": ckpt, "plain": plain, "files": files, "cfg": cfg}


def test_export_writes_the_network_and_the_refiner(exported):
    import onnx

    onnx_path = str(exported["onnx"])
    assert [str(f) for f in exported["files"]] == [onnx_path, onnx_path.replace(".onnx", ".no_lidar.onnx"),
                                                   onnx_path.replace(".onnx", ".refiner.onnx"),
                                                   onnx_path.replace(".onnx", ".occ_prior.npy")]
    proto = onnx.load(str(exported["onnx"]), load_external_data=False)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["m3_outputs"])[-3:] == ["map_logits", "camera_map_logits", "occ_logits"]


def test_onnxruntime_matches_pytorch_on_every_output_and_after_decoding(exported):
    ort_pred = OnnxPredictor(exported["onnx"])
    torch_pred = Predictor(exported["cfg"], exported["ckpt"])
    frame = ring_frame(exported["cfg"], seed=1)
    batch = example_batch(torch_pred, frame)
    with torch.inference_mode():
        x = prepare_inputs(torch_pred.model, batch)
    names = ort_pred.model.outputs
    assert set(names) >= {"heatmap", "cls_logits", "code", "cells", "labels", "heat_score", "map_logits", "occ_logits",
                          "camera_map_logits"}
    errors = compare_outputs(reference_outputs(torch_pred.model, x, names), ort_pred.model.run_graph(x), names)
    assert all(e < 1e-3 for e in errors.values()), errors

    # The whole path (Python side + graph + decoding + refiner) against M3Net.predict itself.
    a, b = torch_pred.predict(frame), ort_pred.predict(frame)
    assert len(a.boxes) == 100 and same_boxes(a, b), (len(a.boxes), len(b.boxes))
    np.testing.assert_allclose(b.bev_probs, a.bev_probs, atol=1e-4)
    assert (a.occ_labels == b.occ_labels).mean() > 0.9999
    # A frame without LiDAR (the graph gets a dummy pillar that the neck masks out), run by the no-LiDAR graph
    # with that condition's statistics on both paths. The random camera-only heatmap is nearly flat: a few of
    # the 100 peaks are near-ties that float rounding orders differently, so most (not all) boxes must match;
    # the dense outputs all.
    frame.points = np.zeros((0, 4), np.float32)
    with pytest.warns(UserWarning):
        a, b = torch_pred.predict(frame), ort_pred.predict(frame)
        trained = Predictor(exported["cfg"], exported["plain"]).predict(frame)
    assert len(a.boxes) == len(b.boxes) and matched_fraction(box_rows(a), box_rows(b)) > 0.9
    np.testing.assert_allclose(b.bev_probs, a.bev_probs, atol=1e-4)
    assert (a.occ_labels == b.occ_labels).mean() > 0.9999
    assert np.abs(trained.bev_probs - a.bev_probs).max() > 1e-2  # the statistics matter: the main graph would fail
    assert "BatchNorm statistics of the no lidar condition" in b.warnings
    assert "map: 0.5 of it from the camera branch's map head (model.camera_map_blend)" in b.warnings
    # the same runtime step on both; a map probability within float rounding of the threshold may flip a column
    relabelled = [[int(w.split()[1]) for w in p.warnings if "relabelled from the BEV map" in w] for p in (a, b)]
    assert len(relabelled[0]) == len(relabelled[1]) == 1 and relabelled[0][0] > 1000
    assert abs(relabelled[0][0] - relabelled[1][0]) <= 1e-4 * relabelled[0][0]
    filled = [w for w in b.warnings if "from the training prior" in w]  # the fill too, from the exported prior
    assert filled and filled == [w for w in a.warnings if "from the training prior" in w]
    assert not filled[0].startswith("occupancy: 0 ")
    # perception export --check runs the same comparison for every condition graph
    report = check_export(exported["onnx"], checkpoint=exported["ckpt"])
    assert report["ok"] and any(line.startswith("no_lidar graph: ") for line in report["lines"]), report["lines"]


def test_bench_runs_the_onnx_file(exported, tmp_path):
    from perception.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["bench", str(exported["onnx"]), "--frames", "1", "--warmup", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["backend"] == "onnxruntime" and result["fps"] > 0
    assert {"network", "voxelization", "decode", "refiner"} <= set(result["stages"])
