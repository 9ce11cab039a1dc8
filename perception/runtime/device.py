"""Where the model runs: the one reading of a ``device`` argument ('auto', 'cpu' or 'cuda').

Training, evaluation and inference all take this argument; torch only here (the runtime never imports
``perception.training`` or ``perception.eval``).
"""

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name="auto") -> torch.device:
    """``torch.device('cuda')`` or ``torch.device('cpu')`` for ``name``: 'auto' is CUDA when available.

    No index: the caller picks the GPU (``cuda:LOCAL_RANK`` under torchrun). A value other than
    :data:`DEVICE_CHOICES`, or 'cuda' on a machine without CUDA, is a ``ValueError`` naming ``device``.
    """
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICE_CHOICES))}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available")
    return torch.device(name)
