"""Training-time voxel sampling for the occupancy losses, and the class-prior correction that undoes it.

The full 200 x 200 x 16 occupancy losses cost ~1 s per sample on CPU, so in training the occupancy head is run
on ``train_voxels`` K voxels per sample only: up to K/2 drawn from the occupied voxels (rare classes more
often with ``sample_balance``), the rest uniformly from all supervised voxels. That trains the head on half
occupied voxels where a scene has ~4 %: at inference (full grid) the correction ``tau * log(p_all / p_sampled)``
is added to the logits (Bayes' rule for the changed class prior), from class counts of all supervised voxels and
of the sampled ones kept in two buffers saved with the weights (``count_all``, ``count_sampled``; float64).
"""

import torch
import torch.nn as nn


class OccVoxelSampler(nn.Module):
    """``sample(labels, mask) -> (B, K)`` flat voxel indices; ``count(...)`` adds class counts to the buffers;
    ``logit_adjustment() -> (num_classes,)`` the inference-time correction.

    ``train_voxels`` K (None: no sampling, the whole grid is trained on); ``sample_balance`` b in [0, 1]: an
    occupied voxel is drawn with probability ~ (voxels of its class) ** -b (0 = uniform, 1 = every class equally
    often); ``prior_correction`` tau >= 0 (0 = off); ``free_index``: the "empty" class (not occupied).
    """

    def __init__(self, num_classes, free_index, train_voxels=None, sample_balance=0.0, prior_correction=1.0):
        super().__init__()
        if train_voxels is not None and int(train_voxels) < 2:
            raise ValueError(f"model.head.occ.train_voxels must be None or >= 2, got {train_voxels}")
        if not 0.0 <= float(sample_balance) <= 1.0:
            raise ValueError(f"model.head.occ.sample_balance must lie in [0, 1], got {sample_balance}")
        if float(prior_correction) < 0:
            raise ValueError(f"model.head.occ.prior_correction must be >= 0, got {prior_correction}")
        self.free_index = free_index
        self.train_voxels = None if train_voxels is None else int(train_voxels)
        self.sample_balance = float(sample_balance)
        self.prior_correction = float(prior_correction)
        # Class counts of the supervised voxels (all of them, and the ones the sampler trained on), accumulated
        # in training and saved with the weights; logit_adjustment() uses them to undo the sampler's class prior.
        self.register_buffer("count_all", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("count_sampled", torch.zeros(num_classes, dtype=torch.float64))

    def sample(self, labels, mask):
        """Flat voxel indices ``(B, K)`` into ``labels`` / ``mask`` ``(B, N)`` (int64 / bool, N voxels): up to K/2
        occupied supervised voxels, the rest uniform over the supervised voxels (with replacement); a sample with
        none gets arbitrary voxels (masked out later). Draws from the global torch RNG, sample by sample."""
        k = self.train_voxels
        out = []
        for lab, m in zip(labels, mask, strict=True):  # (N,), (N,)
            valid = m.nonzero().squeeze(1)  # (V,)
            if valid.numel() == 0:
                out.append(torch.randint(lab.numel(), (k,), device=lab.device))
                continue
            occupied = (m & (lab != self.free_index)).nonzero().squeeze(1)  # (O,)
            n_occ = min(occupied.numel(), k // 2)
            if self.sample_balance > 0 and occupied.numel() > n_occ:  # fewer than K/2: all are taken
                # P(voxel) ~ count(its class) ** -balance: rare classes (cones, pedestrians) are not swamped by
                # the ground layer (with replacement: a rare class may be drawn more often than it occurs).
                occ_lab = lab[occupied]  # (O,)
                counts = torch.bincount(occ_lab, minlength=int(occ_lab.max()) + 1).float()
                weights = counts[occ_lab].pow(-self.sample_balance)  # (O,)
                picked = occupied[torch.multinomial(weights, n_occ, replacement=True)]  # (n_occ,)
            else:
                picked = occupied[torch.randperm(occupied.numel(), device=lab.device)[:n_occ]]  # (n_occ,)
            rest = valid[torch.randint(valid.numel(), (k - n_occ,), device=lab.device)]  # (K - n_occ,)
            out.append(torch.cat([picked, rest]))
        return torch.stack(out)  # (B, K)

    @torch.no_grad()
    def count(self, labels, mask, s_labels, s_mask):
        """Add the class counts of all supervised voxels (``labels`` / ``mask`` ``(B, N)``) and of the sampled
        ones (``s_labels`` / ``s_mask`` ``(B, K)``) to ``count_all`` / ``count_sampled``."""
        n = self.count_all.numel()
        for buffer, lab, m in ((self.count_all, labels, mask), (self.count_sampled, s_labels, s_mask)):
            buffer += torch.bincount(lab[m & (lab < n)], minlength=n)[:n].to(buffer)

    def logit_adjustment(self):
        """``(C,)`` float32 added to the occupancy logits at inference: ``tau * log(prior of all supervised voxels
        / prior of the sampled training voxels)`` (Bayes' rule for a changed class prior; Menon et al. 2021,
        logit adjustment), ``tau = prior_correction``. The sampler trains on half occupied voxels where a scene
        has ~4 %, so uncorrected argmax labels ~6 % of the free voxels occupied. Zeros before any training
        statistics exist (or without voxel sampling, where the two priors are the same)."""
        all_, sampled = self.count_all, self.count_sampled  # (C,) float64
        if self.prior_correction == 0 or all_.sum() == 0 or sampled.sum() == 0:
            return torch.zeros_like(all_, dtype=torch.float32)
        p_all = (all_ + 1) / (all_ + 1).sum()  # +1: a class never seen gets a finite, strongly negative shift
        p_sampled = (sampled + 1) / (sampled + 1).sum()
        return (self.prior_correction * (p_all.log() - p_sampled.log())).float()
