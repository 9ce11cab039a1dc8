"""World v2 clean-up: drop static actors standing off their ground class and actors that would overlap an
earlier actor (or the ego car) at any time of the scene, so random placement never yields intersecting boxes.

Frames and units: GLOBAL frame (metres, radians), footprints tested every :data:`TIME_STEP` seconds with
oriented-rectangle separating axes and height intervals above the ground.
"""

import numpy as np

TIME_STEP = 0.1  # seconds between overlap checks
GAP = 0.1  # metres added to every half size: kept actors stay at least 2 x GAP apart
EGO_SIZE = (4.9, 2.0, 1.9)  # l, w, h (m) of the ego car, centred on its pose


def stands_ok(sc, a):
    """Whether actor ``a`` (moving, or without ``allowed`` codes: always) has its centre and its footprint
    corners (at 75 %) on one of its ``allowed`` ground classes at time 0."""
    if not a.allowed or a.moving:
        return True
    if a.street >= 0:
        path = sc.layout.streets[a.street].path
        (x, y), yaw = path.to_global(a.s0, a.d), float(path.heading(a.s0)) + a.yaw_off
    else:
        x, y, yaw = a.x0, a.y0, a.yaw
    f = np.array([[0, 0], [0.75, 0.75], [0.75, -0.75], [-0.75, 0.75], [-0.75, -0.75]])
    c, s = np.cos(yaw), np.sin(yaw)
    lx, ly = f[:, 0] * a.size[0] / 2, f[:, 1] * a.size[1] / 2
    pts = np.stack([x + c * lx - s * ly, y + s * lx + c * ly], axis=1)
    return bool(np.isin(sc.raster.codes(pts) & 7, a.allowed).all())


def _overlap(a, b):
    """Oriented rectangles ``(..., 5)`` rows ``x, y, half l, half w, yaw`` overlap (separating axis test)."""
    d = b[..., :2] - a[..., :2]
    ok = np.ones(d.shape[:-1], dtype=bool)
    ca, sa, cb, sb = np.cos(a[..., 4]), np.sin(a[..., 4]), np.cos(b[..., 4]), np.sin(b[..., 4])
    for ux, uy in ((ca, sa), (-sa, ca), (cb, sb), (-sb, cb)):
        ra = a[..., 2] * np.abs(ca * ux + sa * uy) + a[..., 3] * np.abs(-sa * ux + ca * uy)
        rb = b[..., 2] * np.abs(cb * ux + sb * uy) + b[..., 3] * np.abs(-sb * ux + cb * uy)
        ok &= np.abs(d[..., 0] * ux + d[..., 1] * uy) <= ra + rb
    return ok


def _footprints(sc, times):
    """``(T, 1 + M, 5)`` footprints (x, y, half l + GAP, half w + GAP, yaw) of the ego (row 0) and the actors."""
    sc.freeze()
    fp = np.zeros((len(times), len(sc.actors) + 1, 5))
    for k, t in enumerate(times):
        b = sc.boxes_at(float(t))
        ego = sc.ego_pose(float(t))
        fp[k, 0] = [ego[0, 3], ego[1, 3], EGO_SIZE[0] / 2, EGO_SIZE[1] / 2, np.arctan2(ego[1, 0], ego[0, 0])]
        fp[k, 1:, :2], fp[k, 1:, 2:4], fp[k, 1:, 4] = b[:, :2], b[:, 3:5] / 2, b[:, 6]
    fp[:, :, 2:4] += GAP
    return fp


def clear_of_earlier(sc, n):
    """Whether the actors ``sc.actors[n:]`` keep clear of the ego and of ``sc.actors[:n]`` all scene long
    (checked every 0.25 s; for the few actors placed first)."""
    fp = _footprints(sc, np.arange(0.0, sc.duration + 1e-9, 0.25))
    m = len(sc.actors) + 1
    i, j = np.meshgrid(np.arange(n + 1, m), np.arange(n + 1), indexing="ij")
    return not _overlap(fp[:, i.ravel()], fp[:, j.ravel()]).any()


def prune(sc):
    """Drop off-ground and overlapping actors of ``sc`` (earlier actors win; groups stay or go together),
    then :meth:`Scene2.freeze` the rest."""
    drop = {i for i, a in enumerate(sc.actors) if not stands_ok(sc, a)}
    m = len(sc.actors)
    fp = _footprints(sc, np.arange(0.0, sc.duration + 1e-9, TIME_STEP))  # row 0 the ego car, rows 1.. the actors
    z = np.array([[0.0, EGO_SIZE[2]]] + [[a.z0, a.z0 + a.size[2]] for a in sc.actors])
    group = np.array([-2] + [a.group if a.group >= 0 else -3 - i for i, a in enumerate(sc.actors)])
    # Candidate pairs: swept bounding boxes and height intervals overlap, not in the same group.
    r = np.hypot(fp[..., 2], fp[..., 3])
    lo, hi = (fp[..., :2] - r[..., None]).min(0), (fp[..., :2] + r[..., None]).max(0)
    cand = ((lo[:, None, 0] <= hi[None, :, 0]) & (lo[None, :, 0] <= hi[:, None, 0])
            & (lo[:, None, 1] <= hi[None, :, 1]) & (lo[None, :, 1] <= hi[:, None, 1])
            & (z[:, None, 0] < z[None, :, 1] - 0.05) & (z[None, :, 0] < z[:, None, 1] - 0.05)
            & (group[:, None] != group[None, :]))
    i, j = np.nonzero(np.triu(cand, 1))
    hits = np.zeros(len(i), dtype=bool)
    for c in range(0, len(i), 4000):
        sl = slice(c, c + 4000)
        hits[sl] = _overlap(fp[:, i[sl]], fp[:, j[sl]]).any(axis=0)
    conflicts = {}
    for a, b in zip(i[hits].tolist(), j[hits].tolist(), strict=True):
        conflicts.setdefault(a, []).append(b)
        conflicts.setdefault(b, []).append(a)
    members = {}
    for n, g in enumerate(group.tolist()):
        members.setdefault(g, []).append(n)
    kept = {0}
    decided = {0}
    for n in range(1, m + 1):
        if n in decided:
            continue
        team = members[group[n]]
        decided.update(team)
        if any(t - 1 in drop for t in team):
            continue
        if any(o in kept for t in team for o in conflicts.get(t, ())):
            continue
        kept.update(team)
    sc.actors = [a for n, a in enumerate(sc.actors, start=1) if n in kept]
    sc.freeze()
