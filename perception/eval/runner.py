"""Score a split: detections through the devkit, BEV map IoU, occupancy (Occ3D mIoU + RayIoU, or OpenOccupancy).

GT sources: detection GT is loaded by the devkit itself (``DetectionEval``); every other GT comes from the
data layer's :class:`Sample` objects of the split (:func:`load_split_samples`, in model and saved mode
alike): BEV map GT is ``Sample.bev_map`` (LiDAR frame, the map rasterizer) and Occ3D GT is
``Sample.occupancy`` (``gts/<scene>/<token>/labels.npz``, ego frame). With an OpenOccupancy occupancy grid
(config ``model.head.occ.grid='openocc'``, or saved mode with ``openocc_root``) occupancy is scored with
:mod:`perception.eval.openocc` against the nuScenes-Occupancy labels under ``openocc_root``. A sample without
BEV/occupancy GT is skipped for that task and the report counts it. The dense scores accumulate in
:class:`perception.eval.dense.DenseScores`.
"""

import os

import torch
import torch.distributed as dist
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import create_splits_scenes
from tqdm import tqdm

from perception.config import load_config, occupancy_grid_name
from perception.data.info_file import load_info_file
from perception.data.nuscenes_index import build_index, default_index_path
from perception.data.openocc_labels import openocc_label_path
from perception.eval import distributed, report
from perception.eval.dense import DenseScores, scene_lidar_poses, score_dense_folders
from perception.eval.detection import evaluate_detection, lidar_boxes_to_submission, make_submission, write_submission
from perception.eval.region import check_region
from perception.eval.results_io import load_submission, validate_dense_folder, validate_submission
from perception.runtime import Predictor, add_fallback_models
from perception.runtime.device import resolve_device


def split_sample_tokens(nusc, split):
    """Sample tokens of the split's scenes (devkit ``create_splits_scenes``), scene by scene in time order."""
    splits = create_splits_scenes()
    if split not in splits:
        raise ValueError(f"--split {split!r} is not a nuScenes split ({sorted(splits)})")
    names = set(splits[split])
    tokens = []
    for scene in sorted(nusc.scene, key=lambda s: s["name"]):
        if scene["name"] in names:
            token = scene["first_sample_token"]
            while token:
                tokens.append(token)
                token = nusc.get("sample", token)["next"]
    if not tokens:
        raise ValueError(f"split {split!r}: none of its scenes is in the dataroot {nusc.dataroot}")
    return tokens


def occupancy_protocol(cfg):
    """``'occ3d'`` or ``'openocc'``: the protocol of the config's occupancy grid, named like the grid
    (``model.head.occ.grid``: :func:`perception.config.occupancy_grid_name`)."""
    return occupancy_grid_name(cfg["model"], getattr(cfg, "filename", None))


def openocc_labels(nusc, tokens, occ_root):
    """``{sample token: nuScenes-Occupancy label file}`` under ``occ_root`` for the tokens that have one.

    A split without any label file is an error naming the first expected path (a wrong ``--openocc-root``);
    single missing files are counted as samples without GT.
    """
    out, expected = {}, []
    for token in tokens:
        rec = nusc.get("sample", token)
        path = openocc_label_path(occ_root, rec["scene_token"], rec["data"]["LIDAR_TOP"])
        expected.append(path)
        if os.path.isfile(path):
            out[token] = path
    if not out:
        raise FileNotFoundError(f"--openocc-root {occ_root}: no nuScenes-Occupancy label file for the split, "
                                f"e.g. {expected[0]}")
    return out


def score_saved(nusc, split, out_dir, results=None, bev_dir=None, occ_dir=None, allow_partial=False,
                with_rays=True, openocc_root=None):
    """Validate, then score saved predictions of ``split``; returns the metrics dict (also metrics.json).

    All inputs are validated before any scoring. GT comes from the data layer (:func:`load_split_samples`,
    index under ``out_dir/index``). ``openocc_root``: the ``occ_dir`` predictions are on the OpenOccupancy
    grid and are scored against the nuScenes-Occupancy labels there.
    """
    tokens = split_sample_tokens(nusc, split)
    if results is None and bev_dir is None and occ_dir is None:
        raise ValueError("nothing to score: give --results, --bev-results and/or --occ-results")
    submission = load_submission(results) if results else None
    det_tokens = validate_submission(submission, tokens, allow_partial) if submission else []
    bev_tokens = validate_dense_folder(bev_dir, tokens, "bev", allow_partial) if bev_dir else []
    occ_kind = "occ" if openocc_root is None else "openocc"
    occ_tokens = validate_dense_folder(occ_dir, tokens, occ_kind, allow_partial) if occ_dir else []
    if openocc_root and not occ_dir:
        raise ValueError("--openocc-root scores saved occupancy: give --occ-results too")
    labels = openocc_labels(nusc, tokens, openocc_root) if openocc_root else None

    samples = load_split_samples(nusc, split, tokens, os.path.join(out_dir, "index"))
    metrics = {"split": split, "num_split_samples": len(tokens)}
    counts = {"detection": (results, det_tokens), "bev": (bev_dir, bev_tokens), "occ": (occ_dir, occ_tokens)}
    if any(src and len(t) < len(tokens) for src, t in counts.values()):
        metrics["scored"] = ", ".join(f"{k} {len(t)}/{len(tokens)} samples" for k, (src, t) in counts.items() if src)
    det_data = None
    if submission:
        os.makedirs(out_dir, exist_ok=True)
        path = write_submission(os.path.join(out_dir, "detection", "results_nusc.json"), submission)
        partial = len(det_tokens) < len(tokens)
        metrics["detection"], det_data = evaluate_detection(nusc, path, split, os.path.join(out_dir, "detection"),
                                                            partial=partial)
        metrics["detection"]["num_samples"] = len(det_tokens)
    dense = score_dense_folders(samples, bev_dir, occ_dir, bev_tokens, occ_tokens, with_rays, labels)
    metrics.update(dense.compute())
    report.write_all(metrics, out_dir, det_data)
    return metrics


def predict_split(predictor, samples, scene_poses=None, progress=True, openocc_labels=None, withhold=(),
                  region="all"):
    """Run ``predictor.predict_sample`` over ``samples`` (tqdm bar).

    ``scene_poses``: :func:`scene_lidar_poses` of the WHOLE split (RayIoU origins), default from ``samples``.
    ``openocc_labels``: see :class:`DenseScores`. ``withhold``: sensors kept from the model on every sample
    (``Predictor.predict_sample``). ``samples`` come in time order within each scene (the map memory moves
    from frame to frame; ``predictor`` needs ``predict_sample`` and ``reset_memory``).

    Returns ``(det_results, dense)``: ``det_results`` {token: [submission boxes]} (global frame) and the
    :class:`DenseScores` of the BEV/occupancy predictions (``dense.degraded`` counts the samples that ran
    degraded, by reason).
    """
    det, dense = {}, DenseScores(openocc_labels=openocc_labels, region=region)
    poses = scene_poses if scene_poses is not None else scene_lidar_poses(samples)
    scene = None
    for s in tqdm(samples, desc="eval", disable=not progress):
        if s.scene_name != scene:  # the BEV map memory (model.map_memory_s) starts over with each scene
            predictor.reset_memory()
            scene = s.scene_name
        pred = predictor.predict_sample(s, withhold)  # a perception.runtime.Prediction (numpy arrays)
        dense.count_degraded(pred.warnings)
        det[s.token] = lidar_boxes_to_submission(s.token, pred.boxes, pred.scores, pred.labels, s.lidar2global)
        dense.add(s, pred.bev_probs, pred.occ_labels, poses[s.scene_name])
    return det, dense


def load_split_samples(nusc, split, tokens, work_dir, build=True):
    """Full :class:`Sample` objects of ``tokens`` (cameras, sweeps, BEV map hook) from the data layer.

    Reuses the dataroot's index when training already built it (``default_index_path``); otherwise indexes
    the dataroot once into ``<work_dir>/index_<version>.pkl`` (skipped when ``build`` is False: another rank
    builds it). Loads ``split`` with ``load_info_file``.
    """
    path = default_index_path(nusc.dataroot, nusc.version)
    if not os.path.isfile(path):
        path = os.path.join(work_dir, f"index_{nusc.version}.pkl")
    if build and not os.path.isfile(path):
        os.makedirs(work_dir, exist_ok=True)
        build_index(nusc.dataroot, nusc.version, path, progress=False)
    by_token = {s.token: s for s in load_info_file(path, data_root=nusc.dataroot, split=split)}
    missing = [t for t in tokens if t not in by_token]
    if missing:
        raise ValueError(f"index {path}: split {split!r} sample {missing[0]} is missing ({len(missing)} in all)")
    return [by_token[t] for t in tokens]


def evaluate_checkpoint(config, checkpoint, dataroot, version, split, out_dir, progress=True, openocc_root=None,
                        cfg_options=(), device="cpu", withhold=(), region="all", bf16=False, fallbacks=None):
    """Infer ``split`` with ``perception.runtime.Predictor`` (sharded under torchrun) and score all tasks.

    Returns the metrics dict on rank 0 (also ``out_dir/metrics.json``, table, plots), ``None`` elsewhere.
    Inference always covers the whole split (``allow_partial`` is for :func:`score_saved` only). ``openocc_root``
    (nuScenes-Occupancy labels) is required when the config's occupancy grid is OpenOccupancy and refused
    otherwise. ``cfg_options``: config overrides (``['a.b=c']``); ``device``: 'cpu', 'cuda' (this rank's
    ``LOCAL_RANK`` GPU) or 'auto' (CUDA when available). ``withhold``: sensors kept from the model
    (``Predictor.predict_sample``); ``region``: score only inside it (:mod:`perception.eval.region`).
    ``bf16``: the model under bf16 autocast on a CPU with native bf16 (``metrics['precision']`` says what ran).
    ``fallbacks``: {kind: (config, checkpoint)} models for the samples without LiDAR / cameras
    (:func:`perception.runtime.add_fallback_models`; ``metrics['fallbacks']`` names them, and the reasons of
    ``metrics['degraded']`` count the samples each ran).
    """
    check_region(region)
    device = resolve_device(device).type
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    cfg = load_config(config, list(cfg_options)) if isinstance(config, (str, os.PathLike)) else config
    name = getattr(cfg, "filename", None) or "the config"
    predictor = add_fallback_models(Predictor(cfg, checkpoint, device=device, bf16=bf16), fallbacks or {},
                                    device=device, bf16=bf16)
    protocol = occupancy_protocol(predictor.cfg) if "occ" in predictor.tasks else None
    if protocol == "openocc" and openocc_root is None:
        raise ValueError(f"{name}: the occupancy grid is OpenOccupancy: pass --openocc-root DIR "
                         f"(nuScenes-Occupancy labels)")
    if protocol != "openocc" and openocc_root is not None:
        raise ValueError(f"--openocc-root given but {name} does not predict on the OpenOccupancy grid")
    rank, size = distributed.init_from_env()
    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    tokens = split_sample_tokens(nusc, split)
    labels = openocc_labels(nusc, tokens, openocc_root) if openocc_root else None
    work = os.path.join(out_dir, "index")
    samples = load_split_samples(nusc, split, tokens, work, build=True) if rank == 0 else None
    if size > 1:  # the other ranks wait for rank 0's index file
        dist.barrier()
    if samples is None:
        samples = load_split_samples(nusc, split, tokens, work, build=False)
    part = predict_split(predictor, distributed.shard(samples, rank, size, group=lambda s: s.scene_name),
                         scene_lidar_poses(samples),
                         progress=progress and rank == 0, openocc_labels=labels, withhold=withhold,
                         region=region)
    parts = distributed.gather_to_rank0(part)
    if rank != 0:
        return None
    det, dense = distributed.merge_parts(parts)
    metrics = {"split": split, "num_split_samples": len(tokens), "withheld": sorted(withhold),
               "precision": predictor.precision, "fallbacks": {k: name for k, (_, name) in predictor.fallbacks.items()}}
    path = write_submission(os.path.join(out_dir, "detection", "results_nusc.json"), make_submission(det))
    metrics["detection"], det_data = evaluate_detection(nusc, path, split, os.path.join(out_dir, "detection"),
                                                        region=region)
    metrics["detection"]["num_samples"] = len(det)
    metrics.update(dense.compute())
    report.write_all(metrics, out_dir, det_data)
    return metrics
