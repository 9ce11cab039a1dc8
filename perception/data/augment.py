"""Multi-modal augmentations that keep LiDAR, boxes and cameras consistent.

Two matrices describe every augmentation (see ``docs/architecture.md``):

- ``A`` (4x4, float64): original LiDAR frame -> augmented LiDAR frame. A similarity about the LiDAR origin:
  rotation about +z, uniform scale, optional flips of x and/or y, then a translation (metres). Points and
  boxes are mapped by ``A``; cameras get ``lidar2cam_aug = lidar2cam @ inv(A)`` so that an augmented point
  still lands on the same camera ray. Dense GT (BEV map, occupancy) is NOT resampled: the model samples
  through ``A``.
- ``P`` (3x3, float64) per camera: original pixel -> augmented pixel (resize, crop, horizontal flip, small
  rotation about the image centre). Intrinsics become ``K' = P @ K`` and
  ``lidar2img' = [[P K, 0], [0, 1]] @ lidar2cam_aug``.

Pixel coordinates are continuous with pixel ``(i, j)`` covering ``[i, i+1) x [j, j+1)`` (PIL's convention),
``u`` along the image width, ``v`` down the height.

All functions are pure; randomness comes from an explicit ``numpy.random.Generator``. At test time use
:func:`identity_bev_aug` and :func:`eval_image_aug`.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class BevAugParams:
    """Ranges of the global 3D augmentation (training).

    - ``rot_range``: yaw rotation (radians) drawn uniformly from ``(lo, hi)`` about LiDAR +z.
    - ``scale_range``: uniform scale factor drawn from ``(lo, hi)``.
    - ``flip_x_prob`` / ``flip_y_prob``: probability to negate x (mirror across the y-z plane) / negate y.
    - ``translation_std``: std (metres) of a Gaussian translation along x, y, z.
    """

    rot_range: tuple = (-np.pi / 4, np.pi / 4)
    scale_range: tuple = (0.9, 1.1)
    flip_x_prob: float = 0.5
    flip_y_prob: float = 0.5
    translation_std: float = 0.5


@dataclass(frozen=True)
class ImageAugParams:
    """Image augmentation (BEVFusion style): resize by ``r``, crop to ``final_hw``, flip, rotate.

    - ``final_hw``: ``(H, W)`` of the network input, pixels.
    - ``resize_range``: training resize factor ``r`` (relative to the loaded image) drawn from ``(lo, hi)``.
    - ``test_resize``: resize factor at test time; ``None`` = the smallest factor that covers ``final_hw``.
    - ``bottom_crop_range``: fraction of the resized height cut from the bottom, drawn from ``(lo, hi)``
      (test time: its mean). The crop keeps the lower part of the image (the road) otherwise.
    - ``rot_range_deg``: in-plane rotation about the output image centre (degrees), ``(lo, hi)``.
    - ``flip_prob``: probability of a horizontal flip.
    """

    final_hw: tuple = (256, 704)
    resize_range: tuple = (0.38, 0.55)
    test_resize: float = None
    bottom_crop_range: tuple = (0.0, 0.0)
    rot_range_deg: tuple = (-5.4, 5.4)
    flip_prob: float = 0.5


def image_aug_params(data_cfg):
    """:class:`ImageAugParams` of a config's ``data`` section (``image_size``, ``augment``)."""
    a = data_cfg["augment"]
    return ImageAugParams(
        final_hw=tuple(data_cfg["image_size"]),
        resize_range=tuple(a["resize_lim"]),
        test_resize=a["test_resize"],
        bottom_crop_range=tuple(a["bottom_crop_lim"]),
        rot_range_deg=tuple(a["rot_lim"]),
        flip_prob=float(a["image_flip_prob"]),
    )


def bev_aug_params(data_cfg):
    """:class:`BevAugParams` of a config's ``data.augment`` section."""
    a = data_cfg["augment"]
    return BevAugParams(
        rot_range=tuple(a["bev_rot_lim"]),
        scale_range=tuple(a["bev_scale_lim"]),
        flip_x_prob=float(a["bev_flip_x_prob"]),
        flip_y_prob=float(a["bev_flip_y_prob"]),
        translation_std=float(a["bev_translate_std"]),
    )


# ---------------------------------------------------------------------------------------------- 3D (LiDAR)


def identity_bev_aug():
    """``A = I`` (test time)."""
    return np.eye(4)


def make_bev_aug(rotation=0.0, scale=1.0, flip_x=False, flip_y=False, translation=(0.0, 0.0, 0.0)):
    """Build ``A`` (original LiDAR -> augmented LiDAR): rotate about +z by ``rotation`` (rad), scale by
    ``scale``, negate x if ``flip_x``, negate y if ``flip_y``, then translate by ``translation`` (metres)."""
    if not scale > 0:
        raise ValueError(f"make_bev_aug: scale must be > 0, got {scale}")
    c, s = np.cos(rotation), np.sin(rotation)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    F = np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0])
    A = np.eye(4)
    A[:3, :3] = F @ (scale * R)
    A[:3, 3] = np.asarray(translation, dtype=np.float64)
    return A


def sample_bev_aug(params, rng):
    """Draw a random ``A`` from :class:`BevAugParams` with the generator ``rng``."""
    return make_bev_aug(
        rotation=rng.uniform(*params.rot_range),
        scale=rng.uniform(*params.scale_range),
        flip_x=bool(rng.random() < params.flip_x_prob),
        flip_y=bool(rng.random() < params.flip_y_prob),
        translation=rng.normal(0.0, params.translation_std, size=3) if params.translation_std > 0 else np.zeros(3),
    )


def _similarity_scale(A):
    """Uniform scale of a 4x4 similarity that keeps +z vertical; raises ValueError for anything else."""
    M = np.asarray(A, dtype=np.float64)[:3, :3]
    s = abs(np.linalg.det(M)) ** (1.0 / 3.0)
    if s == 0 or not np.allclose(M.T @ M, s * s * np.eye(3), atol=1e-6) or not np.isclose(M[2, 2], s, atol=1e-6):
        raise ValueError("bev_aug A must be rotation about z, uniform scale and x/y flips (a similarity)")
    return s


def augment_points(A, points):
    """Map ``(N, C>=3)`` points (LiDAR frame, metres; extra channels untouched) through ``A``; same dtype."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, C>=3), got shape {points.shape}")
    out = points.copy()
    out[:, :3] = points[:, :3] @ A[:3, :3].T.astype(points.dtype) + A[:3, 3].astype(points.dtype)
    return out


def augment_boxes(A, boxes):
    """Map ``(M, 9)`` boxes ``x, y, z, l, w, h, yaw, vx, vy`` (LiDAR frame) through ``A``.

    Centre: ``A @ c``. Sizes: times the scale of ``A``. Heading: the direction ``(cos yaw, sin yaw)`` is
    mapped by the 2x2 block of ``A`` and the new yaw is its angle (so flips mirror the heading). Velocity:
    mapped by the same 2x2 block (NaN stays NaN). Returns float32.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 9:
        raise ValueError(f"boxes must be (M, 9) x,y,z,l,w,h,yaw,vx,vy, got shape {boxes.shape}")
    s = _similarity_scale(A)
    M2 = A[:2, :2]
    out = boxes.copy()
    out[:, :3] = boxes[:, :3] @ A[:3, :3].T + A[:3, 3]
    out[:, 3:6] = boxes[:, 3:6] * s
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], axis=1) @ M2.T
    out[:, 6] = np.arctan2(heading[:, 1], heading[:, 0])
    out[:, 7:9] = boxes[:, 7:9] @ M2.T
    return out.astype(np.float32)


def augment_lidar2cam(lidar2cam, A):
    """Camera extrinsics for the augmented LiDAR frame: ``lidar2cam @ inv(A)`` (4x4, float64)."""
    return np.asarray(lidar2cam, dtype=np.float64) @ np.linalg.inv(A)


# ---------------------------------------------------------------------------------------------- images


def make_image_aug(resize, crop_uv, flip, rotation_deg, final_hw):
    """Build ``P`` (3x3, original pixel -> augmented pixel).

    Order: scale by ``resize``; shift by ``-crop_uv`` (top-left corner of the crop in the resized image);
    mirror horizontally inside the output width if ``flip``; rotate by ``rotation_deg`` (counter-clockwise
    on screen) about the centre of the ``final_hw`` output.
    """
    H, W = final_hw
    S = np.diag([resize, resize, 1.0])
    C = np.array([[1.0, 0.0, -crop_uv[0]], [0.0, 1.0, -crop_uv[1]], [0.0, 0.0, 1.0]])
    F = np.array([[-1.0, 0.0, W], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flip else np.eye(3)
    a = np.deg2rad(rotation_deg)
    c, s = np.cos(a), np.sin(a)
    # v points down, so a counter-clockwise rotation on screen is [[c, s], [-s, c]] in (u, v).
    R = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    centre = np.array([[1.0, 0.0, W / 2], [0.0, 1.0, H / 2], [0.0, 0.0, 1.0]])
    R = centre @ R @ np.linalg.inv(centre)
    return R @ F @ C @ S


def _crop_for(resize, image_hw, final_hw, bottom_frac, crop_u_frac):
    """Top-left crop corner (u, v) in the resized image: ``bottom_frac`` of the height cut from the bottom,
    horizontal position ``crop_u_frac`` in [0, 1] of the free width."""
    H, W = image_hw
    fH, fW = final_hw
    new_h, new_w = int(round(H * resize)), int(round(W * resize))
    crop_v = int((1.0 - bottom_frac) * new_h) - fH
    crop_u = int(crop_u_frac * max(0, new_w - fW))
    return crop_u, crop_v


def eval_image_aug(params, image_hw):
    """Deterministic ``P`` for evaluation: fixed resize, horizontally centred crop, no flip/rotation."""
    H, W = image_hw
    fH, fW = params.final_hw
    resize = params.test_resize if params.test_resize is not None else max(fH / H, fW / W)
    bottom = float(np.mean(params.bottom_crop_range))
    crop = _crop_for(resize, image_hw, params.final_hw, bottom, 0.5)
    return make_image_aug(resize, crop, False, 0.0, params.final_hw)


def sample_image_aug(params, image_hw, rng):
    """Draw a random training ``P`` for an image of size ``image_hw = (H, W)`` pixels."""
    resize = rng.uniform(*params.resize_range)
    crop = _crop_for(resize, image_hw, params.final_hw, rng.uniform(*params.bottom_crop_range), rng.random())
    flip = bool(rng.random() < params.flip_prob)
    rot = rng.uniform(*params.rot_range_deg)
    return make_image_aug(resize, crop, flip, rot, params.final_hw)


def warp_image(image, P, final_hw):
    """Resample ``(H, W, 3)`` uint8 ``image`` so that original pixel ``p`` lands at ``P @ p``.

    Returns ``(final_H, final_W, 3)`` uint8; pixels mapping outside the source are black. One bilinear
    resampling for the whole chain (resize, crop, flip, rotation).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    fH, fW = final_hw
    inv = np.linalg.inv(P)  # PIL wants output pixel -> input pixel
    coeffs = (inv[0, 0], inv[0, 1], inv[0, 2], inv[1, 0], inv[1, 1], inv[1, 2])
    out = Image.fromarray(image).transform((fW, fH), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def augment_intrinsics(K, P):
    """Intrinsics of the augmented image: ``P @ K`` (3x3)."""
    return np.asarray(P, dtype=np.float64) @ np.asarray(K, dtype=np.float64)


def lidar2img_from(K_aug, lidar2cam_aug):
    """``[[K', 0], [0, 1]] @ lidar2cam_aug`` (4x4): augmented LiDAR frame -> augmented pixels (homogeneous)."""
    K4 = np.eye(4)
    K4[:3, :3] = K_aug
    return K4 @ lidar2cam_aug
