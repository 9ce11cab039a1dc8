"""The synthetic world of one scene: a curved road, actors with tracks, static background.

Frames and units: everything here is in the nuScenes GLOBAL frame (map coordinates, metres, z up, the ground
is the plane z = 0) and times are seconds since the scene's first sensor timestamp.

Road coordinates ``(s, d)``: ``s`` is the arc length along the road centre line (metres), ``d`` the signed
lateral offset, positive to the left of the driving direction +s. The centre line is a circular arc with
constant curvature ``k`` (1/m, positive = turning left), so the conversion both ways is closed-form.

Lateral layout (|d|, metres): lanes 0-3.5 and 3.5-7 (inner/outer), parking strip 7-9 (drivable),
sidewalk 9-12, terrain beyond 12; buildings 15-27, trees at 13.5. The ego drives in the right inner lane
(d = -1.75) in +s; the left side carries oncoming traffic.
"""

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

# Lateral layout of the street (metres from the centre line).
LANE_WIDTH = 3.5
ROAD_HALF_WIDTH = 9.0  # lanes (2 x 3.5) + parking strip (2.0), all drivable
PARKING_D = 8.0
SIDEWALK_OUTER = 12.0
EGO_D = -1.75

# Occ3D class indices (perception.constants.OCC3D_CLASSES) for the ground and the background.
OCC_DRIVEABLE, OCC_OTHER_FLAT, OCC_SIDEWALK, OCC_TERRAIN, OCC_MANMADE, OCC_VEGETATION = 11, 12, 13, 14, 15, 16


@dataclass(frozen=True)
class ClassSpec:
    """How one detection class looks in the synthetic world.

    ``size`` is ``(l, w, h)`` metres (length along the heading); ``categories`` are real nuScenes category
    names (the first is the most common); ``colour`` is the RGB the camera paints it; ``occ`` its Occ3D
    label; ``reflectivity`` the LiDAR intensity (0-255) of its surface.
    """

    name: str
    categories: tuple
    size: tuple
    colour: tuple
    occ: int
    reflectivity: float


CLASS_SPECS = {
    "car": ClassSpec("car", ("vehicle.car",), (4.6, 1.9, 1.7), (220, 20, 20), 4, 60.0),
    "truck": ClassSpec("truck", ("vehicle.truck",), (7.0, 2.5, 3.0), (20, 60, 220), 10, 55.0),
    "construction_vehicle": ClassSpec(
        "construction_vehicle", ("vehicle.construction",), (6.5, 2.7, 3.2), (230, 220, 0), 5, 70.0
    ),
    "bus": ClassSpec("bus", ("vehicle.bus.rigid", "vehicle.bus.bendy"), (11.0, 2.9, 3.5), (255, 140, 0), 3, 50.0),
    "trailer": ClassSpec("trailer", ("vehicle.trailer",), (12.0, 2.5, 3.8), (120, 0, 180), 9, 45.0),
    "barrier": ClassSpec("barrier", ("movable_object.barrier",), (0.5, 2.0, 1.0), (255, 0, 255), 1, 90.0),
    "motorcycle": ClassSpec("motorcycle", ("vehicle.motorcycle",), (2.1, 0.8, 1.5), (0, 220, 220), 6, 40.0),
    "bicycle": ClassSpec("bicycle", ("vehicle.bicycle",), (1.8, 0.6, 1.3), (140, 255, 140), 2, 35.0),
    "pedestrian": ClassSpec(
        "pedestrian",
        ("human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker"),
        (0.7, 0.7, 1.75),
        (255, 170, 200),
        7,
        25.0,
    ),
    "traffic_cone": ClassSpec("traffic_cone", ("movable_object.trafficcone",), (0.4, 0.4, 0.9), (130, 70, 0), 8, 120.0),
}

# Background colours (RGB) and LiDAR reflectivities of what is not an annotated object.
BUILDING_COLOUR, TREE_COLOUR = (150, 140, 125), (30, 90, 30)
BUILDING_REFLECTIVITY, TREE_REFLECTIVITY = 20.0, 12.0


@dataclass
class Road:
    """A circular-arc street: centre line through ``origin`` (global x, y, metres) with heading ``heading0``
    (radians, counter-clockwise from global +x) at ``s = 0`` and constant curvature ``k`` (1/m, non-zero),
    drawn (map) for ``s`` in ``[s_min, s_max]``."""

    origin: tuple
    heading0: float
    k: float
    s_min: float
    s_max: float

    def __post_init__(self):
        if self.k == 0:
            raise ValueError("Road.k (curvature) must be non-zero")
        o = np.asarray(self.origin, dtype=np.float64)
        # Circle centre: the centre line is p(s) = C + (1/k) (sin h, -cos h), h = heading0 + k s.
        self.centre = o + np.array([-np.sin(self.heading0), np.cos(self.heading0)]) / self.k

    def heading(self, s):
        """Heading (radians, global) of the +s direction at arc length ``s``."""
        return self.heading0 + self.k * np.asarray(s, dtype=np.float64)

    def to_global(self, s, d):
        """Road coordinates ``(s, d)`` (metres) -> global ``(..., 2)`` x, y (metres)."""
        h = self.heading(s)
        r = 1.0 / self.k - np.asarray(d, dtype=np.float64)
        return np.stack([self.centre[0] + r * np.sin(h), self.centre[1] - r * np.cos(h)], axis=-1)

    def to_road(self, xy):
        """Global ``(..., 2)`` x, y (metres) -> ``(s, d)`` road coordinates (metres), each ``(...)``."""
        xy = np.asarray(xy, dtype=np.float64)
        v = xy - self.centre
        sgn = np.sign(self.k)
        rho = sgn * np.hypot(v[..., 0], v[..., 1])  # = 1/k - d
        d = 1.0 / self.k - rho
        h = np.arctan2(v[..., 0] / rho, -v[..., 1] / rho)
        dh = (h - self.heading0 + np.pi) % (2 * np.pi) - np.pi
        return dh / self.k, d


@dataclass
class Actor:
    """A box moving along the road with constant speed: ``s(t) = s0 + speed * t``, fixed offset ``d``.

    ``size`` ``(l, w, h)`` metres; ``facing`` +1 heads along +s, -1 against it. ``detection_name`` is
    ``None`` for unannotated background (buildings, trees); ``z0`` lifts the box bottom above the ground.
    """

    kind: str  # detection class name, "building" or "tree"
    size: tuple
    s0: float
    d: float
    speed: float = 0.0
    facing: int = 1
    z0: float = 0.0
    category: Optional[str] = None
    detection_name: Optional[str] = None
    attribute: Optional[str] = None
    colour: tuple = (128, 128, 128)
    occ: int = 0
    reflectivity: float = 30.0


@dataclass
class Scene:
    """One scene's world. ``ego_s0`` and ``ego_speed`` (m/s) drive the ego along ``d = EGO_D``."""

    name: str
    road: Road
    ego_s0: float
    ego_speed: float
    duration: float
    actors: List[Actor] = field(default_factory=list)
    carpark: tuple = (0.0, 0.0, 1)  # (s_start, s_end, side +1 left / -1 right): other_flat area beyond the sidewalk
    crossing_s: float = 0.0  # pedestrian crossing [crossing_s, crossing_s + 4] across the road

    def ego_pose(self, t):
        """4x4 ego -> global at time ``t`` (s): ego origin on the ground (z = 0), x forward along +s."""
        s = self.ego_s0 + self.ego_speed * t
        xy = self.road.to_global(s, EGO_D)
        yaw = float(self.road.heading(s))
        T = np.eye(4)
        c, si = np.cos(yaw), np.sin(yaw)
        T[:2, :2] = [[c, -si], [si, c]]
        T[:2, 3] = xy
        return T

    def boxes_at(self, t):
        """``(M, 7)`` float64 boxes of all actors at time ``t``: global gravity centre x, y, z, size l, w, h,
        yaw (radians, heading of the box's length axis, counter-clockwise from global +x)."""
        out = np.zeros((len(self.actors), 7))
        for i, a in enumerate(self.actors):
            s = a.s0 + a.speed * t
            out[i, :2] = self.road.to_global(s, a.d)
            out[i, 2] = a.z0 + a.size[2] / 2
            out[i, 3:6] = a.size
            out[i, 6] = self.road.heading(s) + (0.0 if a.facing > 0 else np.pi)
        return out

    def velocities(self):
        """``(M,)`` signed speeds along the heading (m/s) of every actor."""
        return np.array([a.speed * a.facing for a in self.actors])

    def ground_class(self, xy):
        """Occ3D class of the ground (z = 0) at global ``(..., 2)`` points: driveable_surface on the road,
        sidewalk, other_flat on the car park, terrain elsewhere."""
        s, d = self.road.to_road(xy)
        ad = np.abs(d)
        out = np.full(ad.shape, OCC_TERRAIN, dtype=np.uint8)
        out[ad < SIDEWALK_OUTER] = OCC_SIDEWALK
        out[ad < ROAD_HALF_WIDTH] = OCC_DRIVEABLE
        c0, c1, side = self.carpark
        park = (s >= c0) & (s <= c1) & (d * side >= SIDEWALK_OUTER) & (d * side <= SIDEWALK_OUTER + 12.0)
        out[park] = OCC_OTHER_FLAT
        return out


    def ground_marking(self, xy):
        """Boolean mask of white paint at global ``(..., 2)`` points: the centre line, dashed lane lines
        (3 m on, 6 m off), the zebra crossing (stripes 0.5 m wide across ``[crossing_s, crossing_s + 4]``)
        and its stop lines 2 m before it on either side."""
        s, d = self.road.to_road(xy)
        ad = np.abs(d)
        centre = ad < 0.12
        dashed = (np.abs(ad - LANE_WIDTH) < 0.08) & (np.mod(s, 9.0) < 3.0)
        edge = np.abs(ad - 2 * LANE_WIDTH) < 0.08
        on_crossing = (s >= self.crossing_s) & (s <= self.crossing_s + 4.0) & (ad < ROAD_HALF_WIDTH)
        zebra = on_crossing & (np.mod(d, 1.0) < 0.5)
        stop = (np.abs(s - (self.crossing_s - 2.0)) < 0.2) & (d < 0) & (ad < 2 * LANE_WIDTH)
        stop |= (np.abs(s - (self.crossing_s + 6.0)) < 0.2) & (d > 0) & (ad < 2 * LANE_WIDTH)
        return centre | dashed | edge | zebra | stop


def _make(kind, rng, s0, d, speed=0.0, facing=1, attribute=None):
    spec = CLASS_SPECS[kind]
    # Sizes vary +-8 % around the class mean so boxes are not all identical.
    size = tuple(float(v) * float(rng.uniform(0.92, 1.08)) for v in spec.size)
    cats = spec.categories
    category = cats[0] if len(cats) == 1 or rng.random() < 0.8 else cats[int(rng.integers(1, len(cats)))]
    return Actor(
        kind=kind,
        size=size,
        s0=float(s0),
        d=float(d),
        speed=float(speed),
        facing=int(facing),
        category=category,
        detection_name=kind,
        attribute=attribute,
        colour=spec.colour,
        occ=spec.occ,
        reflectivity=spec.reflectivity,
    )


def _fill_line(rng, lo, hi, gap_range, pick):
    """Place objects along ``s`` in ``[lo, hi]`` without overlap: ``pick(s) -> Actor or None`` is called
    with the rear end ``s`` of the next slot; the actor is centred ``l / 2`` further; random gaps (metres)."""
    out = []
    s = lo + rng.uniform(0, gap_range[1])
    while s < hi:
        a = pick(s)
        if a is not None:
            a.s0 = float(s + a.size[0] / 2)
            out.append(a)
            s += a.size[0]
        s += rng.uniform(*gap_range)
    return out


def build_scene(rng, name, origin, duration):
    """Random street scene around global ``origin`` (x, y metres) lasting ``duration`` seconds.

    Traffic in one lane shares one speed, so nothing ever collides; parked and static objects sit on the
    parking strip, pedestrians on the sidewalks; buildings and trees line the street.
    """
    heading0 = float(rng.uniform(-np.pi, np.pi))
    k = float(rng.choice([-1, 1]) * rng.uniform(1 / 700, 1 / 250))
    ego_speed = float(rng.uniform(5.0, 9.0))
    ego_s0 = 0.0
    ego_end = ego_speed * duration
    margin = 90.0
    road = Road(origin=tuple(origin), heading0=heading0, k=k, s_min=-margin, s_max=ego_end + margin)
    actors = []

    def vehicle_picker(kinds, probs, d, speed, facing, attribute):
        def pick(s):
            return _make(str(rng.choice(kinds, p=probs)), rng, s, d, speed, facing, attribute)

        return pick

    # Moving traffic: (d, speed along +s, facing). Ranges cover what the ego can see during the scene.
    lanes = [
        (EGO_D, ego_speed, 1, ["car", "truck", "bus"], [0.75, 0.15, 0.10]),
        (-5.25, 0.6 * ego_speed, 1, ["car", "motorcycle", "bicycle", "truck"], [0.4, 0.25, 0.2, 0.15]),
        (1.75, -ego_speed, -1, ["car", "bus", "truck"], [0.7, 0.15, 0.15]),
        (5.25, -0.5 * ego_speed, -1, ["car", "motorcycle", "bicycle"], [0.5, 0.25, 0.25]),
    ]
    for d, v, facing, kinds, probs in lanes:
        lo = road.s_min - max(0.0, v) * duration
        hi = road.s_max - min(0.0, v) * duration
        attribute = "cycle.with_rider"
        placed = _fill_line(rng, lo, hi, (8.0, 35.0), vehicle_picker(kinds, probs, d, v, facing, "vehicle.moving"))
        for a in placed:
            if a.kind in ("bicycle", "motorcycle"):
                a.attribute = attribute
            # Keep the ego's own lane clear around the ego (it would sit inside the ego car).
            if d == EGO_D and abs(a.s0 - ego_s0) < 12.0 + a.size[0] / 2:
                continue
            actors.append(a)

    # A stretch of the right parking strip just ahead of the ego's start is kept for the rarer classes
    # (bus stop, trailer, bicycle, motorcycle), so every scene holds all ten detection classes within
    # evaluation range, even a short one: the devkit gives a class without GT an AP of 0.
    show_lo, show_hi = ego_s0 + 22.0, ego_s0 + 56.0
    s = show_lo
    for kind, attr in (("bus", "vehicle.stopped"), ("bicycle", "cycle.without_rider"),
                       ("trailer", "vehicle.parked"), ("motorcycle", "cycle.without_rider")):
        a = _make(kind, rng, s, -PARKING_D, 0.0, 1, attr)
        a.s0 = float(s + a.size[0] / 2)
        actors.append(a)
        s += a.size[0] + 2.0

    # Parking strips: parked vehicles, a construction zone with cones, barriers and a construction vehicle.
    for side in (-1, 1):
        zone = float(rng.uniform(road.s_min + 20, road.s_max - 40))
        if side == -1 and zone + 30 > show_lo and zone < show_hi:  # keep the reserved stretch free
            zone = show_hi + 2.0 if show_hi + 32 < road.s_max else show_lo - 32.0

        def parked(s, side=side, zone=zone):
            if zone <= s <= zone + 25:
                return None
            if side == -1 and show_lo - 13.0 <= s <= show_hi:  # the reserved stretch (longest parked: 13 m)
                return None
            kind = str(rng.choice(["car", "truck", "trailer", "bicycle", "motorcycle"], p=[0.7, 0.1, 0.08, 0.06, 0.06]))
            attr = "cycle.without_rider" if kind in ("bicycle", "motorcycle") else "vehicle.parked"
            return _make(kind, rng, s, side * PARKING_D, 0.0, int(rng.choice([-1, 1])), attr)

        actors += _fill_line(rng, road.s_min, road.s_max, (3.0, 25.0), parked)
        actors.append(_make("construction_vehicle", rng, zone + 14, side * PARKING_D, 0.0, 1, "vehicle.stopped"))
        for j in range(5):
            actors.append(_make("traffic_cone", rng, zone + 1 + 2.0 * j, side * (ROAD_HALF_WIDTH - 1.4)))
        for j in range(3):
            actors.append(_make("barrier", rng, zone + 22 + 2.2 * j, side * (ROAD_HALF_WIDTH - 0.4)))

    # Pedestrians: walking along both sidewalks (one speed per side), some standing.
    for side in (-1, 1):
        v = float(rng.uniform(0.8, 1.6)) * float(rng.choice([-1, 1]))
        lo, hi = road.s_min - abs(v) * duration, road.s_max + abs(v) * duration
        walk = _fill_line(
            rng, lo, hi, (4.0, 20.0), lambda s: _make("pedestrian", rng, s, side * 10.0, v, int(np.sign(v)), "pedestrian.moving")
        )
        stand = _fill_line(
            rng, road.s_min, road.s_max, (10.0, 40.0), lambda s: _make("pedestrian", rng, s, side * 12.4, 0.0, 1, "pedestrian.standing")
        )
        actors += walk + stand

    # Static background: buildings (manmade) and trees (trunk + crown, vegetation), not annotated; none on
    # the car park (an open other_flat area beyond one sidewalk).
    c0 = float(rng.uniform(road.s_min + 10, road.s_max - 60))
    carpark = (c0, c0 + 40.0, int(rng.choice([-1, 1])))
    for side in (-1, 1):
        def on_carpark(s, length, side=side):
            return side == carpark[2] and s + length > c0 - 3 and s < c0 + 43

        def building(s, side=side):
            depth = float(rng.uniform(8, 12))
            size = (float(rng.uniform(12, 30)), depth, float(rng.uniform(6, 20)))
            if on_carpark(s, size[0]):
                return None
            return Actor("building", size, s, side * (15.0 + depth / 2), colour=BUILDING_COLOUR, occ=OCC_MANMADE,
                         reflectivity=BUILDING_REFLECTIVITY)

        actors += _fill_line(rng, road.s_min - 40, road.s_max + 40, (3.0, 12.0), building)
        for s in np.arange(road.s_min - 40, road.s_max + 40, float(rng.uniform(10, 16))):
            s = float(s + rng.uniform(-2, 2))
            if on_carpark(s - 1.5, 3.0):
                continue
            actors.append(Actor("tree", (0.4, 0.4, 2.4), s, side * 13.5, colour=(90, 60, 30), occ=OCC_VEGETATION,
                                reflectivity=TREE_REFLECTIVITY))
            actors.append(Actor("tree", (3.0, 3.0, 3.0), s, side * 13.5, z0=2.4, colour=TREE_COLOUR, occ=OCC_VEGETATION,
                                reflectivity=TREE_REFLECTIVITY))

    crossing = float(rng.uniform(ego_s0 + 10, max(ego_s0 + 11, ego_end + 30)))
    return Scene(name=name, road=road, ego_s0=ego_s0, ego_speed=ego_speed, duration=duration, actors=actors,
                 carpark=carpark, crossing_s=crossing)
