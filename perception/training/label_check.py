"""Does every task that is about to be trained have labels? Checked once, before the first step.

A head trained without labels learns nothing and reports a zero loss that looks like convergence. The
usual causes are a dataroot without ``gts/`` (Occ3D), without ``maps/expansion/`` (BEV map), or an index
built before the labels were added (stale: it records ``occ_path=None``). :func:`check_label_coverage`
counts, per enabled task, the training samples that carry that task's labels and

- raises ``ValueError`` naming the task, the count and the likely cause when fewer than ``min_fraction`` of
  the samples have labels (training would mostly optimise a zero loss),
- returns one warning line per task that has labels for only part of the samples (printed at start).

Only file existence is checked (no label is read): cheap enough to run on every start.
"""

import os

from perception.data.openocc_labels import openocc_label_path

# What a task's label is and where it comes from, for the error message.
SOURCES = {
    "det": "3D boxes (sample_annotation records)",
    "map": "BEV map rasters (maps/expansion/<location>.json under the dataroot)",
    "occ": "occupancy labels (Occ3D gts/<scene>/<token>/labels.npz, or data.openocc_root for 'openocc')",
}


def has_labels(sample, task, occ_format="occ3d", openocc_root=None) -> bool:
    """Whether ``sample`` (a :class:`perception.data.sample.Sample`) carries the labels of ``task``."""
    if task == "det":
        return len(sample.labels) > 0
    if task == "map":
        return sample.has_bev_map
    if task == "occ":
        if occ_format == "openocc":
            return openocc_root is not None and os.path.isfile(
                openocc_label_path(openocc_root, sample.scene_token, sample.lidar_token))
        return sample.occ_path is not None and os.path.isfile(sample.occ_path)
    raise ValueError(f"unknown task {task!r}")


def label_coverage(samples, tasks, occ_format="occ3d", openocc_root=None) -> dict:
    """``{task: samples with labels}`` over ``samples``."""
    return {t: sum(has_labels(s, t, occ_format, openocc_root) for s in samples) for t in tasks}


def check_label_coverage(samples, tasks, occ_format="occ3d", openocc_root=None, min_fraction=0.5,
                         where="the training split") -> list:
    """Raise ``ValueError`` when a task has labels for fewer than ``min_fraction`` of ``samples``; return
    warning lines for the tasks with labels for only part of them (``[]`` when all are complete)."""
    n = len(samples)
    if n == 0:
        raise ValueError(f"{where} has no samples")
    coverage = label_coverage(samples, tasks, occ_format, openocc_root)
    short = {t: k for t, k in coverage.items() if k < min_fraction * n}
    if short:
        lines = [f"task {t!r}: {k}/{n} samples have {SOURCES[t]}" for t, k in short.items()]
        raise ValueError(
            f"{where}: " + "; ".join(lines) + ". Training these heads would optimise a zero loss. Add the labels "
            "(or rebuild a stale index: delete <dataroot>/m3_index_<version>.pkl), or drop the task from "
            "model.tasks."
        )
    return [f"task {t!r}: only {k}/{n} samples of {where} have {SOURCES[t]}; the rest add no {t} loss"
            for t, k in coverage.items() if k < n]
