# Published M3Net optimisation: Adam(W) one-cycle, lr 8e-4, weight decay 0.01, gradient clip 10, batch 1/GPU.
train = dict(
    epochs=20,
    batch_size=1,
    lr=8e-4,
    weight_decay=0.01,
    schedule="onecycle",
    pct_start=0.4,
    grad_clip=10.0,
    amp=True,  # CUDA only; ignored on CPU
    ema=False,
    ema_decay=0.999,
    seed=0,
    workers=4,
    log_interval=50,
    max_steps=None,
)
