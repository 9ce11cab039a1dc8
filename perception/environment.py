"""What a run's numbers depend on besides the code, the data and the seed: the machine.

Training on one machine is bit-reproducible (``tests/test_training.py``), but not across machines: PyTorch and
oneDNN pick their CPU kernels by the instruction set the CPU has (AMX, AVX-512 bf16, AVX2), and the kernels
round differently. On the benchmark's Xeon, turning AMX off (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``) moves the
fusion model's step-5 training loss from 183.83 to 183.98 (docs/benchmarks.md, "Reproducibility"). Training
therefore writes :func:`describe` beside its config (``environment.jsonl``, one line per start or resume), so
that a number can be traced to the machine that made it.
"""

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import torch

# The CPU flags (as /proc/cpuinfo spells them) that decide which bf16 / fp32 kernels run.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
# Libraries whose arithmetic reaches a training loss or a metric.
PACKAGES = ("torch", "torchvision", "numpy", "numba", "pillow", "nuscenes-devkit")
# Environment variables that change which kernels run or how many threads share the work.
KERNEL_VARIABLES = ("OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def cpu_info(path="/proc/cpuinfo"):
    """``(model name, flags)`` of the first processor listed in ``path`` (Linux); ``(platform.processor(),
    frozenset())`` where the file cannot be read."""
    name, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    name = value.strip()
                elif key == "flags":
                    flags = frozenset(value.split())
                if key == "" and flags:  # the end of the first processor's block
                    break
    except OSError:
        pass
    return name, flags


def package_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe(cpuinfo="/proc/cpuinfo"):
    """A JSON-ready dict of the machine and software a run's floating-point results depend on."""
    name, flags = cpu_info(cpuinfo)
    return {
        "cpu": name,
        "cpu_count": os.cpu_count(),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
        "packages": {p: package_version(p) for p in PACKAGES},
        "variables": {v: os.environ[v] for v in KERNEL_VARIABLES if v in os.environ},
    }


def append_environment(path, **extra):
    """Append one line ``{**extra, **describe()}`` to the JSON-lines file ``path`` (created with its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({**extra, **describe()}) + "\n")


def read_environment(path):
    """The lines :func:`append_environment` wrote to ``path``; ``[]`` when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
