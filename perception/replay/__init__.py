"""Offline log replay: recorded drives through exactly the code of the ROS 2 perception node, without ROS.

- :mod:`~perception.replay.convert`: a nuScenes scene -> ROS 2 bag (``perception convert nuscenes``), and the
  scene's messages for replaying a dataroot directly;
- :mod:`~perception.replay.sources`: inputs (rosbag2 MCAP / sqlite3, Foxglove-protobuf MCAP, dataroot) as
  messages in log-time order (:mod:`~perception.replay.input_message`; MCAP reading in
  :mod:`~perception.replay.mcap_source`); :mod:`~perception.replay.foxglove`: Foxglove messages seen through
  the ROS 2 message layer's readers; :mod:`~perception.replay.topics`: which topic feeds what;
- :mod:`~perception.replay.replay`: the loop around :class:`perception.ros.bridge.PerceptionBridge`, with the
  rig from the input's tf (:mod:`~perception.replay.tf_rig`) and ``--copy-inputs``
  (:mod:`~perception.replay.copy_inputs`); :mod:`~perception.replay.run`: one replay end to end
  (``perception replay``);
- :mod:`~perception.replay.summary` (latency per stage, skipped frames), :mod:`~perception.replay.scoring`
  (keyframes scored with :mod:`perception.eval`), :mod:`~perception.replay.render` (``--render``, ``--video``
  with :mod:`perception.viz`), :mod:`~perception.replay.bagio` (writing bags with ``rosbags``).

Imports run one way: replay uses data, runtime, ros, eval and viz; only the CLI imports replay.
"""
