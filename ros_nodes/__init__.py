"""ROS 2 nodes of m3_perception: thin rclpy glue over :mod:`perception.runtime`.

No node ships yet; the nodes only convert messages and call ``perception.runtime.Predictor``, the same
runtime that offline evaluation and log replay use.
"""
