"""The one exception type of the message layer."""


class MessageError(ValueError):
    """A ROS message that cannot be converted. The text names the message type and the offending
    field/value; ``kind`` is a short stable string (e.g. ``'pointcloud_no_xyz'``, ``'pointcloud_layout'``,
    ``'image_encoding'``, ``'image_size'``, ``'image_decode'``, ``'camera_info_k'``) so that a node can
    log each kind of problem once instead of once per message."""

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = str(kind)

    def __reduce__(self):  # keep ``kind`` through pickling (multiprocessing replay workers)
        return (type(self), (str(self), self.kind))
