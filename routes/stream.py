"""The streamed VIDEO route, read top to bottom: a file (or a VIDEO's stream) in, H.264 + AAC out,
in one decoding pass.

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

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..common.errors import HaloLipsyError
from ..common.stop import Stopped, StopSignal
from ..settings import Settings
from .masks import single_mask_box, upright_mask
from .media import encoder, video_sound
from . import output as output_mod
from .output import StreamOutput, TakingTurns
from .steps import Hooks, Report, detection_errors, face_name, log_shots, set_up, timeline, tracker_config, usable_boxes

logger = logging.getLogger("HaloLipsy")


def lipsync_video(source, destination, settings: Settings, hooks: Hooks, audio=None,
                  face_mask=None, edits=None, face_marker=None, face_marker_image=None,
                  restore_model=None) -> Report:
    """The VIDEO route: decode `source` (a path or a file-like object PyAV can open), lip-sync
    it to `audio` (ComfyUI AUDIO, starting with the first frame; None: the video's own sound,
    wherever it starts) and encode H.264 + AAC at `settings.quality` to `destination` (a path
    whose extension names the container, or a writable file-like object: MP4). `edits`
    (video.Edits: a trim, a crop, the size after them) says which part of the file is used.
    `face_marker` strokes are painted on `face_marker_image` (the pictures; see tracker_config).
    `restore_model` (a spandrel super-resolution or face restoration model) sharpens the
    generated mouths. Memory does not grow with the clip's length (see the module notes).

    Each frame's audio window comes from its own presentation time, so variable frame rate
    video and sound that starts before or after the picture stay in sync. The output shows
    what a player shows of the input: upright, same colour, same A/V offset. On any failure or
    interrupt the destination file is deleted."""
    from .. import video as video_mod

    stop = StopSignal(hooks.check_interrupt)
    with stop.scope():
        video_mod.container_format(destination)
        info = video_mod.probe(source, edits or video_mod.Edits())
        sound = video_sound(source, info, audio)  # what the mouth follows
        track = sound if audio is None or settings.output_sound == "speech" else \
            video_sound(source, info, None)  # what the output carries
        if info.colour.hdr:
            logger.info("Halo-Lipsy: HDR video (%s): the output keeps its colour description, in "
                        "8 bits.", info.colour.hdr)
        face_mask, face_marker = (upright_mask(m, info) for m in (face_mask, face_marker))
        if face_marker_image is not None:  # turned as its strokes are
            face_marker_image = upright_mask(face_marker_image[..., 0], info, face_marker_image)
        config = tracker_config(settings, face_mask, face_marker, info.height, info.width,
                                face_marker_image=face_marker_image)
        stages = set_up(sound.for_mel(), float(info.fps), settings, hooks, restore_model)
        t0 = time.perf_counter()
        with stages.placed(), encoder(destination, info.width, info.height, info.fps, settings.quality,
                                      info.colour.for_output(info.width, info.height, info.coded_size),
                                      track.for_output()) as writer:
            with StreamOutput(writer, info, sound.end, track.lead, stages, settings, hooks, stop) as output:
                seen = _one_pass(source, info, output, stages, settings, hooks, face_mask, config, stop)
                plan = timeline(settings.mode, seen.relative_times(info.start), sound.end, float(info.fps),
                                info.last_frame_duration(seen.times[-1], seen.last_duration))
                output.finish_first_run(seen, plan)
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
        from .. import face_detect as fd

        self.height, self.width = info.height, info.width
        self.window = fd.WindowFrames(info.height, info.width)  # frames the tracker may still read
        self.taken, self.seconds, self.run, self.tracker = 0, 0.0, None, None
        if face_mask is not None:  # every frame's box: the same, made usable once
            box = np.asarray(single_mask_box(face_mask, info.width, info.height,
                                              stages.box_settings), dtype=np.int64)
            self.mask_usable = usable_boxes(box[None], info.height, info.width)[0]
            return
        self.detector = TakingTurns(hooks.detector(settings.face_detect_batch), cores)
        self.tracker = fd.FaceTracker(self.detector, config, recognizer=hooks.recognizer())
        self.run = self.tracker.start(self.window, info.frames)
        self.finishing = fd.BoxStream(info.height, info.width, stages.box_settings)

    def tracked_frames(self, source, info, left, stop: StopSignal):
        """Each decoded frame, (time, pts, how long the file shows it, Picture), with the usable
        boxes (None: no face) of the frames that became final once it arrived; after the last
        one, (None, the rest). `left()`: the output has left or the run stopped (the tracker
        stops at its next batch)."""
        from .. import video as video_mod

        def check():
            if left():
                raise Stopped()

        if self.tracker is not None:
            self.tracker.check_interrupt = check
        count = 0
        with video_mod.decode_pictures(source, info, stop) as decoded:
            for item in decoded:
                self.window.put(count, item[3])
                count += 1
                yield item, self._arrived(count)
                self.window.drop_before(self.needed_from)
        if count:
            yield None, self._arrived(count, last=True)

    @property
    def needed_from(self) -> int:
        """Frames below this are never read for a box again (it never goes down: read from
        another thread, it is a bound that holds)."""
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


def _one_pass(source, info, output, stages, settings, hooks, face_mask, config, stop) -> _Seen:
    """Decode once: each frame tracked (its box as soon as it is final) in a thread of its own,
    the decoder's caller, and here the clip's first run lip-synced and encoded as its frames'
    boxes and times become known. Returns what was seen of every frame."""
    from ..common.ahead import run_ahead

    seen = _Seen()
    with detection_errors(info.width, info.height):
        faces = _FaceBoxes(info, stages, settings, hooks, face_mask, config, output.cores)
        with run_ahead(lambda left: faces.tracked_frames(source, info, left, stop), TRACK_AHEAD,
                       "Halo-Lipsy tracker", stop) as tracked:
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
                output.show_ready(seen, min(len(seen.usable), i), faces.needed_from)
                output.drop_shown()
                if i % 8 == 0:  # the bar moves while the first batch's boxes are found
                    stop.check()
                    output.progress(min(i, output.done + output.batch))
        if not seen.times:
            raise HaloLipsyError("the video has no frames (0 s long, or none could "
                                 "be decoded). Load another video.")
    seen.stats, seen.detection_s = None if faces.tracker is None else faces.tracker.stats, faces.seconds
    return seen


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
        from .. import video as video_mod

        if self.kept_last is not None and index == len(self.seen.times) - 1:
            return self.kept_last.copy()
        if self.frames is None:
            self.frames = video_mod.FrameReader(self.source, self.info, self.seen.pts,
                                                self.seen.times, output_mod.BATCH_BYTES)
        return video_mod.Picture.of(self.frames.read(index), self.info)


