"""Reduced-precision autocast, shared by training (``perception.training.Trainer``) and inference
(``perception.runtime.Predictor``).

- CUDA: fp16 autocast (training adds a GradScaler).
- CPU: bf16 autocast, only where the CPU has native bf16 arithmetic (AVX512-BF16 / AMX, read through oneDNN).
  Without it PyTorch emulates bf16 and is slower than fp32, so the caller falls back to fp32 and says so.

Under either the model's losses stay fp32 (``M3Net.forward`` turns autocast off around them), and the
weights stay fp32 (autocast casts per op).
"""

import torch


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls and convolutions natively (oneDNN's AVX512-BF16 / AMX check)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def autocast_dtype(device_type: str, cuda_fp16: bool, cpu_bf16: bool):
    """The autocast dtype for ``device_type`` ('cpu' | 'cuda'), or None for fp32.

    Returns ``(dtype or None, note or None)``; the note says why a requested precision was not used."""
    if device_type == "cuda":
        return (torch.float16 if cuda_fp16 else None), None
    if device_type == "cpu" and cpu_bf16:
        if cpu_has_native_bf16():
            return torch.bfloat16, None
        return None, "bf16 requested but this CPU has no native bf16 (AVX512-BF16 / AMX): running fp32"
    return None, None
