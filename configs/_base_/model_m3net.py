# M3Net as published (shared/docs/m3net.md): LiDAR sparse ResNet + LSS camera -> MAFI -> shared decoder.
# BEV grid: [-54, 54] m at 0.6 m = 180 x 180 cells (LiDAR frame).
model = dict(
    tasks=("det", "map", "occ"),
    point_cloud_range=(-54.0, -54.0, -5.0, 54.0, 54.0, 3.0),
    bev_cell=0.6,
    lidar=dict(
        backbone="sparse",
        voxel_size=(0.075, 0.075, 0.2),
        in_channels=5,
        out_channels=256,
    ),
    camera=dict(
        image_size=(256, 704),
        backbone="resnet18",
        pretrained=False,
        fpn_channels=256,
        context_channels=80,
        depth_bins=(1.0, 60.0, 0.5),
        use_lidar_depth=True,
    ),
    fusion=dict(out_channels=256, fusion="mafi"),
    head=dict(  # shared settings; det / map / occ: the task modules' settings (perception/models/heads/*_task.py)
        decoder="transformer",
        num_layers=6,
        d_model=256,
        num_heads=8,
        ffn_dim=1024,
        loss_weights=dict(map=40.0, map_aux=20.0, det=2.0, heatmap=6.0, occ=1.0),
        det=dict(num_queries=200),
        occ=dict(grid="occ3d", frame="ego", num_classes=18),
    ),
)
