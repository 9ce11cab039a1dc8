"""Augmentations keep LiDAR points, boxes and camera images consistent (perception/data/augment.py)."""

import numpy as np
import pytest

from perception.data import augment
from perception.data.boxes import points_in_boxes
from perception.viz.geometry import project_points

IMAGE_HW = (160, 240)
K = np.array([[120.0, 0.0, 120.0], [0.0, 120.0, 80.0], [0.0, 0.0, 1.0]])
# Camera looking along LiDAR +y (forward): cam x = LiDAR x, cam y = -LiDAR z, cam z = LiDAR y; 1.5 m above.
LIDAR2CAM = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, -1.5], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def coordinate_image():
    """Pixel (u, v) has colour (u, v, 128): the image content names the pixel it came from."""
    H, W = IMAGE_HW
    v, u = np.mgrid[0:H, 0:W]
    return np.stack([u, v, np.full_like(u, 128)], axis=-1).astype(np.uint8)


def bilinear(image, uv):
    """Colour of ``image`` at continuous pixel positions ``uv`` (pixel centres at index + 0.5)."""
    x, y = uv[:, 0] - 0.5, uv[:, 1] - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    im = image.astype(np.float64)
    return (
        im[y0, x0] * (1 - fx) * (1 - fy) + im[y0, x0 + 1] * fx * (1 - fy)
        + im[y0 + 1, x0] * (1 - fx) * fy + im[y0 + 1, x0 + 1] * fx * fy
    )


def test_augmented_point_projects_onto_same_image_content():
    image = coordinate_image()
    img_params = augment.ImageAugParams(final_hw=(96, 160), resize_range=(0.6, 0.8), rot_range_deg=(-5, 5),
                                        flip_prob=0.5)
    rng = np.random.default_rng(0)
    checked = 0
    flips_seen = set()
    for _ in range(8):
        A = augment.sample_bev_aug(augment.BevAugParams(), rng)
        P = augment.sample_image_aug(img_params, IMAGE_HW, rng)
        flips_seen.add(bool(P[0, 0] < 0))
        warped = augment.warp_image(image, P, img_params.final_hw)
        lidar2img_aug = augment.lidar2img_from(augment.augment_intrinsics(K, P),
                                               augment.augment_lidar2cam(LIDAR2CAM, A))

        pts = np.stack([rng.uniform(-8, 8, 400), rng.uniform(5, 30, 400), rng.uniform(-2, 2, 400)], axis=1)
        uv, depth = project_points(augment.lidar2img_from(K, LIDAR2CAM), pts)
        uv_aug, depth_aug = project_points(lidar2img_aug, augment.augment_points(A, pts))
        assert np.all(depth_aug > 0)
        H, W = img_params.final_hw
        ok = (uv[:, 0] > 2) & (uv[:, 0] < IMAGE_HW[1] - 2) & (uv[:, 1] > 2) & (uv[:, 1] < IMAGE_HW[0] - 2)
        ok &= (uv_aug[:, 0] > 2) & (uv_aug[:, 0] < W - 2) & (uv_aug[:, 1] > 2) & (uv_aug[:, 1] < H - 2)
        colour = bilinear(warped, uv_aug[ok])
        # The colour decodes to the original pixel index; the pixel centre is index + 0.5. Tolerance: two
        # uint8 roundings (PIL's resampling and ours); a wrong flip/rotation/crop is off by many pixels.
        np.testing.assert_allclose(colour[:, :2] + 0.5, uv[ok], atol=1.0)
        checked += int(ok.sum())
    assert checked > 200
    assert flips_seen == {True, False}


def test_points_inside_boxes_stay_inside():
    rng = np.random.default_rng(1)
    M = 20
    boxes = np.zeros((M, 9), np.float32)
    boxes[:, :3] = rng.uniform(-30, 30, (M, 3))
    boxes[:, 3:6] = rng.uniform(0.5, 6, (M, 3))
    boxes[:, 6] = rng.uniform(-np.pi, np.pi, M)
    # One point per box at 90% of the half-size inside and one at 110% (outside), in the box frame.
    local = rng.uniform(-1, 1, (M, 3))
    local /= np.abs(local).max(axis=1, keepdims=True)
    corners = []
    for f in (0.9, 1.1):
        off = local * f * boxes[:, 3:6] / 2
        c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
        rotated = np.stack([c * off[:, 0] - s * off[:, 1], s * off[:, 0] + c * off[:, 1], off[:, 2]], 1)
        corners.append(boxes[:, :3] + rotated)
    inside, outside = corners
    for flip_x, flip_y in [(False, False), (True, False), (False, True), (True, True)]:
        A = augment.make_bev_aug(rotation=0.7, scale=1.08, flip_x=flip_x, flip_y=flip_y, translation=(0.3, -0.2, 0.1))
        boxes_aug = augment.augment_boxes(A, boxes)
        assert np.all(np.diag(points_in_boxes(augment.augment_points(A, inside), boxes_aug)))
        assert not np.any(np.diag(points_in_boxes(augment.augment_points(A, outside), boxes_aug)))
        np.testing.assert_allclose(boxes_aug[:, 3:6], boxes[:, 3:6] * 1.08, rtol=1e-5)


@pytest.mark.parametrize("flip_x,flip_y,rotation",
                         [(True, False, 0.0), (False, True, 0.0), (True, True, 0.4), (False, False, -1.2)])
def test_yaw_and_velocity_follow_two_points(flip_x, flip_y, rotation):
    yaw = np.array([0.3, 2.0, -2.5, np.pi / 2])
    boxes = np.zeros((4, 9), np.float32)
    boxes[:, 0] = [1, -4, 10, 0]
    boxes[:, 3:6] = [4, 2, 1.5]
    boxes[:, 6] = yaw
    boxes[:, 7:9] = [[3, 1], [-2, 0.5], [0, -4], [1, 1]]
    A = augment.make_bev_aug(rotation=rotation, scale=0.95, flip_x=flip_x, flip_y=flip_y, translation=(1, 2, 0))
    out = augment.augment_boxes(A, boxes)
    centre = boxes[:, :3].astype(np.float64)
    ahead = centre + np.stack([np.cos(yaw), np.sin(yaw), np.zeros(4)], 1)  # a point along the heading
    moved = centre + np.concatenate([boxes[:, 7:9], np.zeros((4, 1))], 1) * 0.5  # where it is 0.5 s later
    c2, a2, m2 = (augment.augment_points(A, p) for p in (centre, ahead, moved))
    heading = a2 - c2
    np.testing.assert_allclose(np.stack([np.cos(out[:, 6]), np.sin(out[:, 6])], 1),
                               heading[:, :2] / np.linalg.norm(heading[:, :2], axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(out[:, 7:9], (m2 - c2)[:, :2] / 0.5, atol=1e-4)
    if flip_x and not flip_y and rotation == 0.0:  # mirror across the y axis: yaw -> pi - yaw
        np.testing.assert_allclose(np.cos(out[:, 6] - (np.pi - yaw)), 1.0, atol=1e-6)
    if flip_y and not flip_x and rotation == 0.0:  # mirror across the x axis: yaw -> -yaw
        np.testing.assert_allclose(np.cos(out[:, 6] + yaw), 1.0, atol=1e-6)


def test_unknown_velocity_stays_nan_and_bad_input_raises():
    boxes = np.array([[0, 0, 0, 4, 2, 1.5, 0.0, np.nan, np.nan]], np.float32)
    out = augment.augment_boxes(augment.make_bev_aug(rotation=0.5, flip_x=True), boxes)
    assert np.isnan(out[0, 7:9]).all() and np.isfinite(out[0, :7]).all()
    with pytest.raises(ValueError, match="boxes"):
        augment.augment_boxes(np.eye(4), np.zeros((2, 7)))
    with pytest.raises(ValueError, match="scale"):
        augment.make_bev_aug(scale=0.0)
    shear = np.eye(4)
    shear[0, 1] = 0.3
    with pytest.raises(ValueError, match="similarity"):
        augment.augment_boxes(shear, boxes)


def test_random_draws_are_reproducible_and_eval_is_deterministic():
    params = augment.BevAugParams()
    a1 = augment.sample_bev_aug(params, np.random.default_rng(5))
    a2 = augment.sample_bev_aug(params, np.random.default_rng(5))
    a3 = augment.sample_bev_aug(params, np.random.default_rng(6))
    np.testing.assert_array_equal(a1, a2)
    assert not np.allclose(a1, a3)
    # Test time: full-width resize of a 1600 x 900 image to 704 wide, no flip, no rotation, bottom kept.
    P = augment.eval_image_aug(augment.ImageAugParams(final_hw=(256, 704)), (900, 1600))
    np.testing.assert_allclose(P[:2, :2], np.eye(2) * 0.44)
    assert P[0, 2] == 0.0 and P[1, 2] == -(396 - 256)
