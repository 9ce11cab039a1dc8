"""The config schema: every key a config file may set, with its default, and the names it allows.

This is the one home of the defaults (:data:`SCHEMA`); :mod:`perception.config` loads a file, merges its
``_base_`` files, applies ``--cfg-options`` and checks it against this schema and the rules across keys. A key
without a default is :data:`REQUIRED`; a :data:`KWARGS` section holds constructor keyword arguments checked when
the model is built. Units: metres for ranges and cells, pixels ``(H, W)`` for image sizes, seconds for ``*_s``.
"""


class _Required:
    __repr__ = lambda self: "REQUIRED"  # noqa: E731  (shows as REQUIRED in error messages)


REQUIRED = _Required()
# Marks a sub-section whose keys are constructor keyword arguments (validated when the model is built).
KWARGS = "kwargs-section"

SCHEMA = {
    "model": {
        "tasks": REQUIRED,  # subset of ('det', 'map', 'occ')
        "point_cloud_range": REQUIRED,  # [x0, y0, z0, x1, y1, z1] metres, LiDAR frame
        "bev_cell": REQUIRED,  # metres per BEV cell of the shared BEV grid
        "lidar": KWARGS,  # LidarEncoder kwargs or None
        "camera": KWARGS,  # CameraEncoder kwargs or None
        "fusion": KWARGS,  # FusedBEVNeck kwargs
        "head": KWARGS,  # MultiTaskHead kwargs; sub-sections det / map / occ: DetTask / MapTask / OccTask kwargs
        "refiner": KWARGS,  # PointBoxRefiner kwargs (second-stage box refinement from LiDAR points) or None
        "score_threshold": 0.05,  # detection decoding in predict
        "max_boxes": 500,  # per sample (nuScenes submission limit)
        "map_memory_s": 0.0,  # BEV map: time constant (s) of the running mean over past frames (runtime/map_memory.py)
        "depth_loss_weight": 1.0,  # camera LiDAR-supervised depth loss
        "camera_map_weight": 0.0,  # > 0: training-only map loss on the camera BEV alone (heads/camera_map_aux.py)
        "lidar_map_weight": 0.0,  # > 0: training-only map loss on the LiDAR BEV alone (heads/camera_map_aux.py)
        "camera_map_blend": 0.0,  # w of the camera map head in the map without LiDAR (heads/camera_map_aux.py)
        "camera_occ_weight": 0.0,  # > 0: training-only occupancy loss on the camera BEV alone (heads/camera_occ_aux.py)
        "occ_prior_fill": None,  # 'ground'/'all': fill free voxels without LiDAR from a prior (runtime/occ_prior.py)
        "occ_ground_from_map": None,  # T: no-LiDAR ground voxels take the map class >= T (runtime/occ_ground.py)
        "map_logit_offsets": None,  # 6 logits added to the map of frames with LiDAR (runtime/map_offsets.py)
    },
    "data": {
        "dataroot": REQUIRED,  # nuScenes-format dataroot
        "version": "v1.0-trainval",
        "train_split": "train",  # official split names (nuscenes.utils.splits)
        "val_split": "val",
        "train_info": None,  # info/index pickle; None -> <dataroot>/m3_index_<version>.pkl, built if missing
        "val_info": None,
        "cameras": ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"),
        "image_size": REQUIRED,  # (H, W) network input in pixels
        "num_sweeps": 10,
        "occ_format": "occ3d",  # occupancy GT read for training: 'occ3d' | 'openocc' (must match model.head.occ.grid)
        "openocc_root": None,  # nuScenes-Occupancy labels (scene_<scene>/occupancy/<lidar token>.npy), for 'openocc'
        "augment": {  # perception.data.augment.ImageAugParams / BevAugParams
            "resize_lim": (0.38, 0.55),  # image scale range (train)
            "test_resize": 0.48,  # None: smallest scale covering image_size
            "bottom_crop_lim": (0.0, 0.0),  # fraction of the resized height cut from the bottom
            "rot_lim": (-5.4, 5.4),  # image rotation, degrees
            "image_flip_prob": 0.5,
            "bev_rot_lim": (-0.785, 0.785),  # radians
            "bev_scale_lim": (0.9, 1.1),
            "bev_flip_x_prob": 0.5,
            "bev_flip_y_prob": 0.5,
            "bev_translate_std": 0.5,  # metres
        },
        "modality_dropout": {  # perception.data.collate.modality_dropout, per training sample
            "lidar": 0.0,  # probability the LiDAR is dropped
            "all_cameras": 0.0,  # probability all cameras are dropped
            "some_cameras": 0.0,  # probability a random proper subset of the cameras is dropped
        },
        "modality_dropout_per": "sample",  # one draw per 'sample' or per 'batch' (one sensor condition per batch)
    },
    "train": {
        "epochs": REQUIRED,
        "batch_size": 1,  # per process
        "lr": REQUIRED,
        "weight_decay": 0.01,
        "schedule": "onecycle",  # 'onecycle' | 'cosine'
        "pct_start": 0.4,  # one-cycle warm-up fraction
        "grad_clip": 10.0,  # max gradient L2 norm; None disables
        "amp": False,  # fp16 autocast + GradScaler (CUDA only; ignored on CPU)
        "cpu_bf16": False,  # bf16 autocast on a CPU with native bf16 (AVX512-BF16 / AMX); else fp32, with a warning
        "ema": False,
        "ema_decay": 0.999,
        "seed": 0,
        "workers": 0,  # DataLoader workers per process
        "log_interval": 10,  # steps between log lines
        "checkpoint_interval": 1,  # epochs between W/epoch_N.pth files; 0 = only W/latest.pth, at the end
        "keep_checkpoints": 3,  # newest epoch_N.pth files kept (older ones deleted); -1 keeps all
        "max_steps": None,  # stop after this many optimizer steps (debug / tests)
    },
}

SCHEDULES = ("onecycle", "cosine")
OCC_FORMATS = ("occ3d", "openocc")  # data.occ_format (see perception.data.dataset.M3Dataset)
# model.head keys of the flat layout before the head split into task modules (commit eff7413) -> their key now.
MOVED_HEAD_KEYS = {"num_det_queries": "det.num_queries", **{f"{t}_{k}": f"{t}.{k}" for t, keys in (
    ("det", ("upsample", "nms_kernel", "nms_exempt_classes", "offset_head", "offset_radius")),
    ("map", ("grid", "num_strips", "train_stride")),
    ("occ", ("grid", "frame", "num_classes", "free_index", "ignore_index", "class_weights", "query_stride",
             "height_bins", "channels", "bev_height_bins", "lidar_cues", "train_voxels", "sample_balance",
             "prior_correction"))) for k in keys}}
