"""Face restoration around the generated mouth: each face (with its new mouth) cut out in FFHQ's
512x512 layout by dlib's five landmarks, restored by the user's model as its reference code
runs it (face_models), batched on the generator's device and halved when memory runs out, and
drawn back over the face box. The caller keeps the restored pixels only where the mouth was
pasted (the same mask), so the eyes, the hair and every other pixel stay the frame's own."""

from __future__ import annotations

import numpy as np
import torch

from ..face_detect import eye_distance
from ..wav2lip import in_batches
from .align import FFHQ_POINTS, cut_out, drawn_back, to_layout
from .face_models import FACE_ARCHITECTURES
from .kind import RestoreModelError
from .placement import PlacedModel

FACE_ACTIVATIONS = 1 << 29  # bytes a 512 px face takes of GFPGAN's activations in fp32, about
FACE_BATCH = 8  # faces a forward pass at most
CPU_FACE_BATCH = 2  # on a CPU a larger pass is no faster a face (measured), only larger in memory
# how far past the face box the layout reaches, in box sides on each side: about 0.45 for a face
# seen from the front, twice that turned by 45 degrees (the VIDEO route converts that much of
# the frame to RGB around each face, so the model sees what it would in the whole frame)
CONTEXT = 1.0
# a face whose landmarks put the eyes this far apart (x the box's width) is not one the
# landmarks found well (turned away, covered): its frame keeps the plain generated mouth
EYES_APART = (0.2, 0.9)
MOUTH = FFHQ_POINTS[3:].mean(axis=0)  # the mouth's middle in the layout


class FaceRestorer(PlacedModel):
    """`descriptor` (a spandrel ImageModelDescriptor of a face restoration architecture the pack
    knows) run on `device` in `dtype` where the architecture computes in it (else fp32),
    `batch_size` faces a pass at most (FACE_BATCH, on a CPU CPU_FACE_BATCH); `fidelity` is CodeFormer's weight
    (0: the model's own face, 1: the closest to the input); `landmarks(rgb, box)` gives dlib's
    five points of the face in `box` of an RGB picture (uint8, or float in [0, 1]): the face
    recognizer's `points`."""

    def __init__(self, descriptor, device, dtype: torch.dtype, batch_size: int, fidelity: float,
                 landmarks):
        self.architecture = FACE_ARCHITECTURES[descriptor.architecture.id]
        super().__init__(descriptor, device, dtype if dtype in self.architecture.precisions else torch.float32)
        most = CPU_FACE_BATCH if self.device.type == "cpu" else FACE_BATCH
        self.batch_size = max(1, min(int(batch_size), most))
        self.fidelity, self.landmarks = float(fidelity), landmarks
        self.faces_restored = self.faces_unaligned = 0  # this run's, for its report

    def bytes_needed(self) -> int:
        """What the model takes on its device in this precision, and a batch of faces."""
        return self.weights_bytes() + self.batch_size * FACE_ACTIVATIONS * self.item_bytes // 4

    def layout(self, frame: np.ndarray, box):
        """The 2x3 transform from `frame`'s pixels to the 512 px layout for the face in `box`
        (x1, y1, x2, y2), from its landmarks; None where they are not believable."""
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1)
        height, width = frame.shape[:2]
        # the landmarks read the box and a little around it (they frame the face again)
        cx1, cy1 = max(0, x1 - side // 2), max(0, y1 - side // 2)
        cx2, cy2 = min(width, x2 + side // 2), min(height, y2 + side // 2)
        rgb = frame[cy1:cy2, cx1:cx2, :3]
        if rgb.dtype != np.uint8:
            rgb = np.nan_to_num(rgb)  # a NaN pixel reads as black
        points = self.landmarks(rgb, (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)) + (cx1, cy1)
        if not EYES_APART[0] <= eye_distance(points) / max(1, x2 - x1) <= EYES_APART[1]:
            return None
        matrix = to_layout(points)
        back = np.linalg.inv(np.vstack([matrix, (0, 0, 1)]))[:2]
        mx, my = back[:, :2] @ MOUTH + back[:, 2]
        if not (x1 <= mx < x2 and (y1 + y2) / 2 <= my < y2):  # the mouth is where the box says
            return None
        return matrix

    def restore(self, frames, boxes, layouts, keep, on_slice=None) -> None:
        """Each face of `frames` with a layout restored and drawn back over its box, handed to
        `keep(index, face)` ((h, w, 3) float32 RGB in [0, 1]) a slice at a time: what is held
        is one slice's faces, however large the batch. `frames` are read here (a frame just
        before its own `keep`), written only by `keep`."""
        which = [k for k, m in enumerate(layouts) if m is not None]
        self.faces_unaligned += len(layouts) - len(which)

        def forward(start, stop):
            faces = self._forward(np.stack([cut_out(frames[k], layouts[k]) for k in which[start:stop]]))
            for face, k in zip(faces, which[start:stop]):
                keep(k, drawn_back(face, layouts[k], boxes[k]))
            self.faces_restored += stop - start

        if which:
            self.batch_size = in_batches(len(which), self.batch_size, self.device, forward, RestoreModelError(
                f"Out of memory on {self.device} restoring even one face. Free memory (unload other "
                "models), or disconnect the restore model."), on_slice, "faces")

    def _forward(self, faces_rgb: np.ndarray) -> np.ndarray:
        """(n, 512, 512, 3) RGB in [0, 1] -> the restored faces, the same."""
        x = torch.from_numpy(faces_rgb).permute(0, 3, 1, 2)
        with torch.inference_mode():
            x = (x.to(self.device) * 2.0 - 1.0).to(self.dtype).contiguous()  # scaled in fp32, as the reference
            y = self.architecture.forward(self.descriptor.model, x, self.fidelity)
            y = (y.float().clamp_(-1.0, 1.0) + 1.0) / 2.0
            return y.permute(0, 2, 3, 1).cpu().numpy()
