"""S3FD through face-alignment, on the CPU.

Colour quirk: face-alignment flips its input from RGB to BGR before the
network. The S3FD inside Wav2Lip was fed BGR frames and so saw RGB; handing face-alignment our
BGR images reproduces the boxes the released Wav2Lip weights were trained on.

Where the CPU computes bf16 natively (AVX-512 BF16, AMX) the looks run in bf16, about 3x fp32's
speed on AMX. The network's outputs then differ from fp32's by a few percent of their spread:
a box moves by well under a pixel of the look, but a score near the threshold could fall on the
other side. So every look with a score within CLOSE_CALL of the threshold is made again in
fp32, and whether a face is there is always fp32's decision.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ...common.cpu import cpu_has_native_bf16
from ..base import FaceDetector

SCORE_THRESHOLD = 0.5  # with face-alignment's NMS_OVERLAP: as Wav2Lip's crops were made
NMS_OVERLAP = 0.3
CLOSE_CALL = 0.25  # scores this near the threshold: a bf16 look leaves them to fp32 (a face ~0.99)


class Bfloat16Network(torch.nn.Module):
    """A bf16 copy of the network that takes and gives fp32 tensors (face-alignment's decoding
    is NumPy's)."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = copy.deepcopy(network).to(torch.bfloat16)

    def forward(self, images):
        return [out.float() for out in self.network(images.to(torch.bfloat16))]


def fast_network(network: torch.nn.Module) -> torch.nn.Module | None:
    """The network in bf16 where this CPU computes bf16 natively, else None (fp32 is faster)."""
    return Bfloat16Network(network) if cpu_has_native_bf16() else None


class S3FDDetector(FaceDetector):
    def __init__(self, weights_path, batch_size: int, threshold: float = SCORE_THRESHOLD):
        from face_alignment.detection.sfd.sfd_detector import SFDDetector

        self.batch_size = max(1, int(batch_size))
        self.threshold = threshold
        self._sfd = SFDDetector(device="cpu", path_to_detector=str(weights_path),
                                filter_threshold=threshold)
        # channels-last weights make every layer channels-last: oneDNN's faster layout on CPUs
        # (~15% on a 2-core EPYC), the same boxes
        self._sfd.face_detector.to(memory_format=torch.channels_last)
        self._fast = fast_network(self._sfd.face_detector)

    @property
    def network(self) -> torch.nn.Module:
        return self._sfd.face_detector

    def detect_images(self, images: np.ndarray) -> list[np.ndarray]:
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        if self._fast is None:
            return _faces(self.network, batch, self.threshold)
        low, high = self.threshold - CLOSE_CALL, self.threshold + CLOSE_CALL
        found = _faces(self._fast, batch, low)
        close = [n for n, boxes in enumerate(found)
                 if np.any((boxes[:, 4] >= low) & (boxes[:, 4] < high))]
        if close:
            for n, boxes in zip(close, _faces(self.network, batch[close], self.threshold)):
                found[n] = boxes
        return [boxes[boxes[:, 4] > self.threshold] for boxes in found]


def _faces(network, batch, threshold) -> list[np.ndarray]:
    """face-alignment's look at a batch (B, 3, H, W) and its filter: (k, 5) per image, the
    candidates NMS keeps, above `threshold`."""
    from face_alignment.detection.sfd.bbox import nms
    from face_alignment.detection.sfd.detect import batch_detect

    candidates = batch_detect(network, batch, device="cpu")
    out = []
    for found in candidates:
        found = np.asarray(found, dtype=np.float64).reshape(-1, 5)
        if len(found):
            found = found[nms(found, NMS_OVERLAP)]
            found = found[found[:, 4] > threshold]
        out.append(found)
    return out
