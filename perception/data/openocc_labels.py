"""OpenOccupancy (nuScenes-Occupancy) label files: where they are, how they read, and the up-front check of a
label folder. Training (:class:`perception.data.dataset.M3Dataset`), the label check before training and the
evaluation (:mod:`perception.eval.openocc`) all read labels here, so they see the same volumes.

Label files: ``<occ_root>/scene_<scene_token>/occupancy/<lidar_token>.npy``, a sparse ``(N, 4)`` integer array
of the occupied voxels, columns ``[z, y, x, label]`` (voxel indices on ``OPENOCC_GRID``: 512 x 512 x 40 voxels
of 0.2 m over [-51.2, 51.2]^2 x [-5, 3] m, LiDAR frame). As the reference loader (JeffWang987/OpenOccupancy
``LoadOccupancy`` + ``nb_process_label`` in ``projects/occ_plugin/datasets/pipelines/loading.py``, commit
32cb2a0): label 0 is "noise" and becomes IGNORE (255); indices outside the grid are clamped to its border
voxels; several rows naming the same voxel are resolved by majority vote over their labels (noise counting as
255; a tie goes to the smaller label, so a real class beats noise on a tie), except that rows clamped up from
below the grid vote apart from the border voxel's own rows and the vote that comes later in the reference's
(z, y, x) order wins; voxels not listed are empty (0). Labels 1-16 follow ``OPENOCC_CLASSES``.

Dense volumes are ``uint8 [ix, iy, iz]`` with 0 = empty, 1-16 semantic, 255 = ignore.
"""

import os

import numpy as np

from perception.constants import OPENOCC_CLASSES, OPENOCC_GRID

OPENOCC_FREE = 0  # "empty": voxels not listed in the label file
IGNORE = 255  # noise (label 0 in the file) and anything else not scored
NUM_CLASSES = len(OPENOCC_CLASSES)  # 17: 0 empty + 16 semantic


def openocc_label_path(occ_root, scene_token, lidar_token):
    """Path of a nuScenes-Occupancy label file (``lidar_token`` = LIDAR_TOP sample_data token)."""
    return os.path.join(occ_root, f"scene_{scene_token}", "occupancy", f"{lidar_token}.npy")


def load_openocc_label(path, grid_shape=OPENOCC_GRID.shape):
    """Sparse ``[z, y, x, label]`` ``.npy`` -> dense uint8 ``[ix, iy, iz]`` (0 empty, 1-16, 255 ignore).

    As OpenOccupancy's ``LoadOccupancy``: label 0 (noise) -> 255, indices clamped into the grid, repeated
    voxels -> the most frequent label among their rows (ties: the smaller label, noise counting as 255).
    Raises ``ValueError`` naming the file unless it is an ``(N, 4)`` integer array with labels in 0-16 or 255.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"OpenOccupancy label file not found: {path}")
    sparse = np.load(path)
    if sparse.ndim != 2 or sparse.shape[1] != 4 or not np.issubdtype(sparse.dtype, np.integer):
        raise ValueError(f"{path}: expected an (N, 4) integer array [z, y, x, label], got {sparse.shape} "
                         f"{sparse.dtype}")
    shape = tuple(int(n) for n in grid_shape)
    z, y, x, label = (sparse[:, i].astype(np.int64) for i in range(4))
    if np.any((label < 0) | ((label >= NUM_CLASSES) & (label != IGNORE))):
        raise ValueError(f"{path}: labels must lie in [0, {NUM_CLASSES - 1}] (or be {IGNORE})")
    label = np.where(label == 0, IGNORE, label)
    dense = np.zeros(shape, np.uint8)
    if not label.size:
        return dense
    # The reference sorts the rows by their voxel-centre coordinates clipped into [0, n - 1] (z, then y, then x)
    # and votes over each run of consecutive rows that name the same voxel. A centre i + 0.5 inside the grid
    # keeps its place; one below the grid becomes 0 (a run apart from voxel 0's own rows, at 0.5), one in or
    # above the last voxel becomes n - 1. Runs are written in sorted order, so a later run overwrites.
    keys, index = [], []
    for v, n in ((x, shape[0]), (y, shape[1]), (z, shape[2])):
        keys.append(np.where(v < 0, 0.0, np.where(v >= n - 1, n - 1.0, v + 0.5)))
        index.append(np.clip(v, 0, n - 1))
    order = np.lexsort((keys[0], keys[1], keys[2]))
    voxel = np.ravel_multi_index(tuple(i[order] for i in index), shape)
    label = label[order]
    run = np.concatenate([[0], np.cumsum(voxel[1:] != voxel[:-1])])
    run_voxel = voxel[np.concatenate([[0], np.flatnonzero(voxel[1:] != voxel[:-1]) + 1])]
    pairs, votes = np.unique(run * 256 + label, return_counts=True)
    run_id, run_label = pairs // 256, pairs % 256
    pick = np.lexsort((run_label, -votes, run_id))  # per run: most votes first, then the smaller label
    run_id, run_label = run_id[pick], run_label[pick]
    first = np.concatenate([[True], run_id[1:] != run_id[:-1]])
    winner = run_label[first]  # one per run, runs in sorted order
    last = len(run_voxel) - 1 - np.unique(run_voxel[::-1], return_index=True)[1]  # the last run of each voxel
    dense.reshape(-1)[run_voxel[last]] = winner[last].astype(np.uint8)
    return dense


def check_openocc_root(root, samples, who="M3Dataset"):
    """Up-front checks of OpenOccupancy training on ``samples`` (:class:`perception.data.sample.Sample`): a root
    folder, every sample with its scene and LiDAR tokens, and at least one label file (none at all means a
    wrong root, not missing labels). Raises ``ValueError`` / ``FileNotFoundError`` saying what to fix."""
    if root is None:
        raise ValueError(f"{who}: occ_format='openocc' needs openocc_root: set data.openocc_root to the "
                         "nuScenes-Occupancy label folder (e.g. --cfg-options "
                         "data.openocc_root=/data/nuScenes-Occupancy)")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data.openocc_root (nuScenes-Occupancy labels) not found: {root}")
    untokened = [s for s in samples if not (s.scene_token and s.lidar_token)]
    if untokened:
        raise ValueError(
            f"{who}: occ_format='openocc': {len(untokened)} of {len(samples)} samples (e.g. "
            f"{untokened[0].token}) have no scene_token / LIDAR_TOP sample_data token, which name the "
            "OpenOccupancy label file; rebuild the index (`perception index`, or delete "
            "<dataroot>/m3_index_<version>.pkl to have training rebuild it: indexes written before scene "
            "tokens were stored lack them) or use an info file with 'scene_token' and 'lidar_token'"
        )
    paths = [openocc_label_path(root, s.scene_token, s.lidar_token) for s in samples]
    if paths and not any(os.path.isfile(p) for p in paths):  # stops at the first file found
        raise FileNotFoundError(f"data.openocc_root {root}: no nuScenes-Occupancy label file for any of the "
                                f"{len(paths)} samples, e.g. {paths[0]}")
