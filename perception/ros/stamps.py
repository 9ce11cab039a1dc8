"""Time stamps and headers: ``builtin_interfaces/Time`` <-> integer nanoseconds."""

from perception.ros.errors import MessageError

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """A ``builtin_interfaces/Time``-like object (``.sec``, ``.nanosec``; rclpy, rosbags or mcap) -> int ns.

    Also accepts an ``rclpy.time.Time`` (``.nanoseconds``) and a plain ``int`` (already nanoseconds).
    """
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        return stamp
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        sec, nsec = int(stamp.sec), int(stamp.nanosec)
        if not 0 <= nsec < NS_PER_S:
            raise MessageError(f"Time: nanosec {nsec} outside [0, 1e9)", "stamp")
        return sec * NS_PER_S + nsec
    if hasattr(stamp, "nanoseconds"):
        return int(stamp.nanoseconds)
    raise MessageError(f"Time: {type(stamp).__name__} has no sec/nanosec", "stamp")


def ns_to_stamp(ns):
    """Integer nanoseconds -> ``builtin_interfaces.msg.Time`` (floor division, so negative times work)."""
    from builtin_interfaces.msg import Time  # the ros extra (optional)

    ns = int(ns)
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


def make_header(stamp_ns, frame_id):
    """A ``std_msgs.msg.Header`` with the stamp ``stamp_ns`` (int ns) and ``frame_id``."""
    from std_msgs.msg import Header  # the ros extra (optional)

    return Header(stamp=ns_to_stamp(stamp_ns), frame_id=str(frame_id))


def header_stamp_ns(msg) -> int:
    """The ``header.stamp`` of any stamped message, in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)
