"""BEV map GT: a hand-made map expansion with one walkway polygon and one lane divider, rotated ego."""

import json

import numpy as np
from shapely.geometry import Point, Polygon

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.data.bev_map import get_nusc_map, make_bev_map_fn, rasterize_bev_map
from perception.geometry import make_transform, yaw_to_quat

LOCATION = "singapore-onenorth"
# An L-shaped walkway (asymmetric: a transposed or mirrored raster cannot match) and a straight divider.
WALKWAY = [(110.0, 210.0), (130.0, 210.0), (130.0, 215.0), (115.0, 215.0), (115.0, 235.0), (110.0, 235.0)]
DIVIDER = [(90.0, 190.0), (90.0, 240.0)]


def _write_map(root):
    nodes = [{"token": f"n{i}", "x": x, "y": y} for i, (x, y) in enumerate(WALKWAY + DIVIDER)]
    layers = {name: [] for name in ("drivable_area", "road_segment", "road_block", "lane", "ped_crossing",
                                    "stop_line", "carpark_area", "road_divider", "traffic_light", "lane_connector")}
    layers.update(
        version="1.3",
        canvas_edge=[1000.0, 1000.0],
        node=nodes,
        polygon=[{"token": "p0", "exterior_node_tokens": [f"n{i}" for i in range(len(WALKWAY))], "holes": []}],
        line=[{"token": "l0", "node_tokens": [f"n{len(WALKWAY)}", f"n{len(WALKWAY) + 1}"]}],
        walkway=[{"token": "w0", "polygon_token": "p0"}],
        lane_divider=[{"token": "d0", "line_token": "l0", "lane_divider_segments": []}],
        arcline_path_3={},
        connectivity={},
    )
    (root / "maps" / "expansion").mkdir(parents=True)
    (root / "maps" / "expansion" / f"{LOCATION}.json").write_text(json.dumps(layers))


def test_rotated_polygon_lands_in_the_right_cells(tmp_path):
    _write_map(tmp_path)
    # LiDAR at (100, 220) global, its x axis heading 30 degrees CCW, slightly raised.
    lidar2global = make_transform(yaw_to_quat(np.radians(30.0)), [100.0, 220.0, 1.8])
    bev = rasterize_bev_map(get_nusc_map(str(tmp_path), LOCATION), lidar2global)
    assert bev.shape == (6, 200, 200) and bev.dtype == np.uint8
    walkway = bev[BEV_MAP_CLASSES.index("walkway")]
    # Expected: cell centres (LiDAR frame) -> global -> inside the polygon.
    xs, ys = BEV_MAP_GRID.centers(0), BEV_MAP_GRID.centers(1)
    poly = Polygon(WALKWAY)
    expected = np.zeros((200, 200), bool)
    for ix, x in enumerate(xs):
        for iy, y in enumerate(ys):
            g = lidar2global @ np.array([x, y, 0.0, 1.0])
            expected[ix, iy] = poly.contains(Point(g[0], g[1]))
    inter = (walkway.astype(bool) & expected).sum()
    union = (walkway.astype(bool) | expected).sum()
    # cv2 fills boundary pixels generously: the edge ring of the 5 m wide arms costs some IoU
    assert expected.sum() > 500 and inter / expected.sum() > 0.95 and inter / union > 0.8
    assert walkway.T.astype(bool)[expected].mean() < 0.5  # the transposed raster would not match
    # The divider is a line 10 m behind-left: cells on it are set in 'divider', other classes empty.
    divider = bev[BEV_MAP_CLASSES.index("divider")]
    on_line = lidar2global[:2, :2].T @ (np.array([90.0, 215.0]) - lidar2global[:2, 3])
    ix, iy = ((on_line - np.array(BEV_MAP_GRID.lower)) / 0.5).astype(int)
    assert divider[ix - 1 : ix + 2, iy - 1 : iy + 2].any()
    assert divider.sum() < 400 and bev[BEV_MAP_CLASSES.index("drivable_area")].sum() == 0


def test_bev_map_fn_only_with_a_map_file(tmp_path):
    assert make_bev_map_fn(str(tmp_path), LOCATION) is None
    assert make_bev_map_fn(str(tmp_path), None) is None
    _write_map(tmp_path)
    assert make_bev_map_fn(str(tmp_path), LOCATION) is not None
    assert get_nusc_map(str(tmp_path), LOCATION) is get_nusc_map(str(tmp_path), LOCATION)  # cached
