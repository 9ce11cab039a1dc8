"""Camera + LiDAR BEV fusion: MAFI, a plain conv fuser, and the fused BEV neck."""
