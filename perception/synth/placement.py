"""World v2 actors: every class at random plausible places and headings.

Frames and units: street coordinates ``(s, d)`` (metres, see :mod:`perception.synth.layout`) or GLOBAL x, y
(metres); speeds in m/s, angles in radians. Actors are appended in priority order (one of each detection class
near the ego's path, work zones, parked vehicles, traffic, pedestrians, background); :func:`populate` then drops
static actors off their ground class and any actor that would overlap an earlier one (or the ego) at any
time of the scene (:mod:`perception.synth.prune`).
The order is the priority: one of each detection class near the ego's path, work zones, car parks, parked
vehicles, people on crossings, traffic, people on walkways, background.
"""

import numpy as np

from perception.synth.ground import CODE_CARPARK, CODE_ROAD, CODE_TERRAIN, CODE_WALKWAY
from perception.synth.scene_v2 import Actor2

# (l, w, h) ranges in metres; bendy buses, children and riders are adjusted in :func:`make`.
SIZES = {
    "car": ((3.8, 5.2), (1.65, 2.05), (1.4, 1.95)),
    "truck": ((5.5, 10.0), (2.1, 2.6), (2.4, 3.8)),
    "bus": ((10.0, 12.8), (2.5, 2.95), (2.9, 3.6)),
    "trailer": ((7.0, 13.5), (2.3, 2.6), (2.6, 4.0)),
    "construction_vehicle": ((4.0, 8.0), (2.2, 3.0), (2.4, 3.8)),
    "motorcycle": ((1.8, 2.3), (0.65, 0.95), (1.1, 1.6)),
    "bicycle": ((1.55, 1.9), (0.45, 0.7), (1.0, 1.3)),
    "pedestrian": ((0.45, 0.95), (0.45, 0.85), (1.5, 1.95)),
    "traffic_cone": ((0.3, 0.5), (0.3, 0.5), (0.45, 1.0)),
    "barrier": ((0.35, 0.7), (1.5, 3.0), (0.8, 1.2)),
}
CATEGORY = {"car": "vehicle.car", "truck": "vehicle.truck", "trailer": "vehicle.trailer",
            "construction_vehicle": "vehicle.construction", "motorcycle": "vehicle.motorcycle",
            "bicycle": "vehicle.bicycle", "traffic_cone": "movable_object.trafficcone",
            "barrier": "movable_object.barrier"}
VEHICLES = ("car", "truck", "bus", "trailer", "construction_vehicle")


def make(sc, rng, kind, attribute=None, category=None, allowed=(), **motion):
    """A new actor of detection class ``kind`` (random size, category, material) added to ``sc``."""
    size = [float(rng.uniform(*r)) for r in SIZES[kind]]
    if kind == "bus":
        category = category or ("vehicle.bus.bendy" if rng.random() < 0.15 else "vehicle.bus.rigid")
        if category == "vehicle.bus.bendy":
            size[0] = float(rng.uniform(16.5, 18.5))
    elif kind == "pedestrian":
        category = category or ("human.pedestrian.child" if rng.random() < 0.1 else "human.pedestrian.adult")
        if category == "human.pedestrian.child":
            size = [size[0] * 0.8, size[1] * 0.8, float(rng.uniform(1.0, 1.4))]
    elif kind in ("bicycle", "motorcycle") and attribute == "cycle.with_rider":
        size[2] = float(rng.uniform(1.55, 1.95))
    category = category or CATEGORY[kind]
    return sc.add(Actor2(kind, tuple(size), category=category, detection_name=kind, attribute=attribute,
                         allowed=tuple(allowed), **motion), rng)


def _parked_attr(kind):
    return "cycle.without_rider" if kind in ("bicycle", "motorcycle") else "vehicle.parked"


def _moving_attr(kind):
    return "cycle.with_rider" if kind in ("bicycle", "motorcycle") else "vehicle.moving"


def _sides(st):
    return (-1, 1)


def ensure_classes(sc, rng):
    """One actor of every detection class at a random plausible spot beside a random point of the ego's path
    (so every scene holds all ten classes, none at a fixed place relative to the ego's start)."""
    from perception.synth.prune import clear_of_earlier, stands_ok

    for kind in ("bus", "trailer", "construction_vehicle", "bicycle", "motorcycle", "truck", "barrier",
                 "traffic_cone", "pedestrian", "car"):
        for _ in range(20):  # a few tries until the spot is on its ground class
            n = len(sc.actors)
            _one_of(sc, rng, kind)
            new = sc.actors[n:]
            if (all(stands_ok(sc, a) for a in new) and (new[0].moving or not blocked(sc, 0, new[0].s0, 0.0))
                    and clear_of_earlier(sc, n)):
                break
            del sc.actors[n:]


def _one_of(sc, rng, kind):
    """One ``kind`` actor (a few for cones and barriers) at a random spot beside the ego's path."""
    main, ego_end = sc.layout.main, sc.ego_s0 + sc.ego_speed * sc.duration
    s = float(rng.uniform(sc.ego_s0 - 5.0, ego_end + 25.0))
    sign = int(rng.choice([-1, 1]))
    j = main.side(sign)
    back = np.pi if sign > 0 else 0.0
    walk_d = sign * (main.kerb(sign) + float(rng.uniform(0.3, max(0.4, main.walk[j] - 0.3))))
    verge_d = sign * (main.kerb(sign) + main.walk[j] + float(rng.uniform(2.5, 8.0)))
    kerb_lane = main.lane_d(main.lanes[j] - 1, sign)
    park_d = sign * (main.lanes_edge(sign) + main.park[j] / 2)
    u = rng.random()
    if kind in VEHICLES and kind != "construction_vehicle":
        if main.park[j] == 0 and sign < 0 and sc.layout.ego_lane == main.lanes[0] - 1:
            sign, j, back = 1, 1, np.pi  # not stopped in the ego's own lane
            kerb_lane, park_d = main.lane_d(main.lanes[1] - 1, 1), main.lanes_edge(1) + main.park[1] / 2
        if main.park[j] > 2.5 and kind == "car":
            make(sc, rng, kind, "vehicle.parked", street=0, s0=s, d=park_d,
                 yaw_off=back + sign * float(rng.uniform(0.6, 1.4)), allowed=(CODE_ROAD,))
        elif u < 0.5 or kind == "trailer":
            make(sc, rng, kind, "vehicle.parked" if main.park[j] > 0 else "vehicle.stopped", street=0, s0=s,
                 d=park_d if main.park[j] > 0 else kerb_lane + sign * 0.3, yaw_off=back + float(rng.normal(0, 0.04)),
                 allowed=(CODE_ROAD,))
        else:  # moving in a lane other than the ego's, 30 m behind to 40 m ahead of it half-way through
            lanes = [(i, -1) for i in range(main.lanes[0]) if i != sc.layout.ego_lane]
            i, lane_sign = lanes[int(rng.integers(len(lanes)))] if lanes and rng.random() < 0.5 else (
                int(rng.integers(main.lanes[1])), 1)
            v, half = sc.ego_speed * float(rng.uniform(0.6, 1.3)) * -lane_sign, sc.duration / 2
            make(sc, rng, kind, "vehicle.moving", street=0, d=main.lane_d(i, lane_sign), speed=v,
                 s0=sc.ego_speed * half + float(rng.uniform(-30, 40)) - v * half, yaw_off=0.0 if v > 0 else np.pi)
    elif kind == "construction_vehicle":
        make(sc, rng, kind, "vehicle.parked" if u < 0.5 else "vehicle.stopped", street=0, s0=s,
             d=verge_d + sign * 2.0, yaw_off=float(rng.uniform(-np.pi, np.pi)), allowed=(CODE_TERRAIN,))
    elif kind in ("bicycle", "motorcycle"):
        across = main.walk[j] > 2.6 and u < 0.4  # parked across the walkway, centred on it
        if across:
            d = sign * (main.kerb(sign) + main.walk[j] / 2)
        else:
            d = walk_d if u < 0.7 or main.park[j] == 0 else park_d
        yaw = back + (sign * np.pi / 2 if across else 0.0) + float(rng.normal(0, 0.15))
        make(sc, rng, kind, "cycle.without_rider", street=0, s0=s, d=d, yaw_off=yaw,
             allowed=(CODE_WALKWAY, CODE_ROAD))
    elif kind == "pedestrian":
        make(sc, rng, kind, "pedestrian.standing", street=0, s0=s, d=walk_d,
             yaw_off=float(rng.uniform(-np.pi, np.pi)), allowed=(CODE_WALKWAY,))
    else:  # cones and barriers: on the walkway, the verge or the road edge
        d = [walk_d, verge_d, sign * (main.kerb(sign) - 0.6)][int(rng.integers(3))]
        for k in range(int(rng.integers(1, 4))):
            make(sc, rng, kind, None, street=0, s0=s + k * float(rng.uniform(1.2, 2.5)), d=d,
                 yaw_off=float(rng.normal(0, 0.2)) + (0 if rng.random() < 0.7 else np.pi / 2))


def traffic(sc, rng, p):
    """Moving vehicles in every lane (one speed per lane, so a lane never collides with itself), cyclists along
    the kerbs, queues stopped at the arms' stop lines."""
    T = sc.duration
    for k, st in enumerate(sc.layout.streets):
        # An arm's traffic starts beyond its crossing (the junction itself stays clear).
        arm_start = max([s + w for i, s, w, _ in sc.layout.crossings if i == k] + [st.s0 + 15.0])
        for sign in _sides(st):
            j = st.side(sign)
            for i in range(st.lanes[j]):
                kerb_lane = i == st.lanes[j] - 1
                kinds = ["car", "truck", "bus", "motorcycle", "construction_vehicle", "truck+trailer"]
                probs = [0.66, 0.11, 0.08 if kerb_lane else 0.04, 0.08, 0.02, 0.05]
                v = float(rng.uniform(3.0, 13.0))
                if k > 0 and sign > 0:  # inbound lanes of an arm: a queue waiting at the junction
                    s, n = arm_start + 2.0, int(rng.integers(0, 4))
                    for _ in range(n):
                        a = make(sc, rng, "car" if rng.random() < 0.8 else "truck", "vehicle.stopped", street=k,
                                 s0=0.0, d=st.lane_d(i, sign), yaw_off=np.pi)
                        a.s0 = s + a.size[0] / 2
                        s += a.size[0] + float(rng.uniform(1.0, 3.0))
                    continue
                v = -v if sign > 0 else v
                lo = st.s0 - 20.0 - max(0.0, v) * T if k == 0 else arm_start
                hi = st.s1 + 20.0 - min(0.0, v) * T
                s = lo + float(rng.uniform(0, 30))
                while s < hi:
                    kind = str(rng.choice(kinds, p=np.asarray(probs) / sum(probs)))
                    d = st.lane_d(i, sign) + float(rng.normal(0, 0.15))
                    yaw = 0.0 if v > 0 else np.pi
                    if kind == "truck+trailer":
                        tr = make(sc, rng, "trailer", "vehicle.moving", street=k, s0=s, d=d, speed=v, yaw_off=yaw)
                        a = make(sc, rng, "truck", "vehicle.moving", street=k, s0=s, d=d, speed=v, yaw_off=yaw)
                        a.size = (float(rng.uniform(5.5, 7.0)),) + a.size[1:]
                        tr.group = a.group = sc.new_group()
                        first, second = (tr, a) if v > 0 else (a, tr)
                        first.s0 = s + first.size[0] / 2
                        second.s0 = first.s0 + first.size[0] / 2 + 0.4 + second.size[0] / 2
                        s = second.s0 + second.size[0] / 2
                    else:
                        a = make(sc, rng, kind, _moving_attr(kind), street=k, s0=s, d=d, speed=v, yaw_off=yaw)
                        a.s0 = s + a.size[0] / 2
                        s += a.size[0]
                    s += float(rng.uniform(6.0, 45.0)) / max(p.traffic_density, 1e-3)
            # Cyclists near the kerb, slower than the traffic.
            v = float(rng.uniform(2.5, 6.5)) * (1 if sign < 0 else -1)
            lo, hi = st.s0 - abs(v) * T, st.s1 + abs(v) * T
            start = lo + float(rng.uniform(0, 40))
            for s in np.arange(start, hi, float(rng.uniform(40, 120)) / max(p.traffic_density, 1e-3)):
                kind = "bicycle" if rng.random() < 0.7 else "motorcycle"
                make(sc, rng, kind, "cycle.with_rider", street=k, s0=float(s), speed=v, yaw_off=0.0 if v > 0 else np.pi,
                     d=sign * (st.lanes_edge(sign) - 0.5))


def blocked(sc, k, s, margin):
    """Whether street ``k`` at ``s`` (m) is within ``margin`` (m) of a crossing or, on the main street, of a
    junction's mouth (nobody parks there)."""
    lay = sc.layout
    for i, s0, w, _ in lay.crossings:
        if i == k and s0 - margin <= s <= s0 + w + margin:
            return True
    if k == 0:
        return any(abs(s - sj) < max(st.kerb(-1), st.kerb(1)) + 10.0 + margin
                   for sj, st in zip(lay.junction_s, lay.streets[1:], strict=False))
    return s < max(lay.main.kerb(-1), lay.main.kerb(1)) + 10.0 + margin


def parked(sc, rng, p):
    """Parked vehicles on the parking strips: parallel (nose either way) or angled bays; a bus stop."""
    for k, st in enumerate(sc.layout.streets):
        for sign in _sides(st):
            j = st.side(sign)
            if st.park_style[j] == "none":
                continue
            d_mid = sign * (st.lanes_edge(sign) + st.park[j] / 2)
            angled = st.park_style[j] == "angled"
            angle = float(rng.uniform(0.7, 1.4))
            s = st.s0 + (12.0 if k > 0 else 0.0) + float(rng.uniform(0, 10))
            while s < st.s1:
                if blocked(sc, k, s, 4.0):
                    s += 1.0
                    continue
                if angled:
                    yaw = sign * angle + (np.pi if rng.random() < 0.3 else 0.0) + float(rng.normal(0, 0.05))
                    a = make(sc, rng, "car", "vehicle.parked", street=k, s0=s, d=d_mid, yaw_off=yaw,
                             allowed=(CODE_ROAD,))
                    s += a.size[1] / np.sin(angle) + float(rng.uniform(0.4, 1.0))
                    if rng.random() < 0.3 / max(p.parked_density, 1e-3):
                        sc.actors.pop()
                    continue
                kinds = ["car", "truck", "trailer", "motorcycle", "bicycle", "construction_vehicle", "bus"]
                kind = str(rng.choice(kinds, p=[0.74, 0.08, 0.05, 0.05, 0.03, 0.02, 0.03]))
                attr = "vehicle.stopped" if kind == "bus" else _parked_attr(kind)
                yaw = ((0.0 if rng.random() < 0.75 else np.pi) + (np.pi if sign > 0 else 0.0)
                       + float(rng.normal(0, 0.05)))
                a = make(sc, rng, kind, attr, street=k, s0=s, d=d_mid + float(rng.normal(0, 0.1)), yaw_off=yaw,
                         allowed=(CODE_ROAD,))
                a.s0 = s + a.size[0] / 2
                s += a.size[0] + float(rng.uniform(0.8, 20.0)) / max(p.parked_density, 1e-3)


def carpark(sc, rng):
    """Rows of stalls in each car park (cars mostly, some vans, trucks, trailers), a few people walking."""
    for poly, heading in sc.layout.carparks:
        c, s = np.cos(heading), np.sin(heading)
        x0, y0, x1, y1 = poly.bounds
        ctr = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        half = np.hypot(x1 - x0, y1 - y0) / 2
        for a in np.arange(-half, half, float(rng.uniform(2.4, 2.9))):  # along the heading
            for row in np.arange(-half, half, 16.0):  # two stall rows per 16 m (5.2 m stalls, aisles)
                for off in (row + 2.6, row + 7.8):
                    xy = ctr + a * np.array([c, s]) + off * np.array([-s, c])
                    if rng.random() > 0.55:
                        continue
                    kinds = ["car", "truck", "trailer", "construction_vehicle"]
                    kind = str(rng.choice(kinds, p=[0.9, 0.05, 0.03, 0.02]))
                    make(sc, rng, kind, "vehicle.parked", x0=float(xy[0]), y0=float(xy[1]),
                         yaw=heading + np.pi / 2 + (np.pi if rng.random() < 0.5 else 0.0) + float(rng.normal(0, 0.04)),
                         allowed=(CODE_CARPARK,))
        for _ in range(int(rng.integers(0, 4))):
            xy, v, h = ctr + rng.uniform(-15, 15, 2), float(rng.uniform(0.6, 1.6)), float(rng.uniform(-np.pi, np.pi))
            make(sc, rng, "pedestrian", "pedestrian.moving", x0=float(xy[0]), y0=float(xy[1]), yaw=h,
                 vx=v * np.cos(h), vy=v * np.sin(h))
