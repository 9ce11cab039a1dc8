"""Fallback models for a missing sensor, beside the main :class:`perception.runtime.Predictor`.

A frame without LiDAR points can be run by a camera-only model (``'no_lidar'``) and a frame without any usable
camera by a LiDAR-only model (``'no_cameras'``) instead of by the fusion model with one input empty. The fusion
model is trained with both inputs; with one of them gone it does far worse than a model trained on the other
alone (docs/benchmarks.md, the withheld-sensor rows). The main Predictor decides per frame
(:func:`choose_fallback`) and hands the whole frame over; the prediction's ``model`` and a note say which ran.
"""

from pathlib import Path

FALLBACK_KINDS = ("no_lidar", "no_cameras")


def fallback_problem(main, kind, fallback):
    """Why the Predictor ``fallback`` cannot stand in for ``main`` on the frames of ``kind``, or None. It must
    have the encoder those frames still feed, the same tasks, and the same occupancy grid, frame and free
    class (so the output messages do not depend on which model ran)."""
    if kind not in FALLBACK_KINDS:
        return f"fallback kind must be one of {FALLBACK_KINDS}, got {kind!r}"
    lost = "lidar_encoder" if kind == "no_lidar" else "camera_encoder"
    if getattr(main.model, lost) is None:
        return f"fallback {kind}: this model has no {lost}: a fallback for that sensor's absence would run every frame"
    needs = "camera_encoder" if kind == "no_lidar" else "lidar_encoder"
    if getattr(fallback.model, needs) is None:
        what = "cameras" if kind == "no_lidar" else "LiDAR"
        return f"fallback {kind}: its model has no {needs} (it cannot run on {what} alone)"
    if fallback.tasks != main.tasks:
        return f"fallback {kind}: its tasks {list(fallback.tasks)} differ from this model's {list(main.tasks)} " \
               f"(model.tasks)"
    if "occ" in main.tasks:
        mine, theirs = main.model.head.occ, fallback.model.head.occ
        for name in ("grid", "frame", "free_index"):
            if getattr(mine, name) != getattr(theirs, name):
                return (f"fallback {kind}: its occupancy {name} {getattr(theirs, name)!r} differs from this "
                        f"model's {getattr(mine, name)!r} (model.head.occ.{name})")
    return None


def choose_fallback(fallbacks, has_lidar, has_cameras):
    """``(kind, Predictor, name)`` of the fallback in ``fallbacks`` ({kind: (Predictor, name)}) that runs a
    frame with LiDAR points ``has_lidar`` and a usable camera ``has_cameras``, or None (the main model runs it)."""
    if not has_lidar and has_cameras and "no_lidar" in fallbacks:
        return ("no_lidar", *fallbacks["no_lidar"])
    if has_lidar and not has_cameras and "no_cameras" in fallbacks:
        return ("no_cameras", *fallbacks["no_cameras"])
    return None


def run_fallback(choice, call):
    """``call(predictor)`` on the chosen fallback; its Prediction names the model that ran."""
    kind, predictor, name = choice
    pred = call(predictor)
    pred.warnings.append(f"{kind.replace('_', ' ')}: fallback model {name} ran this frame")
    pred.model = kind
    return pred


def add_fallback_models(predictor, models, device="cpu", bf16=False):
    """Load and set the fallback models ``models`` {kind: (config file, checkpoint file)} (kinds in
    :data:`FALLBACK_KINDS`; empty paths skip the kind) on ``predictor``, on the same device and precision.
    Returns ``predictor``. A missing file is a ``FileNotFoundError`` naming it; a model that cannot stand in
    (:func:`fallback_problem`) a ``ValueError``."""
    for kind, (config, checkpoint) in models.items():
        if not config and not checkpoint:
            continue
        for what, path in (("config", config), ("checkpoint", checkpoint)):
            if not path or not Path(path).is_file():
                raise FileNotFoundError(f"fallback {kind}: {what} file not found: {path!r}")
        fallback = type(predictor)(config, checkpoint, device=device, bf16=bf16)
        predictor.set_fallback(kind, fallback, name=f"{config} ({Path(checkpoint).name})")
    return predictor
