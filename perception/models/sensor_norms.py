"""BatchNorm statistics per sensor condition: the same weights, normalized for the sensors a frame has.

Why. A model trained with every sensor normalizes each BatchNorm layer with running statistics of inputs
that had LiDAR and cameras. Without LiDAR, the layers after the fusion (and the camera's depth encoder, which
reads LiDAR depth) see inputs with other means and variances, and the normalized features leave the range
the next layers learned: the fusion model of `tiny` without its LiDAR scored val BEV mIoU 0.068, below the
no-input prior (docs/benchmarks.md, "BatchNorm statistics per sensor condition").

What. The statistics of those layers are re-estimated on training samples with the sensor withheld (AdaBN,
Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation"): the weights stay as they
are, and a frame with every sensor keeps the trained statistics, so the full model is unchanged bit for bit.
A checkpoint carries them under ``SENSOR_NORMS_KEY``; :class:`SensorNorms` swaps them into the model before a
frame of that condition (``perception.runtime.Predictor``).

Conditions (:data:`CONDITIONS`): ``no_lidar`` (no point reaches any branch) and ``no_cameras`` (no image).
Each names the module prefixes whose layers cannot depend on the withheld sensor and keep their statistics:
the image backbone and FPN without LiDAR; the LiDAR encoder and the camera branch (not run) without cameras.
A layer that ran on no sample of the condition keeps its trained statistics too.

In training (modality dropout), a batch of a condition normalizes with its own batch statistics but leaves
the running statistics of the condition's layers alone (:func:`running_stats_frozen`, ``M3Net.forward``): those
stay the statistics of full frames, and the condition's own are estimated after training.
"""

from contextlib import contextmanager

import torch
from torch import nn

SENSOR_NORMS_KEY = "sensor_norms"

# condition -> module-name prefixes whose BatchNorm statistics do not depend on the withheld sensor
CONDITIONS = {
    "no_lidar": ("camera_encoder.backbone.", "camera_encoder.fpn."),
    "no_cameras": ("lidar_encoder.", "camera_encoder."),
}
STAT_NAMES = ("running_mean", "running_var")


def batch_norms(model):
    """``{name: module}`` of every BatchNorm layer of ``model`` that tracks running statistics."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats}


def condition_layers(model, condition):
    """``{name: module}``: the BatchNorm layers whose inputs can change under ``condition``."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown sensor condition {condition!r}: expected one of {sorted(CONDITIONS)}")
    keep = CONDITIONS[condition]
    return {name: m for name, m in batch_norms(model).items() if not (name + ".").startswith(keep)}


def sensor_condition(batch, has_lidar_encoder, has_camera_encoder):
    """The condition of a batch: ``'no_lidar'`` / ``'no_cameras'`` when no sample of it has that sensor, else
    None (what the model was trained on; a batch mixing conditions too). ``batch['lidar_mask'] (B,)`` and
    ``batch['cam_mask'] (B, N_cam)`` say what each sample has; a model without an encoder of a sensor has no
    condition for it."""
    if has_lidar_encoder and has_camera_encoder:
        if not bool(batch["lidar_mask"].any()):
            return "no_lidar"
        if not bool(batch["cam_mask"].any()):
            return "no_cameras"
    return None


@contextmanager
def running_stats_frozen(layers):
    """Within the block the BatchNorm ``layers`` (``{name: module}``) in training mode still normalize with
    their batch statistics, but their running statistics and batch counts stay as they were (momentum 0)."""
    saved = {n: (m.momentum, m.num_batches_tracked.clone()) for n, m in layers.items()}
    try:
        for m in layers.values():
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        yield
    finally:
        for n, m in layers.items():
            m.momentum = saved[n][0]
            m.num_batches_tracked.copy_(saved[n][1])


@torch.no_grad()
def estimate_condition_stats(model, condition, batches, run):
    """Re-estimate the statistics of :func:`condition_layers` over ``batches`` (already withholding the sensor).

    ``run(batch)`` runs the model's forward on one batch (e.g. ``model.predict``). Every other layer stays in
    eval mode; the selected ones average the batch statistics of every batch with equal weight (BatchNorm with
    ``momentum=None``). Returns ``{layer name: {'running_mean', 'running_var'}}`` (float32, CPU) for the layers
    that ran; the model's own statistics, momenta and modes are restored afterwards, whatever happens.
    """
    layers = condition_layers(model, condition)
    saved = {n: (m.momentum, m.training, {s: getattr(m, s).clone() for s in (*STAT_NAMES, "num_batches_tracked")})
             for n, m in layers.items()}
    was_training = model.training
    model.eval()
    try:
        for m in layers.values():
            m.reset_running_stats()
            m.momentum = None  # cumulative average: every batch weighs the same
            m.train()
        count = 0
        for batch in batches:
            run(batch)
            count += 1
        if count == 0:
            raise ValueError(f"estimate_condition_stats({condition!r}): no batches")
        return {n: {s: getattr(m, s).detach().float().cpu().clone() for s in STAT_NAMES}
                for n, m in layers.items() if int(m.num_batches_tracked) > 0}
    finally:
        for n, m in layers.items():
            momentum, training, stats = saved[n]
            for s, value in stats.items():
                getattr(m, s).copy_(value)
            m.momentum = momentum
            m.train(training)
        model.train(was_training)


def check_sensor_norms(entry, model, where="the checkpoint"):
    """Raise ``ValueError`` naming the first condition, layer or statistic of ``entry`` (a checkpoint's
    ``SENSOR_NORMS_KEY`` value: ``{'conditions': {condition: {layer: {stat: tensor}}}, ...}``) that does not
    fit ``model``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("conditions"), dict):
        raise ValueError(f"{where}: '{SENSOR_NORMS_KEY}' must be a dict with a 'conditions' dict")
    layers = batch_norms(model)
    for condition, stats in entry["conditions"].items():
        allowed = condition_layers(model, condition)  # raises on an unknown condition
        for name, values in stats.items():
            if name not in layers:
                raise ValueError(f"{where}: {SENSOR_NORMS_KEY} {condition}: no BatchNorm layer {name!r} in the model")
            if name not in allowed:
                raise ValueError(f"{where}: {SENSOR_NORMS_KEY} {condition}: layer {name!r} does not depend on "
                                 f"the withheld sensor and must keep its trained statistics")
            for s in STAT_NAMES:
                want = tuple(getattr(layers[name], s).shape)
                got = tuple(values[s].shape) if isinstance(values, dict) and torch.is_tensor(values.get(s)) else None
                if got != want:
                    raise ValueError(f"{where}: {SENSOR_NORMS_KEY} {condition}: {name}.{s} must be {want}, got {got}")


class SensorNorms:
    """The statistics of each condition, and the model's own (trained) ones for frames with every sensor.

    ``weights``: which of the checkpoint's weights the model runs ('model' or 'ema'); the entry must have been
    estimated with the same (its ``'weights'``, 'model' when absent), else a ``ValueError``.
    ``use(condition)`` copies a condition's statistics into the model's BatchNorm buffers (None: the trained
    ones back); it copies only when the condition changes, so a steady stream costs nothing.
    """

    def __init__(self, model, entry, where="the checkpoint", weights="model"):
        check_sensor_norms(entry, model, where)
        fitted = entry.get("weights", "model")  # entries written before EMA calibration existed: 'model'
        if fitted != weights:  # statistics of other weights would normalize these wrongly
            raise ValueError(f"{where}: its '{SENSOR_NORMS_KEY}' were estimated with its '{fitted}' weights, the "
                             f"model runs its '{weights}' weights; calibrate again (perception calibrate-norms"
                             f"{' --ema' if weights == 'ema' else ''})")
        self.layers = batch_norms(model)
        self.conditions = {c: s for c, s in entry["conditions"].items() if s}
        names = {n for stats in self.conditions.values() for n in stats}
        self.trained = {n: {s: getattr(self.layers[n], s).detach().clone() for s in STAT_NAMES} for n in names}
        self.active = None

    def use(self, condition):
        """Normalize with ``condition``'s statistics (None or a condition without any: the trained ones).
        Returns the condition now in use."""
        condition = condition if condition in self.conditions else None
        if condition == self.active:
            return condition
        if self.active is not None:  # back to the trained statistics first: layers differ between conditions
            self._load(self.trained)
        if condition is not None:
            self._load(self.conditions[condition])
        self.active = condition
        return condition

    def _load(self, stats):
        for name, values in stats.items():
            for s in STAT_NAMES:
                buf = getattr(self.layers[name], s)
                buf.copy_(values[s].to(buf.device, buf.dtype))
