"""Frames triggered by a camera while the LiDAR is silent (the node and log replay both use it).

Frames are normally triggered by LiDAR messages. When the LiDAR stops, a vehicle still needs outputs: while
no LiDAR message has come for ``lidar_timeout_s`` (in message stamps, so replay decides as the node does),
each image of ``camera`` triggers a frame without LiDAR points at the image's stamp. The Predictor runs it on
the cameras (its ``no_lidar`` fallback model when one is set). Before any LiDAR message, the silence counts
from the first image: a LiDAR that never starts is a LiDAR that is down.
"""

LIDAR_TIMEOUT_S = 1.0  # default s of LiDAR silence before camera-triggered frames (node and replay)


def trigger_camera(setting, cameras):
    """The camera of a ``lidar_down_camera`` setting among ``cameras`` (in the model's order): ``'auto'`` the
    first (None without cameras), ``'none'`` None, else that name; ``ValueError`` when it is not one of them."""
    if setting in ("auto", "none"):
        return cameras[0] if cameras and setting == "auto" else None
    if setting not in cameras:
        raise ValueError(f"lidar_down_camera: {setting!r} is not one of the cameras {list(cameras)} ('auto', 'none' "
                         f"or one of them)")
    return setting


class CameraTrigger:
    """``on_lidar(stamp_ns)`` for each LiDAR message; ``fires(camera, stamp_ns)`` for each image: True when the
    image should trigger a frame. ``camera`` empty or None: never fires."""

    def __init__(self, camera, lidar_timeout_s):
        if lidar_timeout_s <= 0:
            raise ValueError(f"lidar_timeout must be > 0 s, got {lidar_timeout_s}")
        self.camera = camera or None
        self.timeout_ns = int(round(lidar_timeout_s * 1e9))
        self.last_lidar_ns = None
        self.first_image_ns = None

    def on_lidar(self, stamp_ns):
        self.last_lidar_ns = stamp_ns if self.last_lidar_ns is None else max(self.last_lidar_ns, stamp_ns)

    def fires(self, camera, stamp_ns):
        if self.camera is None or camera != self.camera:
            return False
        if self.first_image_ns is None:
            self.first_image_ns = stamp_ns
        since = self.last_lidar_ns if self.last_lidar_ns is not None else self.first_image_ns
        return stamp_ns - since > self.timeout_ns
