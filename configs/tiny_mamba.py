# tiny with the Mamba (SS2D) decoder.
_base_ = ["tiny.py"]
model = dict(head=dict(decoder="mamba", loss_weights=dict(occ=6.0)))  # 1.2 x tiny's occupancy weight (M3Net: 1.2 x 1.0)
