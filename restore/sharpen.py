"""Super-resolution of the generator's mouths: each (3, 96, 96) BGR mouth drawn `scale` times
larger by the user's model, batched on the generator's device, in the generator's precision
where the model supports it, halving the batch when memory runs out; blended with the plain
mouth by `strength`. The paste then sizes the larger mouth to the face box as it sized the 96x96
one, through the same mask: pixels the mouth does not touch stay as they were."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..common.progress import part
from ..wav2lip import in_batches
from .kind import RestoreModelError
from .placement import PlacedModel


def model_dtype(descriptor, dtype: torch.dtype) -> torch.dtype:
    """The generator's precision where the model supports it, else fp32."""
    if dtype == torch.bfloat16 and getattr(descriptor, "supports_bfloat16", False):
        return dtype
    if dtype == torch.float16 and getattr(descriptor, "supports_half", False):
        return dtype
    return torch.float32


class MouthSharpener(PlacedModel):
    """`descriptor` (a spandrel ImageModelDescriptor, purpose SR) applied to batches of mouths
    on `device` in `dtype` (where it supports it), `batch_size` mouths a forward pass at most."""

    def __init__(self, descriptor, device, dtype: torch.dtype, batch_size: int, strength: float):
        super().__init__(descriptor, device, model_dtype(descriptor, dtype))
        self.batch_size, self.strength = max(1, int(batch_size)), float(strength)
        self.scale = int(descriptor.scale)

    def bytes_needed(self) -> int:
        """What the model takes on its device (its mouths are small)."""
        return self.weights_bytes()

    def __call__(self, mouths_bgr: np.ndarray, on_slice=None) -> np.ndarray:
        """(n, 3, 96, 96) float32 BGR in [0, 1] -> (n, 3, 96 x scale, 96 x scale), the same."""
        n, _, height, width = mouths_bgr.shape
        out = np.empty((n, 3, height * self.scale, width * self.scale), np.float32)

        def forward(start, stop):
            out[start:stop] = self._forward(mouths_bgr[start:stop])

        self.batch_size = in_batches(n, self.batch_size, self.device, forward, RestoreModelError(
            f"Out of memory on {self.device} sharpening even one mouth. Free memory (unload other "
            "models), or disconnect the restore model."), on_slice, "mouths")
        return out

    def _forward(self, mouths_bgr: np.ndarray) -> np.ndarray:
        plain = torch.from_numpy(np.ascontiguousarray(mouths_bgr[:, ::-1]))  # the model sees RGB
        with torch.inference_mode():
            rgb = plain.to(self.device, self.dtype)
            sharp = self.descriptor(rgb).float().clamp_(0.0, 1.0)
            if self.strength < 1.0:  # the plain mouth at the same size, blended in
                larger = F.interpolate(plain.to(self.device), scale_factor=self.scale, mode="bilinear",
                                       align_corners=False)
                sharp = torch.lerp(larger, sharp, self.strength)
            return sharp.flip(1).cpu().numpy()


class SharpenedGenerator:
    """The generator, its mouths sharpened: a drop-in for wav2lip.BatchedGenerator in a route
    (the same call, the same `shares_the_cpu`); the progress is the generator's half, then the
    sharpener's."""

    def __init__(self, generator, sharpener: MouthSharpener):
        self.generator, self.sharpener = generator, sharpener

    @property
    def shares_the_cpu(self) -> bool:
        return self.generator.shares_the_cpu

    def __call__(self, mels, faces, on_slice=None):
        mouths = self.generator(mels, faces, on_slice=part(on_slice, 0, 2))
        return self.sharpener(mouths, on_slice=part(on_slice, 1, 2))
