"""Which frames the detector looks at, at what size, and how boxes are carried between them.

Full-resolution S3FD on every frame costs 1.8-5.3 s a 720p frame on a 2-core CPU. Talking-head video moves
smoothly, so this strategy detects sparsely and cheaply and interpolates in between:

1. Shot cuts are found from 32x18 grey thumbnails (a fraction of a millisecond a frame); no box is
   ever carried or interpolated across a cut.
2. Keyframes every `keyframe_interval` frames of each shot. The first face of a shot is found on
   the whole frame scaled down to `full_max_side`; after that each keyframe only looks at a small
   square around the last box (`roi_context` x its size, rendered at `roi_size` px), which
   costs ~2% of a full 720p frame. If the face is not found there (it moved fast, turned away,
   or the shot changed without a visible cut), that frame falls back to a whole-frame detection.
3. Between two keyframes whose boxes agree (IoU >= `accept_iou`) the boxes are interpolated.
   Where they disagree, or a face appears or disappears, the midpoint is detected (around the
   interpolated box) and both halves are examined again, down to single frames: appearances,
   disappearances and undetected cuts are located exactly, at a cost of log2(interval) looks.
4. One face is followed: the largest where it first appears, then whichever box continues its
   track (best overlap with the expected box); a second face entering is ignored.

Requests are batched `detector.batch_size` at a time; the detector sees at most one batch of
rendered (downscaled) images at once.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .base import DetectionRequest, DetectorError, FaceDetector
from .boxes import area, empty_boxes, iou, lerp

logger = logging.getLogger("HaloLipsy")


@dataclass
class TrackerConfig:
    full_max_side: int = 480
    roi_size: int = 128
    roi_context: float = 2.2
    keyframe_interval: int = 10
    accept_iou: float = 0.8
    cut_threshold: float = 0.08  # mean absolute grey change of the thumbnails, 0..1
    continue_iou: float = 0.1  # a box overlapping the expected one this much continues the track


@dataclass
class DetectionStats:
    """How much detection a run cost: detector calls and images by input size."""

    calls: int = 0
    images: Counter = field(default_factory=Counter)  # (height, width) -> images
    roi_fallbacks: int = 0
    shots: int = 0

    def add(self, size, count: int):
        self.calls += 1
        self.images[tuple(size)] += count

    @property
    def image_count(self) -> int:
        return sum(self.images.values())

    def pixels(self) -> int:
        return sum(h * w * n for (h, w), n in self.images.items())

    def cost_vs_full(self, frames: int, height: int, width: int) -> float:
        """Detector pixels as a fraction of running it on every frame at full resolution
        (S3FD's cost is proportional to the pixels it sees)."""
        return self.pixels() / float(max(1, frames) * height * width)

    def summary(self) -> str:
        sizes = ", ".join(f"{n}x{w}x{h}" for (h, w), n in sorted(self.images.items()))
        return f"{self.calls} detector calls, {self.image_count} images ({sizes or 'none'})"


class FaceTracker:
    def __init__(self, detector: FaceDetector, config: TrackerConfig | None = None,
                 on_progress=None, check_interrupt=None):
        self.detector = detector
        self.config = config or TrackerConfig()
        self.on_progress = on_progress or (lambda fraction: None)
        self.check_interrupt = check_interrupt or (lambda: None)
        self.stats = DetectionStats()
        self._reported = 0.0  # progress reported so far, 0..1
        self._shot_end = 0.0  # the progress the current shot ends at

    def _report(self, fraction: float):
        self._reported = max(self._reported, min(1.0, fraction))
        self.on_progress(self._reported)

    def _advance(self):
        """After each detector batch: a tenth of the way left to the shot's end (how many looks
        a shot takes is not known ahead: its motion decides), so the bar moves every batch."""
        self._report(self._reported + 0.1 * (self._shot_end - self._reported))

    # ------------------------------------------------------------------ public

    def track(self, frames, count: int | None = None):
        """Boxes for frames [0, count): ((count, 4) float array, NaN where no face; the frames
        that start a new shot, i.e. where smoothing and gap filling must not reach across)."""
        count = frames.count if count is None else min(count, frames.count)
        boxes = empty_boxes(count)
        shot_starts = self.find_cuts(frames, count)
        bounds = [0] + shot_starts + [count]
        self.stats.shots = len(bounds) - 1
        jumps = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            self._shot_end = stop / max(1, count)
            jumps += self._track_shot(frames, start, stop, boxes, count)
            self._report(self._shot_end)
        return boxes, sorted(shot_starts + jumps)

    def find_cuts(self, frames, count: int) -> list[int]:
        """Frame indices that start a new shot (hard cuts)."""
        if count < 2:
            return []
        diffs = np.zeros(count)
        previous = None
        for start in range(0, count, 64):
            self.check_interrupt()
            thumbs = frames.thumbnails(start, min(count, start + 64))
            if previous is not None:
                diffs[start] = np.abs(thumbs[0] - previous).mean()
            diffs[start + 1:start + len(thumbs)] = np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2))
            previous = thumbs[-1]
        cuts = []
        for i in range(1, count):
            if diffs[i] <= self.config.cut_threshold:
                continue
            around = np.concatenate((diffs[max(1, i - 4):i], diffs[i + 1:i + 5]))
            if around.size == 0 or diffs[i] > 3.0 * np.median(around):
                cuts.append(i)
        return cuts

    # ------------------------------------------------------------------ per shot

    def _track_shot(self, frames, start, stop, boxes, count):
        cfg = self.config
        keys = list(range(start, stop, max(1, cfg.keyframe_interval)))
        if keys[-1] != stop - 1:
            keys.append(stop - 1)
        found: dict[int, np.ndarray | None] = {}

        hint = None
        i = 0
        while i < len(keys):
            group = keys[i:i + (1 if hint is None else max(1, self.detector.batch_size))]
            for k, box in zip(group, self._detect(frames, [(k, hint) for k in group])):
                found[k] = box
                if box is not None:
                    hint = box
            i += len(group)

        pending = list(zip(keys[:-1], keys[1:]))
        while pending:
            jobs, halves = [], []
            for a, b in pending:
                if b - a <= 1:
                    continue
                box_a, box_b = found[a], found[b]
                if box_a is None and box_b is None:
                    continue
                if box_a is not None and box_b is not None and iou(box_a, box_b) >= cfg.accept_iou:
                    continue
                mid = (a + b) // 2
                if box_a is not None and box_b is not None:
                    expected = lerp(box_a, box_b, (mid - a) / (b - a))
                else:
                    expected = box_a if box_a is not None else box_b
                jobs.append((mid, expected))
                halves += [(a, mid), (mid, b)]
            for (mid, _), box in zip(jobs, self._detect(frames, jobs)):
                found[mid] = box
            pending = halves

        checked = sorted(found)
        jumps = []  # adjacent frames whose faces do not overlap: a cut the thumbnails missed
        for p, q in zip(checked[:-1], checked[1:]):
            if found[p] is None or found[q] is None:
                continue
            if q == p + 1 and iou(found[p], found[q]) < self.config.continue_iou:
                jumps.append(q)
                continue
            for k in range(p, q + 1):
                boxes[k] = lerp(found[p], found[q], (k - p) / (q - p))
        for k in checked:
            if found[k] is not None:
                boxes[k] = found[k]
        return jumps

    # ------------------------------------------------------------------ detection

    def _detect(self, frames, jobs):
        """jobs: [(frame_index, expected box or None)] -> [box (4,) in frame pixels or None]."""
        if not jobs:
            return []
        results: list = [None] * len(jobs)
        roi = [(n, self._roi_request(k, hint)) for n, (k, hint) in enumerate(jobs)
               if hint is not None]
        full = [n for n, (k, hint) in enumerate(jobs) if hint is None]
        for (n, request), candidates in zip(roi, self._run(frames, [r for _, r in roi])):
            box = self._choose(candidates, jobs[n][1], request, frames)
            if box is None:
                full.append(n)
                self.stats.roi_fallbacks += 1
            results[n] = box
        full.sort()
        requests = [self._full_request(frames, jobs[n][0]) for n in full]
        for n, request, candidates in zip(full, requests, self._run(frames, requests)):
            results[n] = self._choose(candidates, jobs[n][1], request, frames)
        return results

    def _run(self, frames, requests):
        """Render and detect, one batch of same-size images at a time; boxes in frame pixels."""
        out: list = [None] * len(requests)
        by_size: dict[tuple, list[int]] = {}
        for n, request in enumerate(requests):
            by_size.setdefault(request.size, []).append(n)
        batch = max(1, int(self.detector.batch_size))
        for size, members in by_size.items():
            for s in range(0, len(members), batch):
                self.check_interrupt()
                chunk = members[s:s + batch]
                images = np.stack([frames.render(requests[n]) for n in chunk])
                self.stats.add(size, len(chunk))
                try:
                    answers = self.detector.detect([requests[n] for n in chunk], images)
                except Exception as err:  # noqa: BLE001 - any backend failure gets the same advice
                    raise DetectorError(
                        f"face detection failed on frame {requests[chunk[0]].frame_index} "
                        f"({frames.width}x{frames.height}, looked at as {size[1]}x{size[0]}): "
                        f"{type(err).__name__}: {str(err)[:200]}") from err
                self._advance()
                for n, found in zip(chunk, answers):
                    found = np.asarray(found, dtype=np.float64).reshape(-1, 5)
                    out[n] = requests[n].to_frame(found)
        return out

    def _roi_request(self, index, box) -> DetectionRequest:
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        side = max(8, int(round(self.config.roi_context * max(box[2] - box[0], box[3] - box[1]))))
        x1, y1 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
        return DetectionRequest(index, (x1, y1, x1 + side, y1 + side),
                                (self.config.roi_size, self.config.roi_size))

    def _full_request(self, frames, index) -> DetectionRequest:
        scale = min(1.0, self.config.full_max_side / float(max(frames.height, frames.width)))
        size = [max(1, int(round(frames.height * scale))), max(1, int(round(frames.width * scale)))]
        region = [frames.width, frames.height]
        # A tiny or very thin frame (under 32 px, or beyond ~15:1 at 480 px) is padded with black
        # below and to the right up to the detector's minimum, at the same scale: never stretched.
        minimum = int(getattr(self.detector, "min_side", 1) or 1)
        for axis in (0, 1):  # 0: height, 1: width
            if size[axis] < minimum:
                size[axis] = minimum
                region[1 - axis] = max(region[1 - axis], int(math.ceil(minimum / scale)))
        return DetectionRequest(index, (0, 0, region[0], region[1]), (size[0], size[1]))

    def _choose(self, candidates, expected, request, frames):
        """The box that continues the track (best overlap with `expected`), or for a new track
        the largest face. In a region (not whole-frame) look, a box cut by the region's edge
        inside the frame is not trusted."""
        if candidates is None or len(candidates) == 0:
            return None
        boxes = candidates[:, :4]
        x1, y1, x2, y2 = request.region
        whole_frame = x1 <= 0 and y1 <= 0 and x2 >= frames.width and y2 >= frames.height
        if not whole_frame:
            sx, sy = request.scale
            margin_x, margin_y = 2.0 / sx, 2.0 / sy
            keep = []
            for b in boxes:
                cut = ((b[0] <= x1 + margin_x and x1 > 0) or (b[1] <= y1 + margin_y and y1 > 0)
                       or (b[2] >= x2 - margin_x and x2 < frames.width)
                       or (b[3] >= y2 - margin_y and y2 < frames.height))
                keep.append(not cut)
            boxes = boxes[np.array(keep, dtype=bool)]
            if len(boxes) == 0:
                return None
        if expected is not None:
            overlaps = [iou(b, expected) for b in boxes]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= self.config.continue_iou:
                return boxes[best].copy()
            if not whole_frame:
                return None  # something else is near: let the whole frame decide
        return boxes[int(np.argmax([area(b) for b in boxes]))].copy()
