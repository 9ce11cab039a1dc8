# A model that runs and learns on 2 CPU cores: resnet18 at 96 x 256, pillars, 1.6 m BEV cells
# (64 x 64 over [-51.2, 51.2] m; the occupancy head lifts the BEV into 20 height bins of 0.4 m), d_model 64,
# 2 decoder layers, 1 sweep. Outputs still come on the
# evaluation grids (BEV_MAP_GRID, OCC3D_GRID): the head resamples. Training computes the occupancy losses on
# 8192 sampled voxels per sample (half occupied, rare classes drawn more often: occ.sample_balance; inference
# undoes that class prior, occ.prior_correction) and the map losses on the full 200 x 200 evaluation grid
# (map.train_stride=1: chosen on val over a stride-2 subgrid, docs/benchmarks.md);
# loss weights rebalanced for this head (measured gradient norms on the shared neck, docs/benchmarks.md).
# A cue refiner corrects the occupancy logits from per-voxel LiDAR cues (occ.lidar_cues: point counts at 0.4 m,
# free / occluded along the sensor ray), which the 1.6 m cells cannot resolve (docs/benchmarks.md).
# A second stage (model.refiner, perception/models/roi_heads) corrects and rescores each box from the LiDAR
# points around it: the 1.6 m BEV cells alone place car centres ~0.7 m off (docs/benchmarks.md).
_base_ = ["_base_/model_m3net.py", "_base_/data_nuscenes.py", "_base_/schedule_onecycle.py"]
model = dict(
    point_cloud_range=(-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
    bev_cell=1.6,
    lidar=dict(backbone="pillar", voxel_size=(0.2, 0.2, 8.0), pillar_size=0.8, out_channels=64),
    # lidar_depth_dropout / camera_map_weight: the camera branch also learns to work without LiDAR (its depth
    # input withheld for half the samples in training; a map loss on the camera BEV alone). Chosen on val over
    # two seeds (docs/benchmarks.md, "Teaching the camera branch to work alone", candidate E).
    camera=dict(image_size=(96, 256), fpn_channels=64, context_channels=32, depth_bins=(1.0, 60.0, 1.0),
                lidar_depth_dropout=0.5),
    camera_map_weight=10.0,
    fusion=dict(out_channels=64, fused_channels=64, backbone_channels=(64, 128), backbone_layers=(2, 2)),
    # 3 x 3 peak NMS for pedestrians too: at 1.6 m cells each pedestrian lit ~4 cells, all taken as queries
    # (docs/benchmarks.md); cones keep 1 x 1 (they stand in rows closer than a cell).
    head=dict(num_layers=2, d_model=64, num_heads=4, ffn_dim=128,
              loss_weights=dict(map=10.0, map_aux=20.0, det=2.0, heatmap=1.0, occ=5.0),
              det=dict(num_queries=100, nms_exempt_classes=("traffic_cone",)),
              # aux_blend (inference only): per map class, the share of the auxiliary map prediction in the map's
              # logits (heads/map_task.py). Chosen on val over three seeds from 0, 0.5, 1: BEV mIoU 0.311 -> 0.321
              # (docs/benchmarks.md, candidate O). Order: drivable area, crossing, walkway, stop line, car park,
              # divider.
              map=dict(train_stride=1, aux_blend=(0.5, 1.0, 0.5, 0.5, 0.0, 0.5)),
              occ=dict(bev_height_bins=20, lidar_cues=True, train_voxels=8192, sample_balance=0.5)),
    # Inference only (chosen with benchmarks/decode_sweep.py; docs/benchmarks.md, "the refiner's inference
    # settings"): 3 refinement passes, the point-based quality weighs 0.7 in the score, and first-stage boxes
    # down to 0.01 reach the refiner (a well-placed box the first stage scored low is rescored from its points).
    refiner=dict(margin=1.0, max_points=128, det_proposals=32, score_weight=0.7, iterations=3),
    score_threshold=0.01,
    # Inference only: the BEV map is the running mean over the frames so far, moved with the ego pose, with a time
    # constant of 8 s (perception/runtime/map_memory.py; chosen on val with benchmarks/choose_map_memory.py:
    # BEV mIoU 0.282 -> 0.310, docs/benchmarks.md "BEV map memory"). Needs ego poses (odometry in the node).
    map_memory_s=8.0,
    # Inference only: on a frame without LiDAR, every voxel the occupancy calls free takes the training labels'
    # most frequent label there (perception/runtime/occ_prior.py; calibrate-norms stores it in the checkpoint).
    # Chosen on val over three seeds: no-LiDAR Occ3D mIoU 0.050 -> 0.062 (docs/benchmarks.md, candidate G).
    occ_prior_fill="all",
    # Inference only: on a frame without LiDAR, the BEV map is 0.25 the fused head's and 0.75 the camera branch's
    # own map head's (camera_map_weight above trains it; heads/camera_map_aux.py). Chosen on val over three seeds:
    # no-LiDAR BEV mIoU 0.183 -> 0.204 (docs/benchmarks.md, candidate H).
    camera_map_blend=0.75,
    # Inference only: on a frame without LiDAR, the occupancy's ground voxels become driveable surface where that
    # map's drivable area is >= 0.5, else sidewalk where its walkway is (perception/runtime/occ_ground.py). Chosen
    # on val over three seeds: no-LiDAR Occ3D mIoU 0.062 -> 0.072 (docs/benchmarks.md, candidate I).
    occ_ground_from_map=0.5,
)
data = dict(
    image_size=(96, 256),
    num_sweeps=1,
    # Factors of the loaded image: the synthetic cameras are 640 x 360 (0.4 -> 256 x 144, bottom 96 rows kept);
    # for real nuScenes images (1600 x 900) use resize_lim=(0.16, 0.18), test_resize=0.17.
    augment=dict(resize_lim=(0.4, 0.44), test_resize=0.42),
)
# batch 1 at lr 1e-3 (the linear scaling rule from batch 2 at 2e-3): in the same CPU time twice the updates, on one
# sample each (candidate R, chosen on val over three seeds: BEV mIoU +0.012, Occ3D +0.008, mAP +0.015;
# docs/benchmarks.md "Batch 1 with twice the steps"). tiny_lidar inherits it (chosen on val too); tiny_camera keeps
# batch 2 (its val score was lower at batch 1).
# workers=1: one loader process overlaps the I/O (~0.3 s/batch)
# cpu_bf16: bf16 autocast on a CPU with native bf16 (chosen on val: 908 instead of 759 steps in 30 minutes, and a
# better val score; docs/benchmarks.md "Choosing bf16 training on CPU"); fp32 elsewhere, with a warning.
train = dict(epochs=10, batch_size=1, lr=1e-3, amp=False, cpu_bf16=True, workers=1, log_interval=5)
