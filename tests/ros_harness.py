"""Helpers for tests that talk over real DDS (the PyPI ROS 2 wheels): a test-side bus with its own rclpy
context and executor thread, and node processes started with ``--ros-args``.

Every test session uses its own ``ROS_DOMAIN_ID`` (from the pid) so parallel runs on one machine do not
hear each other; the node processes get it through their environment.
"""

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOMAIN_ID = 100 + os.getpid() % 100


@contextlib.contextmanager
def node_threads():
    """Run the test's own reference inference with the node processes' one thread (``ros_env``): a random model's
    near-tied scores and argmaxes can fall the other way when a reduction is split over more threads."""
    import torch  # here: the harness itself needs no torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ros_env():
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def ros_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


def start_node(module, params, log_path, name=None, params_file=None):
    """``python -m module --ros-args [--params-file F] -p k:=v ...`` with stdout/stderr in ``log_path``."""
    args = [sys.executable, "-m", module, "--ros-args"]
    if params_file:
        args += ["--params-file", str(params_file)]
    if name:
        args += ["-r", f"__node:={name}"]
    for key, value in params.items():
        args += ["-p", f"{key}:={ros_value(value)}"]
    log = open(log_path, "w")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ros_env(), cwd=str(REPO))


def stop(proc, timeout=10.0):
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: the node's Ctrl-C path
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Bus:
    """A test-side ROS 2 participant: collect messages per topic, publish, wait for conditions."""

    def __init__(self, name="test_bus"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException

        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, RuntimeError):
            pass

    def subscribe(self, topic, msg_type, qos=None):
        from rclpy.qos import QoSProfile

        self.received[topic] = []

        def collect(msg):
            with self.lock:
                self.received[topic].append((time.monotonic(), msg))
        self.node.create_subscription(msg_type, topic, collect, qos or QoSProfile(depth=100))
        return self.received[topic]

    def publisher(self, topic, msg_type, qos=None):
        from rclpy.qos import QoSProfile

        return _Patient(self.node.create_publisher(msg_type, topic, qos or QoSProfile(depth=10)))

    def messages(self, topic):
        with self.lock:
            return [m for _, m in self.received[topic]]

    def wait_for(self, condition, timeout, procs=()):
        """Poll ``condition()`` until true (returns True) or ``timeout`` s; fails early if a process died."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            for proc in procs:
                assert proc.poll() is None, f"process {proc.args[2]} exited with {proc.returncode}"
            time.sleep(0.05)
        return condition()

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)


def diagnostics_values(msg, suffix):
    """``{key: value}`` of the status whose name ends with ``suffix`` in a DiagnosticArray (or None)."""
    for status in msg.status:
        if status.name.endswith(suffix):
            return {kv.key: kv.value for kv in status.values} | {"_level": status.level[0] if isinstance(
                status.level, bytes) else int(status.level), "_message": status.message}
    return None


class _Patient:
    """A test-side publisher whose ``publish`` waits out a refused write (``ros_nodes.common.publish_retrying``, as
    the player does): on a loaded CI machine the node under test acknowledges a burst of reliable images late, and
    Fast DDS then refuses the next write instead of waiting; the test means to deliver every message."""

    def __init__(self, publisher):
        self._publisher = publisher

    def publish(self, msg):
        from ros_nodes.common import publish_retrying

        publish_retrying(self._publisher, msg, within_s=10.0)

    def __getattr__(self, name):  # topic_name, get_subscription_count, ... of the wrapped publisher
        return getattr(self._publisher, name)
