"""Deterministic, resumable, distributed data order and the augmented training dataset.

The sampler yields batches of *keys* ``(epoch, pass, index, crop_h, crop_w)``; the dataset turns a key into an
augmented (image, label) pair with a random generator seeded from (seed, epoch, pass, index). Hence:
- the order of an epoch is a permutation seeded from (seed, epoch, pass), identical on every rank;
- rank r of a world of size w takes every w-th sample of the (padded) permutation, as DistributedSampler does;
- a sample's augmentation does not depend on the worker that loads it or on where a run was resumed;
- resuming at batch k of an epoch just starts the sampler at batch k.

Multi-scale modes (``data.multi_scale``):
- ``loaders``: like the authors' code, an epoch is one full pass over the data per crop size, in the configured
  order (the authors chain 4 DataLoaders: 512x1024, 768x1536, 360x640, 720x1280);
- ``per_batch``: one pass per epoch, each batch draws one of the crop sizes at random;
- ``single``: one pass per epoch with the first crop size only.
"""

from __future__ import annotations

import signal
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

MULTI_SCALE_MODES = ("loaders", "per_batch", "single")


def epoch_permutation(length: int, seed: int, epoch: int, pass_index: int) -> np.ndarray:
    """The data order of one pass of one epoch, a pure function of (seed, epoch, pass)."""
    return np.random.default_rng([seed, epoch, pass_index, 0x5EED]).permutation(length)


class EpochBatchSampler(Sampler):
    """Batches of sample keys for one epoch of one rank; ``set_epoch`` and ``start_batch`` make it resumable."""

    def __init__(self, length: int, batch_size: int, crop_sizes: Sequence[Sequence[int]], *, mode: str = "single",
                 seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = True):
        if mode not in MULTI_SCALE_MODES:
            raise ValueError(f"multi_scale must be one of {MULTI_SCALE_MODES}, got {mode!r}")
        self.length, self.batch_size, self.mode = length, batch_size, mode
        self.crop_sizes = [tuple(int(v) for v in size) for size in crop_sizes]
        self.seed, self.rank, self.world_size, self.drop_last = seed, rank, world_size, drop_last
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _passes(self) -> list[tuple[int, tuple[int, int] | None]]:
        if self.mode == "loaders":
            return list(enumerate(self.crop_sizes))
        return [(0, self.crop_sizes[0] if self.mode == "single" else None)]

    def _rank_indices(self, pass_index: int) -> np.ndarray:
        order = epoch_permutation(self.length, self.seed, self.epoch, pass_index)
        per_rank = -(-self.length // self.world_size)
        padded = np.resize(order, per_rank * self.world_size)  # repeats the start, as DistributedSampler pads
        return padded[self.rank::self.world_size]

    def batches_per_pass(self) -> int:
        per_rank = -(-self.length // self.world_size)
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def __len__(self) -> int:
        return self.batches_per_pass() * len(self._passes())

    def all_batches(self) -> list[list[tuple]]:
        """Every batch of the current epoch (this rank), from the first one."""
        batches = []
        for pass_index, crop in self._passes():
            indices = self._rank_indices(pass_index)
            crop_rng = np.random.default_rng([self.seed, self.epoch, pass_index, 0xC209])
            for number in range(self.batches_per_pass()):
                chunk = indices[number * self.batch_size:(number + 1) * self.batch_size]
                size = crop if crop is not None else self.crop_sizes[int(crop_rng.integers(len(self.crop_sizes)))]
                batches.append([(self.epoch, pass_index, int(i), size[0], size[1]) for i in chunk])
        return batches

    def __iter__(self):
        return iter(self.all_batches()[self.start_batch:])


class AugmentedDataset(Dataset):
    """Wraps a dataset of raw (image uint8, label uint8) pairs; ``dataset[key]`` applies the seeded transform."""

    def __init__(self, base: Dataset, transform: Callable, seed: int):
        self.base, self.transform, self.seed = base, transform, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, pass_index, index, crop_h, crop_w = key
        image, label = self.base[index]
        rng = np.random.default_rng([self.seed, epoch, pass_index, index])
        return self.transform(image, label, rng, (crop_h, crop_w))


class TransformedDataset(Dataset):
    """Applies a deterministic ``transform(image, label)`` (validation)."""

    def __init__(self, base: Dataset, transform: Callable, limit: int | None = None):
        self.base, self.transform = base, transform
        self.length = len(base) if limit is None else min(limit, len(base))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        image, label = self.base[index]
        return self.transform(image, label)


def worker_init(_worker_id: int) -> None:
    """One intra-op thread per loader worker (the workers are the parallelism); Ctrl-C is the main process's job."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
