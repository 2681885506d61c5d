"""Which frames the detector looks at, at what size, and how boxes are carried between them.

Full-resolution S3FD on every frame costs 1.8-5.3 s a 720p frame on a 2-core CPU. Talking-head video moves
smoothly, so this strategy detects sparsely and cheaply and interpolates in between:

1. Shot cuts are changes of the whole picture, found from 32x18 grey thumbnails (a fraction of a
   millisecond a frame); a hand, a card or a passer-by changes only part of it. No box is ever
   carried or interpolated across a cut, and only there is a face chosen again by its place.
2. Keyframes every `keyframe_interval` frames of each shot. The first face of a shot is found on
   the whole frame scaled down to `full_max_side`; after that each keyframe only looks at a small
   square around the last box (`roi_context` x its size, rendered at `roi_size` px), which
   costs ~2% of a full 720p frame. If the face is not found there (it moved fast, turned away,
   or the shot changed without a visible cut), that frame falls back to a whole-frame detection.
3. Between two keyframes whose boxes agree (IoU >= `accept_iou`) the boxes are interpolated.
   Where they disagree, or a face appears or disappears, the midpoint is detected (around the
   interpolated box) and both halves are examined again, down to single frames: appearances,
   disappearances and undetected cuts are located exactly, at a cost of log2(interval) looks.
4. One face is followed, and never handed to someone else: who each face is, and so which box
   continues the track, is people.py's decision (a face recognition descriptor per face per
   look). Where a shot starts (and after every cut) the track begins on the face
   `TrackerConfig.choice` picks; within the shot a box overlapping the expected one continues
   it only if it is not somebody else, and a lost face is looked for in the whole frame and
   taken back only by the same person; until then those frames have no face (they pass through).

Requests are batched `detector.batch_size` at a time; the detector sees at most one batch of
rendered (downscaled) images at once.

The work runs as a stream (`TrackingRun`): frames arrive in order, each step is done as soon as
the frames it needs have arrived, and frames no step needs any more can be dropped. So a decoded
video is tracked through a window of a few dozen frames, and gives exactly the boxes the whole
clip gives at once (`FaceTracker.track`, the same steps with every frame available). Keyframes
are detected in groups of at most `max_keyframe_group` (bounding that window); cut decisions
look 4 frames ahead.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .base import DetectionRequest, DetectorError, FaceDetector, TensorFrames
from .boxes import empty_boxes, iou, lerp
from .people import People

logger = logging.getLogger("HaloLipsy")


@dataclass
class TrackerConfig:
    choice: str  # which face a shot's track starts on (the `face` setting: choices.FACE_CHOICES)
    full_max_side: int = 480
    roi_size: int = 128
    roi_context: float = 2.2
    keyframe_interval: int = 10
    accept_iou: float = 0.75  # a head moving ~20% of its size in 10 frames still interpolates
    cut_threshold: float = 0.08  # mean absolute grey change of the thumbnails, 0..1
    cut_share: float = 0.5  # ... and the share of the picture that changes by that much: a cut
    # changes the whole picture (measured 0.65-0.87 at real cuts), a hand, a card or a passer-by
    # a part of it (fast motion and a card over one of two faces: 0.13-0.32)
    continue_iou: float = 0.1  # a box overlapping the expected one this much continues the track
    max_keyframe_group: int = 4  # keyframes detected together (bounds a stream's frame window)
    marks: tuple = ()  # mask.Mark strokes on the marked person, for choice "marked"

    CUT_CONTEXT = 4  # frames either side whose changes a cut must stand out from


@dataclass
class DetectionStats:
    """How much detection a run cost: detector calls and images by input size."""

    calls: int = 0
    images: Counter = field(default_factory=Counter)  # (height, width) -> images
    shots: int = 0
    most_faces: int = 0  # the most faces one whole-frame look saw
    shot_starts: list = field(default_factory=list)  # frames that start a shot (or a jump)
    unmatched_marks: list = field(default_factory=list)  # strokes with no face under them

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
        return (f"{self.calls} detector calls, {self.image_count} images ({sizes or 'none'}), "
                f"up to {self.most_faces} face{'s' if self.most_faces != 1 else ''} in view")


class FaceTracker:
    def __init__(self, detector: FaceDetector, config: TrackerConfig,
                 on_progress=None, check_interrupt=None, recognizer=None):
        """`recognizer`: a recognition.FaceRecognizer that tells who each face is; None where its
        files are missing (then every doubt gives nobody, see people.py)."""
        self.detector = detector
        self.config = config
        self.on_progress = on_progress or (lambda fraction: None)
        self.check_interrupt = check_interrupt or (lambda: None)
        self.stats = DetectionStats()
        self._reported = 0.0  # progress reported so far, 0..1
        self._shot_end = 0.0  # the progress the work in hand ends at
        self.people = People(recognizer, self.config.choice, self.config.marks)

    def _report(self, fraction: float):
        self._reported = max(self._reported, min(1.0, fraction))
        self.on_progress(self._reported)

    def _advance(self):
        """After each detector batch: a tenth of the way left to the current goal (how many
        looks a stretch takes is not known ahead: its motion decides), so the bar moves."""
        self._report(self._reported + 0.1 * (self._shot_end - self._reported))

    # ------------------------------------------------------------------ public

    def track(self, frames, count: int | None = None):
        """Boxes for frames [0, count), all readable at once: ((count, 4) float array, NaN where
        no face; the frames that start a new shot, i.e. where smoothing and gap filling must not
        reach across)."""
        count = frames.count if count is None else min(count, frames.count)
        run = self.start(frames, count)
        run.advance(count)
        return run.finish()

    def start(self, frames, expected: int | None = None) -> "TrackingRun":
        """A stream: call run.advance(n) whenever frames [0, n) are readable from `frames`, drop
        frames below run.needed_from, and call run.finish() after the last one. `expected` (the
        frame count, if known) only scales progress."""
        self._bind_readable_marks(frames)
        return TrackingRun(self, frames, expected)

    def _bind_readable_marks(self, frames):
        """Strokes whose frame we can read now (an IMAGE's frames: the marker has one frame per
        image) or that came with the picture they were painted on are bound to the face under
        them before tracking starts, so the marked person is known from the first shot on."""
        for mark in list(self.people.pending_marks):
            if mark.picture is not None:
                source, index = TensorFrames(mark.picture), 0
            elif mark.frame is not None and mark.frame < frames.count:
                source, index = frames, mark.frame
            else:
                continue
            candidates = self._run(source, [self._full_request(source, index)])[0]
            boxes = np.zeros((0, 4)) if candidates is None else candidates[:, :4]
            self.people.bind_mark(mark, source, index, boxes)

    def _is_cut(self, changes: list, i: int, count: int) -> bool:
        """Frame i starts a new shot: its change from frame i-1 (mean, share of the picture)
        is large, reaches most of the picture and stands out from the changes around it
        (changes[i - 4:i + 5], which must all be known, or the clip end)."""
        mean, share = changes[i]
        if mean <= self.config.cut_threshold or share < self.config.cut_share:
            return False
        c = TrackerConfig.CUT_CONTEXT
        around = np.array([m for m, _ in changes[max(1, i - c):i] + changes[i + 1:min(count, i + c + 1)]])
        return around.size == 0 or mean > 3.0 * np.median(around)

    # ------------------------------------------------------------------ per interval

    def _bisect(self, frames, intervals, found):
        """Detect inside the keyframe intervals (a, b) whose ends disagree, halving down to
        single frames; `found` maps checked frames to a box or None."""
        cfg = self.config
        pending = list(intervals)
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

    def _settle(self, a, b, found, boxes, jumps):
        """Boxes for frames [a, b] from the checked frames between them: interpolated between
        two faces that overlap, the detection itself where checked; a face that jumps between
        two adjacent frames marks a cut the thumbnails missed."""
        checked = sorted(k for k in found if a <= k <= b)
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
                    answers = self.detector.detect(images)
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
        """The box that continues the track (overlapping `expected` and, people.py decides, not
        somebody else), the followed face found again anywhere in a whole-frame look, or for a
        new track the face `config.choice` picks. In a region (not whole-frame) look, a box cut
        by the region's edge inside the frame is not trusted."""
        x1, y1, x2, y2 = request.region
        whole_frame = x1 <= 0 and y1 <= 0 and x2 >= frames.width and y2 >= frames.height
        if candidates is None or len(candidates) == 0:
            if whole_frame and expected is not None:
                self.people.missed(request.frame_index)
            return None
        boxes = candidates[:, :4]
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
        else:
            self.stats.most_faces = max(self.stats.most_faces, len(boxes))
        index = request.frame_index
        if expected is None:
            k = self.people.start(frames, index, boxes)
            return None if k is None else boxes[k].copy()
        overlaps = np.array([iou(b, expected) for b in boxes])
        overlapping = [int(k) for k in np.argsort(-overlaps) if overlaps[k] >= self.config.continue_iou]
        for k in overlapping:  # the best overlap first, but a neighbour's never continues the track
            if self.people.continues(frames, index, boxes, k, alone=len(overlapping) == 1):
                return boxes[k].copy()
        if not whole_frame:
            return None  # lost here: let a look at the whole frame decide
        k = self.people.take_back(frames, index, boxes)
        if k is None:
            self.people.missed(index)
            return None
        return boxes[k].copy()


class TrackingRun:
    """One clip tracked as its frames arrive (see the module notes). Boxes grow with the clip
    (32 bytes a frame); frames are needed only from `needed_from` on."""

    def __init__(self, tracker: FaceTracker, frames, expected: int | None = None):
        self.t = tracker
        self.frames = frames
        self.expected = expected
        self.available = 0
        self.finished = False
        self.changes: list[tuple] = []  # thumbnail change from the previous frame: (mean, share)
        self._last_thumb = None
        self.decided = 1  # cut decisions made for frames [1, decided)
        self.cuts: list[int] = []
        self.jumps: list[int] = []
        self.boxes = empty_boxes(0)
        # the shot in hand
        self.shot_start = 0
        self.shot_stop = None  # known once the next cut (or the end) is decided
        self.next_key = 0  # the next grid keyframe not yet detected
        self.last_key = None  # the last keyframe detected in this shot
        self.hint = None
        self.found: dict = {}

    @property
    def needed_from(self) -> int:
        """Frames below this index are never read again."""
        return self.last_key if self.last_key is not None else self.shot_start

    @property
    def settled(self) -> int:
        """Frames below this have their final raw box, and every shot start below it is known
        (later frames change neither)."""
        if self.finished:
            return self.available
        return self.last_key + 1 if self.last_key is not None else self.shot_start

    @property
    def shot_starts(self) -> list:
        """The frames found so far to start a shot: cuts, and jumps the thumbnails missed."""
        return sorted(self.cuts + self.jumps)

    # ------------------------------------------------------------------ driving

    def advance(self, available: int):
        """Frames [0, available) can now be read."""
        if available <= self.available:
            return
        self._thumbnails(self.available, available)
        self.available = available
        self._grow(available)
        self._step()

    def finish(self):
        """No more frames: track what is left. Returns (boxes, shot starts) as track() does."""
        self.finished = True
        self._step()
        self.t.stats.shots = len(self.cuts) + 1
        self.t.stats.shot_starts = self.shot_starts
        self.t.stats.unmatched_marks = self.t.people.unmatched_marks + [
            m.frame for m in self.t.people.pending_marks]
        self.t._report(1.0)
        return self.boxes[:self.available], self.t.stats.shot_starts

    def _grow(self, n):
        if len(self.boxes) < n:
            grown = empty_boxes(max(n, 2 * len(self.boxes)))
            grown[:len(self.boxes)] = self.boxes
            self.boxes = grown

    def _thumbnails(self, start, stop):
        for s in range(start, stop, 64):
            self.t.check_interrupt()
            thumbs = self.frames.thumbnails(s, min(stop, s + 64))
            for thumb in thumbs:
                if self._last_thumb is None:
                    self.changes.append((0.0, 0.0))
                else:
                    change = np.abs(thumb - self._last_thumb)
                    self.changes.append((float(change.mean()),
                                         float((change > self.t.config.cut_threshold).mean())))
                self._last_thumb = thumb

    def _decide_cuts(self) -> int | None:
        """Make the cut decisions the known frames allow; return the first new cut, if any."""
        c = TrackerConfig.CUT_CONTEXT
        count = self.available
        while self.decided < count and (self.finished or self.decided + c < count):
            i = self.decided
            self.decided += 1
            if self.t._is_cut(self.changes, i, count if self.finished else len(self.changes)):
                self.cuts.append(i)
                return i
        return None

    def _step(self):
        while True:
            if self.shot_stop is None:
                cut = self._decide_cuts()
                if cut is not None:
                    self.shot_stop = cut
                elif self.finished and self.decided >= self.available:
                    self.shot_stop = self.available
            if not self._keyframe_group():
                return

    # ------------------------------------------------------------------ keyframes

    def _confirmed_keys(self) -> list[int]:
        """Grid keyframes of this shot whose frame is known to belong to it."""
        interval = max(1, self.t.config.keyframe_interval)
        limit = self.shot_stop if self.shot_stop is not None else self.decided
        return list(range(self.next_key, limit, interval))

    def _keyframe_group(self) -> bool:
        """Detect the next group of keyframes if it is complete; False when waiting for frames
        (or when the clip is done)."""
        if self.shot_stop is not None and self.shot_start >= self.shot_stop:
            return self._next_shot()  # an empty shot: only at the very end
        size = 1 if self.hint is None else max(1, min(self.t.detector.batch_size,
                                                      self.t.config.max_keyframe_group))
        keys = self._confirmed_keys()[:size]
        if len(keys) < size:
            if self.shot_stop is None:
                return False  # more frames must arrive first
            last = self.shot_stop - 1  # the shot ends: its last frame is a keyframe too
            if (not keys or keys[-1] != last) and (self.last_key is None or self.last_key < last):
                keys.append(last)
            keys = keys[:size]
        if not keys:
            return self._next_shot()
        self.t._shot_end = (keys[-1] + 1) / max(1, self.expected or self.available)
        previous = [self.last_key] if self.last_key is not None else []
        ends = previous + keys
        intervals = list(zip(ends[:-1], ends[1:]))
        todo, last_seen = keys, -1
        while todo:
            for k, box in zip(todo, self.t._detect(self.frames, [(k, self.hint) for k in todo])):
                self.found[k] = box
            self.t._bisect(self.frames, [(a, b) for a, b in intervals if a in todo or b in todo],
                           self.found)
            seen = max((k for k, box in self.found.items() if box is not None), default=-1)
            if seen <= last_seen:
                break
            last_seen, self.hint = seen, self.found[seen]  # the next looks start where it was seen last
            # keyframes after that were looked for where the face was before it moved (a group
            # shares one hint): look again from the newer place
            todo = [k for k in keys if self.found[k] is None and k > seen]
        self.t._settle(ends[0], ends[-1], self.found, self.boxes, self.jumps)
        self.last_key = keys[-1]
        interval = max(1, self.t.config.keyframe_interval)
        self.next_key = ((keys[-1] - self.shot_start) // interval + 1) * interval + self.shot_start
        self.found = {k: v for k, v in self.found.items() if k >= self.last_key}
        self.t._report((self.last_key + 1) / max(1, self.expected or self.available))
        if self.shot_stop is not None and self.last_key >= self.shot_stop - 1:
            return self._next_shot()
        return True

    def _next_shot(self) -> bool:
        """The shot in hand is done: the next one starts at its end. False when none is left."""
        self.shot_start, self.shot_stop = self.shot_stop, None
        self.next_key, self.last_key, self.hint, self.found = self.shot_start, None, None, {}
        self.t.people.new_shot()
        return not (self.finished and self.shot_start >= self.available)
