"""The VIDEO route: streamed decode -> detect -> generate -> paste -> encode, its modes, timing,
audio, bad input, the node and the command line. Videos are made here with PyAV."""

import dataclasses
import logging
import re
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import hooks_with, pack_module
from synthetic_clip import Clip, MarkerDetector, TruthDetector
from video_files import audio_seconds, read_video, speech_wave, write_video

pipeline = pack_module("routes")
errors = pack_module("common.errors")
video_route = pack_module("routes")
video = pack_module("video")
nodes = pack_module("nodes")
settings_mod = pack_module("settings")
Settings = settings_mod.Settings

W, H, FPS = 160, 120, 25.0


@pytest.fixture(scope="module")
def clip():
    return Clip(width=W, height=H, fps=FPS, seconds=0.8, scenario="gentle")  # 20 frames


@pytest.fixture(scope="module")
def talking(tmp_path_factory, clip):
    path = tmp_path_factory.mktemp("videos") / "talking.mp4"
    return write_video(path, clip, audio=speech_wave(1.0, 16000), audio_rate=16000)


@pytest.fixture
def hooks(fixture_checkpoint, clip):
    return hooks_with([fixture_checkpoint.parent], TruthDetector(clip))


def frames_for_sound(path):
    """Output frames the decoded sound of `path` drives (AAC adds encoder padding: a 1.0 s clip
    decodes a little longer, and the output covers it)."""
    track = video.read_audio(str(path))
    samples, rate = track.samples, track.rate
    return int(np.ceil(round(samples.shape[1] / rate * FPS, 6)))


def run_video(source, destination, hooks, **kw):
    kw.setdefault("quality", 1)
    audio = kw.pop("audio", None)
    face_mask = kw.pop("face_mask", None)
    return video_route.lipsync_video(str(source), str(destination), Settings(**kw), hooks,
                                     audio=audio, face_mask=face_mask)


# ------------------------------------------------------------------ the same result as the IMAGE node


def test_the_video_route_gives_the_image_routes_frames(tmp_path, hooks, clip, fixture_checkpoint,
                                                       monkeypatch):
    # 4:2:0 as real footage is, and lossless H.264 (refused to users: players reject its
    # profile), so only the routes can differ
    talking = write_video(tmp_path / "talking420.mp4", clip, audio=speech_wave(1.0, 16000),
                          audio_rate=16000, pix_fmt="yuv420p")
    quality = settings_mod.BY_NAME["quality"]
    monkeypatch.setitem(settings_mod.BY_NAME, "quality", dataclasses.replace(quality, minimum=0))
    out = tmp_path / "out.mp4"
    run = run_video(talking, out, hooks, quality=0)
    n = frames_for_sound(talking)
    assert n in (26, 27) and run.frames_out == n and run.frames_synced == n

    # the IMAGE route as a user would wire it: every decoded frame, the same audio
    in_times, in_frames, _ = read_video(talking)
    sound = video.read_audio(str(talking))
    track, rate = sound.samples, sound.rate
    images = torch.from_numpy(in_frames)
    reference, fitted, weights = pipeline.lipsync_images(
        images, {"waveform": torch.from_numpy(track[None]), "sample_rate": rate},
        Settings(fps=FPS), hooks_with([fixture_checkpoint.parent], TruthDetector(clip)))
    # the IMAGE route's frames through the same encoder (lossless, whole frames from RGB)
    encoded = tmp_path / "reference.mp4"
    writer = video.VideoWriter(str(encoded), W, H, FPS, 0,
                               sound=video.Sound(fitted["waveform"][0].numpy(), rate, "mono"))
    for i, frame in enumerate(reference.numpy()):
        writer.write(i / FPS, 1 / FPS, np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8))
    writer.finish()
    times, frames, fps = read_video(out)
    ref_times, ref_frames, _ = read_video(encoded)
    assert fps == FPS and len(frames) == len(ref_frames) == n
    np.testing.assert_allclose(times, ref_times, atol=1e-3)
    # the same mouths (both 4:2:0 of the same generated pixels) ...
    mouth = weights.numpy() > 0
    diff = np.abs(frames.astype(int) - ref_frames.astype(int)).max(axis=-1)
    assert diff[mouth].mean() < 0.2 and np.percentile(diff[mouth], 99) <= 2
    # ... and everywhere else the source's own samples, untouched (the reference, converted to
    # RGB and back, is off by a level here and there)
    shown = np.minimum(np.arange(n), len(in_frames) - 1)
    untouched = np.abs(frames.astype(int) - in_frames[shown].astype(int)).max(axis=-1)
    edge = np.zeros_like(mouth)  # 2x2 chroma blocks that straddle the mouth's edge
    for k in range(n):
        edge[k] = cv2.dilate(mouth[k].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert untouched[~edge].max() == 0
    changed = np.abs(frames[:20].astype(int) - in_frames.astype(int)).max(axis=-1) > 8
    assert changed.any(axis=(1, 2)).all()  # every frame lip-synced
    assert audio_seconds(out) == pytest.approx(n / FPS, abs=0.07)


def test_frames_without_a_face_pass_through(tmp_path, talking, fixture_checkpoint):
    hooks = hooks_with([fixture_checkpoint.parent], MarkerDetector())  # finds nothing
    out = tmp_path / "out.mp4"
    run = run_video(talking, out, hooks)
    _, frames, _ = read_video(out)
    _, source, _ = read_video(talking)
    assert run.faces_found == 0 and len(frames) == frames_for_sound(talking)
    # yuv420p output: chroma is subsampled, so colour edges move a little; nothing else changes
    same = np.abs(frames[:20].astype(int) - source.astype(int))
    assert same.mean() < 2.5 and np.percentile(same, 99) <= 10
    held = np.abs(frames[20:].astype(int) - source[-1].astype(int))  # the last frame held
    assert held.mean() < 2.5 and np.percentile(held, 99) <= 10


def test_a_kept_conversion_context_converts_as_a_fresh_one_whatever_came_before():
    # one swscale context per thread serves every matrix, range and direction in turn: nothing
    # of an earlier conversion (a BT.709 video's) may leak into a later one (a BT.601 video's)
    import av

    decode = pack_module("video.decode")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)
    yuv = rng.integers(16, 236, (96, 64), dtype=np.uint8)
    for matrix in (1, 5, 7, 1, 5):  # swscale's BT.709, BT.601, SMPTE 240M
        for value_range in ("MPEG", "JPEG"):
            for pixels, options in ((rgb, dict(format="yuv420p", dst_colorspace=matrix,
                                                dst_color_range=value_range)),
                                    (yuv, dict(format="rgb24", src_colorspace=matrix,
                                               src_color_range=value_range))):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24" if pixels.ndim == 3 else "yuv420p")
                fresh = frame.reformat(interpolation="BICUBIC", **options).to_ndarray()
                np.testing.assert_array_equal(decode.reformat(frame, **options).to_ndarray(), fresh)


# ------------------------------------------------------------------ timing


def test_variable_frame_rate_keeps_each_frames_time_and_audio_window(tmp_path, clip, fixture_checkpoint,
                                                                     monkeypatch):
    rng = np.random.default_rng(0)
    times = np.cumsum(np.concatenate([[0], rng.uniform(0.025, 0.06, clip.count - 1)]))
    times = np.round(times, 3)
    source = write_video(tmp_path / "vfr.mp4", clip, times=list(times), audio=speech_wave(0.5),
                         audio_rate=16000)
    asked = []
    real = pack_module("audio").AudioFeatures.windows
    monkeypatch.setattr(pack_module("audio").AudioFeatures, "windows",
                        lambda self, idx, *a: asked.extend(np.asarray(idx).tolist()) or real(self, idx, *a))
    out = tmp_path / "out.mp4"
    hooks = hooks_with([fixture_checkpoint.parent], TruthDetector(clip))
    run = run_video(source, out, hooks)
    out_times, frames, _ = read_video(out)
    assert len(frames) == clip.count == run.frames_out  # the video is longer than the speech
    np.testing.assert_allclose(out_times, times, atol=2e-3)  # each frame at its own time
    fps = float(video.probe(str(source)).fps)
    # each frame's audio window starts at its presentation time (in frames of the nominal rate)
    np.testing.assert_allclose(asked, times * fps, atol=1e-6)
    assert not np.allclose(asked, np.arange(clip.count))  # not by index


# ------------------------------------------------------------------ modes in bounded memory


def numbered_clip(tmp_path, n=12):
    """Frame i has a grey level of 20 * i in its top-left corner: order is readable back."""
    clip = Clip(width=64, height=48, fps=FPS, seconds=n / FPS, scenario="gentle")
    base = clip.frame

    def frame(i):
        pixels = base(i).copy()
        pixels[:8, :8] = (20 * i) / 255.0
        return pixels

    clip.frame = frame
    return write_video(tmp_path / "numbered.mp4", clip, audio=speech_wave(n / FPS * 2.1)), clip


@pytest.mark.parametrize("mode", ["sequential", "repetitive", "pingpong"])
def test_modes_give_the_image_nodes_frame_count_and_order(tmp_path, fixture_checkpoint, mode, monkeypatch):
    source, clip = numbered_clip(tmp_path)
    monkeypatch.setattr(pack_module("routes.output"), "BATCH_BYTES", 5 * 64 * 48 * 3)  # blocks of 5 frames: many seeks
    hooks = hooks_with([fixture_checkpoint.parent], MarkerDetector())
    out = tmp_path / f"{mode}.mp4"
    run = run_video(source, out, hooks, mode=mode)
    _, frames, _ = read_video(out)
    expected = pipeline.timeline(mode, np.arange(12) / FPS, frames_for_sound(source) / FPS, FPS).source
    assert len(frames) == len(expected) == run.frames_out
    shown = np.round(frames[:, 2:6, 2:6].mean(axis=(1, 2, 3)) / 20).astype(int)
    assert shown.tolist() == expected.tolist()
    if mode == "pingpong":
        assert run.seeks >= 3  # the backward runs were read a block at a time


# ------------------------------------------------------------------ audio


def test_the_videos_own_sound_is_used_and_an_audio_input_replaces_it(tmp_path, clip, hooks):
    silent = write_video(tmp_path / "silent.mp4", clip)
    with pytest.raises(errors.HaloLipsyError, match="the video has no sound, and the speech was not given"):
        run_video(silent, tmp_path / "x.mp4", hooks)
    assert not (tmp_path / "x.mp4").exists()
    speech = {"waveform": torch.from_numpy(speech_wave(1.2, 44100, 2)[None]), "sample_rate": 44100}
    out = tmp_path / "dubbed.mp4"
    run = run_video(silent, out, hooks, audio=speech)
    assert run.frames_out == 30
    assert audio_seconds(out) == pytest.approx(30 / FPS, abs=0.07)


# ------------------------------------------------------------------ bad input, interrupts


def test_an_interrupt_leaves_no_file(tmp_path, talking, fixture_checkpoint, clip):
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) > 8:
            raise KeyboardInterrupt("cancelled")

    hooks = hooks_with([fixture_checkpoint.parent], TruthDetector(clip),
                                 check_interrupt=interrupt)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        run_video(talking, out, hooks, inference_batch=4)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def write_audio_only(path):
    import av
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(speech_wave(0.5)[:, :1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
    return path


def write_no_frames(path):
    import av
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    return path


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(bytes(range(256)) * 40) and p, "is not a media file that can be read"),
    (lambda p: p.write_text("not a video, just words\n" * 50) and p, "is not a media file"),
    (write_audio_only, "has no video stream \\(an audio file\\)"),
    (write_no_frames, "has no frames|is not a media file|does not exist"),
    (lambda p: p, "does not exist"),  # missing
])
def test_bad_video_files_get_clear_messages_and_leave_nothing(tmp_path, hooks, make, words):
    source = tmp_path / "input.mp4"
    make(source)
    out = tmp_path / "out" / "result.mp4"
    out.parent.mkdir()
    speech = {"waveform": torch.from_numpy(speech_wave(0.5)[None]), "sample_rate": 16000}
    with pytest.raises(errors.HaloLipsyError, match=words):
        run_video(source, out, hooks, audio=speech)
    assert list(out.parent.iterdir()) == []


def test_a_damaged_stream_still_gives_a_video(tmp_path, clip, hooks, caplog):
    import av
    source = write_video(tmp_path / "damaged.mp4", clip, audio=speech_wave(1.0), crf=30,
                         pix_fmt="yuv420p")
    with av.open(str(source)) as container:  # where the 11th coded frame lies in the file
        packets = [(p.pos, p.size, float(p.pts * p.time_base)) for p in container.demux(video=0) if p.size]
    pos, size, when = packets[10]
    data = bytearray(source.read_bytes())
    data[pos:pos + size] = b"\xff" * size  # that frame's data destroyed: it cannot be decoded
    source.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        run = run_video(source, out, hooks)
    assert run.frames_in == clip.count - 1  # the one damaged frame is missing, no other
    times, frames, _ = read_video(out)
    assert len(frames) == run.frames_out >= clip.count - 1
    named = re.search(r"a damaged video packet near ([\d.]+) s could not be decoded", caplog.text)
    assert named and abs(float(named.group(1)) - when) <= 0.2  # (threaded decoding reports late)


def test_a_face_mask_must_be_one_frame(tmp_path, talking, hooks):
    with pytest.raises(errors.HaloLipsyError, match="single frame"):
        run_video(talking, tmp_path / "o.mp4", hooks, face_mask=torch.ones(3, H, W))
    with pytest.raises(errors.HaloLipsyError, match="face_mask is 10x8 but the video is 160x120"):
        run_video(talking, tmp_path / "o.mp4", hooks, face_mask=torch.ones(1, 8, 10))
    mask = torch.zeros(1, H, W)
    mask[0, 30:90, 50:110] = 1
    run = run_video(talking, tmp_path / "o.mp4", hooks, face_mask=mask)
    assert run.frames_synced == frames_for_sound(talking) and run.detection_stats is None


# ------------------------------------------------------------------ the node and the command line


class FileVideo:
    """What Load Video hands over: a VideoFromFile with a stream source."""

    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return str(self.path)

    def get_components(self):
        pytest.fail("a file-backed video was decoded whole")


def test_the_video_node_streams_into_comfyuis_temp_folder(tmp_path, talking, fixture_checkpoint, clip,
                                                         monkeypatch):
    from comfy_stand_ins import FakeFolderPaths
    folder_paths = FakeFolderPaths(tmp_path / "models")
    folder_paths.get_temp_directory = lambda: str(tmp_path / "temp")
    monkeypatch.setattr(nodes, "_folder_paths", lambda: folder_paths)
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: TruthDetector(clip))
    monkeypatch.setattr(nodes, "_video_from_file", lambda path: ("VideoFromFile", Path(path)))
    (result,) = nodes.HaloLipsyVideo().lipsync(FileVideo(talking), quality=1)
    kind, path = result
    assert kind == "VideoFromFile" and path.parent == tmp_path / "temp" / "halo-lipsy"
    assert len(read_video(path)[1]) == frames_for_sound(talking)

    # an interrupted run leaves nothing in the temp folder
    monkeypatch.setattr(nodes, "_check_interrupt", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        nodes.HaloLipsyVideo().lipsync(FileVideo(talking))
    assert list((tmp_path / "temp" / "halo-lipsy").iterdir()) == [path]


def test_the_video_node_interface():
    spec = nodes.HaloLipsyVideo.INPUT_TYPES()
    image_spec = nodes.HaloLipsy.INPUT_TYPES()["required"]
    shared = [k for k in image_spec if k not in ("images", "audio", "fps")]
    assert list(spec["required"]) == ["video"] + shared[:-4] + ["quality"] + shared[-4:-2] + [
        "output_sound", "restore_strength", "codeformer_fidelity"]
    # new settings last: saved workflows keep their values
    assert shared[-4:] == ["face", "silence", "restore_strength", "codeformer_fidelity"]
    assert list(spec["optional"]) == ["audio", "face_mask", "face_marker", "face_marker_image", "restore_model",
                                      "restore_model_file"]
    for name, (_, options) in {**spec["required"], **spec["optional"]}.items():
        assert options.get("tooltip"), name
    assert nodes.HaloLipsyVideo.RETURN_TYPES == ("VIDEO",)
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["HaloLipsyVideo"] == "Halo-Lipsy (Video)"


def test_the_command_line(tmp_path, talking, fixture_checkpoint, capsys):
    from face_alignment.detection.sfd.net_s3fd import s3fd
    import importlib.util
    from conftest import ROOT
    spec = importlib.util.spec_from_file_location("lipsync_cli", ROOT / "lipsync.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    models = tmp_path / "models"
    models.mkdir()
    (models / "wav2lip_gan.pth").symlink_to(fixture_checkpoint)
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), models / "s3fd.pth")  # random weights: the wiring, offline
    speech = tmp_path / "speech.mp4"
    write_audio_only(speech)
    out = tmp_path / "result.mp4"
    assert cli.main([str(talking), "-o", str(out), "--models", str(models), "-q", "--cpu"]) == 0
    assert len(read_video(out)[1]) == frames_for_sound(talking) and "wrote" in capsys.readouterr().out
    assert cli.main([str(talking), "--audio", str(speech), "-o", str(out), "--models", str(models),
                     "-q", "--mode", "repetitive", "--quality", "30"]) == 0
    assert len(read_video(out)[1]) == frames_for_sound(speech)
    before = out.read_bytes()
    assert cli.main([str(speech), "-o", str(out), "--models", str(models), "-q"]) == 2
    assert "has no video stream" in capsys.readouterr().err
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "models", "result.mp4", "speech.mp4"]


def test_a_video_held_in_memory_goes_through_the_image_route(clip, fixture_checkpoint, monkeypatch):
    from fractions import Fraction

    class VideoFromComponents:  # what Create Video hands over: frames already in memory
        def get_stream_source(self):
            pytest.fail("frames in memory were encoded just to be decoded again")

        def get_components(self):
            return types.SimpleNamespace(images=clip.images(), frame_rate=Fraction(25),
                                         audio={"waveform": torch.from_numpy(speech_wave(1.0)[None]),
                                                "sample_rate": 16000})

    made = []
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: TruthDetector(clip))
    monkeypatch.setattr(nodes, "_video_from_file", lambda path: made.append(Path(path)) or "VIDEO")
    monkeypatch.setattr(nodes, "_folder_paths", lambda: None)
    sizes = {}
    for quality in (1, 40):
        assert nodes.HaloLipsyVideo().lipsync(VideoFromComponents(), quality=quality) == ("VIDEO",)
        sizes[quality] = made[-1].stat().st_size
        times, frames, fps = read_video(made[-1])
        assert len(frames) == 25 and fps == 25.0 and audio_seconds(made[-1]) == pytest.approx(1.0, abs=0.03)
        drawn = (clip.images().numpy() * 255 + 0.5).astype(int)
        assert np.abs(frames[:20].astype(int) - drawn).max(axis=-1).max(axis=(1, 2)).min() > 8  # lip-synced
    assert sizes[1] > 2 * sizes[40]  # quality is honoured
    # the same face_mask rule as a file-backed video: one frame for the whole clip
    with pytest.raises(errors.HaloLipsyError, match="single frame"):
        nodes.HaloLipsyVideo().lipsync(VideoFromComponents(), face_mask=torch.ones(3, H, W))


def test_a_video_held_in_memory_honours_output_sound(clip, fixture_checkpoint, monkeypatch):
    """Create Video's output with its own sound (a 440 Hz tone) and other speech connected:
    output_sound 'video' keeps the video's own sound, 'speech' carries the speech (ffmpeg's
    reading of the file says which)."""
    import ffmpeg_reference as ref
    from fractions import Fraction

    rate = 48000
    own = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate))[None].astype(np.float32)

    class VideoFromComponents:
        def get_components(self):
            return types.SimpleNamespace(images=clip.images(), frame_rate=Fraction(25),
                                         audio={"waveform": torch.from_numpy(own[None]), "sample_rate": rate})

    made = []
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: TruthDetector(clip))
    monkeypatch.setattr(nodes, "_video_from_file", lambda path: made.append(Path(path)) or "VIDEO")
    monkeypatch.setattr(nodes, "_folder_paths", lambda: None)
    speech = {"waveform": torch.from_numpy(speech_wave(1.0)[None]), "sample_rate": 16000}  # 180 Hz
    for sound, expected_hz in (("video", 440), ("speech", 180)):
        nodes.HaloLipsyVideo().lipsync(VideoFromComponents(), audio=speech, output_sound=sound)
        samples, got_rate, _ = ref.audio(made[-1], channels=1)
        spectrum = np.abs(np.fft.rfft(samples[0]))
        peak = np.fft.rfftfreq(samples.shape[1], 1 / got_rate)[np.argmax(spectrum)]
        assert abs(peak - expected_hz) < 5, (sound, peak)


@pytest.mark.parametrize("mode", ["sequential", "pingpong"])
@pytest.mark.parametrize("seed", [0, 2])
def test_a_variable_rate_clip_ends_its_picture_with_its_sound(tmp_path, clip, fixture_checkpoint, mode, seed):
    """Each frame says how long it lasts, the last one too: ffmpeg reads the picture and the
    sound of the output as ending together (they were 20-50 ms apart: sound with no picture)."""
    import re

    import ffmpeg_reference as ref

    rng = np.random.default_rng(seed)
    times = np.round(np.cumsum(np.concatenate([[0], rng.uniform(0.025, 0.06, clip.count - 1)])), 3)
    source = write_video(tmp_path / "vfr.mp4", clip, times=list(times), audio=speech_wave(0.5),
                         audio_rate=16000)
    out = tmp_path / "out.mp4"
    run_video(source, out, hooks_with([fixture_checkpoint.parent], TruthDetector(clip)), mode=mode)

    def duration(stream):  # ffmpeg's length of that stream alone, copied out of the file
        alone = tmp_path / f"{stream}.mp4"
        ref.ffmpeg("-i", out, "-map", f"0:{stream}:0", "-c", "copy", alone)
        h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", ref.stream_text(alone)).groups()
        return int(h) * 3600 + int(m) * 60 + float(s)

    assert duration("v") == pytest.approx(duration("a"), abs=0.011)


@pytest.mark.parametrize("height", [90, 96])  # 90: not a multiple of 4 (PyAV cannot wrap it)
def test_the_writer_keeps_every_row_of_the_sources_yuv(tmp_path, height):
    import ffmpeg_reference as ref

    rng = np.random.default_rng(height)
    frames = [rng.integers(16, 236, (height * 3 // 2, 64), dtype=np.uint8) for _ in range(5)]
    out = tmp_path / "out.mp4"
    writer = video.VideoWriter(str(out), 64, height, FPS, 0)  # CRF 0: lossless in YUV
    for i, yuv in enumerate(frames):
        writer.write(i / FPS, 1 / FPS, yuv=yuv.copy())
    writer.finish()
    np.testing.assert_array_equal(ref.yuv_planes(out), np.stack(frames))
