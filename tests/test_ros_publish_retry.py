"""ros_nodes.common.publish_retrying: a write the middleware refuses (Fast DDS's "cannot publish data", a reliable
history full of unacknowledged samples) is tried again until accepted, and raised once the time is up."""

import time

import pytest

from ros_nodes.common import RCLError, publish_retrying


class Refusing:
    """A publisher whose middleware refuses the first ``refusals`` writes, as rclpy reports it (RCLError)."""

    def __init__(self, refusals):
        self.refusals = refusals
        self.sent = []

    def publish(self, msg):
        if self.refusals > 0:
            self.refusals -= 1
            raise RCLError("Failed to publish: cannot publish data, at rmw_publish.cpp:68")
        self.sent.append(msg)


def test_a_refused_write_is_sent_once_when_accepted():
    publisher = Refusing(refusals=3)
    assert publish_retrying(publisher, "frame 7", within_s=1.0, pause_s=0.001) == 3
    assert publisher.sent == ["frame 7"]  # once, not once per try
    assert publish_retrying(publisher, "frame 8") == 0 and publisher.sent == ["frame 7", "frame 8"]


def test_a_write_still_refused_after_the_time_raises_and_sends_nothing():
    publisher = Refusing(refusals=10**9)
    start = time.monotonic()
    with pytest.raises(RCLError, match="cannot publish data"):
        publish_retrying(publisher, "frame 7", within_s=0.2, pause_s=0.01)
    assert 0.15 < time.monotonic() - start < 2.0 and publisher.sent == []


def test_other_errors_are_not_retried():
    class Broken:
        calls = 0

        def publish(self, msg):
            Broken.calls += 1
            raise TypeError("wrong message type")
    with pytest.raises(TypeError):
        publish_retrying(Broken(), "frame 7")
    assert Broken.calls == 1
