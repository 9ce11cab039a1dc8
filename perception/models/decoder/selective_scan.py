"""The Mamba selective scan in pure PyTorch (reference loop + chunked version) with a CUDA fast path.

Recurrence per channel ``d`` and state ``n`` (``dt = softplus(delta + delta_bias)`` when requested)::

    h_t = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B[n, t] * u_t        y_t = sum_n C[n, t] * h_t + D[d] * u_t

Shapes follow ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``: ``u``, ``delta`` ``(b, d, L)``;
``A`` ``(d, n)``; ``B``, ``C`` ``(b, g, n, L)`` with ``d`` split evenly into ``g`` groups (or ``(b, n, L)``);
``D``, ``delta_bias`` ``(d,)``. Returns ``y`` ``(b, d, L)``.
"""

import math

import torch
import torch.nn.functional as F

try:  # the fused CUDA kernel, only when the optional package is installed
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_selective_scan_fn
except ImportError:  # CPU-only installs
    _cuda_selective_scan_fn = None


def _prepare(u, delta, A, B, C, delta_bias, delta_softplus):
    """Validate shapes; return grouped views ``u, dt (b, g, dg, L)``, ``A (g, dg, n)``, ``B, C (b, g, n, L)``."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"selective_scan: u and delta must be (b, d, L), got {tuple(u.shape)}, {tuple(delta.shape)}")
    b, d, L = u.shape
    if B.dim() == 3:
        B, C = B[:, None], C[:, None]
    g, n = B.shape[1], B.shape[2]
    if A.shape != (d, n) or B.shape != (b, g, n, L) or C.shape != B.shape or d % g:
        raise ValueError(f"selective_scan: bad shapes A {tuple(A.shape)}, B {tuple(B.shape)}, C {tuple(C.shape)} "
                         f"for u {tuple(u.shape)}")
    dt = delta if delta_bias is None else delta + delta_bias[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    dg = d // g
    return u.reshape(b, g, dg, L), dt.reshape(b, g, dg, L), A.reshape(g, dg, n), B, C


def _finish(y, u, D):
    b, g, dg, L = u.shape
    y = y.reshape(b, g * dg, L)
    return y if D is None else y + u.reshape(b, g * dg, L) * D[None, :, None]


def selective_scan_ref(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """Sequential reference: one Python step per position (slow; for tests and as the definition)."""
    ug, dt, Ag, Bg, Cg = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    b, g, dg, L = ug.shape
    h = ug.new_zeros(b, g, dg, Ag.shape[-1])
    ys = []
    for t in range(L):
        dt_t = dt[..., t, None]  # (b, g, dg, 1)
        h = torch.exp(dt_t * Ag) * h + dt_t * ug[..., t, None] * Bg[:, :, None, :, t]
        ys.append((h * Cg[:, :, None, :, t]).sum(-1))
    return _finish(torch.stack(ys, dim=-1), ug, D)


def _run_chunk_steps(h, dt, u, A, B, C, collect):
    """Advance the recurrence over the ``T`` positions of all chunks at once.

    ``h`` ``(b, g, dg, nc, n)`` initial state per chunk; ``dt``, ``u`` ``(b, g, dg, nc, T)``;
    ``B``, ``C`` ``(b, g, nc, T, n)``. Returns the final states and (if ``collect``) ``y`` ``(b, g, dg, nc, T)``.
    """
    ys = []
    for t in range(dt.shape[-1]):
        dt_t = dt[..., t, None]  # (b, g, dg, nc, 1)
        h = torch.exp(dt_t * A[:, :, None, :]) * h + dt_t * u[..., t, None] * B[:, :, None, :, t]
        if collect:
            ys.append((h * C[:, :, None, :, t]).sum(-1))
    return h, (torch.stack(ys, dim=-1) if collect else None)


def selective_scan_chunked(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, chunk_size=None):
    """Chunked scan, exact up to float rounding: ``O(T + L/T)`` Python steps instead of ``L``.

    The sequence is cut into ``nc`` chunks of ``T`` positions (default ``T = ceil(sqrt(L))``; padding has
    ``dt = 0``, which leaves the state unchanged). Pass 1 runs all chunks in parallel from a zero state to get
    each chunk's end state; a short loop over chunks carries states across chunk boundaries (the chunk's total
    decay is ``exp(A * sum dt)``); pass 2 reruns the chunks from their true initial states and emits ``y``.
    Memory stays ``O(d * L * n / T)`` per step.
    """
    ug, dt, Ag, Bg, Cg = _prepare(u, delta, A, B, C, delta_bias, delta_softplus)
    b, g, dg, L = ug.shape
    n = Ag.shape[-1]
    T = int(chunk_size or max(1, math.ceil(math.sqrt(L))))
    nc = -(-L // T)
    pad = nc * T - L
    if pad:
        ug, dt = F.pad(ug, (0, pad)), F.pad(dt, (0, pad))
        Bg, Cg = F.pad(Bg, (0, pad)), F.pad(Cg, (0, pad))
    u5, dt5 = ug.reshape(b, g, dg, nc, T), dt.reshape(b, g, dg, nc, T)
    B5 = Bg.reshape(b, g, n, nc, T).permute(0, 1, 3, 4, 2)  # (b, g, nc, T, n)
    C5 = Cg.reshape(b, g, n, nc, T).permute(0, 1, 3, 4, 2)
    zero = ug.new_zeros(b, g, dg, nc, n)
    h_end, _ = _run_chunk_steps(zero, dt5, u5, Ag, B5, C5, collect=False)
    decay = torch.exp(dt5.sum(-1)[..., None] * Ag[:, :, None, :])  # (b, g, dg, nc, n)
    carries = [ug.new_zeros(b, g, dg, n)]
    for c in range(nc - 1):
        carries.append(decay[:, :, :, c] * carries[-1] + h_end[:, :, :, c])
    h0 = torch.stack(carries, dim=3)
    _, y = _run_chunk_steps(h0, dt5, u5, Ag, B5, C5, collect=True)
    y = y.reshape(b, g, dg, nc * T)[..., :L]
    return _finish(y, ug[..., :L], D)


def selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False):
    """Dispatch: ``mamba_ssm``'s fused kernel for CUDA tensors when installed, else :func:`selective_scan_chunked`."""
    if u.is_cuda and _cuda_selective_scan_fn is not None:
        return _cuda_selective_scan_fn(
            u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(), C.contiguous(),
            D=D, z=None, delta_bias=delta_bias, delta_softplus=delta_softplus,
        )
    return selective_scan_chunked(u, delta, A, B, C, D=D, delta_bias=delta_bias, delta_softplus=delta_softplus)
