# nuscenes_full with the Mamba (SS2D) decoder; occupancy loss weight 1.2 as published for Mamba.
_base_ = ["nuscenes_full.py"]
model = dict(head=dict(decoder="mamba", loss_weights=dict(occ=1.2)))
