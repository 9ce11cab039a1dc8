"""What the two nodes share: declaring ROS parameters from one schema (name -> (default, description)), as
Autoware nodes keep a parameter schema beside the node, running a node until Ctrl-C, and a publish that waits
out a refused write. A wrong parameter or input is a :class:`BadParameter`: the node logs it in one line and exits
2 instead of starting half-configured.
"""

import time

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

try:
    from rclpy._rclpy_pybind11 import RCLError  # what rclpy raises when the middleware refuses a write
except ImportError:  # an rclpy without that module: its publish raises a RuntimeError subclass
    RCLError = RuntimeError

EXIT_OK = 0
EXIT_BAD_START = 2


class BadParameter(Exception):
    """A start-up problem the user must fix: one log line, exit code 2."""


def declare_parameters(node, schema, numeric=()):
    """Declare every ``schema`` entry on ``node`` (with its description) and return ``{name: value}``.
    Names in ``numeric`` accept ints and floats (``rate:=2`` as well as ``rate:=2.0``) and come back as float."""
    values = {}
    for name, (default, description) in schema.items():
        descriptor = ParameterDescriptor(description=description, dynamic_typing=name in numeric)
        try:
            values[name] = node.declare_parameter(name, default, descriptor).value
        except ParameterException as e:  # e.g. loop:=3 for a bool
            raise BadParameter(f"parameter {name}: {e}") from e
    for name in numeric:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadParameter(f"parameter {name} must be a number, got {value!r}")
        values[name] = float(value)
    return values


def publish_retrying(publisher, msg, within_s=1.0, pause_s=0.01):
    """``publisher.publish(msg)``, tried again every ``pause_s`` while the middleware refuses it, for at most
    ``within_s`` seconds. Returns the number of refused tries (0: delivered at once); raises the last refusal when
    the time is up.

    Fast DDS refuses a write ("cannot publish data") when a RELIABLE writer's history is full of samples a
    subscriber has not acknowledged yet and its blocking time (100 ms) has run out: large images in a burst, or a
    loaded machine whose subscriber acknowledges late. The sample is not lost, only not accepted yet, so a sender
    that must deliver everything (a log player in reliable mode) waits a little and tries again instead of dying."""
    deadline = time.monotonic() + within_s
    refused = 0
    while True:
        try:
            publisher.publish(msg)
            return refused
        except RCLError:
            refused += 1
            if time.monotonic() + pause_s > deadline:
                raise
            time.sleep(pause_s)


def run_node(name, build, args=None):
    """Create node ``name``, ``app = build(node, executor)`` and spin until Ctrl-C or the app's own end.

    ``build`` raises :class:`BadParameter` for a start-up problem (logged in one line, exit 2). When the app
    has ``run(executor)`` it drives the executor itself (the player); otherwise the executor spins here.
    ``app.stop()`` is called on the way out when it exists. Returns the exit code."""
    context = Context()
    # With its own Context rclpy installs no signal handlers unless asked: SIGINT / SIGTERM shut the context
    # down, the executor (or the player's loop) returns, and the node exits 0 after cleaning up.
    rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.ALL)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    code, app = EXIT_OK, None
    try:
        app = build(node)
        if hasattr(app, "run"):
            app.run(executor)
        else:
            executor.spin()
    except BadParameter as e:
        node.get_logger().error(str(e))
        code = EXIT_BAD_START
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if app is not None and hasattr(app, "stop"):
            app.stop()
        executor.shutdown()
        node.destroy_node()
        if context.ok():
            rclpy.shutdown(context=context)
    return code
