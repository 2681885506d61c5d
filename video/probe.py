"""What a video stream is: its picture's size as shown, rate, colour, orientation and where it
starts, read from the file and its first frame; and the frames of an open stream on its clock."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

from .clock import FileClock, demux_on_clock, may_restart
from .source import Edits, VideoInputError, flag_bits, open_source, source_name

logger = logging.getLogger("HaloLipsy")

# AVColorSpace values (libavutil/pixfmt.h) -> swscale's SWS_CS_* number for that YUV matrix
# (numbers, not names: PyAV 14 has no name for BT.2020)
_SWS_BT709, _SWS_BT601 = 1, 5
_MATRIX_NAMES = {1: _SWS_BT709, 4: 4, 5: _SWS_BT601, 6: _SWS_BT601, 7: 7, 9: 9, 10: 9}
_UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED
RANGE_JPEG = 2  # AVCOL_RANGE_JPEG: full range
_HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}
# bicubic chroma, as FFmpeg's own scaler defaults to (bilinear blurs colour edges)
INTERPOLATION = "BICUBIC"


@dataclass(frozen=True)
class Colour:
    """How the source's YUV maps to RGB (AVColorSpace / AVColorRange / primaries / transfer
    values; 2 = unspecified)."""

    matrix: int = _UNSPECIFIED
    range: int = 0
    primaries: int = _UNSPECIFIED
    trc: int = _UNSPECIFIED
    full_range_format: bool = False  # a yuvj* pixel format: full range whatever the tag says

    @property
    def full(self) -> bool:
        return self.range == RANGE_JPEG or self.full_range_format

    def conversion_matrix(self, width: int, height: int) -> int:
        """swscale's number for the matrix to convert with: the tagged one, or for untagged
        video the one players assume (BT.709 from HD up, BT.601 below; mpv's rule). Encoding
        back with the same matrix and no tag keeps the YUV values, so every player shows input
        and output alike."""
        matrix = _MATRIX_NAMES.get(self.matrix)
        if matrix is None:
            matrix = _SWS_BT709 if width >= 1280 or height > 576 else _SWS_BT601
        return matrix

    def for_output(self, width: int, height: int, coded_size) -> "Colour":
        """The description to write on an output of `width` x `height`: the source's, except
        for an untagged source cropped across the HD line, whose matrix players would then
        guess differently: that output names the matrix its samples were made with."""
        if self.matrix in _MATRIX_NAMES:
            return self
        used = self.conversion_matrix(*coded_size)
        if used == self.conversion_matrix(width, height):
            return self
        return replace(self, matrix=1 if used == _SWS_BT709 else 6)  # bt709 / smpte170m

    @property
    def hdr(self) -> str | None:
        return _HDR_TRANSFERS.get(self.trc)



@dataclass
class VideoInfo:
    width: int  # of the frames the pipeline sees: upright, cropped
    height: int
    fps: Fraction  # the stream's nominal (average) rate
    duration: float | None  # seconds, when the container says
    frames: int | None  # frame count, when the container says (an estimate: progress only)
    start: float = 0.0  # presentation time of the first frame used, on the file's clock
    quarter_turns: int = 0  # counter-clockwise quarter turns that make the picture upright
    colour: Colour = field(default_factory=Colour)
    coded_size: tuple = (0, 0)  # the stream's own width and height (before rotation)
    edits: Edits = field(default_factory=Edits)
    end: float | None = None  # where the stream's last frame ends, when the container says
    restarts: int = 0  # times the file's timestamps start again (joined MPEG-TS recordings: clock.py)

    def last_frame_duration(self, last_time: float, said: float | None) -> float | None:
        """How long the last frame (shown at `last_time`) lasts: what its frame said, else
        what the stream's end implies (PyAV 14 has no frame durations), if plausible."""
        if said:
            return said
        if self.end is not None and 0 < self.end - last_time <= 10 / float(self.fps):
            return self.end - last_time
        return None


# ---------------------------------------------------------------------------- the picture


def probe(source, edits: Edits = Edits()) -> VideoInfo:
    """What the first video stream is: size as shown, rate, colour and where it starts. Decodes
    the first frame in `edits` (the display matrix and colour tags live on frames)."""
    with open_source(source) as container:
        stream = video_stream(container)
        if stream is None:
            kind = "an audio file" if container.streams.audio else "no video"
            raise VideoInputError(f"{source_name(source, 'the video')} has no video stream ({kind}). "
                                  "Give a video with picture; speech alone goes into the audio "
                                  "input (the node's 'audio', or --audio).")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise VideoInputError(f"{source_name(source, 'the video')} has no frame rate; re-encode it "
                                  "with one.")
        duration = end = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
            end = float(((stream.start_time or 0) + stream.duration) * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if edits.start or edits.duration:
            end = duration if duration is not None else math.inf
            if edits.duration:
                end = min(end, edits.start + edits.duration)
            duration = max(0.0, end - edits.start) if math.isfinite(end) else None
        frames = int(stream.frames) if stream.frames and not (edits.start or edits.duration) \
            else (int(round(duration * float(rate))) if duration else None)
        restarts = _restarts(container) if may_restart(container) else 0
        if restarts:  # each part's clock runs on from the last: the stored ends say nothing
            logger.info("Halo-Lipsy: %s is %d recordings joined (its timestamps start again); "
                        "played one after the other, as FFmpeg plays them.",
                        source_name(source, "the video"), restarts + 1)
            duration = end = frames = None
        first = _first_frame(container, stream, edits, restarts)
        if first is None:
            raise VideoInputError(f"{source_name(source, 'the video')} has no frames that can be decoded"
                                  f"{' in the trimmed part' if edits.start or edits.duration else ''}"
                                  " (0 s long, or damaged). Give another video.")
        frame, time_s = first
        turns = int(round((frame.rotation or 0) / 90)) % 4
        colour = _colour_of(frame, stream)
        width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
        crop = _crop_rect(edits.crop, width, height)
        if crop is not None:
            width, height = crop[2], crop[3]
        said = None if edits.size is None else tuple(int(v) for v in edits.size)
        if said is not None and said != (width, height) and (crop is not None or said != (frame.width, frame.height)):
            raise VideoInputError(
                f"this VIDEO's frames are {said[0]}x{said[1]} (it was resized), but its file holds "
                f"{width}x{height}, and Halo-Lipsy (Video) streams the file: it cannot apply the "
                "resize. Resize after Halo-Lipsy (Video), or Save Video and Load Video the resized "
                "result first.")
        return VideoInfo(int(width), int(height), Fraction(rate), duration, frames, time_s, turns, colour,
                         (int(frame.width), int(frame.height)),
                         Edits(edits.start, edits.duration, crop, edits.size),
                         None if edits.duration and end is not None and end > edits.start + edits.duration else end,
                         restarts)


_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: cover art, stored as a one-frame video stream


def video_stream(container):
    """The picture: the first video stream that is not cover art (MP4 and MKV files may list
    an attached picture first); None when there is none."""
    for stream in container.streams.video:
        if not flag_bits(getattr(stream, "disposition", 0)) & _ATTACHED_PIC:
            return stream
    return None


def _restarts(container) -> int:
    """How many times the file's timestamps start again (every packet read, none decoded)."""
    clock = FileClock()
    for packet in container.demux():
        clock.see(packet)
    container.seek(0)
    return clock.restarts


def _first_frame(container, stream, edits: Edits, restarts: int):
    """The first decodable frame inside `edits` and its time, or None."""
    for t, _, frame in frames_from(container, stream, edits, restarts, quiet=True):
        return frame, t
    return None


def frames_from(container, stream, edits: Edits, restarts: int, seek_to: float | None = None, quiet=False):
    """`_frames_in` from the frame at `seek_to` (default: the edits' start) on, in any container.
    One without an index (MPEG-TS) seeks to a packet near the time asked for, not to the
    keyframe before it, and nothing decodes until the next keyframe: where the first frame lands
    past the frames asked for, the seek is made again 1, 2, 4 ... seconds earlier (callers skip
    earlier frames by time). A file whose timestamps start again (`restarts`) cannot be sought
    by time: it is read from its start."""
    if restarts:
        yield from _frames_in(container, stream, edits, 0.0, quiet)
        return
    target = max(edits.start, seek_to or 0.0)
    # how far past `target` the first frame may lie: none for a frame's own time, a frame for a trim
    slack = 1e-6 if seek_to is not None and seek_to >= edits.start else 1.5 / float(stream.average_rate or 25)
    seek, back = target, 1.0
    while True:
        started = False
        for item in _frames_in(container, stream, edits, seek, quiet):
            if not started and target > 0 and item[0] > target + slack:
                break  # the seek went past the frames asked for
            started = True
            yield item
        if started or seek <= 0:
            return
        seek, back = max(0.0, target - back), back * 2


def _frames_in(container, stream, edits: Edits, seek_to: float | None = None, quiet=False):
    """(time on the file's clock, pts, frame) for each frame of an open stream inside `edits`,
    decoded from a seek to `seek_to` (default: the edits' start; earlier frames are yielded too:
    callers skip by time). A packet that fails to decode is skipped, with a warning naming its
    time unless `quiet`; a frame that repeats the previous one's timestamp is skipped (no player
    can show both)."""
    import av

    start = edits.start if seek_to is None else seek_to
    if start > 0:
        _seek(container, stream, start)
    last_pts, repeats = None, 0
    packets, clock = demux_on_clock(container, stream)
    for packet in packets:
        try:
            frames = packet.decode()
        except av.error.FFmpegError as err:
            if not quiet:  # threaded decoders report an error a few packets late: "near"
                when = "" if packet.pts is None else f" near {float(packet.pts * stream.time_base):.2f} s"
                logger.warning("Halo-Lipsy: a damaged video packet%s could not be decoded (%s); "
                               "its frame is missing from the output.", when, err)
            continue
        for frame in frames:
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None:
                continue
            t = float(pts * stream.time_base)
            if clock is not None:
                t = clock.frame_time(stream.index, t)
                pts = int(round(t / stream.time_base))
            if t < edits.start - 1e-9:
                continue
            if not edits.contains(t):
                return
            if last_pts is not None and pts <= last_pts:
                repeats += 1
                if repeats == 1 and not quiet:
                    logger.warning("Halo-Lipsy: frames at %.3f s repeat an earlier timestamp; "
                                   "such frames are skipped (a player cannot show them).", t)
                continue
            last_pts = pts
            yield t, pts, frame


def _seek(container, stream, seconds: float):
    import av

    try:
        container.seek(int(seconds / stream.time_base), backward=True, any_frame=False,
                       stream=stream)
    except av.error.FFmpegError:
        container.seek(0, stream=stream)


def _colour_of(frame, stream) -> Colour:
    context = stream.codec_context

    def tag(name):  # the frame's tag, else the stream's; 0 (reserved / RGB) counts as unset
        for value in (getattr(frame, name, None), getattr(context, name, None)):
            if value is not None and int(value) not in (0, _UNSPECIFIED):
                return int(value)
        return _UNSPECIFIED

    color_range = int(getattr(frame, "color_range", 0) or getattr(context, "color_range", 0) or 0)
    return Colour(matrix=tag("colorspace"), range=color_range, primaries=tag("color_primaries"),
                  trc=tag("color_trc"), full_range_format=frame.format.name.startswith("yuvj"))


def _crop_rect(crop, width: int, height: int):
    """(x, y, w, h) clamped inside width x height, or None for no crop (as ComfyUI clamps)."""
    if crop is None:
        return None
    x, y, w, h = (int(v) for v in crop)
    x, y = max(0, min(x, width - 1)), max(0, min(y, height - 1))
    w, h = max(1, min(w, width - x)), max(1, min(h, height - y))
    if (x, y, w, h) == (0, 0, width, height):
        return None
    return x, y, w, h
