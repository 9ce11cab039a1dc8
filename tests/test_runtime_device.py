"""``device='auto'|'cpu'|'cuda'`` is read in one place (perception.runtime.device) for training, eval and
inference, and that place pulls in neither the trainer nor the evaluation code."""

import subprocess
import sys

import pytest
import torch

from perception.runtime.device import resolve_device


def test_auto_cpu_and_cuda():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda")
    else:
        with pytest.raises(ValueError, match="device='cuda'.*not available"):
            resolve_device("cuda")


def test_bad_value_names_the_parameter():
    with pytest.raises(ValueError, match="device must be one of .*'tpu'"):
        resolve_device("tpu")


def test_training_and_eval_use_it():
    from perception.training.distributed import init_distributed

    assert init_distributed("cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        init_distributed("gpu")


def test_imports_neither_training_nor_eval():
    code = ("import sys, perception.runtime.device; "
            "bad = sorted(m for m in sys.modules if m.startswith(('perception.training', 'perception.eval'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
