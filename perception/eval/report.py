"""Evaluation report: ``metrics.json``, a per-class terminal table, PNG plots (matplotlib Agg).

Plots written to ``<out>/plots``: ``pr_<class>.png`` (detection precision/recall per matching threshold,
from the devkit's metric data), ``bev_iou.png`` and ``occ_iou.png`` (per-class IoU bars),
``occ_confusion.png`` (row-normalised Occ3D confusion matrix, camera-masked voxels), ``openocc_iou.png``
(OpenOccupancy per-class IoU bars).
"""

import json
import math
import os

import numpy as np

from perception.constants import OCC3D_CLASSES


def _fmt(v):
    return "   nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"


def format_table(metrics):
    """The per-class text table of a metrics dict (see :func:`perception.eval.runner.score_saved`)."""
    lines = []
    if "scored" in metrics:
        lines.append(f"PARTIAL: {metrics['scored']}")
    det = metrics.get("detection")
    if det:
        lines.append(f"Detection ({det['num_samples']} samples)  mAP {_fmt(det['mAP'])}  NDS {_fmt(det['NDS'])}  "
                     + "  ".join(f"{k} {_fmt(det[k])}" for k in ("mATE", "mASE", "mAOE", "mAVE", "mAAE")))
        cols = ["AP", "AP@0.5", "AP@1.0", "AP@2.0", "AP@4.0", "ATE", "ASE", "AOE", "AVE", "AAE"]
        lines.append(f"{'class':22s}" + "".join(f"{c:>8s}" for c in cols))
        for name, row in det["per_class"].items():
            lines.append(f"{name:22s}" + "".join(f"  {_fmt(row[c])}" for c in cols))
    bev = metrics.get("bev_map")
    if bev:
        line = f"BEV map ({bev['num_samples']} samples)  mIoU {_fmt(bev['mIoU'])} (BEVFusion: absent classes count 0)"
        if bev.get("absent_classes"):
            line += (f"  over present classes {_fmt(bev.get('mIoU_present'))} (absent: "
                     f"{', '.join(bev['absent_classes'])})")
        lines.append(line)
        lines.append(f"{'class':22s}{'IoU':>8s}{'thr':>8s}" + "".join(f"{t:>8.2f}" for t in bev["thresholds"]))
        for name, v in bev["per_class"].items():
            t = bev["best_threshold"][name]
            lines.append(f"{name:22s}  {_fmt(v)}  {'  -   ' if t is None else f'{t:6.2f}'}"
                         + "".join(f"  {_fmt(x)}" for x in bev["per_threshold"][name]))
    occ = metrics.get("occupancy")
    if occ:
        ray = occ.get("ray", {})
        lines.append(f"Occupancy Occ3D ({occ['num_samples']} samples)  mIoU {_fmt(occ['mIoU'])}  geometry IoU "
                     f"{_fmt(occ.get('geometry_IoU_camera_mask'))} (camera mask) {_fmt(occ['geometry_IoU'])} (all "
                     f"voxels)  RayIoU {_fmt(ray.get('RayIoU'))} (@1 {_fmt(ray.get('RayIoU@1'))}"
                     f" @2 {_fmt(ray.get('RayIoU@2'))} @4 {_fmt(ray.get('RayIoU@4'))})")
        lines.append(f"{'class':22s}{'IoU':>8s}{'Ray@1':>8s}{'Ray@2':>8s}{'Ray@4':>8s}")
        for name, v in occ["per_class"].items():
            r = ray.get("per_class", {}).get(name, [None] * 3)
            lines.append(f"{name:22s}  {_fmt(v)}" + "".join(f"  {_fmt(x)}" for x in r))
    oo = metrics.get("occupancy_openocc")
    if oo:
        lines.append(f"Occupancy OpenOccupancy ({oo['num_samples']} samples)  mIoU {_fmt(oo['mIoU'])}  geometry IoU "
                     f"{_fmt(oo['geometry_IoU'])}  mIoU over present classes {_fmt(oo.get('mIoU_present'))}")
        if oo.get("mIoU_note"):
            lines.append(f"  mIoU {oo['mIoU_note']}")
        lines.append(f"{'class':22s}{'IoU':>8s}")
        lines += [f"{name:22s}  {_fmt(v)}" for name, v in oo["per_class"].items()]
    if occ:
        lines.append("(Occ3D / RayIoU NaN: class absent from GT and prediction over the split, left out of the "
                     "means)")
    return "\n".join(lines)


def _bars(path, values, title):
    import matplotlib.pyplot as plt  # at call time: save_plots selects the Agg backend first

    names = list(values)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(names)), 4))
    ax.bar(range(len(names)), [0 if v is None or math.isnan(v) else v for v in values.values()])
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_plots(metrics, plot_dir, det_data=None):
    """Write the PNG plots; returns the list of files written."""
    # here, not at the top: importing this module must not switch matplotlib's backend to Agg
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(plot_dir, exist_ok=True)
    written = []
    if det_data is not None and metrics.get("detection"):
        for name in metrics["detection"]["per_class"]:
            fig, ax = plt.subplots(figsize=(5, 4))
            for md, th in det_data.get_class_data(name):
                ax.plot(md.recall, md.precision, label=f"{th} m")
            ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title=f"PR {name}")
            ax.legend()
            path = os.path.join(plot_dir, f"pr_{name}.png")
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    if metrics.get("bev_map"):
        written.append(os.path.join(plot_dir, "bev_iou.png"))
        _bars(written[-1], metrics["bev_map"]["per_class"], f"BEV map IoU, mIoU {metrics['bev_map']['mIoU']:.3f}")
    occ = metrics.get("occupancy")
    if occ:
        written.append(os.path.join(plot_dir, "occ_iou.png"))
        _bars(written[-1], occ["per_class"], f"Occ3D IoU, mIoU {occ['mIoU']:.3f}")
        hist = np.asarray(occ["confusion"], np.float64)
        norm = hist / np.maximum(hist.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(8, 7))
        im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(OCC3D_CLASSES)), OCC3D_CLASSES, rotation=90)
        ax.set_yticks(range(len(OCC3D_CLASSES)), OCC3D_CLASSES)
        ax.set(xlabel="prediction", ylabel="ground truth", title="Occ3D confusion (row-normalised)")
        fig.colorbar(im)
        fig.tight_layout()
        written.append(os.path.join(plot_dir, "occ_confusion.png"))
        fig.savefig(written[-1])
        plt.close(fig)
    oo = metrics.get("occupancy_openocc")
    if oo:
        written.append(os.path.join(plot_dir, "openocc_iou.png"))
        _bars(written[-1], oo["per_class"], f"OpenOccupancy IoU, mIoU {oo['mIoU']:.3f}")
    return written


def write_all(metrics, out_dir, det_data=None, echo=True):
    """``metrics.json`` + plots under ``out_dir``; prints the table when ``echo``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    save_plots(metrics, os.path.join(out_dir, "plots"), det_data)
    if echo:
        print(format_table(metrics))
