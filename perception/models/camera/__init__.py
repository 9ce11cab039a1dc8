"""Camera branch: image backbone, FPN, LiDAR-assisted depth, LSS lift and BEV pooling."""
