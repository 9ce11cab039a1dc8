"""Network inputs of one sample, shared by training and inference: the LiDAR points (:func:`read_points`),
the camera images with their matrices (:func:`camera_inputs`), the range crop, and the whole inference item
(:func:`inference_item`, what :class:`perception.data.dataset.M3Dataset` gives with ``training=False``, without
ground truth; the runtime calls it per frame).

Problems are returned, not raised or logged, as ``(kind, count, message)``: the dataset counts them, the runtime
reports them. Frames: points and matrices in the LiDAR frame, then through the BEV augmentation ``A``
(original -> augmented LiDAR frame); metres, seconds.
"""

from dataclasses import replace

import numpy as np

from perception.data import augment

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Errors that mean "this file is missing or unreadable" (loaders raise these with the file name).
LOAD_ERRORS = (FileNotFoundError, OSError, ValueError)


def read_points(sample, num_sweeps):
    """The sample's keyframe plus ``num_sweeps`` sweeps: ``(N, 5)`` float32 x, y, z (m), intensity, time lag (s)
    in the ORIGINAL LiDAR frame, a validity flag (False: missing or unreadable, empty points), and the problems
    found as ``(kind, count, message)`` (the dataset counts them, the runtime reports them)."""
    problems = []
    try:
        points = np.asarray(replace(sample, num_sweeps=num_sweeps).points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] not in (4, 5):
            raise ValueError(f"points of {sample.lidar_path} have shape {points.shape}, expected (N, 4|5)")
    except LOAD_ERRORS as e:
        problems.append(("lidar_unreadable", 1, f"sample {sample.token}: LiDAR unreadable, lidar_mask=False: {e}"))
        return np.zeros((0, 5), np.float32), False, problems
    if points.shape[1] == 4:  # keyframe only: time lag 0
        points = np.concatenate([points, np.zeros((len(points), 1), np.float32)], axis=1)
    finite = all_columns(np.isfinite(points))
    if not finite.all():
        problems.append(("nan_points", int((~finite).sum()),
                         f"sample {sample.token}: {(~finite).sum()} NaN/inf points removed"))
    return points[finite], True, problems


def all_columns(mask):
    """``mask (N, C)`` bool -> ``(N,)``: all columns True. Column by column: ``np.all(axis=1)`` over a short
    row reduces element by element (~10x slower on a 10-sweep cloud, docs/benchmarks.md)."""
    out = mask[:, 0].copy()
    for c in range(1, mask.shape[1]):
        out &= mask[:, c]
    return out


def _one_camera(sample, name, image_aug, A, fhw, rng):
    """``(fields, problem)`` of one camera: ``fields`` the normalised image ``(3, H, W)`` and its matrices (None
    when the camera is missing or unreadable, ``problem`` then says why)."""
    cam = sample.cameras.get(name)
    if cam is None:
        return None, ("camera_missing", 1, f"sample {sample.token}: camera {name} absent, cam_mask=False")
    try:
        image = cam.image
    except LOAD_ERRORS as e:
        return None, ("camera_unreadable", 1, f"sample {sample.token}: camera {name} unreadable, cam_mask=False: {e}")
    hw = image.shape[:2]
    P = augment.sample_image_aug(image_aug, hw, rng) if rng is not None else augment.eval_image_aug(image_aug, hw)
    K = augment.augment_intrinsics(cam.intrinsics, P)
    l2c = augment.augment_lidar2cam(cam.lidar2cam, A)
    warped = augment.warp_image(image, P, fhw).astype(np.float32) / 255.0
    return {"images": ((warped - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1), "intrinsics": K,
            "lidar2cam": l2c, "lidar2img": augment.lidar2img_from(K, l2c), "img_aug": P}, None


def camera_inputs(sample, cameras, image_aug, A, rng=None, pool=None):
    """Per-camera network inputs for ``cameras`` (``CAMERA_NAMES`` order): normalised augmented images
    ``(n, 3, H, W)``, ``cam_mask``, and the augmented ``intrinsics`` / ``lidar2cam`` / ``lidar2img`` /
    ``img_aug`` matrices; ``A`` is the BEV augmentation (original -> augmented LiDAR frame). ``rng`` draws a
    training image augmentation; ``None`` uses the deterministic test-time one. Returns ``(inputs, problems)``
    with problems as in :func:`read_points`; a missing or unreadable camera has ``cam_mask`` False.

    ``pool`` (a ``concurrent.futures`` executor, test time only): the cameras are decoded, warped and normalised
    in its threads (PIL and numpy release the GIL), with the same result and problems in camera order."""
    fH, fW = image_aug.final_hw
    n = len(cameras)
    out = {
        "images": np.zeros((n, 3, fH, fW), np.float32),
        "cam_mask": np.zeros((n,), bool),
        "intrinsics": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        "lidar2cam": np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)),
        "lidar2img": np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)),
        "img_aug": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
    }
    def one(name):
        return _one_camera(sample, name, image_aug, A, (fH, fW), rng)

    # a training draw (rng) stays sequential: the cameras take their augmentations from one generator in order
    results = list(pool.map(one, cameras)) if pool is not None and rng is None else [one(c) for c in cameras]
    problems = []
    for i, (fields, problem) in enumerate(results):
        if fields is None:
            problems.append(problem)
            continue
        out["cam_mask"][i] = True
        for key, value in fields.items():
            out[key][i] = value
    return out, problems


def crop_to_range(points, point_cloud_range):
    """Points whose x, y, z lie in ``[lo, hi)`` of ``point_cloud_range`` (xmin, ymin, zmin, xmax, ymax, zmax)."""
    bounds = np.asarray(point_cloud_range, dtype=np.float32)  # float32 like the points: same cut at the edges
    lo, hi = bounds[:3], bounds[3:]
    return points[all_columns((points[:, :3] >= lo) & (points[:, :3] < hi))]


def inference_item(sample, cameras, image_aug, num_sweeps, point_cloud_range, pool=None):
    """The inference item of ``sample``: what :class:`M3Dataset` (``training=False``) gives, without any ground
    truth (the model cannot see labels at test time). A plain function: the runtime calls it per frame.

    Returns ``(item, problems)``: the item has ``points``, ``lidar_mask``, the camera inputs of
    :func:`camera_inputs`, ``bev_aug`` (identity), ``lidar2ego`` and ``meta``; problems as in :func:`read_points`.
    ``pool``: threads for the cameras (:func:`camera_inputs`).
    """
    A = augment.identity_bev_aug()
    points, lidar_ok, problems = read_points(sample, num_sweeps)
    cams, cam_problems = camera_inputs(sample, cameras, image_aug, A, pool=pool)
    item = {
        "points": crop_to_range(augment.augment_points(A, points), point_cloud_range).astype(np.float32),
        "lidar_mask": lidar_ok,
        **cams,
        "bev_aug": A.astype(np.float32),
        "lidar2ego": np.asarray(sample.lidar2ego, dtype=np.float32),
        "meta": sample_meta(sample),
    }
    return item, problems + cam_problems


def sample_meta(sample):
    """The item's ``meta``: token, time (us), scene and the poses (float64, 4 x 4) for outputs in ego / global."""
    return {
        "token": sample.token,
        "timestamp": sample.timestamp,
        "scene_name": sample.scene_name,
        "ego2global": np.asarray(sample.ego2global, dtype=np.float64),
        "lidar2ego": np.asarray(sample.lidar2ego, dtype=np.float64),
    }
