# Published M3Net hyperparameters, Transformer decoder: 6 cameras at 256 x 704, 10 sweeps, 0.075 m voxels,
# 180 x 180 BEV at 0.6 m, 200 detection queries, 6 layers, d 256, 8 heads, FFN 1024; Adam one-cycle 8e-4.
_base_ = ["_base_/model_m3net.py", "_base_/data_nuscenes.py", "_base_/schedule_onecycle.py"]
