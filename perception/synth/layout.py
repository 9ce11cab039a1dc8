"""World v2 road layout: a main street with curves, optional T or cross junction, per-street lane counts and
widths, parking strips, walkways, crossings, stop lines and a car park, as map polygons and lines.

Frames and units: GLOBAL frame (map coordinates, metres, radians counter-clockwise from +x). Street
coordinates ``(s, d)``: arc length ``s`` along the street's centre line (metres) and signed lateral offset
``d`` (metres, positive to the left of +s). Forward lanes (traffic along +s) lie at ``d < 0``, backward lanes
at ``d > 0`` (right-hand traffic). Cross-section of one side, from the centre line out: lanes, parking strip
(optional), walkway; everything beyond is terrain.
"""

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString, Polygon
from shapely.ops import unary_union

DS = 0.5  # metres between centre-line samples


class Path:
    """A centre line sampled every ``DS`` metres of arc length: curvature ``k(s)`` (1/m) integrated from the point
    ``xy0`` (global, metres) with heading ``heading0`` (radians) at ``s = 0``, for ``s`` in ``[s_min, s_max]``;
    beyond the ends it continues straight."""

    def __init__(self, xy0, heading0, s_min, s_max, curvature=lambda s: 0.0 * s):
        n0 = int(np.ceil(-s_min / DS))
        n1 = int(np.ceil(s_max / DS))
        self.s = DS * np.arange(-n0, n1 + 1)
        k = curvature(self.s[:-1] + DS / 2)  # per interval
        h = np.zeros(len(self.s))
        h[n0 + 1:] = np.cumsum(k[n0:] * DS)
        h[:n0] = -np.cumsum((k[:n0] * DS)[::-1])[::-1]
        self.h = heading0 + h
        # Positions: each interval advances DS along its mid heading (exact for circular arcs up to ~1e-6 m).
        hm = (self.h[:-1] + self.h[1:]) / 2
        step = DS * np.stack([np.cos(hm), np.sin(hm)], axis=1)
        xy = np.zeros((len(self.s), 2))
        xy[n0 + 1:] = np.cumsum(step[n0:], axis=0)
        xy[:n0] = -np.cumsum(step[:n0][::-1], axis=0)[::-1]
        self.xy = xy + np.asarray(xy0, dtype=np.float64)

    def _interp(self, s):
        s = np.asarray(s, dtype=np.float64)
        f = np.clip((s - self.s[0]) / DS, 0.0, len(self.s) - 1.000001)
        i = np.floor(f).astype(np.int64)
        f = f - i
        h = self.h[i] * (1 - f) + self.h[i + 1] * f
        xy = self.xy[i] * (1 - f)[..., None] + self.xy[i + 1] * f[..., None]
        # Straight continuation beyond the sampled ends.
        over = np.clip(s - self.s[-1], 0, None) + np.clip(s - self.s[0], None, 0)
        xy = xy + over[..., None] * np.stack([np.cos(h), np.sin(h)], axis=-1)
        return xy, h

    def heading(self, s):
        """Heading (radians, global) of +s at arc length ``s`` (any shape)."""
        return self._interp(s)[1]

    def to_global(self, s, d):
        """Street coordinates ``(s, d)`` (metres, broadcast) -> global ``(..., 2)`` x, y (metres)."""
        s, d = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64))
        xy, h = self._interp(s)
        return xy + d[..., None] * np.stack([-np.sin(h), np.cos(h)], axis=-1)


@dataclass
class Street:
    """A street: ``path``, lanes per direction, lane width (m), parking strip (m, ``park_style`` "none",
    "parallel" or "angled") and walkway width (m) per side ``(right, left)``, drawn for ``s`` in ``[s0, s1]``."""

    path: Path
    lanes: tuple  # (forward = right side, backward = left side)
    lane_w: float
    park: tuple
    park_style: tuple
    walk: tuple
    s0: float
    s1: float

    def side(self, sign):
        """Index 0 (right, d < 0) or 1 (left, d > 0) of side ``sign`` (-1 / +1)."""
        return 0 if sign < 0 else 1

    def lane_d(self, i, sign):
        """Centre offset ``d`` (m) of lane ``i`` (0 = next to the centre line) on side ``sign``."""
        return sign * (i + 0.5) * self.lane_w

    def lanes_edge(self, sign):
        """|d| (m) of the outer edge of the lanes on side ``sign``."""
        return self.lanes[self.side(sign)] * self.lane_w

    def kerb(self, sign):
        """|d| (m) of the kerb (outer edge of the drivable area) on side ``sign``."""
        return self.lanes_edge(sign) + self.park[self.side(sign)]

    def strip(self, s0, s1, d0, d1, step=2.0):
        """Shapely polygon of the street-aligned strip ``s`` in ``[s0, s1]``, ``d`` in ``[d0, d1]`` (global)."""
        s = np.linspace(s0, s1, max(2, int(np.ceil(abs(s1 - s0) / step)) + 1))
        ring = np.concatenate([self.path.to_global(s, d0), self.path.to_global(s[::-1], d1)])
        return Polygon(ring)

    def line(self, s0, s1, d, step=2.0):
        s = np.linspace(s0, s1, max(2, int(np.ceil(abs(s1 - s0) / step)) + 1))
        return LineString(self.path.to_global(s, d))


@dataclass
class Layout:
    """The road network of one scene: ``streets[0]`` is the main street the ego drives on (along +s in forward
    lane ``ego_lane``); map geometry as shapely objects (GLOBAL frame, metres)."""

    streets: list
    ego_lane: int
    junction_s: list  # main-street s of each junction
    drivable: object = None
    walkway: object = None
    junction_cores: object = None  # drivable area shared by two streets (no lane paint)
    crossings: list = field(default_factory=list)  # [(street index, s0, width, polygon)]
    stop_lines: list = field(default_factory=list)  # [(polygon, crossing index)]
    carparks: list = field(default_factory=list)  # [(polygon, orientation radians)]
    road_dividers: list = field(default_factory=list)  # LineStrings
    lane_dividers: list = field(default_factory=list)  # LineStrings
    paint: list = field(default_factory=list)  # [(polygon, paint kind 1 white / 2 yellow)]

    @property
    def main(self):
        return self.streets[0]


def _cross_section(rng, p, main):
    lanes = (int(rng.integers(1, p.max_lanes + 1)), int(rng.integers(1, p.max_lanes + 1)))
    if not main:
        lanes = (min(lanes[0], 2), min(lanes[1], 2))
    park, style = [], []
    for _ in range(2):
        u = rng.random()
        if u < 0.35:
            park.append(0.0), style.append("none")
        elif u < 0.8:
            park.append(float(rng.uniform(2.2, 2.8))), style.append("parallel")
        else:
            park.append(float(rng.uniform(5.2, 6.0))), style.append("angled")
    walk = (float(rng.uniform(1.8, 5.0)), float(rng.uniform(1.8, 5.0)))
    return lanes, float(rng.uniform(p.lane_width_min, p.lane_width_max)), tuple(park), tuple(style), walk


def _main_curvature(rng, p, s_min, s_max, keep_straight):
    """Piecewise-constant curvature (1/m): straights and arcs of 25-90 m, zero within ``keep_straight`` spans."""
    bounds, ks = [s_min], []
    while bounds[-1] < s_max:
        bounds.append(bounds[-1] + float(rng.uniform(25, 90)))
        curved = rng.random() < 0.6 and p.max_curvature > 1 / 2000
        ks.append(float(rng.choice([-1, 1]) * rng.uniform(1 / 2000, p.max_curvature)) if curved else 0.0)
    bounds, ks = np.array(bounds), np.array(ks)

    def k(s):
        out = ks[np.clip(np.searchsorted(bounds, s, side="right") - 1, 0, len(ks) - 1)]
        for a, b in keep_straight:
            out = np.where((s >= a) & (s <= b), 0.0, out)
        return out

    return k


def build_layout(rng, p, origin, s_lo, s_hi, ego_span):
    """Random layout around global ``origin`` (x, y metres): main street drawn for ``s`` in ``[s_lo, s_hi]``,
    the ego's path covering main-street ``s`` in ``ego_span``; ``p`` is the :class:`WorldParams`."""
    junction_s, keep = [], []
    if rng.random() < p.junction_prob:
        sj = float(rng.uniform(ego_span[0] - 10.0, ego_span[1] + 45.0))
        junction_s.append(sj)
        keep.append((sj - 45.0, sj + 45.0))
    heading0 = float(rng.uniform(-np.pi, np.pi))
    path = Path(origin, heading0, s_lo - 40.0, s_hi + 40.0, _main_curvature(rng, p, s_lo - 40.0, s_hi + 40.0, keep))
    lanes, lane_w, park, style, walk = _cross_section(rng, p, True)
    streets = [Street(path, lanes, lane_w, park, style, walk, s_lo, s_hi)]
    ego_lane = int(rng.integers(0, lanes[0]))
    arms = []  # (street index, junction s)
    for sj in junction_s:
        sides = [int(rng.choice([-1, 1]))] if rng.random() < 0.5 else [-1, 1]  # T or cross
        for sign in sides:
            angle = sign * (np.pi / 2 + float(rng.uniform(-0.35, 0.35)))
            lanes, lane_w, park, style, walk = _cross_section(rng, p, False)
            arm_path = Path(path.to_global(sj, 0.0), float(path.heading(sj)) + angle, 0.0, 130.0)
            arms.append((len(streets), sj))
            streets.append(Street(arm_path, lanes, lane_w, park, style, walk, 0.0, float(rng.uniform(80, 120))))
    lay = Layout(streets=streets, ego_lane=ego_lane, junction_s=junction_s)
    _areas(rng, lay, arms)
    _crossings(rng, lay, arms, ego_span)
    _markings(lay)
    _carpark(rng, lay, ego_span, arms)
    return lay


def _areas(rng, lay, arms):
    """Drivable area (streets with rounded junction corners), walkways, junction cores."""
    strips = [st.strip(st.s0, st.s1, -st.kerb(-1), st.kerb(1)) for st in lay.streets]
    radius = float(rng.uniform(4.0, 8.0))
    drivable = unary_union(strips)
    if arms:
        drivable = drivable.buffer(radius, join_style="round").buffer(-radius, join_style="round")
    walks = [st.strip(st.s0, st.s1, -st.kerb(-1) - st.walk[0], st.kerb(1) + st.walk[1]) for st in lay.streets]
    walk_all = unary_union(walks + [drivable])
    if arms:
        walk_all = walk_all.buffer(radius, join_style="round").buffer(-radius, join_style="round")
    lay.drivable = drivable
    lay.walkway = walk_all.difference(drivable)
    cores = [strips[0].intersection(strips[i]).buffer(radius + 1.0) for i, _ in arms]
    lay.junction_cores = unary_union(cores) if cores else Polygon()


def _crossing(lay, i, s, width):
    st = lay.streets[i]
    poly = st.strip(s, s + width, -st.kerb(-1) - 0.5, st.kerb(1) + 0.5, 0.5).intersection(lay.drivable)
    poly = poly.difference(lay.junction_cores) if i == 0 else poly
    lay.crossings.append((i, float(s), float(width), poly))
    c = len(lay.crossings) - 1
    # Stop lines 1.5 m before the crossing for the lanes approaching it (forward lanes come from lower s).
    for sign, s_stop in ((-1, s - 2.0), (1, s + width + 1.5)):
        if i > 0 and sign < 0:
            continue  # arm forward lanes leave the junction: nothing to stop for
        d0, d1 = sorted((0.0, sign * st.lanes_edge(sign)))
        lay.stop_lines.append((st.strip(s_stop, s_stop + 0.5, d0, d1, 0.5), c))


def _crossings(rng, lay, arms, ego_span):
    main = lay.main
    for i, sj in arms:
        arm = lay.streets[i]
        h_rel = float(arm.path.heading(0.0) - main.path.heading(sj))
        sin_a = max(abs(np.sin(h_rel)), 0.5)
        mouth = max(arm.kerb(-1), arm.kerb(1)) / sin_a + 9.0
        w = float(rng.uniform(3.0, 5.0))
        side = 1 if rng.random() < 0.5 else -1
        _crossing(lay, 0, sj + mouth if side > 0 else sj - mouth - w, w)
        s_arm = max(main.kerb(-1), main.kerb(1)) / sin_a + 9.0
        _crossing(lay, i, s_arm, float(rng.uniform(3.0, 5.0)))
    if not arms or rng.random() < 0.4:  # a mid-block crossing
        for _ in range(10):
            s = float(rng.uniform(ego_span[0] + 5.0, ego_span[1] + 40.0))
            if all(abs(s - sj) > 40 for sj in lay.junction_s):
                _crossing(lay, 0, s, float(rng.uniform(3.0, 5.0)))
                break


def _dashes(st, s0, s1, d, on, off, width):
    out = []
    for a in np.arange(s0, s1, on + off):
        out.append(st.line(a, min(a + on, s1), d, 1.0).buffer(width / 2, cap_style="flat"))
    return out


def _markings(lay):
    """Lane paint (centre line, dashed lane lines, edge lines), zebra stripes, stop lines; map divider lines."""
    cores = lay.junction_cores
    crossing_polys = unary_union([c[3] for c in lay.crossings]) if lay.crossings else Polygon()
    for k, st in enumerate(lay.streets):
        s0 = st.s0 if k == 0 else max(st.s0, 2.0)
        centre = st.line(s0, st.s1, 0.0)
        yellow = 2 if k == 0 else 1
        lay.paint.append((centre.buffer(0.08, cap_style="flat"), yellow))
        lay.road_dividers.append(centre)
        for sign in (-1, 1):
            n = st.lanes[st.side(sign)]
            for j in range(1, n):
                lay.lane_dividers.append(st.line(s0, st.s1, sign * j * st.lane_w))
                lay.paint += [(p, 1) for p in _dashes(st, s0, st.s1, sign * j * st.lane_w, 3.0, 6.0, 0.15)]
            if st.park[st.side(sign)] > 0:
                lay.paint.append((st.line(s0, st.s1, sign * st.lanes_edge(sign)).buffer(0.07, cap_style="flat"), 1))
    # No lane paint in junction cores or on crossings; then the zebra stripes and stop lines on top.
    lay.paint = [(p.difference(cores).difference(crossing_polys), kind) for p, kind in lay.paint]
    lay.road_dividers = [g.difference(cores) for g in lay.road_dividers]
    lay.lane_dividers = [g.difference(cores) for g in lay.lane_dividers]
    for i, s, w, poly in lay.crossings:
        st = lay.streets[i]
        edge = max(st.kerb(-1), st.kerb(1)) + 1.0
        for d in np.arange(-edge, edge, 1.0):
            lay.paint.append((st.strip(s, s + w, d, d + 0.5, 0.5).intersection(poly), 1))
    lay.paint += [(poly, 1) for poly, _ in lay.stop_lines]


def _carpark(rng, lay, ego_span, arms):
    """A car park (other_flat) beyond one walkway of the main street, clear of the streets and walkways."""
    if rng.random() > 0.6:
        return
    main = lay.main
    sign = int(rng.choice([-1, 1]))
    length, depth = float(rng.uniform(30, 60)), float(rng.uniform(18, 32))
    s = float(rng.uniform(ego_span[0] - 20, ego_span[1] + 20))
    d0 = main.kerb(sign) + main.walk[main.side(sign)] + float(rng.uniform(0.0, 3.0))
    poly = main.strip(s, s + length, sign * d0, sign * (d0 + depth))
    poly = poly.difference(unary_union([lay.drivable, lay.walkway]).buffer(1.0))
    if poly.area < 200:
        return
    lay.carparks.append((poly, float(main.path.heading(s + length / 2))))
