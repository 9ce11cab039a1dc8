# tiny with the Mamba (SS2D) decoder.
_base_ = ["tiny.py"]
model = dict(head=dict(decoder="mamba", loss_weights=dict(occ=1.2)))
