"""The VIDEO route: a file (or a VIDEO's stream) in, H.264 + AAC out, in one decoding pass.

    probe -> sound -> set up -> one pass -> what follows the first run -> Report

The one pass decodes each frame once, in a thread of its own, and keeps it in the source's own
YUV (video.Picture). The face tracker, in a thread of its own too, reads from a window of these
frames (a region's RGB for the detector, luma for the cut thumbnails); each frame's box is
finished (gaps bridged, smoothed) as soon as no later frame can change it, and here the frames
are then lip-synced a batch at a time and handed to the encoder, which runs in a thread of its
own. So the detector looks at the next keyframes while the generator makes the last ones' mouths
(on a CPU the two take turns: each takes every core). A generator that leaves the cores free (a
GPU) works in a thread of its own too, on one batch while the last one's mouths are pasted and
the next one is prepared. Only the face's region is converted to RGB and back; the rest of every
frame is written as it was decoded.

What the output shows after the clip's first run (the last frame held in `sequential`, the
loops of `repetitive` and `pingpong`) is read from the file again, by index, in bounded memory.

Held at once, whatever the clip's length: the frames the tracker still reads (at most
`keyframe_interval` x (`max_keyframe_group` + 1) + 4 frames behind the newest), the frames
whose boxes wait for the finishing margin (half the smoothing window + the bridged gap + 2),
one batch (or two of half the size, where the generator has a thread of its own), and the three
threads' queues (DECODE_AHEAD, TRACK_AHEAD, and a batch's worth waiting for the encoder:
video.writer.WRITE_AHEAD_BYTES): about 210 frames of 1080p YUV (~650 MB) with the default
settings. The sound track is held whole.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .pipeline import (Hooks, Report, detection_errors, face_name, kept_original,
                       lipsync_images, log_shots, mouth_inputs, paste_mouths, set_up,
                       speech_strengths, timeline, tracker_config, usable_boxes, validate_images)
from .settings import HaloLipsyError, Settings

logger = logging.getLogger("HaloLipsy")

BATCH_BYTES = 256 << 20  # the frames of one batch, and a re-read block (~40 frames of 1080p)


def lipsync_video(source, destination, settings: Settings, hooks: Hooks, audio=None,
                  face_mask=None, edits=None, face_marker=None, face_marker_image=None) -> Report:
    """The VIDEO route: decode `source` (a path or a file-like object PyAV can open), lip-sync
    it to `audio` (ComfyUI AUDIO, starting with the first frame; None: the video's own sound,
    wherever it starts) and encode H.264 + AAC at `settings.quality` to `destination` (a path
    whose extension names the container, or a writable file-like object: MP4). `edits`
    (video.Edits: a trim, a crop, the size after them) says which part of the file is used.
    `face_marker` strokes are painted on `face_marker_image` (the pictures; see tracker_config).
    Memory does not grow with the clip's length (see the module notes).

    Each frame's audio window comes from its own presentation time, so variable frame rate
    video and sound that starts before or after the picture stay in sync. The output shows
    what a player shows of the input: upright, same colour, same A/V offset. On any failure or
    interrupt the destination file is deleted."""
    from . import video as video_mod

    video_mod.container_format(destination)
    info = video_mod.probe(source, edits or video_mod.Edits())
    sound = _video_sound(source, info, audio)  # what the mouth follows
    track = sound if audio is None or settings.output_sound == "speech" else \
        _video_sound(source, info, None)  # what the output carries
    if info.colour.hdr:
        logger.info("Halo-Lipsy: HDR video (%s): the output keeps its colour description, in "
                    "8 bits.", info.colour.hdr)
    face_mask, face_marker = (_upright_mask(m, info) for m in (face_mask, face_marker))
    if face_marker_image is not None:  # turned as its strokes are
        face_marker_image = _upright_mask(face_marker_image[..., 0], info, face_marker_image)
    config = tracker_config(settings, face_mask, face_marker, info.height, info.width,
                            face_marker_image=face_marker_image)
    stages = set_up(sound.for_mel(), float(info.fps), settings, hooks)
    t0 = time.perf_counter()
    with _encoder(destination, info.width, info.height, info.fps, settings.quality,
                  info.colour.for_output(info.width, info.height, info.coded_size),
                  track.for_output()) as writer:
        with _Output(writer, info, sound.end, track.lead, stages, settings, hooks) as output:
            seen = _one_pass(source, info, output, stages, settings, hooks, face_mask, config)
            plan = timeline(settings.mode, seen.relative_times(info.start), sound.end,
                            float(info.fps), info.last_frame_duration(seen.times[-1], seen.last_duration))
            output.first_run(seen, len(seen.times), plan)
            reader = _Rereader(source, info, seen, output.kept_last)
            output.after_first_run(plan, reader)
        writer.finish(plan.end + track.lead)
    hooks.progress(1.0)
    log_shots(seen.usable, seen.relative_times(info.start), seen.stats, face_name(config))
    n_video = len(seen.times)
    return stages.report(
        settings, frames_in=n_video, frames_out=len(plan), faces_found=seen.faces_found,
        frames_shown=n_video, frames_synced=output.synced, detection_s=seen.detection_s,
        generation_s=time.perf_counter() - t0, detection_stats=seen.stats,  # detection alongside
        seeks=reader.seeks, duration_s=plan.end + track.lead, face=face_name(config),
        frames_kept_original=output.kept_original)


@dataclass
class _Seen:
    """What the pass learned of the input frames: each one's time (file clock), pts and usable
    face box, and what finding the boxes cost."""

    times: list = field(default_factory=list)
    pts: list = field(default_factory=list)
    usable: list = field(default_factory=list)
    last_duration: float | None = None  # how long the file shows its last frame, when it says
    stats: object = None
    detection_s: float = 0.0

    @property
    def faces_found(self) -> int:
        return sum(u is not None for u in self.usable)

    def relative_times(self, start: float, count: int | None = None) -> np.ndarray:
        """The first `count` frames' times from the first frame on (all by default)."""
        return np.asarray(self.times[:count], dtype=np.float64) - start


class _FaceBoxes:
    """Each decoded frame's finished face box, as soon as it is final: the tracker's, reading
    the frames' window (face_detect.BoxStream finishes them), or the face_mask's for every
    frame."""

    def __init__(self, info, stages, settings, hooks, face_mask, config, cores):
        from . import face_detect as fd

        self.height, self.width = info.height, info.width
        self.window = fd.WindowFrames(info.height, info.width)  # frames the tracker may still read
        self.taken, self.seconds, self.run, self.tracker = 0, 0.0, None, None
        if face_mask is not None:  # every frame's box: the same, made usable once
            box = np.asarray(_single_mask_box(face_mask, info.width, info.height,
                                              stages.box_settings), dtype=np.int64)
            self.mask_usable = usable_boxes(box[None], info.height, info.width)[0]
            return
        self.detector = _TakingTurns(hooks.detector(settings.face_detect_batch), cores)
        self.tracker = fd.FaceTracker(self.detector, config, recognizer=hooks.recognizer())
        self.run = self.tracker.start(self.window, info.frames)
        self.finishing = fd.BoxStream(info.height, info.width, stages.box_settings)

    def each_frame(self, source, info, left):
        """Each decoded frame, (time, pts, how long the file shows it, Picture), with the usable
        boxes (None: no face) of the frames that became final once it arrived; after the last
        one, (None, the rest). `left()`: the output has stopped (the tracker stops at its next
        batch)."""
        from . import video as video_mod

        if self.tracker is not None:
            self.tracker.check_interrupt = lambda: _stop_if(left())
        count = 0
        with video_mod.decode_pictures(source, info, lambda: _stop_if(left())) as decoded:
            for item in decoded:
                self.window.put(count, item[3])
                count += 1
                yield item, self._arrived(count)
                self.window.drop_before(self.needed_from)
        if count:
            yield None, self._arrived(count, last=True)

    @property
    def needed_from(self) -> int:
        """Frames below this are never read for a box again."""
        return self.run.needed_from if self.run is not None else self.taken

    def _arrived(self, count: int, last: bool = False) -> list:
        """Frames [0, count) are in the window (`last`: and no more come): the usable boxes
        (None: no face) of the frames that became final since the last call."""
        if self.run is None:
            usable, self.taken = [self.mask_usable] * (count - self.taken), count
            return usable
        started = time.perf_counter()
        if last:
            raw, starts = self.run.finish()
            boxes = self.finishing.take(raw, starts, self.run.settled, finished=True)
        else:
            self.run.advance(count)
            boxes = self.finishing.take(self.run.boxes, self.run.shot_starts, self.run.settled)
        self.taken += len(boxes)
        self.seconds += time.perf_counter() - started
        return usable_boxes(boxes, self.height, self.width)


TRACK_AHEAD = 64  # frames the tracking thread may hand over before the output takes them (~200 MB at
# 1080p): more than a keyframe group (40), so the detector works on the next group while the
# output makes the frames of the last one


def _one_pass(source, info, output, stages, settings, hooks, face_mask, config) -> _Seen:
    """Decode once: each frame tracked (its box as soon as it is final) in a thread of its own,
    the decoder's caller, and here the clip's first run lip-synced and encoded as its frames'
    boxes and times become known. Returns what was seen of every frame."""
    from .ahead import run_ahead

    seen = _Seen()
    with detection_errors(info.width, info.height):
        faces = _FaceBoxes(info, stages, settings, hooks, face_mask, config, output.cores)
        with run_ahead(lambda left: faces.each_frame(source, info, left), TRACK_AHEAD,
                       "Halo-Lipsy tracker", while_waiting=hooks.check_interrupt) as tracked:
            for frame, usable in tracked:
                seen.usable += usable
                if frame is None:  # after the last frame: the rest of the boxes
                    break
                t, pts, said, picture = frame
                i = len(seen.times)
                output.pictures[i] = picture
                seen.times.append(t)
                seen.pts.append(pts)
                seen.last_duration = said
                # a frame is shown once its box is final and its length known (the next one is here)
                output.first_run(seen, min(len(seen.usable), i))
                output.drop_shown()
                if i % 8 == 0:  # the bar moves while the first batch's boxes are found
                    hooks.check_interrupt()
                    output.progress(min(i, output.done + output.batch))
        if not seen.times:
            raise HaloLipsyError("the video has no frames (0 s long, or none could "
                                 "be decoded). Load another video.")
    seen.stats, seen.detection_s = None if faces.tracker is None else faces.tracker.stats, faces.seconds
    return seen


class _TakingTurns:
    """The detector, computing only while a generator that takes every core does not: on a CPU
    the two would slow each other down (both run on all of torch's threads)."""

    def __init__(self, detector, cores):
        self.detector, self.cores = detector, cores

    def __getattr__(self, name):  # batch_size, min_side: the detector's own
        return getattr(self.detector, name)

    def detect(self, images):
        with self.cores:
            return self.detector.detect(images)


class _Left(Exception):
    """The output stopped (an error, a cancel): the tracker stops at its next batch."""


def _stop_if(left: bool):
    if left:
        raise _Left()


class _Output:
    """The output in the making: frames lip-synced a batch at a time, in the timeline's order,
    and handed to the writer; the progress bar moves per generator slice.

    A generator that takes every core (on the CPU) makes each batch's mouths here, in turn with
    the detector and the encoder. Any other (a GPU) makes them in a thread of its own: while it
    works on one batch, this thread pastes the last one's mouths, hands it to the encoder and
    prepares the next, so the CPU's work and the generator's overlap. Then two batches are in
    hand at once, each half the size (the same bytes held)."""

    def __init__(self, writer, info, audio_end, lead, stages, settings, hooks):
        self.writer, self.info, self.audio_end, self.lead = writer, info, audio_end, lead
        self.stages, self.settings, self.hooks = stages, settings, hooks
        self.pictures: dict = {}  # decoded frames (video.Picture) by index, until shown
        self.cores = threading.Lock()  # held by a generator that takes every core, and the detector
        overlapped = not stages.generator.shares_the_cpu
        # held per frame of a batch: its YUV (1.5 B a pixel) and the RGB of its face's region
        frame_bytes = info.width * info.height * 3 * (2 if overlapped else 1)
        self.batch = max(1, min(settings.inference_batch, BATCH_BYTES // frame_bytes))
        self.generating = (ThreadPoolExecutor(1, thread_name_prefix="Halo-Lipsy generator")
                           if overlapped else None)
        self.leaving = threading.Event()  # the output stops: the generator's thread stops too
        self.in_hand = None  # the batch the generator's thread works on (_Batch)
        self.expected = _expected_frames(settings.mode, info, audio_end)  # for the progress bar
        self.taken = self.done = self.synced = self.kept_original = 0  # frames batched, written
        self.ended = False  # the output ended inside the clip's first run (the audio was shorter)
        self.kept_last = None  # a copy of the last frame, where the output holds it
        self.reported = 0.0  # the progress bar's position: it never moves back

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """However the output ends: the generator's thread stops at its next slice, and is gone."""
        self.leaving.set()
        if self.generating is not None:
            self.generating.shutdown(wait=True)

    def progress(self, frames: float):
        """Move the bar to `frames` output frames (of the expected count)."""
        self.reported = max(self.reported, min(0.99, frames / self.expected))
        self.hooks.progress(self.reported)

    def drop_shown(self):
        """Forget the decoded frames never shown again in the first run (all of them once the
        output has ended)."""
        for k in [k for k in self.pictures if self.ended or k < self.taken]:
            del self.pictures[k]

    def first_run(self, seen, ready: int, plan=None):
        """Show the input frames in order up to `ready` (their boxes final, their lengths known),
        whole batches at a time; with the whole clip's `plan`, all of its first run."""
        if plan is None:
            if self.ended or ready - self.taken < self.batch:
                return
            # the timeline of the frames known so far has the whole clip's first `ready` entries
            plan = timeline(self.settings.mode, seen.relative_times(self.info.start, ready + 1),
                            self.audio_end, float(self.info.fps))
            self.ended = len(plan) < ready
            stop = len(plan) if self.ended else self.taken + (ready - self.taken) // self.batch * self.batch
        else:
            firsts = np.flatnonzero(plan.source[:ready] != np.arange(min(ready, len(plan))))
            stop = int(firsts[0]) if len(firsts) else min(ready, len(plan))
            if stop < len(plan) and plan.source[stop] == stop - 1:  # the last frame is held
                self.kept_last = self.pictures[stop - 1].copy()
        for start in range(self.taken, stop, self.batch):
            end = min(stop, start + self.batch)
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
        self.hooks.check_interrupt()
        outs = [_Picture.of(p, face, self.info) for p, face in zip(pictures, faces)]
        strengths = speech_strengths(self.stages, self.settings, plan.positions[start:stop],
                                     self.hooks.check_interrupt)
        batch = _Batch(plan, start, stop, outs, faces, strengths)
        # the uint8 regions in place: the compositing works in float only where the mouth is
        work = batch.work = mouth_inputs(self.stages, self.settings, batch.regions, batch.boxes,
                                         plan.positions[start:stop], strengths)
        self.taken = stop
        if self.generating is None:
            if work is not None:  # it takes every core: encoding waits, and detection
                self.writer.drain()
                with self.cores:
                    batch.generated = self.stages.generator(work.mels, work.faces,
                                                            on_slice=self._slices(batch))
            self._write(batch)
            return
        if work is not None:
            batch.generated = self.generating.submit(self._generate, work, self._slices(batch))
        # written in order: the batch before this one (a batch without mouths waits its turn too)
        batch, self.in_hand = self.in_hand, batch
        if batch is not None:
            self._write(batch)

    def _generate(self, work, on_slice):
        """In the generator's thread: one batch's mouths. A failure stops the batches after it
        (the output leaves once it sees it)."""
        try:
            return self.stages.generator(work.mels, work.faces, on_slice=on_slice)
        except BaseException:
            self.leaving.set()
            raise

    def _slices(self, batch):
        """on_slice for the generator: here, a cancel check and the bar; in the generator's
        thread, only how far it is (this thread reports it) and a stop once the output left."""
        def on_slice(done, total):
            batch.fraction = done / max(1, total)
            if self.generating is not None:
                _stop_if(self.leaving.is_set())
            else:
                self.hooks.check_interrupt()
                self.progress(batch.made)
        return on_slice

    def _write(self, batch):
        """The batch's mouths pasted (waiting for the generator's thread, cancel checked) and
        its frames handed to the writer."""
        generated = batch.generated
        while isinstance(generated, Future):
            try:
                generated = generated.result(timeout=0.1)
            except FutureTimeout:
                self.hooks.check_interrupt()
                self.progress(batch.made)
        if batch.work is not None:
            self.synced += paste_mouths(self.settings, batch.regions, batch.boxes, batch.strengths,
                                        batch.work, generated)
        durations = batch.plan.durations()
        for k, out in zip(range(batch.start, batch.stop), batch.outs):
            self.writer.write(float(batch.plan.times[k]) + self.lead, float(durations[k]), out.rgb,
                              out.yuv, out.edits())
        self.kept_original += kept_original(batch.strengths, batch.faces)
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
    faces: list
    strengths: np.ndarray
    work: object = None  # pipeline.MouthInputs (None: no mouth)
    generated: object = None
    fraction: float = 0.0  # how far the generator is through it

    @property
    def regions(self) -> list:
        """The RGB regions the mouths go into (None where no face)."""
        return [o.region for o in self.outs]

    @property
    def boxes(self) -> list:
        """The face box inside each region."""
        return [o.face for o in self.outs]

    @property
    def made(self) -> float:
        """Output frames made so far, counting this batch's share the generator is through."""
        return self.start + (self.stop - self.start) * self.fraction


def _expected_frames(mode, info, audio_end) -> int:
    """About how many frames the output will have (the progress bar's scale): the timeline of
    the frame count the file states, else the audio's frames."""
    fps = float(info.fps)
    if info.frames:
        return max(1, len(timeline(mode, np.arange(info.frames) / fps, audio_end, fps)))
    return max(1, math.ceil(audio_end * fps))


class _Rereader:
    """Input frames read again by index (video.FrameReader, opened at the first read), the
    held last frame from its copy; each read is a picture of its own."""

    def __init__(self, source, info, seen, kept_last):
        self.source, self.info, self.seen, self.kept_last = source, info, seen, kept_last
        self.usable = seen.usable
        self.frames = None

    @property
    def seeks(self) -> int:
        return 0 if self.frames is None else self.frames.seeks

    def read(self, index: int):
        from . import video as video_mod

        if self.kept_last is not None and index == len(self.seen.times) - 1:
            return self.kept_last.copy()
        if self.frames is None:
            self.frames = video_mod.FrameReader(self.source, self.info, self.seen.pts,
                                                self.seen.times, BATCH_BYTES)
        return video_mod.Picture.of(self.frames.read(index), self.info)


@dataclass
class _Picture:
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
    def of(cls, picture, face, info):
        """From a decoded video.Picture (its arrays are this frame's from here on)."""
        from . import video as video_mod

        yuv, rgb = picture.yuv, picture.rgb
        if face is None:
            return cls(yuv, rgb, None, None, None)
        box = video_mod.even_box(face, info.width, info.height)
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


def _upright_mask(mask, info, picture=None):
    """A MASK painted on a frame as the file stores it (ComfyUI 0.3.64's Get Video Components
    hands a phone video's frames over unturned: landscape), turned upright as the frames are.
    Told apart by its size, so a quarter turn only; a mask of the upright size is left as it is.
    With `picture` (an IMAGE the size of `mask`), the picture is turned instead, likewise."""
    import torch

    if mask is None or info.quarter_turns % 2 == 0 or info.edits.crop is not None:
        return mask if picture is None else picture
    m = torch.as_tensor(mask)
    if m.ndim == 4 and m.shape[-1] == 1:  # a MASK that went through an IMAGE-shaped node
        m = m[..., 0]
    stored = (info.coded_size[1], info.coded_size[0])  # (height, width) before the turn
    if m.ndim < 2 or tuple(m.shape[-2:]) != stored:
        return mask if picture is None else picture
    if picture is not None:
        return torch.rot90(torch.as_tensor(picture), k=info.quarter_turns, dims=(1, 2))
    logger.info("Halo-Lipsy: the mask was painted on the stored (unturned) frame of this %dx%d "
                "video; turned upright to match.", info.width, info.height)
    return torch.rot90(m, k=info.quarter_turns, dims=(-2, -1))


@dataclass
class _Sound:
    """The sound on the video's clock: `samples` ([C, T] at `rate`) start `lead` seconds before
    the first frame (sound that starts after the picture is padded with silence); `end` is where
    it ends, in seconds from the first frame."""

    samples: np.ndarray
    rate: int
    lead: float
    channels: tuple | None = None  # FFmpeg's channel names, when the file says

    @property
    def lead_samples(self) -> int:
        return int(round(self.lead * self.rate))

    @property
    def end(self) -> float:
        return (self.samples.shape[1] - self.lead_samples) / self.rate

    def for_mel(self) -> dict:
        """AUDIO from the first frame on (what the mouth follows): the dialogue-keeping mono mix,
        made by channel name (the centre is the centre, whatever the layout)."""
        from .audio import downmix

        mono = downmix(self.samples[:, self.lead_samples:], self.channels)
        return {"waveform": mono[None, None], "sample_rate": self.rate}

    def for_output(self):
        """The whole track as the writer's video.Sound (the writer ends it where the output
        ends)."""
        return _aac_sound(self.samples, self.rate, self.channels)


def _aac_sound(samples, rate, channels=None):
    """A video.Sound: `samples` in their own layout where AAC carries it (by channel name; a
    ComfyUI AUDIO's channels: FFmpeg's default for the count), else mixed to stereo by name."""
    from . import audio as audio_mod
    from . import video as video_mod

    names = audio_mod.channel_names(samples, channels)
    layout = video_mod.aac_layout(names)
    if layout is None:
        samples, layout = audio_mod.stereo_mix(samples, names), "stereo"
    return video_mod.Sound(samples, int(rate), layout)


def _video_sound(source, info, audio) -> _Sound:
    """The connected AUDIO (it starts with the first frame), or the video's own sound placed by
    its start time relative to the first frame."""
    from . import audio as audio_mod
    from . import video as video_mod

    if audio is not None:
        samples, rate = audio_mod.read_audio(audio)
        return _Sound(samples, rate, 0.0)
    track = video_mod.read_audio(source, info.edits)
    if track is None:
        raise HaloLipsyError(
            "the video has no sound, and the speech was not given (or output_sound "
            "is 'video'): connect the speech (Load Audio, a TTS node) to the node's 'audio' "
            "input, or pass --audio SPEECH; with output_sound 'video' the video needs its own "
            "sound.")
    offset = track.start - info.start  # > 0: the sound starts after the first frame
    samples = track.samples
    if offset > 0:
        pad = int(round(offset * track.rate))
        samples = np.concatenate([np.zeros((samples.shape[0], pad), np.float32), samples], axis=1)
    sound = _Sound(samples, track.rate, max(0.0, -offset), track.channels)
    if sound.end <= 0:
        raise HaloLipsyError(
            "the video's sound ends before its picture starts; connect the speech "
            "to the 'audio' input (or pass --audio).")
    if abs(offset) >= 0.001:
        logger.info("Halo-Lipsy: the sound starts %.3f s %s the picture; kept that way.",
                    abs(offset), "after" if offset > 0 else "before")
    return sound


@contextlib.contextmanager
def _encoder(destination, *writer_args):
    """A video.VideoWriter to `destination` that deletes what it wrote when anything fails
    (an error, an interrupt): nothing half-written stays behind."""
    from . import video as video_mod

    writer = None
    try:
        writer = video_mod.VideoWriter(destination, *writer_args)
        yield writer
    except BaseException:
        if writer is not None:
            writer.abort()
        elif isinstance(destination, (str, Path)):
            Path(destination).unlink(missing_ok=True)
        raise


def lipsync_components(images, audio, destination, settings: Settings, hooks: Hooks,
                       face_mask=None, face_marker=None, own_sound=None,
                       face_marker_image=None) -> Report:
    """A VIDEO held as frames in memory (Create Video's output, at `settings.fps`, with its sound
    `own_sound`): the IMAGE route, then encoded like the streaming route's output, with the same
    quality, the same face_mask rule (one frame for the whole clip) and the same output_sound
    choice. `audio` is the speech (None: the video's own sound). Its frames are RGB with no YUV
    history: the output is tagged BT.709, limited range, as ComfyUI tags the videos it makes."""
    from . import audio as audio_mod
    from . import video as video_mod

    video_mod.container_format(destination)
    if face_mask is not None:
        frames = validate_images(images)
        _one_mask_frame(face_mask, int(frames.shape[2]), int(frames.shape[1]))
    keep_own = audio is not None and settings.output_sound == "video"
    if keep_own and own_sound is None:
        raise HaloLipsyError("output_sound is 'video' but this video has no sound of "
                             "its own; choose output_sound 'speech'.")
    result = lipsync_images(images, audio if audio is not None else own_sound, settings, hooks,
                            face_mask, face_marker, face_marker_image)
    track = result.audio
    if keep_own:
        track = audio_mod.fit_audio(*audio_mod.read_audio(own_sound), len(result.images), settings.fps)
    sound = _aac_sound(track["waveform"][0].numpy(), track["sample_rate"])
    _encode_frames(result.images, destination, settings, sound, hooks)
    return result.report


def _encode_frames(frames, destination, settings, sound, hooks):
    """IMAGE frames (float32 [N, H, W, C]) and their video.Sound as H.264 + AAC at
    settings.quality."""
    import torch

    from . import video as video_mod

    n, height, width = (int(v) for v in frames.shape[:3])
    bt709 = video_mod.Colour(matrix=1, range=1, primaries=1, trc=1)
    with _encoder(destination, width, height, Fraction(settings.fps).limit_denominator(100000),
                  settings.quality, bt709, sound) as writer:
        for i in range(n):
            hooks.check_interrupt()
            rgb = (frames[i, :, :, :3].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
            writer.write(i / settings.fps, 1 / settings.fps, rgb.numpy())
        writer.finish()


def _one_mask_frame(face_mask, width, height):
    """The video routes take one mask frame, drawn on the upright frame the user sees."""
    shape = tuple(getattr(face_mask, "shape", ()))
    if len(shape) == 3 and shape[0] > 1:
        raise HaloLipsyError(
            f"face_mask has {shape[0]} frames; the video node takes a single frame "
            "(a fixed face region for the whole clip). Use one mask frame.")
    if len(shape) >= 2 and tuple(shape[-2:]) != (height, width) and not (len(shape) == 4 and shape[-1] == 1):
        raise HaloLipsyError(f"face_mask is {shape[-1]}x{shape[-2]} but the video is "
                             f"{width}x{height} (upright, as shown); draw the mask on a frame of "
                             "this video.")


def _single_mask_box(face_mask, width, height, box_settings):
    from . import face_detect as fd

    _one_mask_frame(face_mask, width, height)
    box = fd.mask_boxes(face_mask, 1, height, width, box_settings)[0]
    if box[0] < 0:
        raise HaloLipsyError("face_mask is empty: paint the face region white.")
    return box
