"""Small video files made with PyAV for the tests (not with the pack's own writer): a moving
synthetic face, optional sound, optional variable frame rate."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

TIME_BASE = Fraction(1, 1000)


def speech_wave(seconds, rate=16000, channels=1):
    t = np.arange(int(round(seconds * rate))) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.tile(voice, (channels, 1)).astype(np.float32)


def write_video(path, clip, times=None, audio=None, audio_rate=16000, crf=0, pix_fmt="yuv444p"):
    """Write clip.frame(i) for i < len(times) at `times` (seconds; default i / clip.fps).
    crf 0 with yuv444p is lossless in YUV, so decoded frames differ from the drawn ones only
    by the RGB <-> YUV rounding."""
    import av

    times = [i / clip.fps for i in range(clip.count)] if times is None else times
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(clip.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, pix_fmt
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "mono" if audio.shape[0] == 1 else "stereo"
        for i, t in enumerate(times):
            rgb = (np.clip(clip.frame(i), 0, 1) * 255 + 0.5).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), TIME_BASE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            for start in range(0, audio.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + 1024]),
                                                   format="fltp", layout=astream.layout.name)
                frame.sample_rate, frame.pts = audio_rate, start
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


def read_video(path):
    """(times in seconds from the first frame, RGB uint8 frames [N, H, W, 3], fps)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, pts = [], []
        for frame in container.decode(stream):
            pts.append(frame.pts)
            frames.append(frame.to_ndarray(format="rgb24"))
        times = [float((p - pts[0]) * stream.time_base) for p in pts]
        return times, np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8), float(stream.average_rate)


def audio_seconds(path):
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        rate = container.streams.audio[0].rate
        return sum(f.samples for f in container.decode(audio=0)) / rate
