"""``--no-lidar-model`` / ``--no-camera-model``: the fallback models of ``perception eval`` and ``perception replay``
(:meth:`perception.runtime.Predictor.set_fallback`)."""


def add_fallback_arguments(p):
    p.add_argument("--no-lidar-model", nargs=2, metavar=("CONFIG", "CHECKPOINT"), default=None,
                   help="a camera-only model (e.g. configs/tiny_camera.py and its checkpoint) that runs the frames "
                        "without LiDAR points instead of the main model")
    p.add_argument("--no-camera-model", nargs=2, metavar=("CONFIG", "CHECKPOINT"), default=None,
                   help="a LiDAR-only model (e.g. configs/tiny_lidar.py and its checkpoint) that runs the frames "
                        "without any usable camera instead of the main model")


def fallback_models(args):
    """``{kind: (config, checkpoint)}`` of the given fallback arguments (``add_fallback_models``' input)."""
    given = {"no_lidar": args.no_lidar_model, "no_cameras": args.no_camera_model}
    return {kind: tuple(pair) for kind, pair in given.items() if pair}
