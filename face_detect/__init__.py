"""Per-frame face boxes for the frames of a clip.

Two sources: a detector (S3FD on the CPU, driven by the tracking strategy in tracker.py) or a
MASK the user supplies. Either way the raw boxes then go through the same finishing steps:
short gaps filled, a centred temporal smoothing window, padding below the chin, clipping to the
frame. The result is an int array (n, 4) of x1, y1, x2, y2 with -1 rows for "no face".
Plain Python/torch/OpenCV; no ComfyUI import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import DetectionRequest, DetectorError, FaceDetector, TensorFrames, WindowFrames
from ..common.choices import FACE_CHOICES
from .boxes import fill_gaps, pad_and_clip, pick_face, smooth
from .recognition.landmarks import eye_distance
from .mask import Mark, MaskInputError, boxes_from_mask, marks_from_mask
from .tracker import DetectionStats, FaceTracker, TrackerConfig, TrackingRun


@dataclass
class BoxSettings:
    """How raw boxes are finished; the values come from the run's settings (settings.py)."""

    face_padding: int  # pixels added below the box (the chin side)
    smooth_box_frames: int  # centred window; 0 or 1 is off
    max_gap: int  # faceless runs up to this long between two faces are interpolated


def finish_boxes(raw: np.ndarray, height: int, width: int, settings: BoxSettings,
                 shot_starts=(), fill: bool = True) -> np.ndarray:
    boxes = fill_gaps(raw, settings.max_gap, shot_starts) if fill else raw
    boxes = smooth(boxes, settings.smooth_box_frames, shot_starts)
    return pad_and_clip(boxes, height, width, pad_bottom=max(0, int(settings.face_padding)))


class BoxStream:
    """`finish_boxes` for a clip whose raw boxes arrive in order: each frame's finished box as
    soon as no later frame can change it. Gap filling reaches `max_gap` frames ahead and the
    smoothing window half its size, so a frame is final `margin` frames behind the last settled
    one; the boxes are those finishing the whole clip at once gives."""

    def __init__(self, height: int, width: int, settings: BoxSettings):
        self.height, self.width, self.settings = height, width, settings
        window = int(settings.smooth_box_frames or 0)
        self.margin = (window // 2 if window > 1 else 0) + max(0, int(settings.max_gap)) + 2
        self.done = 0  # frames whose finished boxes were taken

    def take(self, raw: np.ndarray, shot_starts, settled: int, finished: bool = False) -> np.ndarray:
        """Finished int boxes of the frames after those taken so far, given the raw boxes and
        shot starts of frames [0, settled), which no later frame changes (all of them when
        `finished`)."""
        stop = settled if finished else settled - self.margin
        if stop <= self.done:
            return np.empty((0, 4), dtype=np.int64)
        lo = max(0, self.done - self.margin)  # enough before them for their gaps and windows
        starts = [int(s) - lo for s in shot_starts if lo < s < settled]
        boxes = finish_boxes(raw[lo:settled], self.height, self.width, self.settings, starts)
        taken, self.done = boxes[self.done - lo:stop - lo], stop
        return taken


def detect_boxes(images, count: int, detector: FaceDetector, settings: BoxSettings,
                 config: TrackerConfig, on_progress=None, check_interrupt=None,
                 recognizer=None):
    """Boxes for images[0:count] (an IMAGE tensor) found by `detector`, whose faces `recognizer`
    (None: nobody's identity known) tells apart; returns (int boxes, DetectionStats)."""
    frames = TensorFrames(images)
    tracker = FaceTracker(detector, config, on_progress, check_interrupt, recognizer)
    raw, shot_starts = tracker.track(frames, count)
    return finish_boxes(raw, frames.height, frames.width, settings, shot_starts), tracker.stats


def mask_boxes(mask, n_frames: int, height: int, width: int, settings: BoxSettings) -> np.ndarray:
    """Boxes from a face_mask; an empty mask frame stays "no face" (no gap filling)."""
    raw = boxes_from_mask(mask, n_frames, height, width)
    return finish_boxes(raw, height, width, settings, fill=False)


__all__ = [
    "FACE_CHOICES", "BoxSettings", "BoxStream", "DetectionRequest", "DetectionStats", "DetectorError", "FaceDetector", "FaceTracker",
    "MaskInputError", "TensorFrames", "TrackerConfig", "TrackingRun", "WindowFrames", "detect_boxes",
    "Mark", "eye_distance", "finish_boxes", "mask_boxes", "marks_from_mask", "pick_face",
]
