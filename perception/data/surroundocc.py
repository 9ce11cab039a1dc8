"""SurroundOcc's own-data frames (``tools/generate_occupancy_with_own_data``): LiDAR, per-point semantics
and boxes, no cameras. Files of frame ``F`` in the folder: ``pc/pcF.npy``, ``pc_seman/pc_seman_F.npy``,
``bbox/bboxF.npy`` and ``bbox/object_categoryF.npy``."""

import os

import numpy as np

from perception.constants import DETECTION_CLASSES, OCC3D_CLASSES
from perception.data.boxes import convert_boxes


def load_surroundocc_frame(folder, frame):
    """One SurroundOcc own-data frame as project arrays (LiDAR frame, metres).

    Returns ``points (N, 4)`` x, y, z, intensity; ``semantic (N,)`` int labels 0..16 (Occ3D class ids);
    ``boxes (M, 7)`` project convention (converted from SurroundOcc's bottom-centre ``dx, dy`` boxes by
    ``convert_boxes``); ``labels (M,)`` index into ``DETECTION_CLASSES`` (-1 for non-detection classes).
    A missing file is a ``FileNotFoundError`` naming it.
    """
    def need(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"SurroundOcc frame {frame}: file not found: {path}")
        return np.load(path)

    frame = int(frame)
    points = need(os.path.join(folder, "pc", f"pc{frame}.npy")).astype(np.float32)
    seman = need(os.path.join(folder, "pc_seman", f"pc_seman_{frame}.npy"))
    if len(seman) != len(points):
        raise ValueError(f"SurroundOcc frame {frame}: pc has {len(points)} points but pc_seman {len(seman)}")
    boxes = convert_boxes(need(os.path.join(folder, "bbox", f"bbox{frame}.npy")), "surroundocc", "lidar")
    category = need(os.path.join(folder, "bbox", f"object_category{frame}.npy"))
    # Occ3D class id -> detection class index by name ("others" and stuff classes -> -1).
    to_det = np.array([DETECTION_CLASSES.index(n) if n in DETECTION_CLASSES else -1 for n in OCC3D_CLASSES])
    return points, seman[:, 3].astype(np.int64), boxes.astype(np.float32), to_det[category]
