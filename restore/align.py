"""The face in the layout face restoration models were trained on (FFHQ's: 512x512, eyes,
nose and mouth where facexlib's template puts them), cut out of a frame by dlib's five
landmarks, and drawn back into a box of the frame. NumPy and OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

from ..common.geometry import similarity

FACE_SIZE = 512
# facexlib's template at 512 px, the five points GFPGAN, RestoreFormer and CodeFormer align by:
# the eye centres, the nose tip, the mouth corners (the picture's left first)
FFHQ_POINTS = np.array([(192.98138, 239.94708), (318.90277, 240.1936), (256.63416, 314.01935),
                        (201.26117, 371.41043), (313.08905, 371.15118)])
# where dlib's five points (the outer and inner corner of the picture's right eye, of its left
# eye, the base of the nose) fall in that layout: measured on real faces by
# bench/face_template.py through dlib's 68-point model, which marks both sets
DLIB5_IN_FFHQ = np.array([(344.6, 245.2), (294.8, 245.9), (167.3, 245.2), (217.1, 245.9), (255.9, 333.7)])
# what the reference (facexlib) fills the layout with where it reaches past the frame
BORDER_RGB = (132, 133, 135)


def to_layout(points: np.ndarray) -> np.ndarray:
    """The 2x3 transform from frame pixels to the 512 px layout, for a face whose dlib
    landmarks are `points` (5, 2)."""
    return similarity(points, DLIB5_IN_FFHQ)


def cut_out(frame: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(512, 512, 3) float32 RGB in [0, 1]: the face of `frame` (H, W, C RGB[A], float32 in
    [0, 1] or uint8) in the layout, bilinear, the reference's grey past the frame's edges."""
    rgb = frame[..., :3]
    border = BORDER_RGB if rgb.dtype == np.uint8 else tuple(v / 255.0 for v in BORDER_RGB)
    face = cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (FACE_SIZE, FACE_SIZE),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    if face.dtype == np.uint8:
        return np.multiply(face, np.float32(1 / 255), dtype=np.float32)
    return np.nan_to_num(face.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)


def drawn_back(face: np.ndarray, matrix: np.ndarray, box) -> np.ndarray:
    """(h, w, 3) float32: the layout's `face` (512, 512, 3) drawn back over `box` (x1, y1, x2,
    y2) of the frame it was cut from by `matrix`, bilinear (only the box is computed)."""
    x1, y1, x2, y2 = box
    back = cv2.invertAffineTransform(matrix)
    back[:, 2] -= (x1, y1)  # into the box's own pixels
    return cv2.warpAffine(face, back, (x2 - x1, y2 - y1), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
