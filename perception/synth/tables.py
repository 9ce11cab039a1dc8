"""The nuScenes v1.0 JSON tables: fixed vocabularies (real category / attribute / visibility names),
deterministic tokens, and the writer of ``<dataroot>/<version>/*.json``."""

import hashlib
import json
import os

from perception.geometry import rotmat_to_quat

# All 23 nuScenes v1.0 categories (real names; short descriptions).
CATEGORIES = (
    ("human.pedestrian.adult", "Adult subcategory."),
    ("human.pedestrian.child", "Child subcategory."),
    ("human.pedestrian.wheelchair", "Wheelchairs."),
    ("human.pedestrian.stroller", "Strollers."),
    ("human.pedestrian.personal_mobility", "Skateboards, segways, scooters."),
    ("human.pedestrian.police_officer", "Police officer."),
    ("human.pedestrian.construction_worker", "Construction worker."),
    ("animal", "All animals."),
    ("vehicle.car", "Vehicle designed primarily for personal use."),
    ("vehicle.motorcycle", "Gasoline or electric powered 2-wheeled vehicle."),
    ("vehicle.bicycle", "Human or electric powered 2-wheeled vehicle."),
    ("vehicle.bus.bendy", "Bendy bus subcategory."),
    ("vehicle.bus.rigid", "Rigid bus subcategory."),
    ("vehicle.truck", "Vehicles primarily designed to haul cargo."),
    ("vehicle.construction", "Vehicles primarily designed for construction."),
    ("vehicle.emergency.ambulance", "All types of ambulances."),
    ("vehicle.emergency.police", "All types of police vehicles."),
    ("vehicle.trailer", "Any vehicle trailer."),
    ("movable_object.barrier", "Temporary road barrier placed in the scene."),
    ("movable_object.trafficcone", "All types of traffic cones."),
    ("movable_object.pushable_pullable", "Objects that a pedestrian may push or pull."),
    ("movable_object.debris", "Movable object that is left on the driveable surface."),
    ("static_object.bicycle_rack", "Area or device intended to park or secure bicycles."),
)

ATTRIBUTES = (
    ("vehicle.moving", "Vehicle is moving."),
    ("vehicle.stopped", "Vehicle, with a driver/rider in/on it, is currently stationary but has an intent to move."),
    ("vehicle.parked", "Vehicle is stationary (usually for longer duration) with no immediate intent to move."),
    ("cycle.with_rider", "There is someone riding a bicycle or motorcycle."),
    ("cycle.without_rider", "There is NO rider on a bicycle or motorcycle."),
    ("pedestrian.sitting_lying_down", "The human is sitting or lying down."),
    ("pedestrian.standing", "The human is standing."),
    ("pedestrian.moving", "The human is moving."),
)

# Real nuScenes visibility records: token "1".."4" = fraction of the object visible in the six cameras.
VISIBILITY = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)

TABLE_NAMES = (
    "attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
    "sample_annotation", "sample_data", "scene", "sensor", "visibility",
)


def token(*parts):
    """Deterministic 32-hex-digit token from ``parts`` (same parts -> same token)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def visibility_token(fraction):
    """Visibility token ("1".."4") for the visible ``fraction`` (0-1) of an object."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"visibility fraction must be in [0, 1], got {fraction}")
    return "1" if fraction < 0.4 else "2" if fraction < 0.6 else "3" if fraction < 0.8 else "4"


def vocabulary_tables():
    """The fixed ``category``, ``attribute`` and ``visibility`` tables (tokens derived from the names)."""
    return {
        "category": [{"token": token("category", n), "name": n, "description": d} for n, d in CATEGORIES],
        "attribute": [{"token": token("attribute", n), "name": n, "description": d} for n, d in ATTRIBUTES],
        "visibility": [{"token": t, "level": lv, "description": d} for t, lv, d in VISIBILITY],
    }


def write_tables(dataroot, version, tables):
    """Write ``tables`` (name -> list of records) as ``<dataroot>/<version>/<name>.json``; all 13 required."""
    missing = [n for n in TABLE_NAMES if n not in tables]
    if missing:
        raise ValueError(f"tables: missing nuScenes table(s) {missing}")
    folder = os.path.join(dataroot, version)
    os.makedirs(folder, exist_ok=True)
    for name in TABLE_NAMES:
        with open(os.path.join(folder, f"{name}.json"), "w") as f:
            json.dump(tables[name], f, indent=1)


def pose_record(tok, ts, T):
    """An ego_pose record: token ``tok``, timestamp ``ts`` (us), pose ``T`` (4x4 ego -> global)."""
    return {"token": tok, "timestamp": ts, "rotation": rotmat_to_quat(T[:3, :3]).tolist(),
            "translation": T[:3, 3].tolist()}


def chain_records(records):
    """Set ``prev``/``next`` tokens of consecutive ``records`` (a scene-ordered list)."""
    for i, r in enumerate(records):
        r["prev"] = records[i - 1]["token"] if i > 0 else ""
        r["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""
