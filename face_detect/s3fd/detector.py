"""S3FD through face-alignment, on the CPU.

Colour quirk: face-alignment flips its input from RGB to BGR before the
network. The S3FD inside Wav2Lip was fed BGR frames and so saw RGB; handing face-alignment our
BGR images reproduces the boxes the released Wav2Lip weights were trained on.
"""

from __future__ import annotations

import numpy as np
import torch

from ..base import FaceDetector

SCORE_THRESHOLD = 0.5  # with face-alignment's NMS at 0.3, as Wav2Lip's crops were made


class S3FDDetector(FaceDetector):
    def __init__(self, weights_path, batch_size: int = 4, threshold: float = SCORE_THRESHOLD):
        from face_alignment.detection.sfd.sfd_detector import SFDDetector

        self.batch_size = max(1, int(batch_size))
        self._sfd = SFDDetector(device="cpu", path_to_detector=str(weights_path),
                                filter_threshold=threshold)
        # channels-last weights make every layer channels-last: oneDNN's faster layout on CPUs
        # (~15% on a 2-core EPYC), the same boxes
        self._sfd.face_detector.to(memory_format=torch.channels_last)

    @property
    def network(self) -> torch.nn.Module:
        return self._sfd.face_detector

    def detect_images(self, images: np.ndarray) -> list[np.ndarray]:
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        found = self._sfd.detect_from_batch(batch)
        return [np.asarray(boxes, dtype=np.float64).reshape(-1, 5) for boxes in found]
