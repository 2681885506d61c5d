"""Batched generator inference that survives running out of memory.

Batches are assembled on the CPU, moved in one transfer per tensor, and the results come back
with `.float().cpu()`. On an out-of-memory error the batch is halved and the same frames are
retried, so no frame is ever dropped; the smaller size is kept for the rest of the run.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..common.errors import HaloLipsyError
from .device import empty_cache, is_out_of_memory

logger = logging.getLogger("HaloLipsy")

# On a CPU, larger user batches run in slices of 4 frames in fp32: every activation then stays
# under glibc's 32 MB mmap threshold and is reused from the heap. Larger slices get fresh pages
# from the kernel for every layer, which measured 29 vs 46 ms/frame once the process holds a few
# GB of frames (fresh memory faults slowly then), for ~10% gain in an otherwise idle process.
# Slices hold the same bytes in other precisions: 8 frames in bf16 (measured 21.7 ms/frame
# against 25.0 at 4, with 4 GB of frames in the process; fp32 42.2 at 4 and 8).
CPU_SLICE = 4


class GeneratorOutOfMemory(HaloLipsyError):
    """Out of memory even for one frame; the message says what to free or change."""


def in_batches(count: int, batch_size: int, device, forward, out_of_memory: Exception,
               on_slice=None, what: str = "frames") -> int:
    """`forward(start, stop)` over [0, count) in batches of at most `batch_size`, the batch
    halved (and the same items retried) when `device` runs out of memory; `out_of_memory` is
    raised where even one item does not fit. `on_slice(done, count)` is called before each
    batch and after the last. Returns the batch size that fitted, for the rest of the run."""
    done = 0
    while done < count:
        if on_slice is not None:
            on_slice(done, count)
        size = min(batch_size, count - done)
        try:
            forward(done, done + size)
        except Exception as err:  # noqa: BLE001 - only out-of-memory is retried
            if not is_out_of_memory(err):
                raise
            empty_cache(device)
            if size == 1:
                raise out_of_memory from err
            batch_size = max(1, size // 2)
            logger.warning("Halo-Lipsy: out of memory on %s with %d %s; retrying with %d.",
                           device, size, what, batch_size)
            continue
        done += size
    if on_slice is not None:
        on_slice(count, count)
    return batch_size


class BatchedGenerator:
    def __init__(self, model, device, dtype: torch.dtype, batch_size: int,
                 memory_format=torch.contiguous_format):
        self.model = model
        self.device = torch.device(device)
        self.dtype = dtype
        self.memory_format = memory_format
        self.batch_size = max(1, int(batch_size))
        if self.device.type == "cpu":
            item = torch.empty((), dtype=dtype).element_size()
            self.batch_size = min(self.batch_size, max(1, CPU_SLICE * 4 // item))

    @property
    def shares_the_cpu(self) -> bool:
        """The generator computes on the CPU's cores (which the stages around it then should
        not compete for while it runs)."""
        return self.device.type == "cpu"

    def __call__(self, mels: np.ndarray, faces: np.ndarray, on_slice=None) -> np.ndarray:
        """mels (N, 80, 16) and faces (N, 6, 96, 96) float32 -> (N, 3, 96, 96) float32 BGR in [0, 1].

        `on_slice(done, n)` is called before each forward pass and after the last one: the node
        checks for an interrupt and moves its progress bar there (a CPU batch of 64 is 16 slices
        of ~0.1 s each)."""
        out = np.empty((len(faces), 3, 96, 96), dtype=np.float32)

        def forward(start, stop):
            out[start:stop] = self._forward(mels[start:stop], faces[start:stop])

        self.batch_size = in_batches(len(faces), self.batch_size, self.device, forward, GeneratorOutOfMemory(
            f"Out of memory on {self.device} even for one frame. Free memory (unload other models), or "
            "run the generator on the CPU (force_cpu; --cpu on the command line)."), on_slice)
        return out

    def _forward(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        mel_t = torch.from_numpy(np.ascontiguousarray(mels))[:, None]
        face_t = torch.from_numpy(np.ascontiguousarray(faces))
        with torch.inference_mode():
            mel_t = mel_t.to(self.device, self.dtype, non_blocking=True)
            face_t = face_t.to(self.device, self.dtype, non_blocking=True)
            face_t = face_t.contiguous(memory_format=self.memory_format)
            pred = self.model(mel_t, face_t)
            return pred.float().cpu().numpy()
