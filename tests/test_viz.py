"""Visualizations and ``perception show`` (perception/viz, perception/cli/show.py)."""

import json

import numpy as np
from PIL import Image

from perception.cli.main import main
from perception.constants import DETECTION_CLASSES
from perception.data.boxes import convert_boxes, points_in_boxes
from perception.data.sample import CameraView, Sample
from perception.geometry import invert, make_transform
from perception.viz import BevLayers, render_bev, render_cameras
from perception.viz.colors import DETECTION_COLORS, to_uint8
from perception.viz.geometry import BOX_EDGES, clip_segments_to_camera

SURROUNDOCC = "surroundocc/tools/generate_occupancy_with_own_data"
CAR = tuple(int(c) for c in to_uint8(DETECTION_COLORS[0]))


def colour_pixels(png, colour, tol=40):
    """``(K, 2)`` (column, row) of the pixels within ``tol`` of ``colour``."""
    im = np.asarray(Image.open(png).convert("RGB")).astype(int)
    rows, cols = np.nonzero(np.abs(im - np.array(colour)).sum(axis=2) < tol)
    return np.stack([cols, rows], axis=1)


def test_bev_axes_x_right_y_up(tmp_path):
    box = np.array([[0, 0, 0, 4, 2, 1.5, 0, 0, 0]], np.float32)
    centres = {}
    for name, (x, y) in {"origin": (-20, -20), "right": (10, -20), "up": (-20, 10)}.items():
        box[0, :2] = x, y
        out = render_bev(BevLayers(boxes=box.copy(), labels=np.array([0])), str(tmp_path / f"{name}.png"))
        px = colour_pixels(out, CAR)
        assert len(px) > 20, name
        centres[name] = px.mean(axis=0)
    assert centres["right"][0] - centres["origin"][0] > 100 and abs(centres["right"][1] - centres["origin"][1]) < 5
    assert centres["origin"][1] - centres["up"][1] > 100 and abs(centres["up"][0] - centres["origin"][0]) < 5


def test_box_edges_and_near_plane_clipping():
    assert len(BOX_EDGES) == 12 and len(set(BOX_EDGES)) == 12
    # Camera at the origin looking along +z (lidar2cam = I): a segment from behind to in front is clipped.
    a, b, keep = clip_segments_to_camera(np.array([[0, 0, -5.0], [1, 1, -1.0]]), np.array([[0, 2, 5.0], [1, 1, -2.0]]),
                                         np.eye(4), near=0.1)
    assert keep.tolist() == [True, False]
    np.testing.assert_allclose(a[0], [0, 1.02, 0.1])
    np.testing.assert_allclose(b[0], [0, 2, 5.0])


def camera_sample(tmp_path, real_dir):
    """The real CAM_BACK_LEFT image with its calibration; 'LiDAR' frame = ego frame; its 5 GT boxes."""
    root = real_dir / "mmdetection3d/tests/data/nuscenes"
    coco = json.loads((root / "nus_infos_mono3d.coco.json").read_text())
    image = next(i for i in coco["images"] if "CAM_BACK_LEFT" in i["file_name"])
    anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    lidar2cam = invert(make_transform(image["cam2ego_rotation"], image["cam2ego_translation"]))
    boxes = convert_boxes(np.array([a["bbox_cam3d"] for a in anns]), "camera", "lidar", lidar2cam=lidar2cam)
    cam = CameraView("CAM_BACK_LEFT", str(root / image["file_name"]), np.array(image["cam_intrinsic"]), lidar2cam)
    sample = Sample(
        token="cam", lidar_path=str(tmp_path / "none.pcd.bin"), lidar2ego=np.eye(4), ego2global=np.eye(4),
        cameras={"CAM_BACK_LEFT": cam}, boxes=boxes.astype(np.float32),
        labels=np.array([DETECTION_CLASSES.index(a["category_name"]) for a in anns]),
    )
    return sample, anns


def test_render_cameras_boxes_land_on_their_2d_boxes(tmp_path, real_dir):
    sample, anns = camera_sample(tmp_path, real_dir)
    out = render_cameras(sample, str(tmp_path / "cams.png"), points=np.zeros((0, 3)), tile_width=480)
    scale = 480 / 1600
    tile_origin = np.array([0, 270])  # CAM_BACK_LEFT: bottom-left tile of the 2x3 grid
    for a, label in zip(anns, sample.labels, strict=True):
        px = colour_pixels(out, to_uint8(DETECTION_COLORS[label]), tol=30) - tile_origin
        x, y, w, h = np.array(a["bbox"]) * scale
        inside = (px[:, 0] >= x - 3) & (px[:, 0] <= x + w + 3) & (px[:, 1] >= y - 3) & (px[:, 1] <= y + h + 3)
        assert inside.sum() > 10, a["category_name"]
    # The five missing cameras are grey tiles, the top-middle (CAM_FRONT) has no box colour at all.
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (540, 1440, 3)
    assert (sheet[40:270, 480:960] == 90).all()


def test_points_project_with_depth_colours(tmp_path):
    img = tmp_path / "front.jpg"
    Image.fromarray(np.full((90, 160, 3), 128, np.uint8)).save(img)
    K = np.array([[100.0, 0, 80], [0, 100.0, 45], [0, 0, 1]])
    lidar2cam = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])  # looks along LiDAR +y
    cam = CameraView("CAM_FRONT", str(img), K, lidar2cam)
    sample = Sample(token="p", lidar_path="", lidar2ego=np.eye(4), ego2global=np.eye(4), cameras={"CAM_FRONT": cam})
    # One point straight ahead at 10 m (image centre), one behind the camera (must not appear).
    out = render_cameras(sample, str(tmp_path / "p.png"), points=np.array([[0, 10.0, 0], [0, -10.0, 0]]),
                         tile_width=160)
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    tile = sheet[:90, 160:320]  # CAM_FRONT: top-middle
    changed = np.argwhere(np.abs(tile - 128).sum(axis=2) > 60)
    changed = changed[changed[:, 0] > 20]  # ignore the label text at the top
    assert len(changed) > 0
    np.testing.assert_allclose(changed.mean(axis=0), [45, 80], atol=1.5)


def test_surroundocc_boxes_sit_on_their_points(real_dir):
    from perception.data.surroundocc import load_surroundocc_frame

    points, semantic, boxes, labels = load_surroundocc_frame(str(real_dir / SURROUNDOCC), 0)
    cars = boxes[labels == 0]
    assert len(cars) >= 3
    inside = points_in_boxes(points[:, :3], cars).any(axis=1)
    # Occ3D class 4 = car: most points inside car boxes carry it.
    assert (semantic[inside] == 4).mean() > 0.8


def test_show_cli_surroundocc_frame(tmp_path, real_dir, capsys):
    assert main(["show", "--surroundocc", str(real_dir / SURROUNDOCC), "0", "--out", str(tmp_path)]) == 0
    out = tmp_path / "surroundocc_0_bev.png"
    assert str(out) in capsys.readouterr().out
    assert len(colour_pixels(out, CAR)) > 50  # car boxes (and car points) drawn


def test_show_cli_info_file(tmp_path, real_dir, capsys):
    info = real_dir / "mmdetection3d/tests/data/nuscenes/nus_info.pkl"
    assert main(["show", "1", "--info", str(info), "--out", str(tmp_path), "--num-sweeps", "0"]) == 0
    printed = capsys.readouterr().out.split()
    token = "6eb8a3ff0abf4f3a9380a48f2a0b87ef"
    assert printed == [str(tmp_path / f"{token}_bev.png"), str(tmp_path / f"{token}_cameras.png")]
    assert all(Image.open(p).size[0] > 500 for p in printed)


def test_occupancy_and_map_layers(tmp_path, real_dir):
    from perception.viz.bev import occupancy_top_class

    col = np.full((1, 1, 16), 17, np.uint8)
    col[0, 0, [2, 5]] = [11, 4]  # road at z index 2, car above it at 5
    assert occupancy_top_class(col)[0, 0] == 4 and occupancy_top_class(np.full((1, 1, 16), 17))[0, 0] == 17
    occ = np.load(real_dir / "occ3d_cvpr2023_challenge/data/29796060110c4163b07f06eff4af0753/labels.npz")["semantics"]
    bev = np.zeros((6, 200, 200), np.uint8)
    bev[5, 150:, :] = 1  # divider layer over x > 25 m
    lidar2ego = make_transform([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)], [0.94, 0, 1.84])  # LiDAR y = ego x
    out = render_bev(BevLayers(bev_map=bev, occ_semantics=occ, lidar2ego=lidar2ego), str(tmp_path / "layers.png"))
    im = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert (np.abs(im - [252, 240, 180]).sum(axis=2) < 40).sum() > 1000  # divider yellow at 35% over white
    assert (np.abs(im - [255, 140, 255]).sum(axis=2) < 60).sum() > 1000  # driveable_surface magenta at 45%
