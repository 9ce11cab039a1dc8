"""Score a split: detections through the devkit, BEV map IoU, Occ3D mIoU + RayIoU.

GT sources: detection GT is loaded by the devkit itself (``DetectionEval``); BEV map GT is
``Sample.bev_map`` (LiDAR frame, from the data layer's map rasterizer) and Occ3D GT is ``Sample.occupancy``
(``gts/<scene>/<token>/labels.npz``, ego frame). A sample without BEV/occupancy GT is skipped for that
task and the report counts it.
"""

import os

import numpy as np

from perception.data.sample import Sample
from perception.eval.bev_iou import BevIou
from perception.eval.occ_miou import OccMiou
from perception.eval.ray_iou import RayIou, sparseocc_origins
from perception.geometry import make_transform


def split_sample_tokens(nusc, split):
    """Sample tokens of the split's scenes (devkit ``create_splits_scenes``), scene by scene in time order."""
    from nuscenes.utils.splits import create_splits_scenes

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


def eval_samples(nusc, tokens):
    """Minimal :class:`Sample` objects (poses, scene, Occ3D path) for scoring saved predictions.

    ``lidar2ego``/``ego2global`` at the LiDAR keyframe timestamp; ``occ_path`` =
    ``<dataroot>/gts/<scene_name>/<token>/labels.npz`` when it exists. No BEV map hook: pass samples from the
    data layer to score BEV maps.
    """
    out = []
    for token in tokens:
        rec = nusc.get("sample", token)
        sd = nusc.get("sample_data", rec["data"]["LIDAR_TOP"])
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        scene = nusc.get("scene", rec["scene_token"])["name"]
        occ = os.path.join(nusc.dataroot, "gts", scene, token, "labels.npz")
        out.append(Sample(
            token=token, lidar_path=os.path.join(nusc.dataroot, sd["filename"]),
            lidar2ego=make_transform(cs["rotation"], cs["translation"]),
            ego2global=make_transform(pose["rotation"], pose["translation"]),
            timestamp=rec["timestamp"], scene_name=scene, dataroot=nusc.dataroot,
            occ_path=occ if os.path.isfile(occ) else None,
        ))
    return out


def scene_lidar_poses(samples):
    """``{scene_name: [lidar2global 4x4, ...]}`` in the order given (time order within a scene)."""
    poses = {}
    for s in samples:
        poses.setdefault(s.scene_name, []).append(s.lidar2global)
    return poses


class DenseScores:
    """The dense-task accumulators of a split (mergeable across ranks)."""

    def __init__(self, with_rays=True):
        self.bev = BevIou()
        self.occ = OccMiou()
        self.ray = RayIou() if with_rays else None
        self.skipped = {"bev": 0, "occ": 0}

    def add(self, sample, bev_probs=None, occ_labels=None, scene_poses=()):
        """Score one sample's predictions against its GT (``bev_probs`` LiDAR frame, ``occ_labels`` ego)."""
        if bev_probs is not None:
            gt = sample.bev_map
            if gt is None:
                self.skipped["bev"] += 1
            else:
                self.bev.update(bev_probs, gt)
        if occ_labels is not None:
            occ = sample.occupancy
            if occ is None:
                self.skipped["occ"] += 1
            else:
                self.occ.update(occ_labels, occ.semantics, occ.mask_camera)
                if self.ray is not None:
                    origins = sparseocc_origins(sample.lidar2ego, sample.lidar2global, scene_poses)
                    self.ray.update(occ_labels, occ.semantics, origins)

    def merge(self, other):
        self.bev.merge(other.bev)
        self.occ.merge(other.occ)
        if self.ray is not None:
            self.ray.merge(other.ray)
        for k in self.skipped:
            self.skipped[k] += other.skipped[k]

    def compute(self):
        out = {}
        if self.bev.num_samples:
            out["bev_map"] = self.bev.compute()
        if self.occ.num_samples:
            out["occupancy"] = self.occ.compute()
            if self.ray is not None:
                out["occupancy"]["ray"] = self.ray.compute()
        out["skipped_no_gt"] = dict(self.skipped)
        return out


def score_dense_folders(samples, bev_dir=None, occ_dir=None, tokens_bev=(), tokens_occ=(), with_rays=True):
    """Accumulate saved dense predictions (see :mod:`perception.eval.results_io`) for the given tokens."""
    from perception.eval.results_io import load_bev, load_occ

    dense = DenseScores(with_rays)
    poses = scene_lidar_poses(samples)
    bev_set, occ_set = set(tokens_bev), set(tokens_occ)
    for s in samples:
        bev = load_bev(bev_dir, s.token) if bev_dir and s.token in bev_set else None
        occ = load_occ(occ_dir, s.token) if occ_dir and s.token in occ_set else None
        dense.add(s, bev, occ, poses[s.scene_name])
    return dense


def score_saved(nusc, split, out_dir, results=None, bev_dir=None, occ_dir=None, allow_partial=False,
                samples=None, with_rays=True):
    """Validate, then score saved predictions of ``split``; returns the metrics dict (also metrics.json).

    ``samples``: :class:`Sample` list of the split (data layer, with BEV map GT); default :func:`eval_samples`.
    All inputs are validated before any scoring.
    """
    from perception.eval import report
    from perception.eval.detection import evaluate_detection, write_submission
    from perception.eval.results_io import load_submission, validate_dense_folder, validate_submission

    tokens = split_sample_tokens(nusc, split)
    if results is None and bev_dir is None and occ_dir is None:
        raise ValueError("nothing to score: give --results, --bev-results and/or --occ-results")
    submission = load_submission(results) if results else None
    det_tokens = validate_submission(submission, tokens, allow_partial) if submission else []
    bev_tokens = validate_dense_folder(bev_dir, tokens, "bev", allow_partial) if bev_dir else []
    occ_tokens = validate_dense_folder(occ_dir, tokens, "occ", allow_partial) if occ_dir else []

    if samples is None:  # BEV map GT needs the data layer's samples (map hook); the rest only poses
        samples = load_split_samples(nusc, split, tokens, os.path.join(out_dir, "index")) if bev_dir \
            else eval_samples(nusc, tokens)
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
    dense = score_dense_folders(samples, bev_dir, occ_dir, bev_tokens, occ_tokens, with_rays)
    metrics.update(dense.compute())
    report.write_all(metrics, out_dir, det_data)
    return metrics


def predict_split(predictor, samples, scene_poses=None, progress=True):
    """Run ``predictor.predict_sample`` over ``samples`` (tqdm bar).

    ``scene_poses``: :func:`scene_lidar_poses` of the WHOLE split (RayIoU origins), default from ``samples``.

    Returns ``(det_results, dense)``: ``det_results`` {token: [submission boxes]} (global frame) and the
    :class:`DenseScores` of the BEV/occupancy predictions.
    """
    from tqdm import tqdm

    from perception.eval.detection import lidar_boxes_to_submission

    det, dense = {}, DenseScores()
    poses = scene_poses if scene_poses is not None else scene_lidar_poses(samples)
    for s in tqdm(samples, desc="eval", disable=not progress):
        out = predictor.predict_sample(s)
        det[s.token] = lidar_boxes_to_submission(
            s.token, _np(out["boxes"]), _np(out["scores"]), _np(out["labels"]), s.lidar2global)
        bev = out.get("bev_probs")
        occ = out.get("occ_labels")
        dense.add(s, None if bev is None else _np(bev), None if occ is None else _np(occ), poses[s.scene_name])
    return det, dense


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def load_split_samples(nusc, split, tokens, work_dir, build=True):
    """Full :class:`Sample` objects of ``tokens`` (cameras, sweeps, BEV map hook) from the data layer.

    Indexes the dataroot once into ``<work_dir>/index_<version>.pkl`` (``perception.data.nuscenes_index``,
    skipped when ``build`` is False: another rank builds it) and loads ``split`` with ``load_info_file``.
    """
    from perception.data.info_file import load_info_file
    from perception.data.nuscenes_index import build_index

    path = os.path.join(work_dir, f"index_{nusc.version}.pkl")
    if build and not os.path.isfile(path):
        os.makedirs(work_dir, exist_ok=True)
        build_index(nusc.dataroot, nusc.version, path, progress=False)
    by_token = {s.token: s for s in load_info_file(path, data_root=nusc.dataroot, split=split)}
    missing = [t for t in tokens if t not in by_token]
    if missing:
        raise ValueError(f"index {path}: split {split!r} sample {missing[0]} is missing ({len(missing)} in all)")
    return [by_token[t] for t in tokens]


def evaluate_checkpoint(config, checkpoint, dataroot, version, split, out_dir, allow_partial=False,
                        progress=True):
    """Infer ``split`` with ``perception.runtime.Predictor`` (sharded under torchrun) and score all tasks.

    Returns the metrics dict on rank 0 (also ``out_dir/metrics.json``, table, plots), ``None`` elsewhere.
    ``allow_partial`` is accepted for symmetry: inference always covers the whole split.
    """
    from nuscenes.nuscenes import NuScenes

    from perception.eval import distributed, report
    from perception.eval.detection import evaluate_detection, make_submission, write_submission
    from perception.runtime import Predictor

    rank, size = distributed.init_from_env()
    nusc = NuScenes(version=version, dataroot=dataroot, verbose=False)
    tokens = split_sample_tokens(nusc, split)
    work = os.path.join(out_dir, "index")
    samples = load_split_samples(nusc, split, tokens, work, build=True) if rank == 0 else None
    if size > 1:  # the other ranks wait for rank 0's index file
        import torch.distributed as dist

        dist.barrier()
    if samples is None:
        samples = load_split_samples(nusc, split, tokens, work, build=False)
    predictor = Predictor.from_checkpoint(config, checkpoint)
    part = predict_split(predictor, distributed.shard(samples, rank, size), scene_lidar_poses(samples),
                         progress=progress and rank == 0)
    parts = distributed.gather_to_rank0(part)
    if rank != 0:
        return None
    det, dense = distributed.merge_parts(parts)
    metrics = {"split": split, "num_split_samples": len(tokens)}
    path = write_submission(os.path.join(out_dir, "detection", "results_nusc.json"), make_submission(det))
    metrics["detection"], det_data = evaluate_detection(nusc, path, split, os.path.join(out_dir, "detection"))
    metrics["detection"]["num_samples"] = len(det)
    metrics.update(dense.compute())
    report.write_all(metrics, out_dir, det_data)
    return metrics
