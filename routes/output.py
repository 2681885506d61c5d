"""The streamed VIDEO route's output: frames lip-synced a batch at a time in the timeline's order
and handed to the encoder, the generator in turn with the detector (a CPU) or in a thread of its
own (a GPU); and the output frame in the making (the source's YUV, the face region's RGB)."""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass

import numpy as np

from ..common.progress import part
from ..common.stop import POLL_S, StopSignal
from .steps import kept_original, mouth_inputs, paste_mouths, speech_strengths, timeline

BATCH_BYTES = 256 << 20  # the frames of one batch, and a re-read block (~40 frames of 1080p)
GENERATOR_STOP_WAIT_S = 30.0  # a stopped run waits this long, at most, for the generator's slice


class TakingTurns:
    """The detector, computing only while a generator that takes every core does not: on a CPU
    the two would slow each other down (both run on all of torch's threads)."""

    def __init__(self, detector, cores):
        self.detector, self.cores = detector, cores

    def __getattr__(self, name):  # batch_size, min_side: the detector's own
        return getattr(self.detector, name)

    def detect(self, images):
        with self.cores:
            return self.detector.detect(images)


class StreamOutput:
    """The output in the making: frames lip-synced a batch at a time, in the timeline's order,
    and handed to the writer; the progress bar moves per generator slice.

    A generator that takes every core (on the CPU) makes each batch's mouths here, in turn with
    the detector and the encoder. Any other (a GPU) makes them in a thread of its own: while it
    works on one batch, this thread pastes the last one's mouths, hands it to the encoder and
    prepares the next, so the CPU's work and the generator's overlap. Then two batches are in
    hand at once, each half the size (the same bytes held)."""

    def __init__(self, writer, info, audio_end, lead, stages, settings, hooks, stop: StopSignal):
        self.writer, self.info, self.audio_end, self.lead = writer, info, audio_end, lead
        self.stages, self.settings, self.hooks, self.stop = stages, settings, hooks, stop
        self.pictures: dict = {}  # decoded frames (video.Picture) by index, until shown
        self.cores = threading.Lock()  # held by a generator that takes every core, and the detector
        overlapped = not stages.generator.shares_the_cpu
        # held per frame of a batch: its YUV (1.5 B a pixel) and the RGB of its face's region
        frame_bytes = info.width * info.height * 3 * (2 if overlapped else 1)
        self.batch = max(1, min(settings.inference_batch, BATCH_BYTES // frame_bytes))
        self.generating = (ThreadPoolExecutor(1, thread_name_prefix="Halo-Lipsy generator")
                           if overlapped else None)
        self.in_hand = None  # the batch the generator's thread works on (_Batch)
        self.expected = expected_frames(settings.mode, info, audio_end)  # for the progress bar
        self.taken = self.done = self.synced = self.kept_original = 0  # frames batched, written
        self.ended = False  # the output ended inside the clip's first run (the audio was shorter)
        self.kept_last = None  # a copy of the last frame, where the output holds it
        self.reported = 0.0  # the progress bar's position: it never moves back

    def __enter__(self):
        return self

    def __exit__(self, _type, error, _traceback):
        """However the output ends: the generator's thread stops at its next slice (the run's
        stop is set where the output fails), and is waited for, GENERATOR_STOP_WAIT_S at most."""
        if error is not None:
            self.stop.stop(error)
        if self.generating is not None:
            in_flight = [b.generated for b in (self.in_hand,) if b is not None and isinstance(b.generated, Future)]
            futures_wait(in_flight, timeout=GENERATOR_STOP_WAIT_S)
            self.generating.shutdown(wait=False, cancel_futures=True)

    def progress(self, frames: float):
        """Move the bar to `frames` output frames (of the expected count)."""
        self.reported = max(self.reported, min(0.99, frames / self.expected))
        self.hooks.progress(self.reported)

    def drop_shown(self):
        """Forget the decoded frames never shown again in the first run (all of them once the
        output has ended)."""
        for k in [k for k in self.pictures if self.ended or k < self.taken]:
            del self.pictures[k]

    def show_ready(self, seen, ready: int, tracker_reads_from: int):
        """While the clip is decoded: the input frames up to `ready` (their boxes final, their
        lengths known) shown in order, whole batches at a time (fewer where the audio ends).
        `tracker_reads_from`: the tracker's thread never reads a frame below this again."""
        if self.ended or ready - self.taken < self.batch:
            return
        # the timeline of the frames known so far has the whole clip's first `ready` entries
        plan = timeline(self.settings.mode, seen.relative_times(self.info.start, ready + 1),
                        self.audio_end, float(self.info.fps))
        self.ended = len(plan) < ready
        until = len(plan) if self.ended else self.taken + (ready - self.taken) // self.batch * self.batch
        # Picture sharing: a shown frame's YUV is the writer's, which merges the mouth into it in
        # the encoder's thread, while the tracker's thread reads the frames of its window. So a
        # frame is shown only once the tracker never reads it again: its box is final only
        # after the finishing margin (2 frames at least) behind the tracker's last keyframe.
        assert until <= tracker_reads_from, \
            f"frame {until - 1} would be written while the tracker still reads from frame {tracker_reads_from}"
        self._show(plan, seen, until)

    def finish_first_run(self, seen, plan):
        """Once the whole clip is decoded, with its `plan`: the rest of the clip's first run (up
        to the first output frame showing an input frame again), the last frame copied where
        the output holds it."""
        ready = len(seen.times)
        firsts = np.flatnonzero(plan.source[:ready] != np.arange(min(ready, len(plan))))
        until = int(firsts[0]) if len(firsts) else min(ready, len(plan))
        if until < len(plan) and plan.source[until] == until - 1:  # the last frame is held
            self.kept_last = self.pictures[until - 1].copy()
        self._show(plan, seen, until)

    def _show(self, plan, seen, until: int):
        """Output frames from the next one up to `until`, from the decoded pictures."""
        for start in range(self.taken, until, self.batch):
            end = min(until, start + self.batch)
            self._take(plan, start, end, [self.pictures[k] for k in range(start, end)],
                       seen.usable[start:end])

    def after_first_run(self, plan, reader):
        """What the output shows after the clip's first run, read again by index; then the
        last batch is finished."""
        for start in range(self.taken, len(plan), self.batch):
            end = min(len(plan), start + self.batch)
            sources = [int(k) for k in plan.source[start:end]]
            self._take(plan, start, end, [reader.read(k) for k in sources],
                       [reader.usable[k] for k in sources])
        if self.in_hand is not None:
            self._write(self.in_hand)
            self.in_hand = None

    def _take(self, plan, start, stop, pictures, faces):
        """Output frames [start, stop) of `plan` from their input frames' `pictures` (which
        the writer owns from here on) and usable `faces`: the mouths made, here or in the
        generator's thread, and the frames written (the batch before, where they overlap)."""
        self.stop.check()
        outs = [OutputFrame.of(p, face, self.info, self.stages.region_margin)
                for p, face in zip(pictures, faces)]
        strengths = speech_strengths(self.stages, self.settings, plan.positions[start:stop],
                                     self.stop.check)
        batch = _Batch(plan, start, stop, outs, faces, strengths)
        # the uint8 regions in place: the compositing works in float only where the mouth is
        work = batch.work = mouth_inputs(self.stages, self.settings, batch.regions, batch.faces_in_regions,
                                         plan.positions[start:stop], strengths)
        self.taken = stop
        if self.generating is None:
            if work is not None:  # it takes every core: encoding waits, and detection
                self.writer.drain()
                with self.cores:
                    batch.generated = self.stages.generator(work.mels, work.faces,
                                                            on_slice=self._slices(batch, 0))
            self._write(batch)
            return
        if work is not None:
            batch.generated = self.generating.submit(self._generate, work, self._slices(batch, 0))
        # written in order: the batch before this one (a batch without mouths waits its turn too)
        batch, self.in_hand = self.in_hand, batch
        if batch is not None:
            self._write(batch)

    def _generate(self, work, on_slice):
        """In the generator's thread: one batch's mouths. A failure stops the batches after it
        (the output leaves once it sees it)."""
        try:
            return self.stages.generator(work.mels, work.faces, on_slice=on_slice)
        except BaseException as err:
            self.stop.stop(err)
            raise

    def _slices(self, batch, index: int):
        """on_slice for the generator (`index` 0) or a face restorer after it (1, in this
        thread): the run's stop checked; here, the bar moves too (in the generator's thread,
        only how far it is: this thread reports it)."""
        def on_slice(done, total):
            batch.fraction = done / max(1, total)
            self.stop.check()
            if self.generating is None or index > 0:
                self.progress(batch.made)
        return part(on_slice, index, 1 if self.stages.face_restorer is None else 2)

    def _write(self, batch):
        """The batch's mouths pasted (waiting for the generator's thread, cancel checked) and
        its frames handed to the writer."""
        generated = batch.generated
        while isinstance(generated, Future):
            try:
                generated = generated.result(timeout=POLL_S)
            except FutureTimeout:
                self.stop.check()
                self.progress(batch.made)
        if batch.work is not None:
            # a face restorer on the CPU takes every core, as the generator does
            with self.cores if self.generating is None else contextlib.nullcontext():
                self.synced += paste_mouths(self.stages, self.settings, batch.regions, batch.faces_in_regions,
                                            batch.strengths, batch.work, generated, on_slice=self._slices(batch, 1))
        durations = batch.plan.durations()
        for k, out in zip(range(batch.start, batch.stop), batch.outs):
            self.writer.write(float(batch.plan.times[k]) + self.lead, float(durations[k]), out.rgb,
                              out.yuv, out.edits())
        self.kept_original += kept_original(batch.strengths, batch.usable)
        self.done = batch.stop
        self.progress(batch.stop)


@dataclass
class _Batch:
    """Output frames [start, stop) of `plan` on their way: their pictures, usable faces, mouth
    strengths, the generator's inputs (None: no mouth) and its output (or its Future)."""

    plan: object
    start: int
    stop: int
    outs: list
    usable: list  # each frame's usable face box, in frame pixels (None: no face)
    strengths: np.ndarray
    work: object = None  # steps.MouthInputs (None: no mouth)
    generated: object = None
    fraction: float = 0.0  # how far the generator is through it

    @property
    def regions(self) -> list:
        """The RGB regions the mouths go into (None where no face)."""
        return [o.region for o in self.outs]

    @property
    def faces_in_regions(self) -> list:
        """The face box inside each region, in the region's pixels."""
        return [o.face for o in self.outs]

    @property
    def made(self) -> float:
        """Output frames made so far, counting this batch's share the generator is through."""
        return self.start + (self.stop - self.start) * self.fraction


def expected_frames(mode, info, audio_end) -> int:
    """About how many frames the output will have (the progress bar's scale): the timeline of
    the frame count the file states, else the audio's frames."""
    fps = float(info.fps)
    if info.frames:
        return max(1, len(timeline(mode, np.arange(info.frames) / fps, audio_end, fps)))
    return max(1, math.ceil(audio_end * fps))


@dataclass
class OutputFrame:
    """One output frame in the making: the source's own YUV samples, and the RGB of the region
    the mouth may change (the face box on whole chroma blocks). Sources whose YUV cannot be
    kept (not 4:2:0, a crop on an odd pixel) are held as whole RGB frames instead."""

    yuv: np.ndarray | None
    rgb: np.ndarray | None  # the whole frame, only where there is no YUV to keep
    box: tuple | None  # the region, in frame pixels
    region: np.ndarray | None  # its RGB (a view into `rgb` when the frame is whole RGB)
    face: tuple | None  # the face box inside the region
    before: np.ndarray | None = None  # the region's RGB before the mouth, where the YUV is kept

    @classmethod
    def of(cls, picture, face, info, margin: float):
        """From a decoded video.Picture (its arrays are this frame's from here on); the region
        reaches `margin` x the face box's side past it on each side (inside the frame)."""
        from .. import video as video_mod

        yuv, rgb = picture.yuv, picture.rgb
        if face is None:
            return cls(yuv, rgb, None, None, None)
        grow = int(math.ceil(margin * max(face[2] - face[0], face[3] - face[1])))
        box = video_mod.even_box((max(0, face[0] - grow), max(0, face[1] - grow), min(info.width, face[2] + grow),
                                  min(info.height, face[3] + grow)), info.width, info.height)
        if yuv is not None:
            region = video_mod.rgb_region(yuv, box, info)
        else:
            box = (box[0], box[1], min(box[2], info.width), min(box[3], info.height))
            region = rgb[box[1]:box[3], box[0]:box[2]]
        x1, y1 = box[0], box[1]
        return cls(yuv, rgb, box, region, (face[0] - x1, face[1] - y1, face[2] - x1, face[3] - y1),
                   None if yuv is None else region.copy())  # only the YUV route compares

    def edits(self) -> list:
        """What the writer converts back: the region before and after the mouth."""
        return [] if self.box is None or self.yuv is None else [(self.box, self.before, self.region)]
