"""2D BEV backbones shared by the LiDAR branch and the fusion neck."""
