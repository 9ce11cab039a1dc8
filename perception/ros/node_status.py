"""What ``perception_node`` reports on ``/diagnostics``: three statuses from its counters (pure, no rclpy).

``perception.ros.outputs.diagnostics_message`` turns the list into a ``DiagnosticArray``.
"""


def node_statuses(lidar_idle_s, lidar_timeout_s, frame_status, notes, timings_ms, errors, frames, precision,
                  model="main"):
    """``[inputs, latency, frames]`` as ``{name, level, message, values}`` dicts.

    ``lidar_idle_s``: wall seconds since the last LiDAR message (None: none yet); ``frame_status``: the newest
    frame's :class:`perception.runtime.assembler.FrameStatus` (None before the first); ``notes``: that frame's
    prediction warnings (a withheld or missing sensor); ``timings_ms``: its ms per stage; ``errors``: an
    :class:`perception.ros.bridge.InputErrors`; ``frames``: counters (received, processed, failed, dropped);
    ``precision``: what the model runs in ('fp32' / 'bf16' / 'fp16'); ``model``: which model ran the newest frame
    ('main' or a fallback's kind, :attr:`perception.runtime.Prediction.model`; the latency status's ``fallback``
    value: 'none' or that kind).

    Levels: inputs ERROR while the LiDAR is silent for more than ``lidar_timeout_s`` (or has not spoken yet),
    WARN for a camera that is not ok, a degraded frame or any bad input; frames WARN once a frame failed.
    """
    lidar_down = lidar_idle_s is None or lidar_idle_s > lidar_timeout_s
    sensors = {"lidar": "no message yet" if lidar_idle_s is None else
               (f"no message for {lidar_idle_s:.1f} s" if lidar_down else "ok")}
    if frame_status is not None:
        sensors.update({f"camera {k}": v for k, v in frame_status.cameras.items()})
        sensors.update(sweeps_merged=frame_status.sweeps_used, motion_compensated=frame_status.motion_compensated,
                       points=frame_status.points)
    sensors.update({f"bad input {k}": f"{n} ({errors.last[k]})" for k, n in errors.counts.items()})
    degraded = frame_status is not None and (any(v != "ok" for v in frame_status.cameras.values()) or notes)
    inputs_level = "ERROR" if lidar_down else ("WARN" if degraded or errors.counts else "OK")
    message = "; ".join(([f"LiDAR: {sensors['lidar']}"] if lidar_down else []) + list(notes))
    return [
        {"name": "inputs", "level": inputs_level, "message": message or "all sensors ok", "values": sensors},
        {"name": "latency", "level": "OK", "message": f"ms per stage of the newest frame ({precision})",
         "values": {"precision": precision, "fallback": "none" if model == "main" else model,
                    **{k: f"{v:.1f}" for k, v in timings_ms.items()}}},
        {"name": "frames", "level": "WARN" if frames["failed"] else "OK",
         "message": f"{frames['processed']} processed, {frames['dropped']} dropped, {frames['failed']} failed",
         "values": dict(frames)},
    ]
