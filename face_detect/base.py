"""The small contract every face detector backend meets, and the frames it looks at.

The tracker asks for faces in *requests*: a region of one frame (possibly the whole frame, possibly
reaching past its edge) rendered at some scale into a BGR uint8 image. A backend sees only the
images and answers with boxes in their pixels; the tracker maps them back through the requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..common.errors import HaloLipsyError


@dataclass(frozen=True)
class DetectionRequest:
    frame_index: int
    region: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels shown by the image
    size: tuple[int, int]  # (height, width) of the rendered image

    @property
    def scale(self) -> tuple[float, float]:
        """Image pixels per frame pixel, (x, y)."""
        x1, y1, x2, y2 = self.region
        return self.size[1] / (x2 - x1), self.size[0] / (y2 - y1)

    def to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (k, 4+) in image pixels -> frame pixels."""
        sx, sy = self.scale
        out = np.array(boxes, dtype=np.float64, copy=True)
        out[:, [0, 2]] = out[:, [0, 2]] / sx + self.region[0]
        out[:, [1, 3]] = out[:, [1, 3]] / sy + self.region[1]
        return out


class DetectorError(HaloLipsyError):
    """The detector backend failed on an image; the message names the frame and what to do."""


class FaceDetector:
    """Base class of detection backends. Subclasses implement `detect_images` and set
    `batch_size` (the face_detect_batch setting)."""

    batch_size: int
    # The smallest rendered side the backend accepts; the tracker pads (never stretches) smaller
    # looks up to it. S3FD's sixth pooling stage needs 32 px.
    min_side = 32

    def detect_images(self, images: np.ndarray) -> list[np.ndarray]:
        """images (B, H, W, 3) uint8 BGR, all one size -> per image an array (k, 5) of
        x1, y1, x2, y2, score in image pixels, faces above the detector's threshold."""
        raise NotImplementedError

    def detect(self, images: np.ndarray) -> list[np.ndarray]:
        """Faces in each of `images` (B, H, W, 3 uint8 BGR), `batch_size` images a call."""
        out = []
        for start in range(0, len(images), max(1, self.batch_size)):
            out.extend(self.detect_images(images[start:start + self.batch_size]))
        return out


def as_uint8(rgb: np.ndarray) -> np.ndarray:
    """What `TensorFrames.resized` gives (uint8, or float in [0, 1]) as uint8, rounded."""
    return rgb if rgb.dtype == np.uint8 else np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


class TensorFrames:
    """Read-only access to a ComfyUI IMAGE tensor [N, H, W, C] for detection.

    Only the region a request reads is converted, so no copy of the whole clip is ever made:
    uint8 frames (a decoded video's) stay uint8 until they are shrunk, other dtypes are read as
    float32."""

    THUMB = (18, 32)

    def __init__(self, images: torch.Tensor):
        self.images = images
        self._unit = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0  # to [0, 1]
        self.count, self.height, self.width = int(images.shape[0]), int(images.shape[1]), int(images.shape[2])

    def render(self, request: DetectionRequest) -> np.ndarray:
        """The request's region as (h, w, 3) uint8 BGR; parts outside the frame are black."""
        x1, y1, x2, y2 = request.region
        h, w = request.size
        sx, sy = request.scale
        cx1, cy1 = max(0, x1), max(0, y1)
        cx2, cy2 = min(self.width, x2), min(self.height, y2)
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        if cx2 <= cx1 or cy2 <= cy1:
            return canvas
        ox1, oy1 = int(round((cx1 - x1) * sx)), int(round((cy1 - y1) * sy))
        ox2, oy2 = min(w, int(round((cx2 - x1) * sx))), min(h, int(round((cy2 - y1) * sy)))
        if ox2 <= ox1 or oy2 <= oy1:
            return canvas
        resized = as_uint8(self.resized(request.frame_index, (cx1, cy1, cx2, cy2), ox2 - ox1, oy2 - oy1))
        canvas[oy1:oy2, ox1:ox2] = resized[:, :, ::-1]  # RGB -> BGR
        return canvas

    def resized(self, index: int, region, width: int, height: int) -> np.ndarray:
        """A region (x1, y1, x2, y2) inside frame `index` resized to width x height (averaged
        over the pixels it shrinks): (height, width, 3) RGB, uint8 where the frames are uint8,
        else float32 in [0, 1] (NaN read as black)."""
        pixels = self.pixels(index, *region)
        shrink = width < pixels.shape[1]
        resized = cv2.resize(pixels, (width, height),
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if resized.dtype != np.uint8 and not np.isfinite(resized).all():  # a broken upstream node
            np.nan_to_num(resized, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        return resized

    def pixels(self, index: int, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        """(h, w, 3) RGB of a region of one frame: uint8 where the frames are uint8, else
        float32 in [0, 1]."""
        pixels = self._frame(index)[y1:y2, x1:x2, :3]
        if pixels.dtype != torch.uint8:
            pixels = pixels.float()
        return np.ascontiguousarray(pixels.cpu().numpy())

    def thumbnails(self, start: int, stop: int) -> np.ndarray:
        """(k, 18, 32) grey thumbnails of frames [start, stop) for shot-cut detection."""
        # a strided subsample (~4 px per thumbnail cell) is plenty for cut detection and reads
        # a few percent of each frame
        step_y = max(1, self.height // (self.THUMB[0] * 4))
        step_x = max(1, self.width // (self.THUMB[1] * 4))
        grey = self._grey(start, stop, step_y, step_x)
        return F.adaptive_avg_pool2d(grey[:, None], self.THUMB)[:, 0].numpy()

    def _frame(self, index: int) -> torch.Tensor:
        return self.images[index]

    def _grey(self, start: int, stop: int, step_y: int, step_x: int) -> torch.Tensor:
        """(k, h, w) float32 brightness in [0, 1] on the strided grid."""
        return self.images[start:stop, ::step_y, ::step_x, :3].float().cpu().mean(dim=-1) * self._unit


class WindowFrames(TensorFrames):
    """The frames of a stream, a window at a time: frames are put in as they are decoded and
    dropped once nobody needs them. A frame is a picture, anything with `crop(x1, y1, x2, y2)`
    (its uint8 RGB there) and `grey(step_y, step_x)` (its brightness in [0, 1] on a strided
    grid): the VIDEO route's decoded frames (video.Picture, kept in their own YUV)."""

    def __init__(self, height: int, width: int):
        self.count, self.height, self.width = 0, int(height), int(width)
        self.window: dict[int, object] = {}

    def put(self, index: int, picture):
        self.window[index] = picture
        self.count = max(self.count, index + 1)

    def drop_before(self, index: int):
        for k in [k for k in self.window if k < index]:
            del self.window[k]

    def pixels(self, index: int, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self.window[index].crop(x1, y1, x2, y2)))

    def _grey(self, start: int, stop: int, step_y: int, step_x: int) -> torch.Tensor:
        return torch.stack([torch.as_tensor(self.window[i].grey(step_y, step_x)) for i in range(start, stop)])
