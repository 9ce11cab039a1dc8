"""Bird's-eye view rendering: points, GT / predicted boxes, BEV map layers and an occupancy slice.

The picture is the LiDAR frame seen from above: LiDAR x (car's right) to the right, LiDAR y (car's forward)
up, metres on both axes, with the sensor at the origin. Axis arrows, axis labels and a 10 m scale bar are
drawn on the image.
"""

from dataclasses import dataclass

import numpy as np
from matplotlib.patches import Patch, Polygon
from matplotlib.transforms import Affine2D

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, DETECTION_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.data.boxes import box_corners
from perception.geometry import invert
from perception.viz import colors

# Bottom-face corners of ``box_corners`` in drawing order around the box (bits x, y: --, -+, ++, +-).
_BOTTOM_RING = (0, 2, 6, 4)


@dataclass
class BevLayers:
    """What :func:`render_bev` draws. Every field is optional; frames as stated.

    - ``points``: ``(N, >=3)`` x, y, z metres, LiDAR frame; coloured by height unless ``point_colors``
      (``(N, 3)`` RGB in [0, 1], e.g. semantic colours) is given.
    - ``boxes``: ``(M, >=7)`` project convention (gravity centre, l, w, h, yaw), LiDAR frame;
      ``labels`` ``(M,)`` index into ``DETECTION_CLASSES`` (colours).
    - ``bev_map``: ``(6, 200, 200)`` {0, 1} on ``BEV_MAP_GRID`` (``[class, ix, iy]``), LiDAR frame.
    - ``occ_semantics``: ``(200, 200, 16)`` Occ3D labels on ``OCC3D_GRID`` in the EGO frame, placed with
      ``lidar2ego`` (4x4, LiDAR -> ego; identity when omitted).
    """

    points: np.ndarray | None = None
    point_colors: np.ndarray | None = None
    boxes: np.ndarray | None = None
    labels: np.ndarray | None = None
    bev_map: np.ndarray | None = None
    occ_semantics: np.ndarray | None = None
    lidar2ego: np.ndarray | None = None
    title: str = ""


def layers_from_sample(sample, points=None):
    """:class:`BevLayers` of a :class:`perception.data.sample.Sample` (loads points, map and Occ3D GT).

    ``points`` overrides the sample's own (e.g. already loaded with sweeps).
    """
    occ = sample.occupancy
    return BevLayers(
        points=sample.points if points is None else points,
        boxes=sample.boxes,
        labels=sample.labels,
        bev_map=sample.bev_map,
        occ_semantics=None if occ is None else occ.semantics,
        lidar2ego=sample.lidar2ego,
        title=f"sample {sample.token}",
    )


def occupancy_top_class(semantics):
    """``(X, Y, Z)`` labels -> ``(X, Y)`` label of the highest non-free voxel per column (``OCC3D_FREE`` if none)."""
    semantics = np.asarray(semantics)
    occupied = semantics != OCC3D_FREE
    top = semantics.shape[2] - 1 - np.argmax(occupied[:, :, ::-1], axis=2)  # highest occupied z index
    out = np.take_along_axis(semantics, top[:, :, None], axis=2)[:, :, 0]
    return np.where(occupied.any(axis=2), out, OCC3D_FREE)


def render_bev(source, out_png, pred_boxes=None, pred_labels=None, extent=54.0, title=None):
    """Draw ``source`` (a :class:`BevLayers` or a ``Sample``) top-down and write ``out_png``.

    ``pred_boxes`` ``(K, >=7)`` (LiDAR frame) are drawn dashed in the predicted colour, with ``pred_labels``
    written next to them when given. ``extent``: half-width of the view, metres. Returns ``out_png``.
    """
    # here, not at the top: importing perception.viz must not switch matplotlib's backend to Agg
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = source if isinstance(source, BevLayers) else layers_from_sample(source)
    fig, ax = plt.subplots(figsize=(10, 10), dpi=100)
    ax.set_facecolor("white")
    legend = []

    if layers.bev_map is not None:
        bev = np.asarray(layers.bev_map)
        if bev.shape != (len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape:
            raise ValueError(f"render_bev: bev_map shape {bev.shape}, expected (6, 200, 200)")
        rgba = np.zeros(BEV_MAP_GRID.shape + (4,))
        for c, name in enumerate(BEV_MAP_CLASSES):
            on = bev[c] > 0.5
            rgba[on, :3] = colors.BEV_MAP_COLORS[name]
            rgba[on, 3] = 0.35
            if on.any():
                legend.append(Patch(color=colors.BEV_MAP_COLORS[name], alpha=0.5, label=name))
        # [ix, iy] -> image rows = y, columns = x, origin at the bottom.
        (x0, y0), (x1, y1) = BEV_MAP_GRID.lower, BEV_MAP_GRID.upper
        ax.imshow(rgba.transpose(1, 0, 2), origin="lower", extent=(x0, x1, y0, y1), interpolation="nearest", zorder=1)

    if layers.occ_semantics is not None:
        top = occupancy_top_class(layers.occ_semantics)
        rgba = np.zeros(top.shape + (4,))
        rgba[..., :3] = np.asarray(colors.OCC3D_COLORS)[top]
        rgba[..., 3] = np.where(top != OCC3D_FREE, 0.45, 0.0)
        (x0, y0, _), (x1, y1, _) = OCC3D_GRID.lower, OCC3D_GRID.upper
        im = ax.imshow(rgba.transpose(1, 0, 2), origin="lower", extent=(x0, x1, y0, y1), interpolation="nearest",
                       zorder=2)
        # The grid is in the ego frame: map ego (x, y) -> LiDAR (x, y) with the 2D part of inv(lidar2ego).
        lidar2ego = np.eye(4) if layers.lidar2ego is None else np.asarray(layers.lidar2ego, dtype=np.float64)
        e2l = invert(lidar2ego)
        affine = np.array([[e2l[0, 0], e2l[0, 1], e2l[0, 3]], [e2l[1, 0], e2l[1, 1], e2l[1, 3]], [0, 0, 1]])
        im.set_transform(Affine2D(affine) + ax.transData)
        legend.append(Patch(color=(0.5, 0.5, 0.5), alpha=0.45, label="occupancy (top voxel)"))

    if layers.points is not None and len(layers.points):
        pts = np.asarray(layers.points)
        rgb = layers.point_colors if layers.point_colors is not None else colors.scalar_colors(pts[:, 2], -3.0, 3.0)
        ax.scatter(pts[:, 0], pts[:, 1], s=0.6, c=rgb, linewidths=0, zorder=3, rasterized=True)

    def draw_boxes(boxes, labels, predicted):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.asarray(boxes).shape[-1] if np.size(boxes) else 7)
        if not len(boxes):
            return
        corners = box_corners(boxes[:, :7])
        for i, c in enumerate(corners):
            label = None if labels is None else int(labels[i])
            known = label is not None and 0 <= label < len(DETECTION_CLASSES)
            colour = colors.PRED_COLOR if predicted else colors.DETECTION_COLORS[label] if known else (0, 0, 0)
            style = dict(fill=False, edgecolor=colour, linewidth=1.0 if predicted else 1.5,
                         linestyle="--" if predicted else "-", zorder=5)
            ax.add_patch(Polygon(c[list(_BOTTOM_RING), :2], closed=True, **style))
            front = c[[4, 6], :2].mean(axis=0)  # middle of the front edge (+l/2 along the heading)
            ax.plot([boxes[i, 0], front[0]], [boxes[i, 1], front[1]], color=colour, linewidth=style["linewidth"],
                    zorder=5)
            if predicted and known:
                ax.text(boxes[i, 0], boxes[i, 1], DETECTION_CLASSES[label], fontsize=5, color=colour, zorder=6)

    if layers.boxes is not None:
        draw_boxes(layers.boxes, layers.labels, predicted=False)
        gt_labels = layers.labels if layers.labels is not None else []
        present = sorted({int(k) for k in gt_labels if 0 <= int(k) < len(DETECTION_CLASSES)})
        legend += [Patch(edgecolor=colors.DETECTION_COLORS[k], fill=False, linewidth=1.5, label=DETECTION_CLASSES[k])
                   for k in present]
    if pred_boxes is not None:
        draw_boxes(pred_boxes, pred_labels, predicted=True)
        legend.append(Patch(edgecolor=colors.PRED_COLOR, fill=False, linestyle="--", label="predicted"))

    _draw_frame_annotations(ax, extent)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]  (LiDAR frame: right of the car)")
    ax.set_ylabel("y [m]  (LiDAR frame: forward)")
    ax.set_title(title if title is not None else layers.title)
    if legend:
        ax.legend(handles=legend, loc="upper right", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def _draw_frame_annotations(ax, extent):
    """LiDAR axis arrows at the origin and a 10 m scale bar in the lower-left corner."""
    arrow = dict(width=0.25, head_width=1.2, length_includes_head=True, zorder=7)
    ax.arrow(0, 0, 5, 0, color="red", **arrow)
    ax.arrow(0, 0, 0, 5, color="green", **arrow)
    ax.text(5.5, -1.5, "x", color="red", fontsize=10, zorder=7)
    ax.text(-1.8, 5.5, "y", color="green", fontsize=10, zorder=7)
    x0, y0 = -extent + 3, -extent + 3
    ax.plot([x0, x0 + 10], [y0, y0], color="black", linewidth=3, zorder=7)
    ax.text(x0 + 5, y0 + 1.2, "10 m", ha="center", fontsize=9, zorder=7)
