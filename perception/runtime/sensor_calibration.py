"""Estimate a model's BatchNorm statistics per sensor condition (:mod:`perception.models.sensor_norms`) on
training samples, through the same test-time batches the :class:`Predictor` builds (``perception
calibrate-norms``)."""

import random

from perception.models.sensor_norms import estimate_condition_stats

# condition -> the sensors kept from the model (Predictor.withheld_batch)
WITHHELD = {"no_lidar": ("lidar",), "no_cameras": ("cameras",)}


def calibrate_sensor_norms(predictor, samples, conditions=tuple(WITHHELD), num_samples=120, seed=0, progress=None):
    """``{'conditions': {condition: {layer: {'running_mean', 'running_var'}}}, 'samples', 'seed', 'weights'}``, the
    checkpoint entry ``sensor_norms``: for each condition, the statistics over ``num_samples`` of ``samples``
    (:class:`perception.data.sample.Sample`, training data: never the set a result is reported on) drawn
    without replacement with ``seed`` (all of them when fewer), the sensor withheld, one frame per batch, fp32.

    ``weights`` is the predictor's ``'model'`` or ``'ema'``: a Predictor that runs the other weights refuses the
    entry. ``predictor`` (a :class:`perception.runtime.Predictor`) keeps its trained statistics: the estimate starts
    from them whatever condition it ran last. ``progress(condition, i, n)`` is called after each frame.
    """
    unknown = [c for c in conditions if c not in WITHHELD]
    if unknown or not conditions:
        raise ValueError(f"calibrate_sensor_norms: conditions must be among {sorted(WITHHELD)}, got {list(conditions)}")
    if int(num_samples) < 1:
        raise ValueError(f"calibrate_sensor_norms: num_samples must be >= 1, got {num_samples}")
    if not samples:
        raise ValueError("calibrate_sensor_norms: no samples")
    picked = random.Random(seed).sample(list(samples), min(int(num_samples), len(samples)))
    model = predictor.model
    if predictor.sensor_norms is not None:
        predictor.sensor_norms.use(None)  # start from the trained statistics
    out = {}
    for condition in conditions:
        def batches(condition=condition):
            for i, sample in enumerate(picked):
                yield predictor.withheld_batch(sample, WITHHELD[condition])[0]
                if progress is not None:
                    progress(condition, i + 1, len(picked))

        out[condition] = estimate_condition_stats(model, condition, batches(), model.predict)
    return {"conditions": out, "samples": len(picked), "seed": int(seed), "weights": predictor.weights}
