"""What every replay source yields: :class:`InputMessage` (one message, decoded lazily), :class:`TopicInfo` (one
topic of the input) and :class:`SourceError` (an input that cannot be replayed at all). Times in nanoseconds.
"""

from dataclasses import dataclass

CDR, PROTOBUF = "cdr", "protobuf"


class SourceError(ValueError):
    """An input that cannot be replayed at all (not found, not a bag, unreadable header)."""


@dataclass
class TopicInfo:
    topic: str
    msgtype: str  # 'sensor_msgs/msg/PointCloud2' or 'foxglove.PointCloud'
    encoding: str  # 'cdr', 'protobuf' or the file's message encoding
    count: int = None  # messages (None when unknown: no summary)


class InputMessage:
    """One message of an input: ``topic``, ``msgtype``, ``encoding``, ``log_time_ns``; :meth:`message` decodes
    it (cached); ``raw`` (CDR bytes) and ``msgdef`` (the ``.msg`` text) when it came from a ROS 2 bag."""

    __slots__ = ("topic", "msgtype", "encoding", "log_time_ns", "raw", "msgdef", "_decode", "_msg")

    def __init__(self, topic, msgtype, encoding, log_time_ns, raw=None, msgdef=None, decode=None, msg=None):
        self.topic, self.msgtype, self.encoding, self.log_time_ns = topic, msgtype, encoding, int(log_time_ns)
        self.raw, self.msgdef, self._decode, self._msg = raw, msgdef, decode, msg

    def message(self):
        if self._msg is None:
            self._msg = self._decode(self.raw)
        return self._msg
