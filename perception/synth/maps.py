"""Map expansion JSON (``maps/expansion/<location>.json``, schema v1.3 read by ``NuScenesMap``) and the
``map`` table's mask PNG, built from the scenes' roads (world v1) or layouts (world v2, the same layers from
:mod:`perception.synth.layout`). All coordinates are GLOBAL (metres).

Layers written per scene road (see :mod:`perception.synth.scene` for the lateral layout): drivable_area
(|d| < 9), walkway (9 < |d| < 12 both sides), ped_crossing and its stop_lines, carpark_area, road_divider
(centre line) and lane_divider (|d| = 3.5). Lane-graph layers (lane, road_segment, ...) are left empty.
"""

import json
import os

import numpy as np
from PIL import Image, ImageDraw

from perception.synth.scene import LANE_WIDTH, ROAD_HALF_WIDTH, SIDEWALK_OUTER
from perception.synth.tables import token

MAP_VERSION = "1.3"
MASK_RESOLUTION = 1.0  # metres per pixel of the map-table mask PNG


class _MapBuilder:
    """Accumulates nodes, lines and polygons with deterministic tokens."""

    def __init__(self, seed):
        self.seed = seed
        self.layers = {name: [] for name in (
            "node", "line", "polygon", "drivable_area", "road_segment", "road_block", "lane", "ped_crossing",
            "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider", "traffic_light",
            "lane_connector")}

    def _tok(self, kind):
        return token(self.seed, "map", kind, len(self.layers[kind]))

    def _nodes(self, xy):
        toks = []
        for x, y in np.asarray(xy, dtype=np.float64):
            t = self._tok("node")
            self.layers["node"].append({"token": t, "x": round(float(x), 4), "y": round(float(y), 4)})
            toks.append(t)
        return toks

    def polygon(self, xy, holes=()):
        t = self._tok("polygon")
        self.layers["polygon"].append({"token": t, "exterior_node_tokens": self._nodes(xy),
                                       "holes": [{"node_tokens": self._nodes(h)} for h in holes]})
        return t

    def shapes(self, geom, tolerance=0.05):
        """Polygon tokens of every polygon piece of a shapely geometry (simplified by ``tolerance`` metres)."""
        out = []
        for g in _pieces(geom.simplify(tolerance), "Polygon"):
            holes = [np.asarray(h.coords)[:-1] for h in g.interiors]
            out.append(self.polygon(np.asarray(g.exterior.coords)[:-1], holes))
        return out

    def line(self, xy):
        t = self._tok("line")
        self.layers["line"].append({"token": t, "node_tokens": self._nodes(xy)})
        return t

    def add(self, layer, **fields):
        t = self._tok(layer)
        self.layers[layer].append({"token": t, **fields})
        return t


def _strip(road, s0, s1, d0, d1, step=5.0):
    """Polygon (K, 2) of the road-aligned strip ``s in [s0, s1]``, ``d in [d0, d1]`` (global x, y)."""
    s = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / step)) + 1))
    return np.concatenate([road.to_global(s, np.full_like(s, d0)), road.to_global(s[::-1], np.full_like(s, d1))])


def _pieces(geom, kind):
    """The non-empty ``kind`` ("Polygon" / "LineString") parts of a shapely geometry."""
    if geom.is_empty:
        return []
    if geom.geom_type == kind:
        return [geom]
    return [p for g in getattr(geom, "geoms", []) for p in _pieces(g, kind)]


def _add_layout(b, lay):
    """Map layers of a world-v2 :class:`perception.synth.layout.Layout` (same layers and meaning as v1)."""
    b.add("drivable_area", polygon_tokens=b.shapes(lay.drivable))
    for pt in b.shapes(lay.walkway):
        b.add("walkway", polygon_token=pt)
    crossing_tokens = []
    for _, _, _, poly in lay.crossings:
        toks = [b.add("ped_crossing", polygon_token=pt, road_segment_token="") for pt in b.shapes(poly)]
        crossing_tokens.append(toks)
    for poly, c in lay.stop_lines:
        for pt in b.shapes(poly, 0.01):
            b.add("stop_line", polygon_token=pt, stop_line_type="PED_CROSSING", ped_crossing_tokens=crossing_tokens[c],
                  traffic_light_tokens=[], road_block_token="")
    for poly, heading in lay.carparks:
        for pt in b.shapes(poly):
            b.add("carpark_area", polygon_token=pt, orientation=float(heading), road_block_token="")
    for geom in lay.road_dividers:
        for ln in _pieces(geom.simplify(0.05), "LineString"):
            b.add("road_divider", line_token=b.line(np.asarray(ln.coords)), road_segment_token="")
    for geom in lay.lane_dividers:
        for ln in _pieces(geom.simplify(0.05), "LineString"):
            b.add("lane_divider", line_token=b.line(np.asarray(ln.coords)), lane_divider_segments=[])


def build_map(scenes, seed, canvas_edge):
    """Map-expansion JSON dict for ``scenes`` (their roads, crossings, car parks); ``canvas_edge`` (x, y) m."""
    b = _MapBuilder(seed)
    for sc in scenes:
        if hasattr(sc, "layout"):  # world v2
            _add_layout(b, sc.layout)
            continue
        r = sc.road
        b.add("drivable_area",
              polygon_tokens=[b.polygon(_strip(r, r.s_min, r.s_max, -ROAD_HALF_WIDTH, ROAD_HALF_WIDTH))])
        for side in (-1, 1):
            b.add("walkway", polygon_token=b.polygon(_strip(r, r.s_min, r.s_max, side * ROAD_HALF_WIDTH,
                                                            side * SIDEWALK_OUTER)))
        cs = sc.crossing_s
        pc = b.add("ped_crossing",
                   polygon_token=b.polygon(_strip(r, cs, cs + 4.0, -ROAD_HALF_WIDTH, ROAD_HALF_WIDTH, 1.0)),
                   road_segment_token="")
        # Stop lines where the paint is (scene.ground_marking): before the crossing on each driving side.
        for s_line, d0, d1 in ((cs - 2.5, -2 * LANE_WIDTH, 0.0), (cs + 5.5, 0.0, 2 * LANE_WIDTH)):
            b.add("stop_line", polygon_token=b.polygon(_strip(r, s_line, s_line + 1.0, d0, d1, 1.0)),
                  stop_line_type="PED_CROSSING", ped_crossing_tokens=[pc], traffic_light_tokens=[], road_block_token="")
        c0, c1, side = sc.carpark
        b.add("carpark_area",
              polygon_token=b.polygon(_strip(r, c0, c1, side * SIDEWALK_OUTER, side * (SIDEWALK_OUTER + 12.0))),
              orientation=0.0, road_block_token="")
        s = np.arange(r.s_min, r.s_max + 1e-6, 5.0)
        b.add("road_divider", line_token=b.line(r.to_global(s, np.zeros_like(s))), road_segment_token="")
        for d in (-LANE_WIDTH, LANE_WIDTH):
            b.add("lane_divider", line_token=b.line(r.to_global(s, np.full_like(s, d))), lane_divider_segments=[])
    out = {"version": MAP_VERSION, "canvas_edge": [float(canvas_edge[0]), float(canvas_edge[1])]}
    out.update(b.layers)
    out["arcline_path_3"] = {}
    out["connectivity"] = {}
    return out


def write_map(dataroot, location, map_json, mask_filename):
    """Write ``maps/expansion/<location>.json`` and the map-table mask PNG ``<dataroot>/<mask_filename>``.

    The PNG rasterises drivable_area at ``MASK_RESOLUTION`` m/pixel (row 0 = largest y, like nuScenes'
    semantic prior). It only needs to exist for ``NuScenes()`` start-up; the devkit assumes 0.1 m/pixel for it.
    """
    os.makedirs(os.path.join(dataroot, "maps", "expansion"), exist_ok=True)
    with open(os.path.join(dataroot, "maps", "expansion", f"{location}.json"), "w") as f:
        json.dump(map_json, f)
    w, h = (int(np.ceil(v / MASK_RESOLUTION)) for v in map_json["canvas_edge"])
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    nodes = {n["token"]: (n["x"], n["y"]) for n in map_json["node"]}
    polys = {p["token"]: p for p in map_json["polygon"]}
    for rec in map_json["drivable_area"]:
        for pt in rec["polygon_tokens"]:
            xy = [nodes[t] for t in polys[pt]["exterior_node_tokens"]]
            draw.polygon([(x / MASK_RESOLUTION, h - y / MASK_RESOLUTION) for x, y in xy], fill=255)
            for hole in polys[pt]["holes"]:
                xy = [nodes[t] for t in hole["node_tokens"]]
                draw.polygon([(x / MASK_RESOLUTION, h - y / MASK_RESOLUTION) for x, y in xy], fill=0)
    img.save(os.path.join(dataroot, mask_filename))
