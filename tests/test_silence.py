"""Silence means nobody speaks: real speech (the fixture recording) over room tone, a stem with one
line in 20 s, music without a voice, pauses at every common frame rate; on the IMAGE route, the
VIDEO route (kept frames are the source's own YUV samples, read back by ffmpeg) and loop modes.
The voice's other sounds: a whisper and a laugh move the mouth, a cough and a door slam do not,
quiet speech after the slam does; long tracks in bounded memory, Cancel while the detector runs,
and a log that says when no speech was found."""

import dataclasses

import numpy as np
import pytest
import torch

import sounds
from conftest import hooks_with, pack_module
from synthetic_clip import FaceBlobsDetector, two_faces

audio_mod = pack_module("audio")
vad = pack_module("audio.vad")
pipeline = pack_module("routes")
video_route = pack_module("routes")
settings_mod = pack_module("settings")
Settings = settings_mod.Settings

PAUSE_AT = 1.5  # seconds into the fixture speech: mid-word
W, H = 160, 120
FACE = (50, 30, 110, 100)


def as_audio(samples):
    return {"waveform": torch.from_numpy(np.ascontiguousarray(samples)[None]), "sample_rate": sounds.RATE}


def runs_of(samples):
    return audio_mod.speech_runs(samples)


def test_the_network_is_the_packages_own_model():
    """Our plain-torch network, with the wheel's weights, against the wheel's own TorchScript
    model run chunk by chunk as its authors do (an independent reference)."""
    threads = torch.get_num_threads()
    import silero_vad
    reference = silero_vad.load_silero_vad()
    torch.set_num_threads(threads)  # that package's import sets one thread for the process
    samples = sounds.over_room_tone(sounds.with_pause(sounds.speech(), PAUSE_AT, 0.5), -50)
    padded = np.concatenate([samples, np.zeros(-samples.size % vad.CHUNK, np.float32)])
    expected = [reference(torch.from_numpy(padded[k:k + vad.CHUNK]), vad.SAMPLE_RATE).item()
                for k in range(0, padded.size, vad.CHUNK)]
    got = vad.speech_probability(samples)
    assert got.shape == (len(expected),)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert got.max() > 0.9 and got.min() < 0.1  # it does see speech and the pause


@pytest.mark.parametrize("db", [-50, -60])
def test_room_tone_is_not_speech_and_the_speech_around_it_is(db):
    samples = sounds.over_room_tone(sounds.with_pause(sounds.speech(), PAUSE_AT, 1.2), db)
    runs = runs_of(samples)
    # speech before and after, nothing in the 1.2 s of room tone (edges within a chunk or two)
    assert runs[0, 0] < 0.1 and runs[-1, 1] > 4.0
    inside = runs[(runs[:, 1] > PAUSE_AT + 0.05) & (runs[:, 0] < PAUSE_AT + 1.15)]
    assert len(inside) == 0, runs
    assert len(runs_of(sounds.room_tone(5.0, db, 0.6))) == 0


def test_a_stem_with_one_line_in_twenty_seconds_moves_the_mouth_for_that_line_only():
    speech = sounds.speech()
    stem = sounds.over_room_tone(sounds.placed(speech, 20.0, 8.0), -50)
    runs = runs_of(stem)
    assert len(runs) >= 1 and runs[0, 0] >= 7.9 and runs[-1, 1] <= 8.0 + speech.size / sounds.RATE + 0.1
    fps = 25.0
    strength = audio_mod.speech_strength(runs, audio_mod.window_starts(np.arange(500), fps))
    assert (strength > 0).sum() <= 3.5 * fps  # the 3 s line and its fades, not the 20 s


def test_music_without_a_voice_and_digital_silence_are_not_speech():
    assert len(runs_of(sounds.music(10.0))) == 0
    assert len(runs_of(sounds.over_room_tone(sounds.music(10.0), -40))) == 0
    assert len(runs_of(np.zeros(3 * sounds.RATE, np.float32))) == 0


def test_quiet_and_loud_recordings_of_the_same_speech_behave_alike():
    samples = sounds.over_room_tone(sounds.with_pause(sounds.speech(), PAUSE_AT, 0.7), -55)
    normal = runs_of(samples)
    for gain in (0.01, 0.1, 1.4):  # -40 dB, -20 dB, +3 dB
        np.testing.assert_allclose(runs_of(samples * np.float32(gain)), normal, atol=0.07)


@pytest.mark.parametrize("fps", [24.0, 25.0, 30.0, 60.0])
@pytest.mark.parametrize("pause", [0.3, 0.45, 0.7])
def test_every_pause_of_the_minimum_shows_the_real_mouth_fully_in_its_middle(fps, pause):
    assert audio_mod.MIN_PAUSE_S <= 0.3
    samples = sounds.over_room_tone(sounds.with_pause(sounds.speech(), PAUSE_AT, pause), -50)
    features = audio_mod.AudioFeatures(as_audio(samples), fps)
    n = int(samples.size / sounds.RATE * fps)
    strength = features.speech_strength(np.arange(n))
    heard = np.arange(n) / fps + audio_mod.MEL_WINDOW / 2 / audio_mod.MEL_FRAMES_PER_SECOND
    middle = int(np.argmin(np.abs(heard - (PAUSE_AT + pause / 2))))
    assert strength[middle] == 0.0, (fps, pause, strength[middle - 3:middle + 4])
    # the mouth is generated in full while the words go on (away from the pause's fades) ...
    talking = ((heard > 0.5) & (heard < PAUSE_AT - 0.05)) | ((heard > PAUSE_AT + pause + 0.05) & (heard < 2.9 + pause))
    assert strength[talking].min() == 1.0
    # ... and fades over FADE_S seconds, whatever the frame rate
    fading = strength[(heard > PAUSE_AT - 0.2) & (heard < PAUSE_AT + pause + 0.2)]
    assert ((fading > 0) & (fading < 1)).sum() <= 2 * int(np.ceil(audio_mod.FADE_S * fps)) + 2
    if fps >= 60:
        assert ((fading > 0) & (fading < 1)).sum() >= 4  # a fade, not a pop


# ------------------------------------------------------------------ through the routes


@pytest.fixture(scope="module")
def one_face():
    return two_faces(100, H, W, lambda i: [FACE])


def paused_speech(pause=0.7, db=-50):
    return sounds.over_room_tone(sounds.with_pause(sounds.speech(), PAUSE_AT, pause), db)


def test_the_image_route_keeps_the_real_mouth_in_a_pause(one_face, fixture_checkpoint):
    fps = 25.0
    samples = paused_speech()
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    n = int(np.ceil(samples.size / sounds.RATE * fps))
    result = pipeline.lipsync_images(one_face[:n], as_audio(samples),
                                     Settings(fps=fps, silence="keep_original"), hooks)
    weight = result.mask.numpy().reshape(n, -1).max(axis=1)
    heard = np.arange(n) / fps + 0.1
    in_pause = (heard > PAUSE_AT + 0.1) & (heard < PAUSE_AT + 0.6)
    for i in np.flatnonzero(in_pause):  # the input's own pixels, MASK 0
        assert weight[i] == 0 and torch.equal(result.images[i], one_face[i]), i
    assert weight[(heard > 0.5) & (heard < PAUSE_AT - 0.05)].min() == 1.0
    assert result.report.frames_kept_original >= in_pause.sum()
    # the default generates everywhere
    everywhere = pipeline.lipsync_images(one_face[:n], as_audio(samples), Settings(fps=fps), hooks)
    assert everywhere.mask.numpy().reshape(n, -1).max(axis=1).min() == 1.0


def test_loop_modes_keep_the_real_mouth_where_the_output_is_silent(one_face, fixture_checkpoint):
    """pingpong over a 20-frame clip: the pause is found on the output's timeline, not on the
    input frames the output shows."""
    fps = 25.0
    samples = paused_speech()
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    result = pipeline.lipsync_images(one_face[:20], as_audio(samples),
                                     Settings(fps=fps, mode="pingpong", silence="keep_original"), hooks)
    n = result.images.shape[0]
    assert n == int(np.ceil(samples.size / sounds.RATE * fps))
    weight = result.mask.numpy().reshape(n, -1).max(axis=1)
    heard = np.arange(n) / fps + 0.1
    assert weight[(heard > PAUSE_AT + 0.1) & (heard < PAUSE_AT + 0.6)].max() == 0.0
    assert weight[(heard > 0.5) & (heard < PAUSE_AT - 0.05)].min() == 1.0


def test_the_video_route_keeps_the_sources_own_samples_in_a_pause(tmp_path, one_face,
                                                                   fixture_checkpoint, monkeypatch):
    import ffmpeg_reference as ref

    fps = 25.0
    samples = paused_speech()
    n = int(np.ceil(samples.size / sounds.RATE * fps))
    frames = (one_face[:n].numpy() * 255 + 0.5).astype(np.uint8)
    source = ref.encode(tmp_path / "in.mp4", frames, fps, audio=samples[None], audio_rate=sounds.RATE,
                        video_args=["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p"])
    # lossless output (refused to users: players reject its profile), so kept samples are exact
    quality = settings_mod.BY_NAME["quality"]
    monkeypatch.setitem(settings_mod.BY_NAME, "quality", dataclasses.replace(quality, minimum=0))
    out = tmp_path / "out.mp4"
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    report = video_route.lipsync_video(str(source), str(out), Settings(quality=0, silence="keep_original"),
                                       hooks)
    given, made = ref.yuv_planes(source), ref.yuv_planes(out)
    heard = np.arange(len(made)) / fps + 0.1
    in_pause = np.flatnonzero((heard > PAUSE_AT + 0.1) & (heard < PAUSE_AT + 0.6))
    talking = np.flatnonzero((heard > 0.5) & (heard < PAUSE_AT - 0.05))
    assert len(in_pause) >= 10 and report.frames_kept_original >= len(in_pause)
    for i in in_pause:
        assert np.array_equal(made[i], given[i]), i
    assert all(not np.array_equal(made[i], given[i]) for i in talking)


def test_the_tooltip_states_the_rule_in_the_numbers_the_code_uses():
    tooltip = settings_mod.BY_NAME["silence"].tooltip
    assert f"{audio_mod.MIN_PAUSE_S:g} s" in tooltip and f"{audio_mod.FADE_S:g} s" in tooltip


# ------------------------------------------------------------------ the voice's other sounds


def covered(runs, start, stop) -> float:
    """The share of [start, stop) seconds that `runs` call speech."""
    total = sum(max(0.0, min(b, stop) - max(a, start)) for a, b in runs)
    return total / (stop - start)


def test_a_whispered_line_gets_a_mouth():
    whisper = sounds.whisper()
    runs = runs_of(sounds.over_room_tone(sounds.placed(whisper, 6.0, 1.0), -55))
    assert covered(runs, 1.0, 1.0 + whisper.size / sounds.RATE) >= 0.7
    assert covered(runs, 0.0, 0.95) == 0.0


def test_a_laugh_in_the_voice_track_moves_the_mouth():
    """A laugh is the voice's own sound (the lips move with it), so it is not a pause."""
    laugh = sounds.laugh()
    runs = runs_of(sounds.over_room_tone(sounds.placed(laugh, 4.0, 1.0), -55))
    assert covered(runs, 1.0, 1.0 + laugh.size / sounds.RATE) >= 0.5


def test_a_cough_keeps_the_real_mouth():
    for seed in range(3):
        track = sounds.over_room_tone(sounds.placed(sounds.cough(seed), 3.0, 1.0), -55)
        assert len(runs_of(track)) == 0, seed


def test_quiet_speech_after_a_door_slam_is_found_and_the_slam_is_not_speech():
    speech = sounds.speech() * np.float32(0.03)  # its peaks 30 dB under the slam's
    # the room's tone 50 dB under the speech's peaks, as in a decent recording
    track = sounds.over_room_tone(sounds.placed(speech, 5.0, 1.5), -50) + sounds.placed(sounds.door_slam(), 5.0, 0.5)
    runs = runs_of(track)
    assert covered(runs, 0.0, 1.3) == 0.0  # the slam and its boom
    assert covered(runs, 1.5, 4.5) >= 0.6


def test_speech_over_a_music_bed_is_found_and_the_bed_alone_is_not():
    bed = sounds.music(8.0) * np.float32(0.3)
    track = bed + sounds.placed(sounds.speech(), 8.0, 2.0)
    runs = runs_of(track)
    assert covered(runs, 2.0, 5.0) >= 0.6
    assert covered(runs, 0.0, 1.9) == 0.0 and covered(runs, 5.3, 8.0) == 0.0


# ------------------------------------------------------------------ long tracks


def test_the_detector_hears_a_long_track_a_minute_at_a_time_with_the_same_answer(monkeypatch):
    """Memory that does not grow with the track: the network sees at most a block of chunks at
    once, and the blocks together give what one pass over the whole track gives."""
    track = sounds.over_room_tone(np.tile(sounds.with_pause(sounds.speech(), PAUSE_AT, 0.7), 45), -50)
    assert track.size / sounds.RATE > 150
    model = vad.load_vad()
    whole = model(torch.from_numpy(track))  # one block: the whole track
    seen = []
    real_encode = vad.SileroVad.encode
    monkeypatch.setattr(vad.SileroVad, "encode", lambda self, chunks: seen.append(len(chunks)) or real_encode(self, chunks))
    monkeypatch.setattr(vad, "BLOCK", 1000)
    blocks = vad.speech_probability(track)
    assert max(seen) <= 1000 and len(seen) == -(-len(blocks) // 1000)
    np.testing.assert_allclose(blocks, whole.numpy(), atol=1e-5)


def test_cancel_is_honoured_while_the_voice_detector_runs(monkeypatch):
    track = sounds.over_room_tone(np.tile(sounds.speech(), 60), -50)  # three minutes
    calls = []

    def check_interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        audio_mod.speech_runs(track, check_interrupt)
    assert len(calls) == 2  # stopped at the second minute, not after the whole track


def test_when_no_speech_is_found_the_log_says_exactly_that(one_face, fixture_checkpoint, caplog):
    import logging

    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    music = sounds.music(2.0)
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        result = pipeline.lipsync_images(one_face[:50], as_audio(music),
                                         Settings(fps=25.0, silence="keep_original"), hooks)
        result.report.log()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "no speech was found in the audio" in said and "no face" not in said
    assert result.mask.numpy().max() == 0
