"""Real footage through the VIDEO route, checked against an independent reference: inputs made
by the ffmpeg binary with real colour tags, display matrices, start offsets, channel layouts and
odd rates; outputs read back by the same binary. What a player shows of the input must be what
it shows of the output, except the mouth."""

import re

import cv2
import numpy as np
import pytest
import torch

import ffmpeg_reference as ref
from conftest import hooks_with, pack_module
from synthetic_clip import MARKER_RGB, MarkerDetector

pipeline = pack_module("routes")
errors = pack_module("common.errors")
video_route = pack_module("routes")
video = pack_module("video")
audio_mod = pack_module("audio")
nodes = pack_module("nodes")
Settings = pack_module("settings").Settings

FPS = 25.0


def textured(count, height, width, seed=0, marker=None):
    """Sharp-edged random blocks that drift a little each frame (hard for chroma filters), an
    optional pure-green 'face' marker box (x1, y1, x2, y2) and a red square in the top-left
    corner (orientation)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(20, 236, (height // 8 + 2, width // 8 + 2, 3)).astype(np.uint8)
    big = np.kron(blocks, np.ones((8, 8, 1), np.uint8))
    out = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        out[i] = big[i % 8:i % 8 + height, i % 8:i % 8 + width]
        out[i, ..., 1] //= 2  # never pure green: only the marker is
        if marker is not None:
            x1, y1, x2, y2 = marker
            out[i, y1:y2, x1:x2] = np.asarray(MARKER_RGB) * 255
        out[i, :12, :12] = (230, 20, 20)
    return out


def speech(seconds, rate=48000, channels=1, where=None):
    """Voiced bursts (4 per second) in `where` (channel indices; default all)."""
    t = np.arange(int(round(seconds * rate))) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    out = np.zeros((channels, t.size), np.float32)
    out[list(range(channels)) if where is None else where] = voice
    return out


def hooks(checkpoint, detector=None):
    return hooks_with([checkpoint.parent], detector or MarkerDetector())


def run(source, out, checkpoint, detector=None, **kw):
    audio = kw.pop("audio", None)
    face_mask = kw.pop("face_mask", None)
    edits = kw.pop("edits", None)
    return video_route.lipsync_video(str(source), str(out), Settings(**kw),
                                     hooks(checkpoint, detector), audio=audio, face_mask=face_mask,
                                     edits=edits)


# ------------------------------------------------------------------ orientation


@pytest.mark.parametrize("turn, rotation", [("transpose=1", 90), ("transpose=2", -90),
                                            ("hflip,vflip", 180)])
def test_portrait_phone_video_is_processed_and_written_upright(tmp_path, fixture_checkpoint,
                                                               turn, rotation):
    upright = textured(10, 160, 96, marker=(30, 60, 70, 110))  # portrait, face in the middle
    stored = ref.encode(tmp_path / "stored.mp4", upright, rgb_filter=turn,
                        video_args=["-pix_fmt", "yuv420p", "-crf", "10"],
                        audio=speech(0.4), audio_rate=48000)
    phone = ref.remux(stored, tmp_path / "phone.mp4", "-display_rotation", rotation)
    assert ref.describe(phone).rotation != 0
    shown = ref.frames(phone)  # the reference player turns it upright
    assert shown.shape[1:3] == (160, 96) and shown[0, 5, 5, 0] > 180  # the fixture is right

    detector = MarkerDetector()
    out = tmp_path / "out.mp4"
    result = run(phone, out, fixture_checkpoint, detector, quality=1)
    assert result.faces_found == 10  # the detector saw the upright face
    back = ref.frames(out)
    assert ref.describe(out).rotation == 0 and back.shape[1:3] == (160, 96)
    assert back[0, 5, 5, 0] > 180 and back[0, 5, 5, 1] < 80  # red marker: still top-left
    changed = np.abs(back[:10].astype(int) - shown.astype(int)).max(axis=-1) > 40
    ys, xs = np.nonzero(changed.any(axis=0))
    # the mouth was generated inside the upright face box (padded 10 px below the chin)
    assert 30 <= xs.min() and xs.max() < 70 and 60 <= ys.min() and ys.max() < 120
    assert not changed[:, :50, :].any()  # the upper half of the frame is untouched


def test_a_face_mask_is_drawn_on_the_upright_frame(tmp_path, fixture_checkpoint):
    upright = textured(6, 160, 96)
    stored = ref.encode(tmp_path / "stored.mp4", upright, rgb_filter="transpose=1",
                        video_args=["-pix_fmt", "yuv420p"], audio=speech(0.24))
    phone = ref.remux(stored, tmp_path / "phone.mp4", "-display_rotation", 90)
    mask = torch.zeros(1, 160, 96)
    mask[0, 60:110, 30:70] = 1
    out = tmp_path / "out.mp4"
    result = run(phone, out, fixture_checkpoint, face_mask=mask)
    assert result.faces_found == 6
    with pytest.raises(errors.HaloLipsyError, match="is 120x80 but the video is 96x160"):
        run(phone, tmp_path / "o.mp4", fixture_checkpoint, face_mask=torch.ones(1, 80, 120))


def test_a_mask_painted_on_the_stored_frame_of_a_phone_video_lands_on_the_face(tmp_path, fixture_checkpoint):
    """ComfyUI 0.3.64's Get Video Components gives a phone video's frames as stored (landscape):
    a face_mask painted there must still land on the face the player shows upright."""
    upright = textured(6, 160, 96)
    stored = ref.encode(tmp_path / "stored.mp4", upright, rgb_filter="transpose=1",
                        video_args=["-pix_fmt", "yuv420p", "-crf", "10"], audio=speech(0.24))
    phone = ref.remux(stored, tmp_path / "phone.mp4", "-display_rotation", 90)
    face = np.zeros((160, 96), np.float32)
    face[60:110, 30:70] = 1
    as_stored = np.ascontiguousarray(np.rot90(face, k=-1))  # transpose=1: a clockwise turn
    assert as_stored.shape == (96, 160)
    out = tmp_path / "out.mp4"
    result = run(phone, out, fixture_checkpoint, face_mask=torch.from_numpy(as_stored)[None], quality=1)
    assert result.faces_found == 6
    shown, back = ref.frames(phone).astype(int), ref.frames(out).astype(int)
    changed = np.abs(back[:6] - shown[:6]).max(axis=-1) > 40
    ys, xs = np.nonzero(changed.any(axis=0))
    assert len(ys) and 30 <= xs.min() and xs.max() < 70 and 60 <= ys.min() and ys.max() < 122


# ------------------------------------------------------------------ colour


def tagged(matrix, out_range, fmt, tags):
    """ffmpeg filters: RGB -> YUV with `matrix` and range, then the frames' colour description
    (ffmpeg's encoders write the frames' tags, not the -color_* options)."""
    return f"scale=out_color_matrix={matrix}:out_range={out_range},format={fmt},setparams={tags}"


COLOUR_CASES = {
    # name: (size, ffmpeg RGB->YUV filter, encoder args, what ffmpeg must print back)
    "untagged SD": ((160, 120), "format=yuv420p", ["-pix_fmt", "yuv420p"], ""),
    "untagged HD": ((1280, 720), tagged("bt709", "tv", "yuv420p", "colorspace=unknown:range=unknown"),
                    ["-pix_fmt", "yuv420p"], ""),
    "BT.709 tagged": ((320, 240), tagged("bt709", "tv", "yuv420p", "colorspace=bt709:range=tv:"
                                         "color_primaries=bt709:color_trc=bt709"),
                      ["-pix_fmt", "yuv420p"], "tv, bt709"),
    "BT.601 full range": ((320, 240), tagged("bt601", "pc", "yuv420p", "colorspace=smpte170m:range=pc:"
                                             "color_primaries=smpte170m:color_trc=smpte170m"),
                          ["-pix_fmt", "yuv420p"], "pc, smpte170m"),
    "10-bit HLG (iPhone HDR)": ((320, 240), tagged("bt2020", "tv", "yuv420p10le",
                                                   "colorspace=bt2020nc:range=tv:color_primaries="
                                                   "bt2020:color_trc=arib-std-b67"),
                                ["-pix_fmt", "yuv420p10le"], "tv, bt2020nc/bt2020/arib-std-b67"),
}


@pytest.mark.parametrize("case", list(COLOUR_CASES))
def test_pixels_no_face_touched_come_out_as_they_went_in(tmp_path, fixture_checkpoint, case):
    (width, height), rgb_filter, args, printed = COLOUR_CASES[case]
    count = 4 if width > 640 else 8
    source = ref.encode(tmp_path / "in.mp4", textured(count, height, width), rgb_filter=rgb_filter,
                        video_args=args + ["-crf", "12"], audio=speech(count / FPS))
    assert ref.describe(source).colour == printed  # the fixture carries the tags it should
    out = tmp_path / "out.mp4"
    result = run(source, out, fixture_checkpoint, quality=19)
    assert result.faces_found == 0  # nothing to change: every pixel passes through

    described = ref.describe(out)
    assert described.colour == printed  # same description; untagged stays untagged
    assert described.pix_fmt in ("yuv420p", "yuvj420p")  # 8 bits; 10 converted, same tags
    # what the file stores, 8-bit 4:2:0, before any player's assumption about untagged video
    source_yuv, out_yuv = ref.yuv_planes(source), ref.yuv_planes(out)
    out_yuv = out_yuv[:len(source_yuv)]  # AAC padding may hold the last frame once more
    assert source_yuv.shape == out_yuv.shape
    y_rows = height
    for plane, rows in (("Y", slice(0, y_rows)), ("UV", slice(y_rows, None))):
        shift = np.abs(out_yuv[:, rows].astype(float).mean() - source_yuv[:, rows].astype(float).mean())
        assert shift <= 1.0, (plane, shift)
    # and as close as ffmpeg's own re-encode of the same file at the same quality
    again = tmp_path / "ffmpeg_again.mp4"
    ref.ffmpeg("-i", source, "-c:v", "libx264", "-preset", "veryfast", "-crf", "19",
               "-pix_fmt", "yuv420p", "-an", again)
    ours, theirs = ref.psnr(out_yuv, source_yuv), ref.psnr(ref.yuv_planes(again), source_yuv)
    assert ours >= theirs - 1.5, (ours, theirs)


def test_untagged_hd_is_converted_as_players_show_it(tmp_path):
    """Untagged 720p: mpv, VLC and browsers assume BT.709; the pipeline sees what they show."""
    source = ref.encode(tmp_path / "hd.mp4", textured(2, 720, 1280),
                        rgb_filter=COLOUR_CASES["untagged HD"][1],
                        video_args=["-pix_fmt", "yuv420p", "-crf", "12"])
    as_players_show = ref.frames(source, vf="scale=in_color_matrix=bt709,format=rgb24").reshape(-1, 720, 1280, 3)
    info = video.probe(str(source))
    ours = np.stack([video.to_rgb(frame, info) for _, _, frame in video.decode(str(source), info)])
    assert np.abs(ours.astype(float) - as_players_show.astype(float)).mean() < 1.0
    as_601 = ref.frames(source, vf="scale=in_color_matrix=bt601,format=rgb24").reshape(-1, 720, 1280, 3)
    assert np.abs(ours.astype(float) - as_601.astype(float)).mean() > 2.0  # the choice matters


# ------------------------------------------------------------------ audio on the video's clock


def flash_and_click(seconds=2.0, flash_at=1.0, rate=48000):
    """A dark clip with one white frame at `flash_at`, and a click at the same moment."""
    frames = np.full((int(seconds * FPS), 48, 64, 3), 30, np.uint8)
    frames[int(round(flash_at * FPS))] = 235
    sound = 0.05 * np.sin(2 * np.pi * 200 * np.arange(int(seconds * rate)) / rate)[None].astype(np.float32)
    click = int(round(flash_at * rate))
    sound[:, click:click + 48] = 0.9
    return frames, sound


@pytest.mark.parametrize("delay", [0.48, -0.32])  # whole frames: the flash stays on a frame
def test_sound_that_starts_before_or_after_the_picture_stays_in_sync(tmp_path, fixture_checkpoint,
                                                                     delay):
    frames, sound = flash_and_click()
    # each stream has its flash or click 1.0 s after its own start; the one that starts first
    # gets |delay| more at its start, so in the file the flash and the click coincide
    sound = np.concatenate([np.zeros((1, int(round(max(0, delay) * 48000))), np.float32), sound], axis=1)
    frames = np.concatenate([np.repeat(frames[:1], int(round(max(0, -delay) * FPS)), axis=0), frames])
    source = ref.encode(tmp_path / "in.mkv", frames, audio=sound, video_delay=delay,
                        video_args=["-pix_fmt", "yuv420p", "-crf", "10"])
    times, means = ref.frame_times(source)
    samples, rate, start = ref.audio(source, channels=1)
    flash_in = times[np.argmax(means)]
    click_in = start + np.argmax(np.abs(samples[0])) / rate
    assert abs(flash_in - click_in) < 0.02 and abs(times[0] - start - delay) < 0.03  # the fixture

    captured = []
    real = audio_mod.AudioFeatures.windows

    def windows(self, positions, *a):
        captured.append((np.asarray(positions).copy(), self.mel))
        return real(self, positions, *a)

    out = tmp_path / "out.mp4"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(audio_mod.AudioFeatures, "windows", windows)
        run(source, out, fixture_checkpoint, detector=_EveryFrameIsAFace())
    times, means = ref.frame_times(out)
    samples, rate, start = ref.audio(out, channels=1)
    flash_out = times[np.argmax(means)]
    click_out = start + np.argmax(np.abs(samples[0])) / rate
    assert abs(flash_out - click_out) <= 1 / FPS  # they still coincide
    # and the mouth of the flash frame follows the click: its mel window holds the click
    positions = np.concatenate([p for p, _ in captured])
    mel = captured[0][1]
    flash_frame = int(np.argmax(means))
    start_col = int(positions[flash_frame] * 80 / FPS)
    loudest = int(np.argmax(mel.mean(axis=0)))
    assert start_col <= loudest < start_col + 16


class _EveryFrameIsAFace:
    """A detector stand-in with one fixed face box: every frame is lip-synced."""

    batch_size = 4
    min_side = 32

    def detect(self, images):
        return [np.array([[8.0, 8.0, image.shape[1] - 8.0, image.shape[0] - 8.0, 0.99]])
                for image in images]


# ------------------------------------------------------------------ any sound


def test_five_one_dialogue_is_heard_and_kept(tmp_path, fixture_checkpoint):
    frames = textured(12, 48, 64)
    centre_only = speech(12 / FPS, channels=6, where=[2])  # 5.1: dialogue in the centre
    source = ref.encode(tmp_path / "in.mp4", frames, audio=centre_only, layout="5.1",
                        video_args=["-pix_fmt", "yuv420p"])
    assert ref.describe(source).audio_layout.startswith("5.1")
    mel = audio_mod.melspectrogram(audio_mod.to_model_rate(centre_only, 48000))
    voice = audio_mod.melspectrogram(audio_mod.to_model_rate(centre_only[2:3], 48000))
    assert np.abs(mel - voice).max() < 0.05  # the mouth follows the dialogue at its own level
    out = tmp_path / "out.mp4"
    run(source, out, fixture_checkpoint)
    assert ref.describe(out).audio_layout.startswith("5.1")
    samples, _, _ = ref.audio(out, channels=6)
    rms = np.sqrt((samples ** 2).mean(axis=1))
    assert rms[2] > 0.1 and rms[[0, 1, 3, 4, 5]].max() < 0.01  # still in the centre, only there


@pytest.mark.parametrize("channels", [3, 8])
def test_any_channel_count_in_audio_is_accepted(tmp_path, fixture_checkpoint, channels):
    frames = textured(8, 48, 64)
    source = ref.encode(tmp_path / "in.mp4", frames, video_args=["-pix_fmt", "yuv420p"])
    voice = speech(8 / FPS, channels=channels, where=[2])
    out = tmp_path / "out.mp4"
    run(source, out, fixture_checkpoint,
        audio={"waveform": torch.from_numpy(voice[None]), "sample_rate": 48000})
    samples, _, _ = ref.audio(out, channels=1)
    assert np.sqrt((samples ** 2).mean()) > 0.05  # the centre's dialogue is in the output


@pytest.mark.parametrize("rate", [8000, 11025, 192000])
def test_sample_rates_aac_cannot_take_are_resampled(tmp_path, fixture_checkpoint, rate):
    frames = textured(25, 48, 64)
    source = ref.encode(tmp_path / "in.mp4", frames, video_args=["-pix_fmt", "yuv420p"])
    voice = speech(1.0, rate=rate)
    out = tmp_path / "out.mp4"
    run(source, out, fixture_checkpoint,
        audio={"waveform": torch.from_numpy(voice[None]), "sample_rate": rate})
    described = ref.describe(out)
    assert described.audio_rate in video.AAC_RATES
    times, _ = ref.frame_times(out)
    samples, got_rate, start = ref.audio(out)
    picture_end = times[-1] + 1 / FPS
    sound_end = start + samples.shape[1] / got_rate
    assert abs(sound_end - picture_end) < 0.025  # no AAC tail past the picture


# ------------------------------------------------------------------ the rest


def test_loop_modes_keep_each_frames_duration(tmp_path, fixture_checkpoint):
    from video_files import read_video, speech_wave, write_video
    from synthetic_clip import Clip

    clip = Clip(width=64, height=48, fps=FPS, seconds=6 / FPS, scenario="gentle")
    times = [0.0, 0.02, 0.1, 0.14, 0.2, 0.3]  # uneven durations: 20, 80, 40, 60, 100, 40 ms
    source = write_video(tmp_path / "vfr.mp4", clip, times=times, audio=speech_wave(0.9))
    for mode in ("repetitive", "pingpong"):
        out = tmp_path / f"{mode}.mp4"
        run(source, out, fixture_checkpoint, mode=mode, quality=19)
        got, _, _ = read_video(out)
        durations = np.diff(got)
        cycle = [0.02, 0.08, 0.04, 0.06, 0.1, 0.04] if mode == "repetitive" else \
            [0.02, 0.08, 0.04, 0.06, 0.1, 0.04, 0.1, 0.06, 0.04, 0.08]
        expected = np.resize(cycle, len(durations))
        np.testing.assert_allclose(durations, expected, atol=2e-3)


def test_both_routes_pick_the_same_windows_on_constant_rate_video(tmp_path, fixture_checkpoint,
                                                                 monkeypatch):
    from synthetic_clip import Clip, TruthDetector
    from video_files import read_video, speech_wave, write_video

    clip = Clip(width=64, height=48, fps=FPS, seconds=3.0, scenario="gentle")
    source = write_video(tmp_path / "cfr.mp4", clip, audio=speech_wave(3.0))
    asked = []
    real = audio_mod.AudioFeatures.windows
    monkeypatch.setattr(audio_mod.AudioFeatures, "windows",
                        lambda self, p, *a: asked.append(np.asarray(p).copy()) or real(self, p, *a))
    run(source, tmp_path / "o.mp4", fixture_checkpoint, detector=TruthDetector(clip))
    video_route = np.concatenate(asked)
    asked.clear()
    _, frames, _ = read_video(source)
    track = video.read_audio(str(source))
    pipeline.lipsync_images(torch.from_numpy(frames).float() / 255,
                            {"waveform": torch.from_numpy(track.samples[None]), "sample_rate": track.rate},
                            Settings(fps=FPS), hooks(fixture_checkpoint, TruthDetector(clip)))
    image_route = np.concatenate(asked)
    assert len(video_route) == len(image_route)
    starts = audio_mod.window_starts
    np.testing.assert_array_equal(starts(video_route, FPS), starts(image_route, FPS))


class _TrimmedVideo:
    """What ComfyUI 2026's Trim Video / Load Video edit input hand over: a file, a trim window
    and a crop, with the crop kept private as VideoFromFile keeps it."""

    def __init__(self, path, start, duration, crop, size=None):
        self.path = path
        self.start, self.duration = start, duration
        self.__crop = crop
        self.size = size or (crop[2:] if crop else None)  # after every edit, a resize too

    def get_stream_source(self):
        return str(self.path)  # deliberately untrimmed, as ComfyUI's is

    def get_active_trim_window(self):
        return self.start, self.duration

    def has_pending_frame_edits(self):
        return True

    def get_dimensions(self):
        return self.size

    def get_components(self):
        pytest.fail("a file-backed video was decoded whole")


_TrimmedVideo.__name__ = "VideoFromFile"


def test_the_video_node_honours_a_trim_window_and_crop(tmp_path, fixture_checkpoint, monkeypatch):
    frames = textured(50, 96, 128)
    source = ref.encode(tmp_path / "in.mp4", frames, audio=speech(2.0),
                        video_args=["-pix_fmt", "yuv420p", "-crf", "10"])
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: MarkerDetector())
    monkeypatch.setattr(nodes, "_folder_paths", lambda: None)
    made = []
    monkeypatch.setattr(nodes, "_video_from_file", lambda path: made.append(path) or "VIDEO")
    nodes.HaloLipsyVideo().lipsync(_TrimmedVideo(source, 0.4, 0.8, (16, 8, 64, 48)), quality=1)
    out = made[0]
    described = ref.describe(out)
    assert (described.width, described.height) == (64, 48)
    got = ref.frames(out)
    # the reference: ffmpeg's own trim and crop of the same file
    expected = ref.frames(source, vf="trim=start=0.4:duration=0.8,setpts=PTS-STARTPTS,crop=64:48:16:8").reshape(-1, 48, 64, 3)
    assert len(got) == len(expected) == 20
    assert np.abs(got.astype(float) - expected.astype(float)).mean() < 1.5
    samples, rate, _ = ref.audio(out)
    assert samples.shape[1] / rate == pytest.approx(0.8, abs=0.03)


def test_a_stream_that_changes_size_is_scaled_to_its_first_size(tmp_path, fixture_checkpoint):
    first = ref.encode(tmp_path / "a.ts", textured(10, 48, 64), video_args=["-pix_fmt", "yuv420p"])
    second = ref.encode(tmp_path / "b.ts", textured(10, 72, 96, seed=1),
                        video_args=["-pix_fmt", "yuv420p", "-output_ts_offset", "0.4"])
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / "out.mp4"
    result = run(joined, out, fixture_checkpoint,
                 audio={"waveform": torch.from_numpy(speech(0.8)[None]), "sample_rate": 48000})
    assert result.frames_in == 20
    described = ref.describe(out)
    assert (described.width, described.height) == (64, 48) and len(ref.frames(out)) == 20


def test_quality_zero_is_refused_with_the_reason(tmp_path, fixture_checkpoint):
    source = ref.encode(tmp_path / "in.mp4", textured(4, 48, 64), audio=speech(0.2),
                        video_args=["-pix_fmt", "yuv420p"])
    with pytest.raises(errors.HaloLipsyError, match="quality is 0; it must be a whole number from 1 to 51. 0 would be lossless"):
        run(source, tmp_path / "o.mp4", fixture_checkpoint, quality=0)
    assert "browsers and most players refuse" in pack_module("settings").BY_NAME["quality"].tooltip
    assert nodes.HaloLipsyVideo.INPUT_TYPES()["required"]["quality"][1]["min"] == 1
    run(source, tmp_path / "o.mp4", fixture_checkpoint, quality=1)
    assert "High 4:4:4" not in ref.stream_text(tmp_path / "o.mp4")


def test_frames_that_repeat_a_timestamp_are_skipped_not_fatal(tmp_path, fixture_checkpoint, caplog):
    source = tmp_path / "dup.mkv"
    ref.ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=0.6",
               "-vf", "setpts='(N-eq(N,5))/25/TB'", "-fps_mode", "passthrough", "-c:v", "libx264",
               "-bf", "0", source)
    times, _ = ref.frame_times(source)
    assert len(times) == 15 and len(set(np.round(times, 3))) == 14  # the fixture: one repeat
    out = tmp_path / "out.mp4"
    with caplog.at_level("WARNING", logger="HaloLipsy"):
        result = run(source, out, fixture_checkpoint, detector=_EveryFrameIsAFace(),
                     audio={"waveform": torch.from_numpy(speech(0.6)[None]), "sample_rate": 48000})
    assert result.frames_in == 14 and len(ref.frames(out)) == 14
    assert "repeat an earlier timestamp" in caplog.text


def test_the_default_audio_track_is_the_one_used(tmp_path, fixture_checkpoint):
    picture = ref.encode(tmp_path / "v.mp4", textured(12, 48, 64), video_args=["-pix_fmt", "yuv420p"])
    commentary = ref._encode_sound(tmp_path / "a0.mka", np.zeros((1, 24000), np.float32), 48000,
                                   None, ("-c:a", "aac"))
    dialogue = ref._encode_sound(tmp_path / "a1.mka", speech(0.5), 48000, None, ("-c:a", "aac"))
    source = tmp_path / "two_tracks.mkv"
    ref.ffmpeg("-i", picture, "-i", commentary, "-i", dialogue, "-map", "0:v", "-map", "1:a",
               "-map", "2:a", "-c", "copy", "-disposition:a:0", "0", "-disposition:a:1", "default",
               source)
    out = tmp_path / "out.mp4"
    run(source, out, fixture_checkpoint)
    samples, _, _ = ref.audio(out, channels=1)
    assert np.sqrt((samples ** 2).mean()) > 0.05  # the default track (speech), not the first (silence)


@pytest.mark.parametrize("kind, args", [("4:4:4", ["-pix_fmt", "yuv444p"]), ("RGB", ["-c:v", "libx264rgb"])])
def test_full_chroma_sources_pass_through_as_well_as_ffmpegs_own_conversion(tmp_path, fixture_checkpoint,
                                                                           kind, args):
    """Screen recordings, x264rgb, ProRes 4444: their chroma must be reduced to 4:2:0 either way;
    what a player shows of the output is as close to the source as ffmpeg's own re-encode."""
    source = ref.encode(tmp_path / "in.mkv", textured(8, 240, 320), video_args=args + ["-crf", "12"],
                        audio=speech(8 / FPS))
    out = tmp_path / "out.mp4"
    assert run(source, out, fixture_checkpoint, quality=19).faces_found == 0
    again = tmp_path / "ffmpeg_again.mp4"
    ref.ffmpeg("-i", source, "-c:v", "libx264", "-preset", "veryfast", "-crf", "19",
               "-pix_fmt", "yuv420p", "-an", again)
    shown = ref.frames(source)
    ours, theirs = ref.psnr(ref.frames(out)[:len(shown)], shown), ref.psnr(ref.frames(again), shown)
    assert ours >= theirs - 0.3, (kind, ours, theirs)


def test_an_edit_the_stream_cannot_carry_is_refused_not_dropped(tmp_path, fixture_checkpoint, monkeypatch):
    """Trim + resize: the trim is honoured by streaming, the resize cannot be; refused with what
    to do, never lost without a word."""
    source = ref.encode(tmp_path / "in.mp4", textured(50, 96, 128), audio=speech(2.0),
                        video_args=["-pix_fmt", "yuv420p"])
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: MarkerDetector())
    monkeypatch.setattr(nodes, "_folder_paths", lambda: None)
    resized = _TrimmedVideo(source, 0.4, 0.8, None, size=(64, 48))
    with pytest.raises(errors.HaloLipsyError, match="it was resized.*Resize after Halo-Lipsy"):
        nodes.HaloLipsyVideo().lipsync(resized, quality=1)
    unknown = _TrimmedVideo(source, 0.0, 0.0, None, size=(128, 96))  # an edit with no trim or crop
    with pytest.raises(errors.HaloLipsyError, match="edits that Halo-Lipsy cannot read"):
        nodes.HaloLipsyVideo().lipsync(unknown, quality=1)


def test_an_image_sequence_is_a_video(tmp_path, fixture_checkpoint):
    """img%03d.png, as FFmpeg opens it: not refused as a file that does not exist."""
    import cv2

    frames = textured(10, 48, 64)
    for i, frame in enumerate(frames, 1):
        cv2.imwrite(str(tmp_path / f"img{i:03d}.png"), frame[:, :, ::-1])
    out = tmp_path / "out.mp4"
    result = run(tmp_path / "img%03d.png", out, fixture_checkpoint, quality=1,
                 audio={"waveform": torch.from_numpy(speech(10 / FPS)[None]), "sample_rate": 48000})
    assert result.frames_in == 10 and len(ref.frames(out)) == 10
    with pytest.raises(errors.HaloLipsyError, match="does not exist"):
        run(tmp_path / "missing.mp4", out, fixture_checkpoint)


@pytest.mark.parametrize("case", ["BT.601 full range", "10-bit HLG (iPhone HDR)", "BT.709 tagged"])
def test_the_changed_pixels_are_written_in_the_sources_own_colour(tmp_path, fixture_checkpoint,
                                                                  monkeypatch, case):
    """With a face in the picture: the mouth's pixels go back into YUV with the source's matrix
    and range, so ffmpeg, reading the tags, shows the RGB the pipeline made (a wrong matrix or
    range shifts them by many levels)."""
    (width, height), rgb_filter, args, printed = COLOUR_CASES[case]
    frames = textured(6, height, width, marker=(100, 60, 220, 200))
    source = ref.encode(tmp_path / "in.mp4", frames, rgb_filter=rgb_filter,
                        video_args=args + ["-crf", "8"], audio=speech(6 / FPS))
    made = []
    real_write = video.VideoWriter.write

    def keep(self, time_s, duration_s, rgb=None, yuv=None, edits=()):
        made.append([(box, after.copy()) for box, _, after in edits])  # the mouth's RGB, made here
        return real_write(self, time_s, duration_s, rgb, yuv, edits)

    monkeypatch.setattr(video.VideoWriter, "write", keep)
    # a mouth of one saturated colour, so 4:2:0 loses nothing inside it and only the colour
    # conversion can be wrong (the fixture network's mouth is noise)
    wav2lip = pack_module("wav2lip")
    orange = np.array([0.1, 0.45, 0.95], np.float32)[None, :, None, None]  # BGR
    monkeypatch.setattr(wav2lip.BatchedGenerator, "_forward",
                        lambda self, mels, faces: np.broadcast_to(orange, (len(faces), 3, 96, 96)).copy())
    out = tmp_path / "out.mp4"
    result = run(source, out, fixture_checkpoint, MarkerDetector(), quality=1, blend_edges=False)
    assert result.frames_synced >= 6
    shown_in, shown_out = ref.frames(source).astype(int), ref.frames(out).astype(int)
    for k in range(6):
        (x1, y1, x2, y2), mouth = made[k][0]
        changed = np.abs(mouth.astype(int) - shown_in[k, y1:y2, x1:x2]).max(axis=-1) > 24
        assert changed.sum() > 500, k
        inner = cv2.erode(changed.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # away from 4:2:0 edges
        diff = np.abs(shown_out[k, y1:y2, x1:x2][inner] - mouth[inner].astype(int))
        assert diff.mean() < 3.0 and np.percentile(diff, 99) < 14, (case, k, diff.mean())


def phone_clip(tmp_path, count=50, seconds=2.0):
    """A portrait phone video (stored landscape, display matrix 90) with a green face and a grey
    level in its top-left corner that counts the frames (order is readable back)."""
    upright = textured(count, 160, 96, marker=(30, 60, 70, 110))
    for i in range(count):
        upright[i, 12:20, :8] = 5 * i
    stored = ref.encode(tmp_path / "stored.mp4", upright, rgb_filter="transpose=1",
                        video_args=["-pix_fmt", "yuv420p", "-crf", "8"], audio=speech(seconds))
    return ref.remux(stored, tmp_path / "phone.mp4", "-display_rotation", 90)


def test_rotation_with_a_trim_a_crop_and_a_marker(tmp_path, fixture_checkpoint):
    """Every edit on the upright picture: ffmpeg's own trim and crop of the upright file is the
    reference, and a marker painted on the upright, cropped frame picks the face."""
    phone = phone_clip(tmp_path)
    crop = (10, 40, 80, 100)  # x, y, w, h of the upright picture
    marker = torch.zeros(1, 100, 80)
    marker[0, 35:45, 30:40] = 1.0  # on the face, which is at (20, 20)-(60, 70) in the crop
    out = tmp_path / "out.mp4"
    expected = ref.frames(phone, vf="trim=start=0.4:duration=0.8,setpts=PTS-STARTPTS,"
                                    "crop=80:100:10:40").reshape(-1, 100, 80, 3).astype(int)
    painted_on = torch.from_numpy(expected[:1] / 255.0).float()  # the frame, as Load Image gives it
    result = video_route.lipsync_video(str(phone), str(out), Settings(quality=1),
                                       hooks(fixture_checkpoint, MarkerDetector()),
                                       edits=video.Edits(0.4, 0.8, crop), face_marker=marker,
                                       face_marker_image=painted_on)
    got = ref.frames(out).astype(int)
    assert ref.describe(out).rotation == 0 and got.shape[1:3] == (100, 80)
    assert len(got) == len(expected) == 20 and result.faces_found == 20
    # the same frames in the same place (the counter in the corner, the untouched top)
    np.testing.assert_allclose(got[:, :15].mean(axis=(1, 2, 3)), expected[:, :15].mean(axis=(1, 2, 3)), atol=2)
    changed = np.abs(got - expected).max(axis=-1) > 40
    ys, xs = np.nonzero(changed.any(axis=0))
    assert len(ys) and 20 <= xs.min() and xs.max() < 60 and 20 <= ys.min() and ys.max() < 82


def test_a_trim_in_pingpong_plays_only_the_trimmed_part_forward_and_back(tmp_path, fixture_checkpoint):
    phone = phone_clip(tmp_path)
    out = tmp_path / "out.mp4"
    speech_for = {"waveform": torch.from_numpy(speech(1.4)[None]), "sample_rate": 48000}
    video_route.lipsync_video(str(phone), str(out), Settings(quality=1, mode="pingpong"),
                              hooks(fixture_checkpoint, MarkerDetector()), audio=speech_for,
                              edits=video.Edits(0.4, 0.4))
    got = ref.frames(out)
    counter = np.round(got[:, 12:20, :8].astype(float).mean(axis=(1, 2, 3)) / 5).astype(int)
    # frames 10..19 of the file (0.4 s to 0.8 s), then back, then forward again: 35 frames
    cycle = list(range(10, 20)) + list(range(18, 10, -1))
    assert len(counter) == 35
    assert counter.tolist() == (cycle * 2)[:35]


def ts_clip(tmp_path, count=150):
    """An MPEG-TS recording (no index: seeking lands near a time, not on a keyframe), a keyframe
    every second, its frames counted by a grey level in the top-left corner."""
    frames = textured(count, 96, 128, marker=(40, 20, 90, 80))
    for i in range(count):
        frames[i, 12:20, :8] = (i * 5) % 250
    return ref.encode(tmp_path / "recording.ts", frames, 25.0, audio=speech(count / 25.0),
                      video_args=["-c:v", "libx264", "-g", "25", "-crf", "8", "-pix_fmt", "yuv420p",
                                  "-f", "mpegts"])


def counters(path):
    got = ref.frames(path)
    return (np.round(got[:, 12:20, :8].astype(float).mean(axis=(1, 2, 3)) / 5).astype(int) % 50).tolist()


def test_pingpong_plays_an_mpeg_ts_recording_back_and_forth(tmp_path, fixture_checkpoint):
    """The backward run reads blocks ending at frames in the last GOP: a seek that lands past
    the keyframe before them is made again earlier, instead of the run failing."""
    source = ts_clip(tmp_path)
    out = tmp_path / "out.mp4"
    speech_for = {"waveform": torch.from_numpy(speech(9.0)[:1]), "sample_rate": 48000}
    video_route.lipsync_video(str(source), str(out), Settings(quality=1, mode="pingpong"),
                              hooks(fixture_checkpoint), audio=speech_for)
    cycle = [i % 50 for i in list(range(150)) + list(range(148, 0, -1))]
    assert counters(out) == (cycle * 2)[:225]


def test_a_trim_of_an_mpeg_ts_recording_starts_at_its_first_frame(tmp_path, fixture_checkpoint):
    """A trim from frame 68 on (2.71 s after the first frame, on the file's clock): its 25 frames,
    where a seek that landed late lost the first 19 of them."""
    source = ts_clip(tmp_path)
    # a TS recording's clock starts at 1.4 s here: ffmpeg says where ("start: ...")
    first = float(re.search(r"start: ([\d.]+)", ref.stream_text(source)).group(1))
    out = tmp_path / "out.mp4"
    video_route.lipsync_video(str(source), str(out), Settings(quality=1), hooks(fixture_checkpoint),
                              edits=video.Edits(first + 2.71, 1.0))
    assert counters(out) == [i % 50 for i in range(68, 93)]


def tone(seconds, hz, rate=48000):
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]


def recording(path, count, height, width, grey, hz, *video_args):
    """A 2 s MPEG-TS recording: frames of one grey level with a counter (a corner that scales
    with the frame), a tone of its own."""
    frames = np.full((count, height, width, 3), grey, np.uint8)
    for i in range(count):
        frames[i, :height // 6, :width // 8] = (i * 5) % 250
    return ref.encode(path, frames, 25.0, audio=tone(count / 25.0, hz),
                      video_args=["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", *video_args, "-f", "mpegts"])


def join_point(path):
    """(time of the first bright frame, time the 660 Hz tone starts) of a file, read by ffmpeg."""
    times, _ = ref.frame_times(path)
    bright = ref.frames(path)[:, 60:, 60:].astype(float).mean(axis=(1, 2, 3)) > 150
    samples, rate, _ = ref.audio(path, channels=1)
    window = rate // 100
    pitch = [np.abs(np.fft.rfft(samples[0, i:i + window])).argmax() * rate / window
             for i in range(0, samples.shape[1] - window, window)]
    return times[int(np.argmax(bright))], next(i for i, hz in enumerate(pitch) if hz > 550) / 100


@pytest.mark.parametrize("second_clock", ["starts again", "runs on"])
def test_two_mpeg_ts_recordings_joined_play_one_after_the_other(tmp_path, fixture_checkpoint, second_clock):
    """A recorder restarted: 2 s at 320x240, then 2 s at 640x480, the files joined end to end.
    Every frame comes out in order (ffmpeg's own transcode of the joined file has 100 too), the
    sound as long as ffmpeg's, and after the join the second recording's sound starts with its
    picture (within a frame: where its timestamps overlap the first's sound, the first keeps
    its end) and the picture lasts as long as the sound."""
    first = recording(tmp_path / "a.ts", 50, 240, 320, 60, 440)
    runs_on = ["-output_ts_offset", "2"] if second_clock == "runs on" else []
    second = recording(tmp_path / "b.ts", 50, 480, 640, 200, 660, *runs_on)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    played = tmp_path / "ffmpeg.mp4"
    ref.ffmpeg("-i", joined, "-c:v", "libx264", "-c:a", "aac", played)
    out = tmp_path / "out.mp4"
    report = video_route.lipsync_video(str(joined), str(out), Settings(quality=18, mode="sequential"),
                                       hooks(fixture_checkpoint))  # the file's own sound
    assert report.frames_in == 100
    assert counters(out)[:100] == [i % 50 for i in range(100)]
    assert len(ref.frame_times(played)[0]) == 100
    picture, sound = join_point(out)
    assert picture == pytest.approx(2.0, abs=0.05) and sound == pytest.approx(picture, abs=0.04)
    samples, rate, _ = ref.audio(out)
    expected, expected_rate, _ = ref.audio(played)
    assert samples.shape[1] / rate == pytest.approx(expected.shape[1] / expected_rate, abs=0.06)
    times, _ = ref.frame_times(out)
    assert times[-1] + 0.04 == pytest.approx(samples.shape[1] / rate, abs=0.045)
