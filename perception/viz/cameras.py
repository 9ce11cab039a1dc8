"""Camera rendering: the six images in a 2x3 grid with LiDAR points and 3D box wireframes projected.

Layout (as seen from the car): top row FRONT_LEFT, FRONT, FRONT_RIGHT; bottom row BACK_LEFT, BACK, BACK_RIGHT.
Points are coloured by depth (camera z, metres); box edges are clipped at 0.1 m in front of the camera so
boxes behind or around the camera are drawn correctly. A missing camera is a grey tile saying so.
"""

import numpy as np
from PIL import Image, ImageDraw

from perception.constants import DETECTION_CLASSES
from perception.data.boxes import box_corners
from perception.data.io import load_image
from perception.viz import colors
from perception.viz.geometry import BOX_EDGES, clip_segments_to_camera, project_points

GRID = (("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"), ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"))
MAX_DEPTH = 60.0  # metres: end of the depth colour map


def draw_camera(image, lidar2img, lidar2cam, points=None, boxes=None, labels=None, pred_boxes=None, scale=1.0):
    """One camera: ``image`` ``(H, W, 3)`` uint8 with overlays, resized by ``scale``; returns a PIL image.

    ``points`` ``(N, >=3)`` and boxes ``(M, >=7)`` are in the LiDAR frame that ``lidar2img`` / ``lidar2cam``
    (4x4) map from. GT boxes are coloured by class (``labels``), predicted boxes in the predicted colour.
    """
    H, W = image.shape[:2]
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((int(W * scale), int(H * scale)),
                                                                       Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    if points is not None and len(points):
        uv, depth = project_points(lidar2img, np.asarray(points)[:, :3])
        on = (depth > 0.1) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        order = np.argsort(-depth[on])  # far points first so that near ones stay on top
        rgb = colors.to_uint8(colors.scalar_colors(depth[on][order], 0.0, MAX_DEPTH, cmap="jet"))
        for (u, v), c in zip(uv[on][order] * scale, rgb, strict=True):
            draw.ellipse((u - 1.2, v - 1.2, u + 1.2, v + 1.2), fill=tuple(int(x) for x in c))
    # camera -> pixels
    K4 = np.asarray(lidar2img, dtype=np.float64) @ np.linalg.inv(np.asarray(lidar2cam, dtype=np.float64))
    for group, predicted in ((boxes, False), (pred_boxes, True)):
        if group is None or not len(group):
            continue
        corners = box_corners(np.asarray(group, dtype=np.float64)[:, :7])
        for i, c in enumerate(corners):
            if predicted:
                colour = tuple(colors.to_uint8(colors.PRED_COLOR))
            else:
                label = None if labels is None else int(labels[i])
                known = label is not None and 0 <= label < len(DETECTION_CLASSES)
                colour = tuple(colors.to_uint8(colors.DETECTION_COLORS[label])) if known else (255, 255, 255)
            a, b = c[[e[0] for e in BOX_EDGES]], c[[e[1] for e in BOX_EDGES]]
            a_cam, b_cam, keep = clip_segments_to_camera(a, b, lidar2cam)
            ua, _ = project_points(K4, a_cam[keep])
            ub, _ = project_points(K4, b_cam[keep])
            for p, q in zip(ua * scale, ub * scale, strict=True):
                draw.line([tuple(p), tuple(q)], fill=colour, width=1 if predicted else 2)
    return canvas


def render_cameras(sample, out_png, points=None, pred_boxes=None, pred_labels=None, tile_width=480):
    """Six cameras of ``sample`` in a 2x3 grid with projected points (depth colours) and GT boxes.

    ``points`` ``(N, >=3)`` LiDAR frame overrides ``sample.points``; ``pred_boxes`` ``(K, >=7)`` LiDAR frame are
    drawn thinner in the predicted colour (``pred_labels`` accepted for symmetry with :func:`render_bev`).
    Returns ``out_png``.
    """
    del pred_labels  # colour by "predicted", not by class: keeps GT and predictions distinguishable
    pts = sample.points if points is None else points
    tile_h = int(tile_width * 9 / 16)
    sheet = Image.new("RGB", (3 * tile_width, 2 * tile_h), (60, 60, 60))
    for r, row in enumerate(GRID):
        for c, name in enumerate(row):
            cam = sample.cameras.get(name)
            text = name
            try:
                if cam is None:
                    raise FileNotFoundError("no camera in the sample")
                image = cam._image if cam._image is not None else load_image(cam.path)
            except (FileNotFoundError, ValueError) as e:
                tile = Image.new("RGB", (tile_width, tile_h), (90, 90, 90))
                text = f"{name}: missing ({e})"[:80]
            else:
                scale = tile_width / image.shape[1]
                tile = draw_camera(image, cam.lidar2img, cam.lidar2cam, pts, sample.boxes, sample.labels, pred_boxes,
                                   scale)
                tile = tile.crop((0, 0, tile_width, tile_h))
            ImageDraw.Draw(tile).text((6, 6), text, fill=(255, 255, 255))
            sheet.paste(tile, (c * tile_width, r * tile_h))
    sheet.save(out_png)
    return out_png
