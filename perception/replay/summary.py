"""Replay statistics: per-stage latency (mean, p50, p99), frames processed / skipped by reason, bad input.

Stages (ms per LiDAR frame):

- ``read``: reading the input between two frames (bag I/O, chunk decompression, CDR/protobuf decoding of the
  messages fed to the frame), ``feed``: converting those messages (JPEG decoding, CameraInfo, poses);
- ``decode``: the LiDAR message -> points (``pointcloud2_to_points``), ``assemble``: sweeps + cameras -> Frame;
- ``preprocess``, ``model``, ``postprocess``: the :class:`Predictor` (``predictor`` = their sum);
- ``outputs``: output messages, ``write``: serializing and writing them (and ``--copy-inputs``).

``overhead`` = read + feed + decode + write + outputs + assemble: what replay adds around the predictor.
"""

import json
from collections import Counter

import numpy as np

STAGES = ("read", "feed", "decode", "assemble", "preprocess", "model", "postprocess", "predictor", "outputs", "write",
          "overhead", "total")
OVERHEAD = ("read", "feed", "decode", "assemble", "outputs", "write")
PREDICTOR = ("preprocess", "model", "postprocess")


class ReplayStats:
    def __init__(self):
        self.frames = []  # per processed frame: {stage: ms}
        self.skipped = Counter()  # reason -> frames
        self.input_errors = Counter()  # 'topic: kind' -> messages
        self.camera_missing = Counter()  # camera -> processed frames it was missing from (stale or no image yet)
        self.frames_without_cameras = 0  # processed frames that had none of the model's cameras (LiDAR only)
        self.frames_by_model = Counter()  # 'main' or a fallback's kind -> processed frames it ran
        self.camera_triggered = 0  # frames triggered by a camera image while the LiDAR was silent (CameraTrigger)
        self.warnings = []  # the first lines of each kind (per-frame warnings name topic and stamp)
        self.wall_s = 0.0

    def add_frame(self, timings, cameras=None, model="main"):
        """One processed frame: its ``timings`` (stage -> ms), ``cameras`` (name -> 'ok' | 'stale' |
        'no image yet', the assembler's :class:`FrameStatus.cameras`) and the ``model`` that ran it
        (:attr:`perception.runtime.Prediction.model`)."""
        self.frames_by_model[model] += 1
        if cameras:
            missing = [name for name, state in cameras.items() if state != "ok"]
            self.camera_missing.update(missing)
            self.frames_without_cameras += len(missing) == len(cameras)
        t = {k: float(v) for k, v in timings.items()}
        t["predictor"] = sum(t.get(k, 0.0) for k in PREDICTOR)
        t["overhead"] = sum(t.get(k, 0.0) for k in OVERHEAD)
        t["total"] = t["predictor"] + t["overhead"]
        self.frames.append(t)

    def stage_table(self):
        out = {}
        for stage in STAGES:
            values = np.array([f.get(stage, 0.0) for f in self.frames], np.float64)
            if len(values):
                out[stage] = {"mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
                              "p99": float(np.percentile(values, 99))}
        return out

    def as_dict(self, **extra):
        stages = self.stage_table()
        mean_total = stages.get("total", {}).get("mean", 0.0)
        d = {
            "frames_processed": len(self.frames),
            "frames_skipped": dict(sorted(self.skipped.items())),
            "input_errors": dict(sorted(self.input_errors.items())),
            "camera_missing_frames": dict(sorted(self.camera_missing.items())),
            "frames_without_cameras": self.frames_without_cameras,
            "frames_by_model": dict(sorted(self.frames_by_model.items())),
            "frames_camera_triggered": self.camera_triggered,
            "stages_ms": stages,
            "overhead_fraction": (stages["overhead"]["mean"] / mean_total) if mean_total > 0 else None,
            "wall_s": self.wall_s,
            "frames_per_s": len(self.frames) / self.wall_s if self.wall_s > 0 else None,
            "warnings": self.warnings[:50],
        }
        d.update(extra)
        return d

    def lines(self):
        """The printed summary: one line per stage, then frames and skips."""
        stages = self.stage_table()
        out = [f"{'stage':12s}{'mean ms':>10s}{'p50':>10s}{'p99':>10s}"]
        for stage, v in stages.items():
            out.append(f"{stage:12s}{v['mean']:10.1f}{v['p50']:10.1f}{v['p99']:10.1f}")
        d = self.as_dict()
        frac = d["overhead_fraction"]
        out.append(f"{d['frames_processed']} frames processed"
                   + (f" ({d['frames_per_s']:.2f} frames/s)" if d["frames_per_s"] else "")
                   + (f", replay overhead {100 * frac:.1f} % of the frame time" if frac is not None else ""))
        if self.skipped:
            out.append("skipped frames: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.camera_missing:
            out.append("frames missing a camera (no image within max_camera_lidar_delay): "
                       + ", ".join(f"{k} {v}" for k, v in sorted(self.camera_missing.items()))
                       + f"; {self.frames_without_cameras} of {len(self.frames)} frames had no camera at all")
        if self.camera_triggered:
            out.append(f"{self.camera_triggered} frames triggered by a camera while the LiDAR was silent")
        if set(self.frames_by_model) - {"main"}:
            out.append("frames run by a fallback model: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.frames_by_model.items()) if k != "main"))
        if self.input_errors:
            out.append("bad input messages: " + ", ".join(f"{k} {v}" for k, v in sorted(self.input_errors.items())))
        return out

    def write_json(self, path, **extra):
        with open(path, "w") as f:
            json.dump(self.as_dict(**extra), f, indent=2, sort_keys=True, default=str)
        return path
