"""``perception bench``: per-stage inference speed, frames/s, memory, parameters and FLOPs of a config.

    perception bench configs/tiny.py [--checkpoint K] [--device cpu|cuda] [--frames N] [--fp16] [--compile]
        [--json FILE] [--dataroot D --version V] [--compare-single-task] [--check-baseline]
    perception bench --backend onnxruntime OUT.onnx        (a file written by perception export)

Frames: a small synthetic nuScenes-format dataroot made on the fly (perception.synth, the config's number
of sweeps), or the first N keyframes of --dataroot. Each frame goes through perception.runtime.Predictor
(the test-time transform, the model, numpy outputs) after --warmup frames. Per stage: median and p90 (the
model's timing hook; CUDA events read after one synchronize per frame); end to end: frames/s and latency;
peak memory (CPU: peak RSS of the process over the timed frames; CUDA: max allocated); parameters; FLOPs
per frame (torch.utils.flop_counter: matmuls, convolutions, attention only).

--compare-single-task also runs the config's single-task counterparts (<config>_det/_map/_occ.py when they
exist, else the config with model.tasks set to one task) on the same frames, interleaved, and reports
multitask_ratio = multi-task time / sum of the single-task times (medians).

--check-baseline compares with benchmarks/speed_baseline.json (same config, machine kind, device, threads,
backend and precision) and warns when the median latency is more than 20 % slower; it never fails.
--update-baseline records this run there.

The JSON (--json) has fps, latency_ms, stages, peak_mem_mb at the top level, and params, flops_per_frame,
memory, single_task, baseline and the run's settings.
"""

import json


def add_parser(subparsers):
    p = subparsers.add_parser("bench", help="per-stage inference speed, memory and FLOPs", description=__doc__)
    p.add_argument("config", help="model config (.py), or an .onnx file from perception export with "
                                  "--backend onnxruntime")
    p.add_argument("--checkpoint", help="checkpoint .pth (default: random weights; speed barely depends on them, "
                                        "except the refiner's box count)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--frames", type=int, default=20, help="timed frames (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first (default 3)")
    p.add_argument("--fp16", action="store_true", help="fp16 autocast (CUDA only; CPU runs fp32)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast on a CPU with native bf16 (AVX512-BF16 / AMX; else fp32, with a warning)")
    p.add_argument("--compile", action="store_true", help="torch.compile the dense sub-networks")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's default)")
    p.add_argument("--json", metavar="FILE", help="write all numbers as JSON")
    p.add_argument("--dataroot", help="nuScenes dataroot to take frames from (default: synthetic frames)")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch")
    p.add_argument("--compare-single-task", action="store_true",
                   help="also time the single-task configs on the same frames; report multitask_ratio")
    p.add_argument("--check-baseline", action="store_true",
                   help="warn when > 20 %% slower than benchmarks/speed_baseline.json (never fails)")
    p.add_argument("--update-baseline", action="store_true", help="record this run in the baseline file")
    p.add_argument("--baseline-file", help="baseline JSON (default benchmarks/speed_baseline.json)")
    p.add_argument("--baseline-note", default="", help="note stored with --update-baseline")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=run)


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    import torch

    from perception.bench import baseline as bl
    from perception.bench.runner import format_table, run_bench
    from perception.bench.single_task import compare_single_task

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.frames < 1:
        raise ValueError("--frames must be >= 1")
    onnx_path = None
    config = args.config
    if args.backend == "onnxruntime" or str(config).endswith(".onnx"):
        if args.compare_single_task or args.compile:
            raise ValueError("--compare-single-task and --compile need the torch backend")
        args.backend, onnx_path = "onnxruntime", config
    result = run_bench(config, args.checkpoint, args.device, args.frames, args.warmup, args.fp16, args.compile,
                       args.backend, args.cfg_options, args.dataroot, args.version, flops=not args.no_flops,
                       onnx_path=onnx_path, bf16=args.bf16)
    if args.compare_single_task:
        result["single_task"] = compare_single_task(result, config, args.checkpoint, args.device, args.frames,
                                                    args.warmup, args.cfg_options)
        result["multitask_ratio"] = result["single_task"]["multitask_ratio"]
    path = args.baseline_file or bl.DEFAULT_PATH
    if args.check_baseline:
        result["baseline"] = bl.check(result, path)
    if args.update_baseline:
        bl.update(result, path, args.baseline_note)
    result.pop("_samples", None)
    result.pop("_predictor", None)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0
