# nuScenes data section (dataroot, split names, cameras, image size, sweeps, augmentation, modality dropout).
data = dict(
    dataroot="data/nuscenes",
    version="v1.0-trainval",
    train_split="train",
    val_split="val",
    train_info=None,  # None: the project index is built for the dataroot when missing
    val_info=None,
    cameras=("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"),
    image_size=(256, 704),  # (H, W) pixels
    num_sweeps=10,
    # Occupancy GT for training: 'occ3d' (<dataroot>/gts/<scene>/<sample>/labels.npz, ego frame) or 'openocc'
    # (nuScenes-Occupancy under openocc_root: scene_<scene token>/occupancy/<LIDAR_TOP token>.npy, LiDAR frame).
    # Must match model.head.occ.grid ('occ3d' | 'openocc'); checked when the config is loaded.
    occ_format="occ3d",
    openocc_root=None,
    augment=dict(
        resize_lim=(0.38, 0.55),
        test_resize=0.48,
        bottom_crop_lim=(0.0, 0.0),
        rot_lim=(-5.4, 5.4),  # degrees
        image_flip_prob=0.5,
        bev_rot_lim=(-0.785, 0.785),  # radians (+-pi/4)
        bev_scale_lim=(0.9, 1.1),
        bev_flip_x_prob=0.5,
        bev_flip_y_prob=0.5,
        bev_translate_std=0.5,  # metres
    ),
    modality_dropout=dict(lidar=0.0, all_cameras=0.0, some_cameras=0.0),
)
