"""``--render DIR`` and ``--video OUT.mp4``: per replayed frame a BEV PNG and a six-camera mosaic, drawn by
:mod:`perception.viz` exactly as ``perception show`` draws a prediction.

- ``DIR/<stamp>_bev.png``: the frame's points (current sweep + merged sweeps, LiDAR frame), predicted boxes
  (dashed, score >= ``min_score``), GT boxes when the frame is a keyframe of a known dataroot (solid), the
  predicted BEV map (probability > 0.5) and the predicted occupancy (top voxel per column, Occ3D grid);
- ``DIR/<stamp>_cameras.png``: the images the model used for the frame with the points and predicted (and GT)
  boxes projected through the frame's own ``lidar2cam`` (ego motion between LiDAR and camera stamps included).

The video stacks the two pictures of each frame (imageio-ffmpeg, ``pip install imageio-ffmpeg``).
"""

import os

import numpy as np
from PIL import Image

from perception.data.sample import CameraView, Sample
from perception.replay.options import FrameSink
from perception.viz import render_bev, render_cameras
from perception.viz.bev import BevLayers


def video_writer_available():
    """None when ``--video`` can work, else the message saying what to install."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return ("--video needs the imageio-ffmpeg package (pip install imageio-ffmpeg, or install this package "
                "with the 'video' extra); --render DIR alone writes the PNGs")
    return None


class FrameRenderer(FrameSink):
    """Writes the PNGs of each frame into ``out_dir``; ``gt_lookup(sample_info) -> (boxes, labels) | None``."""

    def __init__(self, out_dir, min_score=0.4, gt_lookup=None, occ3d=True):
        self.out_dir = str(out_dir)
        os.makedirs(self.out_dir, exist_ok=True)
        self.min_score = float(min_score)
        self.gt_lookup = gt_lookup
        self.occ3d = occ3d
        self.pngs = []  # [(bev png, cameras png)]

    def on_frame(self, info):
        pred, frame = info.pred, info.frame
        keep = pred.scores >= self.min_score
        shown, shown_labels = pred.boxes[keep], pred.labels[keep]
        gt = self.gt_lookup(info.sample) if (self.gt_lookup and info.sample) else None
        gt_boxes, gt_labels = gt if gt is not None else (np.zeros((0, 9), np.float32), np.zeros(0, np.int64))
        points = frame.points if frame is not None and frame.points is not None else info.points
        lidar2ego = info.lidar2ego if info.lidar2ego is not None else np.eye(4)
        sample_note = f" (sample {info.sample['sample_token']})" if info.sample else ""
        title = (f"{info.topic} @ {info.stamp_ns} ns{sample_note}"
                 + f"\n{len(shown)} predicted boxes scoring >= {self.min_score:g} (dashed), {len(gt_boxes)} GT (solid)")
        layers = BevLayers(points=points, boxes=gt_boxes, labels=gt_labels, bev_map=pred.bev_probs,
                           occ_semantics=pred.occ_labels if self.occ3d else None, lidar2ego=lidar2ego, title=title)
        stem = os.path.join(self.out_dir, f"{info.stamp_ns}")
        bev = render_bev(layers, f"{stem}_bev.png", pred_boxes=shown, pred_labels=shown_labels)
        cameras = {}
        for name, cam in (frame.cameras.items() if frame is not None else ()):
            cameras[name] = CameraView(name=name, path="<live>", intrinsics=np.asarray(cam.intrinsics, np.float64),
                                       lidar2cam=np.asarray(cam.lidar2cam, np.float64), timestamp=cam.timestamp,
                                       _image=cam.image)
        sample = Sample(token=str(info.stamp_ns), lidar_path="<live>", lidar2ego=lidar2ego, ego2global=np.eye(4),
                        cameras=cameras, boxes=gt_boxes, labels=gt_labels)
        cams = render_cameras(sample, f"{stem}_cameras.png", points=points, pred_boxes=shown)
        self.pngs.append((bev, cams))


def write_video(pngs, out_mp4, fps=2.0, width=960):
    """Stack each frame's BEV over its camera mosaic (``width`` px wide) into an H.264 ``out_mp4``."""
    import imageio_ffmpeg  # optional (the video extra)

    if not pngs:
        raise ValueError("no rendered frames to put in a video")
    frames = []
    for bev, cams in pngs:
        a, b = Image.open(bev).convert("RGB"), Image.open(cams).convert("RGB")
        a = a.resize((width, round(a.height * width / a.width)))
        b = b.resize((width, round(b.height * width / b.width)))
        sheet = Image.new("RGB", (width, (a.height + b.height + 15) // 16 * 16), (255, 255, 255))
        sheet.paste(a, (0, 0))
        sheet.paste(b, (0, a.height))
        frames.append(np.asarray(sheet))
    os.makedirs(os.path.dirname(os.path.abspath(out_mp4)), exist_ok=True)
    h, w = frames[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(str(out_mp4), (w, h), fps=fps, macro_block_size=16)
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    return out_mp4
