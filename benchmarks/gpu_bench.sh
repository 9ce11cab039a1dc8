#!/usr/bin/env bash
# GPU checks and speed numbers on a CUDA machine (docs/benchmarks.md, "On a GPU"): the CUDA-vs-CPU equivalence
# tests, then `perception bench` for tiny (fp32, fp16, fp16 + torch.compile, the multi-task ratio) and
# nuscenes_full (fp32, fp16, the multi-task ratio). Usage: benchmarks/gpu_bench.sh OUT_DIR [TINY_CHECKPOINT]
# (a trained tiny checkpoint makes the refiner see a trained model's box count and the occupancy test bite).
set -u
out=${1:?usage: benchmarks/gpu_bench.sh OUT_DIR [TINY_CHECKPOINT]}
ckpt=${2:-}
mkdir -p "$out"
py=${PYTHON:-python3}
bench() { local name=$1; shift; echo "== bench $name: $*"; timeout 150 "$py" -m perception.cli.main bench "$@" \
    --device cuda --json "$out/$name.json" 2>&1 | grep -v -i warn | tail -n 40; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
"$py" -c "import torch, numpy, numba; print('torch', torch.__version__, 'numpy', numpy.__version__, 'numba', numba.__version__)"
M3_TEST_CHECKPOINT=$ckpt timeout 150 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_equivalence.py \
    tests/test_runtime_device.py 2>&1 | tail -n 15
tiny_ck=(); [ -n "$ckpt" ] && tiny_ck=(--checkpoint "$ckpt")
bench tiny_fp32 configs/tiny.py "${tiny_ck[@]}" --frames 30
bench tiny_fp16 configs/tiny.py "${tiny_ck[@]}" --frames 30 --fp16 --no-flops
bench tiny_fp16_compile configs/tiny.py "${tiny_ck[@]}" --frames 30 --fp16 --compile --no-flops
bench tiny_fp16_multitask configs/tiny.py "${tiny_ck[@]}" --frames 20 --fp16 --no-flops --compare-single-task
bench full_fp32 configs/nuscenes_full.py --frames 20
bench full_fp16 configs/nuscenes_full.py --frames 20 --fp16 --no-flops
bench full_fp16_multitask configs/nuscenes_full.py --frames 15 --fp16 --no-flops --compare-single-task
