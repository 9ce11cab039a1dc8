"""Evaluation under ``torchrun --nproc_per_node N``: shard the split, gather to rank 0.

Each rank runs inference on its shard and accumulates the dense metrics (integer counts, so summing the
ranks' accumulators equals the single-process result exactly); detection boxes are gathered as submission
dicts and rank 0 writes one JSON and runs the devkit. Works without an initialised process group (one
process: gather returns ``[obj]``).
"""

import os

import torch
import torch.distributed as dist


def world():
    """``(rank, world_size)`` of the initialised default process group, ``(0, 1)`` otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env():
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1); gloo unless CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world()


def shard(items, rank, world_size, group=None):
    """Contiguous shard ``rank`` of ``world_size`` (order kept). Without ``group`` sizes differ by at most one.
    ``group(item)`` (e.g. the scene name): runs of consecutive items with the same group are never cut, each cut
    falls on the group boundary nearest the even one (the BEV map memory runs through a scene in order)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"shard: rank {rank} not in [0, {world_size})")
    n = len(items)
    if group is None:
        return items[rank * n // world_size:(rank + 1) * n // world_size]
    starts = [i for i in range(n) if i == 0 or group(items[i]) != group(items[i - 1])] + [n]

    def cut(r):
        return min(starts, key=lambda s: abs(s * world_size - r * n))  # first of equally near boundaries

    return items[cut(rank):cut(rank + 1)]


def gather_to_rank0(obj):
    """Pickle-gather ``obj`` from every rank: the list (rank order) on rank 0, ``None`` on the others."""
    rank, size = world()
    if size == 1:
        return [obj]
    out = [None] * size if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def merge_parts(parts):
    """Merge gathered ``(det_results, dense_scores)`` pairs: one results dict and one accumulator."""
    det, dense = {}, None
    for part_det, part_dense in parts:
        overlap = set(det) & set(part_det)
        if overlap:
            raise ValueError(f"merge_parts: sample {sorted(overlap)[0]} scored by two ranks")
        det.update(part_det)
        if dense is None:
            dense = part_dense
        else:
            dense.merge(part_dense)
    return det, dense
