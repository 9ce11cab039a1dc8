"""Second-stage box refinement from the raw LiDAR points around each detection (LiDAR-RCNN style)."""
