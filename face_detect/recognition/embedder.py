"""Who a face is: a 128-number descriptor of the face in a box, from dlib's CC0 models ported to
torch and NumPy (landmarks.py, align.py, resnet.py).

A face is read around its detector box, shrunk so that it is at most FACE_SIDE px wide (the
aligned chip is 150 px for the face and its padding; dlib too reads larger faces from a smaller
copy), its 5 landmarks found (and found again with the face framed as dlib's detector frames
it), the chip aligned on them and described by the network: about 16 ms a face on a 2-core CPU,
once per face per look, never per frame. Two descriptors closer than SAME_PERSON (Euclidean) are
the same person even with nothing else to go by; OTHER_PERSON (dlib's own threshold) and farther
is someone else. Measured on real photographs (the tests'): one person under another light,
smaller or larger and slightly turned, 0.04-0.18 apart; a man talking, shouting and turning
through a clip, 0.13-0.48 from his first frame; different people 0.66-0.87 apart in any of those
lights. Faces too small to read (under MIN_SIDE px) get no descriptor: nobody can vouch for
them.
"""

from __future__ import annotations

import numpy as np
import torch

from ..base import as_uint8
from .align import face_chip
from .landmarks import ShapePredictor, dlib_grey
from .resnet import FaceResNet

FACE_SIDE = 200  # larger faces are shrunk to this: dlib's image pyramid keeps a chip's source under 2x
MIN_SIDE = 20
CONTEXT = 0.6  # the region read reaches this much of the box's size past each side
SAME_PERSON = 0.5  # a face this close to the followed one is taken back even without a place to go by
OTHER_PERSON = 0.6  # dlib's own threshold: this far from every look of the followed face, someone else


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


class FaceRecognizer:
    def __init__(self, landmarks: ShapePredictor, network: FaceResNet):
        self.landmarks = landmarks
        self.network = network.eval()

    def describe(self, frames, index: int, boxes) -> list:
        """One descriptor ((128,) float32) per box (x1, y1, x2, y2) in frame `index` of a
        face_detect frame source (anything with `resized`, `width`, `height`); None for a face
        too small or too cut off to read."""
        chips, which = [], []
        for n, box in enumerate(boxes):
            chip = self.chip(frames, index, box)
            if chip is not None:
                chips.append(chip)
                which.append(n)
        out: list = [None] * len(boxes)
        if chips:
            batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
            with torch.inference_mode():
                found = self.network(batch).numpy()
            for n, descriptor in zip(which, found):
                out[n] = descriptor
        return out

    def points(self, rgb: np.ndarray, box) -> np.ndarray:
        """dlib's five points (5, 2) of the face in `box` (x1, y1, x2, y2) of `rgb` (H, W, 3+:
        uint8, or float in [0, 1]), read as dlib reads a picture (dlib_grey)."""
        return self.landmarks(dlib_grey(as_uint8(rgb[..., :3])), box)

    def chip(self, frames, index: int, box) -> np.ndarray | None:
        """The aligned 150x150 uint8 RGB face in `box`, or None."""
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        side = max(x2 - x1, y2 - y1)
        if side < MIN_SIDE:
            return None
        rx1, ry1 = max(0, int(x1 - CONTEXT * side)), max(0, int(y1 - CONTEXT * side))
        rx2 = min(frames.width, int(np.ceil(x2 + CONTEXT * side)))
        ry2 = min(frames.height, int(np.ceil(y2 + CONTEXT * side)))
        if rx2 - rx1 < MIN_SIDE or ry2 - ry1 < MIN_SIDE:
            return None
        scale = min(1.0, FACE_SIDE / side)
        width, height = max(1, round((rx2 - rx1) * scale)), max(1, round((ry2 - ry1) * scale))
        rgb = as_uint8(frames.resized(index, (rx1, ry1, rx2, ry2), width, height))
        sx, sy = width / (rx2 - rx1), height / (ry2 - ry1)
        local = ((x1 - rx1) * sx, (y1 - ry1) * sy, (x2 - rx1) * sx, (y2 - ry1) * sy)
        # dlib's landmarks are whole pixels, and its network learned from chips aligned on them
        points = np.round(self.points(rgb, local))
        return face_chip(np.ascontiguousarray(rgb), points)
