"""``perception bench``: per-stage latency, frames/s, memory, parameters and FLOPs of the inference path.

:func:`perception.bench.runner.run_bench` feeds frames (:mod:`perception.bench.frames`: a freshly
synthesized dataroot by default, or samples of a real one) through :class:`perception.runtime.Predictor`
(or the ONNX Runtime backend of :mod:`perception.export`) after warm-up; stage times come from the model's
optional timing hook (:mod:`perception.models.timing`). :mod:`perception.bench.baseline` keeps the last
recorded numbers per config and machine kind (``benchmarks/speed_baseline.json``).
"""
