"""Declaring a node's ROS parameters from one schema (name -> (default, description)), as Autoware nodes keep
a parameter schema beside the node. A wrong type or value is a :class:`BadParameter`: the node logs it in one
line and exits 2 instead of starting half-configured."""


class BadParameter(Exception):
    """A start-up problem the user must fix: one log line, exit code 2."""


def declare_parameters(node, schema, numeric=()):
    """Declare every ``schema`` entry on ``node`` (with its description) and return ``{name: value}``.
    Names in ``numeric`` accept ints and floats (``rate:=2`` as well as ``rate:=2.0``) and come back as float."""
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import ParameterException

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
