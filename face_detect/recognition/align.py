"""The aligned face the recognition network was trained on: 150x150 px, the five landmarks on
dlib's template with 25% padding (dlib's get_face_chip_details(shape, 150, 0.25))."""

from __future__ import annotations

import cv2
import numpy as np

from ...common.geometry import similarity
from .resnet import CHIP_SIZE

PADDING = 0.25
# where dlib's face chips put the 5 landmarks, in units of the unpadded chip
TEMPLATE = np.array([(0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
                     (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
                     (0.4901123135679, 0.6277975316475)])


def chip_to_image(points: np.ndarray) -> np.ndarray:
    """The 2x3 transform from chip pixels to picture pixels for a face with these landmarks,
    as dlib extracts a chip: the similarity fitted to the template gives the chip's centre, turn
    and scale, and the chip's first and last pixels span its rectangle, whose sides are one
    pixel shorter than the chip times the scale (so a pixel is (size x scale - 1) / (size - 1))."""
    template = (PADDING + TEMPLATE) / (2 * PADDING + 1) * CHIP_SIZE
    fitted = similarity(template, points)
    linear = fitted[:, :2]
    scale = float(np.hypot(linear[0, 0], linear[1, 0]))
    centre = linear @ np.array([CHIP_SIZE / 2, CHIP_SIZE / 2]) + fitted[:, 2]
    linear = linear * ((CHIP_SIZE * scale - 1) / (CHIP_SIZE - 1) / scale)
    middle = (CHIP_SIZE - 1) / 2
    return np.hstack([linear, (centre - linear @ np.array([middle, middle]))[:, None]])


def face_chip(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(150, 150, 3) uint8: the face with landmarks `points` cut out of `rgb` (H, W, 3 uint8),
    bilinear, black outside the picture."""
    return cv2.warpAffine(rgb, chip_to_image(points), (CHIP_SIZE, CHIP_SIZE),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
