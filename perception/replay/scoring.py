"""Scoring replayed frames with the evaluation code, when the input is a nuScenes scene or a bag converted
from one: the keyframes' sample tokens come from ``/nuscenes/sample`` (converted bags), from the dataroot
scene itself, or, given ``--dataroot``, from the LiDAR keyframe stamps (:func:`samples_by_stamp`: Foxglove's
nuScenes MCAPs).

Ground truth comes from the data layer's :class:`Sample` s (the dataroot index, as ``perception eval``);
detection is scored by the devkit's ``DetectionEval`` restricted to the replayed keyframes (``partial``),
BEV map and occupancy by :class:`perception.eval.dense.DenseScores`. Only keyframes are scored (sweeps have
no annotations).
"""

import os

from nuscenes.utils.splits import create_splits_scenes

from perception.data.nuscenes_index import VERSION_SPLITS
from perception.data.scene_stream import load_nuscenes
from perception.eval import report
from perception.eval.dense import DenseScores, scene_lidar_poses
from perception.eval.detection import evaluate_detection, lidar_boxes_to_submission, make_submission, write_submission
from perception.eval.runner import load_split_samples
from perception.replay.options import FrameSink


def samples_by_stamp(dataroot, version="v1.0-trainval"):
    """``{LiDAR keyframe stamp ns: sample info}`` of a dataroot (the ``/nuscenes/sample`` content the converter
    writes), to score inputs that do not carry it (Foxglove's nuScenes MCAPs) from their LiDAR stamps."""
    nusc = load_nuscenes(dataroot, version)
    out = {}
    for sd in nusc.sample_data:  # the devkit adds 'channel' to every sample_data record
        if sd["is_key_frame"] and sd["channel"] == "LIDAR_TOP":
            sample = nusc.get("sample", sd["sample_token"])
            scene = nusc.get("scene", sample["scene_token"])
            stamp = int(sd["timestamp"]) * 1000
            out[stamp] = {"sample_token": sd["sample_token"], "scene": scene["name"], "scene_token": scene["token"],
                          "version": version, "dataroot": str(dataroot), "lidar_stamp_ns": stamp}
    return out


class ReplayScorer(FrameSink):
    """Collects the predictions of keyframes (``on_frame``) and scores them (``finish``).

    ``dataroot`` / ``version``: where the GT is (default: what ``/nuscenes/sample`` says). ``work_dir``: the
    index (when the dataroot has none) and the evaluation report (``metrics.json``, plots, devkit files)."""

    def __init__(self, work_dir, dataroot=None, version=None):
        self.work_dir = str(work_dir)
        self.dataroot, self.version = dataroot, version
        self.frames = {}  # sample token -> (pred, scene)

    def on_frame(self, info):
        if info.sample is None:
            return
        self.dataroot = self.dataroot or info.sample.get("dataroot")
        self.version = self.version or info.sample.get("version")
        p = info.pred
        self.frames[info.sample["sample_token"]] = (p.boxes, p.scores, p.labels, p.bev_probs, p.occ_labels,
                                                    info.sample.get("scene"))

    def _nusc(self):
        if not hasattr(self, "_nusc_obj"):
            self._nusc_obj = load_nuscenes(self.dataroot, self.version or "v1.0-trainval")
        return self._nusc_obj

    def finish(self):
        """Score the collected keyframes; returns the metrics dict (also ``work_dir/metrics.json``) or None
        when no replayed frame is a keyframe of a known dataroot."""
        if not self.frames or not self.dataroot or not os.path.isdir(self.dataroot):
            return None

        nusc = self._nusc()
        version = self.version or "v1.0-trainval"
        splits = create_splits_scenes()
        by_split = {}
        for token, (*_, scene) in self.frames.items():
            split = next((s for s in VERSION_SPLITS.get(version, splits) if scene in splits[s]), None)
            by_split.setdefault(split, []).append(token)
        metrics = {"num_frames_scored": 0, "dataroot": self.dataroot, "version": version}
        if None in by_split:
            metrics["not_scored"] = f"{len(by_split.pop(None))} keyframes of scenes in no {version} split"
        det, dense, det_data, det_metrics = {}, DenseScores(), None, []
        for split, tokens in sorted(by_split.items()):
            samples = load_split_samples(nusc, split, tokens, os.path.join(self.work_dir, "index"))
            poses = scene_lidar_poses(samples)
            for s in samples:
                boxes, scores, labels, bev, occ, _ = self.frames[s.token]
                det[s.token] = lidar_boxes_to_submission(s.token, boxes, scores, labels, s.lidar2global)
                dense.add(s, bev, occ, poses[s.scene_name])
            path = write_submission(os.path.join(self.work_dir, "detection", f"results_{split}.json"),
                                    make_submission({t: det[t] for t in tokens}))
            summary, det_data = evaluate_detection(nusc, path, split, os.path.join(self.work_dir, "detection"),
                                                   partial=True)
            summary["num_samples"] = len(tokens)
            det_metrics.append((split, summary))
            metrics["num_frames_scored"] += len(tokens)
        if len(det_metrics) == 1:
            metrics["split"], metrics["detection"] = det_metrics[0]
        elif det_metrics:
            metrics["detection_by_split"] = dict(det_metrics)
        metrics.update(dense.compute())
        report.write_all(metrics, self.work_dir, det_data if len(det_metrics) == 1 else None)
        return metrics
