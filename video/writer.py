"""The output: H.264 + AAC, frames written as they come, sound muxed alongside."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .decode import REGION_MARGIN, reformat
from .probe import RANGE_JPEG, Colour
from .sound import AUDIO_CHUNK, aac_rate, output_samples, resample
from .source import VideoInputError
from .yuv import even, plane_array, planes_of

# what may wait for the encoding thread: about a batch of the VIDEO route's frames (41 of 1080p),
# so the encoder works through one batch while the generator makes the next; 8 frames at least
WRITE_AHEAD_BYTES = 128 << 20
WRITE_AHEAD_MIN = 8
OUTPUT_TIME_BASE = Fraction(1, 90000)  # fine enough for any frame time (the MPEG clock)
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}  # what the output may be


# ---------------------------------------------------------------------------- the output


def container_format(destination) -> str:
    """The muxer for `destination`'s extension (mp4, mov, mkv); a file object gets MP4."""
    if not isinstance(destination, (str, os.PathLike)):
        return "mp4"
    suffix = Path(destination).suffix.lower()
    if suffix not in CONTAINERS:
        raise VideoInputError(f"the output '{destination}' must end in "
                              f"{', '.join(CONTAINERS)} (H.264 + AAC fits those containers).")
    return CONTAINERS[suffix]


@dataclass
class Sound:
    """An output's sound track: samples [channels, T] float32 from time 0, their rate, and the
    AAC layout they are in (aac_layout)."""

    samples: np.ndarray
    rate: int
    layout: str


class VideoWriter:
    """H.264 + AAC, frames written as they come, each at its own time. `quality` is x264's CRF
    (1 best, 51 worst; 18-23 look like the source). `colour` is the source's: the YUV is made
    with its matrix and range and carries its description (untagged stays untagged). The
    `sound` is muxed as the picture goes (the streams interleave) and an MP4 or MOV file gets its
    index at the front, so it starts playing before it has fully arrived. On any failure,
    `abort()` closes and deletes the file, so nothing half-written stays behind. The container
    follows the destination's extension (a file object gets MP4)."""

    def __init__(self, destination, width: int, height: int, fps: Fraction, quality: int,
                 colour: Colour = Colour(), sound: Sound | None = None):
        import av

        self.destination = destination
        fmt = container_format(destination)
        faststart = fmt in ("mp4", "mov") and isinstance(destination, (str, os.PathLike))
        self.container = av.open(destination, mode="w", format=fmt,
                                 options={"movflags": "+faststart"} if faststart else {})
        stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100000))
        stream.width, stream.height = even(width), even(height)
        stream.pix_fmt = "yuv420p"
        stream.time_base = OUTPUT_TIME_BASE
        context = stream.codec_context
        context.time_base = OUTPUT_TIME_BASE
        # the source's description goes into the H.264 VUI and the container; unspecified
        # values write nothing, so an untagged source stays untagged
        context.colorspace, context.color_range = colour.matrix, RANGE_JPEG if colour.full else colour.range
        context.color_primaries, context.color_trc = colour.primaries, colour.trc
        stream.options = {"crf": str(int(quality)), "preset": "veryfast"}
        # x264's frame threads, as the ffmpeg command line uses them (PyAV's default, sliced
        # threads, kept this VM's 2 cores 30% idle)
        context.thread_type, context.thread_count = "FRAME", 0
        self.stream, self.colour = stream, colour
        self.matrix = colour.conversion_matrix(width, height)
        self.audio = None if sound is None or sound.samples.shape[-1] == 0 else _AudioOut(self.container, sound)
        self.last_pts = -1
        self.durations: dict[int, int] = {}  # pts -> duration of frames still in the encoder
        self.end_pts = 0  # where the last frame written ends
        self.first_dts = None
        # the encoding runs in a thread of its own (x264 and PyAV release the GIL), so decoding
        # and the work on the next frames go on meanwhile; frames are taken in order, so the
        # file's bytes do not depend on timing
        ahead = max(WRITE_AHEAD_MIN, WRITE_AHEAD_BYTES // (width * height * 3 // 2))  # frames
        self.queue: queue.Queue = queue.Queue(maxsize=ahead)
        self.failure: BaseException | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._encode_queued, name="Halo-Lipsy encoder", daemon=True)
        self.thread.start()

    def write(self, time_s: float, duration_s: float, rgb: np.ndarray | None = None,
              yuv: np.ndarray | None = None, edits=()):
        """Encode one frame shown at `time_s` for `duration_s` (the file then says how long each
        frame lasts, the last one included, so the picture ends where the sound does): from
        `yuv` (`to_yuv` of the source frame, the source's own samples) with only the pixels
        `edits` changed converted from RGB, each edit (box, its RGB before, its RGB after) with
        the box on whole 2x2 chroma blocks (`even_box`); or, without `yuv`, whole from `rgb`.
        The arrays are the writer's from here on. Returns at once unless a queue's worth
        (WRITE_AHEAD_BYTES) waits; an encoding error surfaces at the next call."""
        self._raise_failure()
        while True:
            try:
                self.queue.put((time_s, duration_s, rgb, yuv, edits), timeout=0.5)
                return
            except queue.Full:
                self._raise_failure()

    def _raise_failure(self):
        if self.failure is not None:
            raise self.failure

    def drain(self):
        """Wait until every frame written so far is encoded (for a caller about to use every
        core itself, such as the generator on the CPU: two stages sharing the cores only slow
        each other)."""
        while self.queue.unfinished_tasks and self.failure is None and self.thread.is_alive():
            time.sleep(0.002)
        self._raise_failure()

    def _encode_queued(self):
        while True:
            item = self.queue.get()
            try:
                if item is None or self.stopping:
                    return
                self._encode(*item)
            except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                self.failure = err
                return
            finally:
                self.queue.task_done()

    def _encode(self, time_s, duration_s, rgb, yuv, edits):
        import av

        if yuv is None:
            if rgb.shape[1] % 2 or rgb.shape[0] % 2:  # yuv420p needs even sides: repeat the edge
                rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
            frame = self._to_yuv420(rgb)
        else:
            for box, before, after in edits:
                self._merge(yuv, box, before, after)
            # wrapped, not copied (the array is ours now); PyAV reads a height that is not a
            # multiple of 4 two rows short from a buffer, so those frames are copied
            frame = (av.VideoFrame.from_numpy_buffer if yuv.shape[0] % 6 == 0 else
                     av.VideoFrame.from_ndarray)(yuv, format="yuv420p")
        frame.colorspace = self.colour.matrix
        frame.color_range = RANGE_JPEG if self.colour.full else self.colour.range
        pts = max(self.last_pts + 1, int(round(time_s / OUTPUT_TIME_BASE)))
        frame.pts, frame.time_base = pts, OUTPUT_TIME_BASE
        self.last_pts = pts
        self.durations[pts] = max(1, int(round(duration_s / OUTPUT_TIME_BASE)))
        self.end_pts = pts + self.durations[pts]
        self._mux(self.stream.encode(frame))
        if self.audio is not None:  # up to where this frame ends: the streams interleave, and
            self.audio.write_until(time_s + duration_s)  # the track's end may be set at finish

    def _to_yuv420(self, rgb: np.ndarray):
        import av

        return reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"),
                        format="yuv420p", dst_colorspace=self.matrix,
                        dst_color_range="JPEG" if self.colour.full else "MPEG")

    def _merge(self, yuv: np.ndarray, box, before: np.ndarray, after: np.ndarray):
        """Write the pixels of `after` (the RGB of `box`, on whole chroma blocks) that differ
        from `before` into `yuv`: luma per pixel, chroma per 2x2 block holding a changed pixel.
        Only the changed pixels' bounding rectangle (and a margin the chroma filter reads) is
        converted."""
        diff = after ^ before
        changed = (diff[..., 0] | diff[..., 1] | diff[..., 2]) != 0
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        if not len(rows):
            return
        r1, c1 = (max(0, int(v[0]) - REGION_MARGIN) // 2 * 2 for v in (rows, cols))
        r2 = min(changed.shape[0], (int(rows[-1]) + REGION_MARGIN + 2) // 2 * 2)
        c2 = min(changed.shape[1], (int(cols[-1]) + REGION_MARGIN + 2) // 2 * 2)
        changed = changed[r1:r2, c1:c2]
        converted = self._to_yuv420(after[r1:r2, c1:c2])
        new_y, new_u, new_v = (plane_array(p) for p in converted.planes[:3])
        plane_y, plane_u, plane_v = planes_of(yuv)
        x1, y1, x2, y2 = box[0] + c1, box[1] + r1, box[0] + c2, box[1] + r2
        np.copyto(plane_y[y1:y2, x1:x2], new_y, where=changed)
        pairs = changed[0::2] | changed[1::2]  # (a multi-axis any() took half the merge's time)
        blocks = pairs[:, 0::2] | pairs[:, 1::2]
        np.copyto(plane_u[y1 // 2:y2 // 2, x1 // 2:x2 // 2], new_u, where=blocks)
        np.copyto(plane_v[y1 // 2:y2 // 2, x1 // 2:x2 // 2], new_v, where=blocks)

    def _mux(self, packets, last: bool = False):
        """Mux the encoder's packets, each with its frame's own duration (the encoder returns
        them later and in another order: matched by pts). MP4 counts a track's length in
        decoding order, from the first packet's dts to the last one's dts plus its duration;
        with reordered (B-) frames the last packet decoded is not the last shown, so with
        `last` the final packet's duration is the one that ends the track where the last frame
        shown ends (a VFR clip's picture then ends with its sound)."""
        packets = list(packets)
        for k, packet in enumerate(packets):
            if self.first_dts is None and packet.dts is not None:
                self.first_dts = packet.dts
            duration = self.durations.pop(packet.pts, None)
            if last and k == len(packets) - 1 and packet.dts is not None:
                duration = self.end_pts - packet.dts + min(0, self.first_dts)
            if duration and duration > 0:
                packet.duration = duration
            self.container.mux(packet)

    def finish(self, sound_end: float | None = None):
        """Encode what waits, flush the picture and the rest of the sound (cut, or padded with
        silence, to end at `sound_end` seconds when given: the sound is never written past the
        last frame's end before this), and close."""
        self._raise_failure()
        self.queue.put(None)
        self.thread.join()
        self._raise_failure()
        self._mux(self.stream.encode(), last=True)
        if self.audio is not None:
            if sound_end is not None:
                self.audio.end_at(sound_end)
            self.audio.write_until(None)
        self.container.close()

    def abort(self):
        """Stop the encoding thread without encoding what waits, close, delete the file."""
        self.stopping = True
        while True:  # make room for the stop sign, whatever waits
            try:
                self.queue.put_nowait(None)
                break
            except queue.Full:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    pass
        self.thread.join()
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file goes anyway
            pass
        if isinstance(self.destination, (str, os.PathLike)):
            Path(self.destination).unlink(missing_ok=True)


class _AudioOut:
    """The sound of a VideoWriter: AAC at the AAC rate nearest its own, written a chunk at a time
    as the picture advances. Frames are made packed and converted to planar by FFmpeg (making
    planar frames of 8 channels crashes PyAV 18)."""

    def __init__(self, container, sound: Sound):
        import av

        self.rate = aac_rate(int(sound.rate))
        samples = sound.samples if self.rate == sound.rate else resample(sound.samples, sound.rate, self.rate)
        self.samples = np.ascontiguousarray(samples.T, dtype=np.float32)  # [T, C]: packed
        self.layout = sound.layout
        self.stream = container.add_stream("aac", rate=self.rate, layout=self.layout)
        self.container = container
        self.to_planar = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.done = 0

    def end_at(self, time_s: float):
        """The track ends at `time_s`: what is left is cut, or padded with silence."""
        length = max(self.done, output_samples(time_s, self.rate))
        kept = self.samples[:length]
        if len(kept) < length:
            kept = np.concatenate([kept, np.zeros((length - len(kept), kept.shape[1]), np.float32)])
        self.samples = kept

    def write_until(self, time_s: float | None):
        """Encode the sound in whole chunks up to `time_s` seconds (None: all of it, then
        flush)."""
        import av

        stop = len(self.samples) if time_s is None else min(len(self.samples), int(time_s * self.rate))
        while self.done < stop and (time_s is None or self.done + AUDIO_CHUNK <= stop):
            chunk = self.samples[self.done:self.done + AUDIO_CHUNK]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout=self.layout)
            frame.sample_rate, frame.pts = self.rate, self.done
            for planar in self.to_planar.resample(frame):
                self._encode(planar)
            self.done += len(chunk)
        if time_s is None:
            for planar in self.to_planar.resample(None):
                self._encode(planar)
            self._encode(None)

    def _encode(self, frame):
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
