"""The sound on the file's clock: holes and damaged packets stay where they are, every layout
AAC carries is written as it came (7.1 included, which crashed PyAV 18's planar reader), others
are mixed to stereo by channel name, the mouth takes the centre by name, and outputs stream
(interleaved packets, the index at the front). Inputs are made by the ffmpeg binary and outputs
read back by it."""

import re

import numpy as np
import pytest

import ffmpeg_reference as ref
from conftest import hooks_with, pack_module
from test_real_footage import _EveryFrameIsAFace, speech, textured

video_route = pack_module("routes")
video = pack_module("video")
audio_mod = pack_module("audio")
Settings = pack_module("settings").Settings
RATE = 48000


def tones(seconds, frequencies, rate=RATE):
    """One sine a channel (frequency 0: silence), at 0.3."""
    t = np.arange(int(round(seconds * rate))) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * f * t) if f else 0 * t for f in frequencies]).astype(np.float32)


def lip_sync(source, out, checkpoint, **kw):
    hooks = hooks_with([checkpoint.parent], _EveryFrameIsAFace())
    return video_route.lipsync_video(str(source), str(out), Settings(quality=30, **kw), hooks)


def placed_by_ffmpeg(path, rate=RATE):
    """The file's first audio stream as a player places it: each chunk at its timestamp, holes
    filled with silence (aresample's async mode), from the stream's first timestamp."""
    data = ref.ffmpeg("-i", path, "-map", "0:a:0", "-af", "aresample=async=1000:first_pts=0",
                      "-ac", "1", "-ar", rate, "-f", "f32le", "-")
    return np.frombuffer(data, "<f4")


def onset(samples, rate=RATE, level=0.05):
    """Seconds to the first sample louder than `level`, after any silence at the start."""
    loud = np.flatnonzero(np.abs(samples) > level)
    return loud[0] / rate if loud.size else None


def with_hole(tmp_path, name="holed.mkv"):
    """2 s of picture; sound: 440 Hz for 1 s, then a 0.5 s hole in the track (dropped audio, as
    OBS and phones record under load), then 880 Hz for 1 s."""
    sound = np.concatenate([tones(1.0, [440]), tones(1.0, [880])], axis=1)
    plain = ref.encode(tmp_path / "plain.mkv", textured(50, 48, 64), audio=sound, audio_rate=RATE,
                       video_args=["-pix_fmt", "yuv420p"])
    target = tmp_path / name
    ref.ffmpeg("-i", plain, "-map", "0", "-c:v", "copy", "-af",
               "asetpts='PTS+gte(T,1)*0.5/TB'", "-c:a", "aac", target)
    return target


def test_a_hole_in_the_sound_stays_a_hole_in_what_the_mouth_follows_and_in_the_output(
        tmp_path, fixture_checkpoint, caplog):
    source = with_hole(tmp_path)
    reference = placed_by_ffmpeg(source)
    assert abs(onset(reference[int(1.2 * RATE):]) + 1.2 - 1.5) < 0.03  # the file has the hole
    track = video.read_audio(str(source))
    mono = track.samples.mean(axis=0)
    quiet = mono[int((track.start + 1.05) * RATE):int((track.start + 1.45) * RATE)]
    assert np.abs(quiet).max() < 0.01  # silence in the hole ...
    after = onset(mono[int(1.2 * RATE):]) + 1.2
    assert abs(after - onset(reference[int(1.2 * RATE):]) - 1.2) < 0.01  # ... and 880 Hz where ffmpeg puts it
    assert "the sound has holes at 1.0" in caplog.text
    out = tmp_path / "out.mp4"
    lip_sync(source, out, fixture_checkpoint)
    back, rate, _ = ref.audio(out, channels=1)
    assert abs(onset(back[0][int(1.2 * rate):], rate) + 1.2 - 1.5) < 0.03  # the output keeps it


def test_a_damaged_packet_becomes_silence_of_its_length(tmp_path):
    import av

    sound = tones(2.0, [440])
    clean = ref.encode(tmp_path / "clean.mp4", textured(50, 48, 64), audio=sound, audio_rate=RATE,
                       video_args=["-pix_fmt", "yuv420p"])
    damaged = tmp_path / "damaged.mp4"
    with av.open(str(clean)) as src, av.open(str(damaged), "w", format="mp4") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        count = 0
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "audio":
                count += 1
                if count in (40, 41):  # near 0.85 s: garbage where the AAC was, same timing
                    garbage = av.Packet(bytes(np.random.default_rng(count).integers(0, 256, packet.size, np.uint8)))
                    garbage.pts, garbage.dts, garbage.duration = packet.pts, packet.dts, packet.duration
                    garbage.time_base = packet.time_base
                    packet = garbage
                    packet.stream = src.streams.audio[0]
            stream_index = packet.stream.index
            packet.stream = streams[stream_index]
            dst.mux(packet)
    track = video.read_audio(str(damaged))
    clean_track = video.read_audio(str(clean))
    assert abs(track.samples.shape[1] - clean_track.samples.shape[1]) <= 2048
    # after the damage the tone is where it was: the same samples as the clean file's
    end = int(1.5 * RATE)
    np.testing.assert_allclose(track.samples[0, end:end + 4800], clean_track.samples[0, end:end + 4800], atol=1e-3)


@pytest.mark.parametrize("layout, expected", [
    ("mono", "mono"), ("stereo", "stereo"), ("3.0", "3.0"), ("quad", "quad"), ("4.0", "4.0"),
    ("5.0", "5.0"), ("5.1", "5.1"), ("5.1(side)", "5.1"), ("7.1", "7.1"), ("2.1", "stereo"),
])
def test_every_layout_aac_carries_is_written_as_it_came(tmp_path, fixture_checkpoint, layout, expected):
    count = ref._channels(layout)
    frequencies = [300 + 100 * k for k in range(count)]
    source = ref.encode(tmp_path / "in.mp4", textured(25, 48, 64), audio=tones(1.0, frequencies),
                        audio_rate=RATE, layout=layout, video_args=["-pix_fmt", "yuv420p"])
    assert ref.describe(source).audio_layout.startswith(layout.split("(")[0])
    out = tmp_path / "out.mp4"
    lip_sync(source, out, fixture_checkpoint)  # 7.1 crashed the process here before
    got = ref.describe(out).audio_layout
    assert got == expected or (expected == "5.1" and got.startswith("5.1")), got
    if expected == layout or expected == "5.1":
        back, rate, _ = ref.audio(out)  # as stored: no remix to a default layout
        assert back.shape[0] == count
        for k, f in enumerate(frequencies):
            if layout.startswith(("5.1", "7.1")) and k == 3:  # the LFE is band-limited
                continue
            spectrum = np.abs(np.fft.rfft(back[k, rate // 10:rate // 10 + rate // 2]))
            assert abs(np.argmax(spectrum) * 2 - f) <= 4, (layout, k)


def test_a_layout_aac_lacks_is_mixed_to_stereo_by_name_without_its_lfe(tmp_path, fixture_checkpoint):
    # 2.1 is FL FR LFE: counted, it would be taken for 3.0 and its LFE played as the centre
    source = ref.encode(tmp_path / "in.mp4", textured(25, 48, 64), audio=tones(1.0, [0, 0, 60]),
                        audio_rate=RATE, layout="2.1", video_args=["-pix_fmt", "yuv420p"])
    out = tmp_path / "out.mp4"
    lip_sync(source, out, fixture_checkpoint)
    assert ref.describe(out).audio_layout == "stereo"
    back, _, _ = ref.audio(out, channels=2)
    assert np.sqrt((back ** 2).mean()) < 0.01  # the LFE is not dialogue and not in the mix


def test_the_mouth_takes_the_centre_by_name():
    voice = speech(0.5, channels=1)[0]
    quad = np.zeros((4, voice.size), np.float32)
    quad[2] = voice  # back-left of FL FR BL BR: not the centre
    as_quad = audio_mod.downmix(quad, ("FL", "FR", "BL", "BR"))
    counted = audio_mod.downmix(quad)  # no names: FFmpeg's default for 4 channels, FL FR FC BC
    assert np.abs(as_quad).max() == pytest.approx(0.35 * np.abs(voice).max(), rel=1e-3)
    assert np.abs(counted).max() == pytest.approx(np.abs(voice).max(), rel=1e-3)
    five_one_side = np.zeros((6, voice.size), np.float32)
    five_one_side[2] = voice
    assert np.abs(audio_mod.downmix(five_one_side, ("FL", "FR", "FC", "LFE", "SL", "SR"))).max() == \
        pytest.approx(np.abs(voice).max(), rel=1e-3)


def top_level_atoms(path):
    data = open(path, "rb").read()
    atoms, at = [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        atoms.append(data[at + 4:at + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[at + 8:at + 16], "big")
        if size < 8:
            break
        at += size
    return atoms


def test_outputs_stream_interleaved_with_the_index_at_the_front(tmp_path, fixture_checkpoint):
    source = ref.encode(tmp_path / "in.mp4", textured(100, 48, 64), audio=speech(4.0),
                        audio_rate=RATE, video_args=["-pix_fmt", "yuv420p"])
    out = tmp_path / "out.mp4"
    lip_sync(source, out, fixture_checkpoint)
    atoms = top_level_atoms(out)
    assert "moov" in atoms and "mdat" in atoms and atoms.index("moov") < atoms.index("mdat"), atoms
    # packets in file order (framecrc lists them as the demuxer reads them): neither stream runs
    # more than a second ahead of the other
    text = ref.ffmpeg("-i", out, "-map", "0", "-c", "copy", "-f", "framecrc", "-").decode()
    order = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 4 and not line.startswith("#") and fields[0].isdigit():
            order.append(int(fields[0]))
    times = {}
    for line in text.splitlines():
        match = re.match(r"#tb (\d+): (\d+)/(\d+)", line)
        if match:
            times[int(match.group(1))] = int(match.group(2)) / int(match.group(3))
    dts = [(int(f[0]), int(f[1]) * times[int(f[0])]) for f in
           ([x.strip() for x in line.split(",")] for line in text.splitlines() if line and line[0].isdigit())]
    latest = {0: 0.0, 1: 0.0}
    for stream, t in dts:
        latest[stream] = t
        assert abs(latest[0] - latest[1]) < 1.0 or min(latest.values()) == 0.0, (stream, t, latest)
    assert set(order) == {0, 1}
