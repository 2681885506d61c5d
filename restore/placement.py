"""The user's restore model on a run's device, in its precision, for the run: what both kinds of
restoration share."""

from __future__ import annotations

import contextlib

import torch


class PlacedModel:
    """`descriptor` (a spandrel ImageModelDescriptor) to run on `device` in `dtype`."""

    def __init__(self, descriptor, device, dtype: torch.dtype):
        self.descriptor, self.device, self.dtype = descriptor, torch.device(device), dtype

    @property
    def item_bytes(self) -> int:
        """Bytes a number takes in the run's precision."""
        return torch.empty((), dtype=self.dtype).element_size()

    def weights_bytes(self) -> int:
        return sum(p.numel() for p in self.descriptor.model.parameters()) * self.item_bytes

    @contextlib.contextmanager
    def placed(self):
        """The model on this run's device and precision for the run, put back where it was after
        (in ComfyUI the model is the user's, shared with other nodes: core's upscale node leaves
        it on the CPU)."""
        device, dtype = self.descriptor.device, self.descriptor.dtype
        self.descriptor.to(self.device).to(self.dtype).eval()
        try:
            yield self
        finally:
            self.descriptor.to(device).to(dtype)
