"""Dubbing control: which face speaks (chosen where a shot starts, then tracked by identity, and
chosen again after a cut), and keeping the real mouth where nobody speaks. Faces are drawn
patches a pixel-reading detector stand-in finds; speech is synthetic with real pauses."""

import numpy as np
import pytest
import torch

from conftest import hooks_with, pack_module
from synthetic_clip import FaceBlobsDetector, two_faces

fd = pack_module("face_detect")
audio_mod = pack_module("audio")
pipeline = pack_module("pipeline")
nodes = pack_module("nodes")
settings_mod = pack_module("settings")
Settings = settings_mod.Settings

W, H, FPS, N = 320, 180, 25.0, 60

# A: large, on the left, still. B: small, on the right, moving left past A (above it, so the
# two never touch) and growing until it is the larger. A cut at frame 40: afterwards the two
# stand swapped (B left, A right, B larger).
CUT = 40


def face_a(i):
    return (40, 90, 100, 160) if i < CUT else (220, 100, 270, 150)


def face_b(i):
    if i >= CUT:
        return (30, 60, 110, 140)
    x = int(round(250 - 5.0 * i))  # from the right edge to the left of A
    side = int(round(30 + 1.2 * i))  # 30 px -> 77 px: larger than A (60 x 70) before the cut
    return (x, 10, x + side, 10 + side)


def faces(i):
    return [face_a(i), face_b(i)]


@pytest.fixture(scope="module")
def clip():
    return two_faces(N, H, W, faces, background=lambda i: 0.3 if i < CUT else 0.6)


def followed(clip, choice, mark=None):
    config = fd.TrackerConfig(choice=choice, mark=mark, keyframe_interval=5)
    boxes, stats = fd.detect_boxes(clip, N, FaceBlobsDetector(), fd.BoxSettings(face_padding=0,
                                   smooth_box_frames=0), config)
    return boxes, stats


def is_box(box, truth, tolerance=3):
    return box[0] >= 0 and np.abs(np.asarray(box) - np.asarray(truth)).max() <= tolerance


@pytest.mark.parametrize("choice, first, after_cut", [
    ("largest", face_a, face_b),  # A is larger where the shot starts; after the cut B is
    ("left-most", face_a, face_b),
    ("right-most", face_b, face_a),
])
def test_the_chosen_face_is_tracked_through_the_shot_and_chosen_again_after_a_cut(
        clip, choice, first, after_cut):
    boxes, stats = followed(clip, choice)
    for i in range(CUT):  # the same face all through the shot, though B passes A and outgrows it
        assert is_box(boxes[i], first(i)), (choice, i, boxes[i], first(i))
    for i in range(CUT, N):
        assert is_box(boxes[i], after_cut(i)), (choice, i, boxes[i], after_cut(i))
    assert stats.shots == 2 and stats.most_faces == 2


def test_a_marked_face_is_tracked_and_found_again_nearest_the_mark(clip):
    # the mark: a stroke on B where B is at frame 12. B is followed from the start (though it
    # moves away from the mark); after the cut, the face nearest the mark is chosen again
    x1, y1, x2, y2 = face_b(12)
    mark = torch.zeros(1, H, W)
    mark[0, y1 + 5:y2 - 5, x1 + 10:x1 + 14] = 1.0
    centre = fd.mark_from_mask(mark, H, W)
    boxes, _ = followed(clip, "marked", centre)
    assert all(is_box(boxes[i], face_b(i)) for i in range(CUT))
    nearest_after_cut = min((face_a(CUT), face_b(CUT)), key=lambda b: np.hypot(
        (b[0] + b[2]) / 2 - centre[0], (b[1] + b[3]) / 2 - centre[1]))
    assert all(is_box(boxes[i], nearest_after_cut) for i in range(CUT, N))


def test_the_face_setting_reaches_the_node_and_the_report_names_it(clip, fixture_checkpoint,
                                                                   monkeypatch, caplog):
    import logging
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: FaceBlobsDetector())
    monkeypatch.setattr(nodes, "_folder_paths", lambda: None)
    speech = {"waveform": torch.from_numpy(voice(N / FPS)[None]), "sample_rate": 16000}
    with caplog.at_level(logging.INFO, logger="HaloLipsy"):
        out, _, mask = nodes.HaloLipsy().lipsync(clip[:20], speech, fps=FPS, face="right-most",
                                                 smooth_box_frames=0, face_padding=0)
    changed = mask.numpy() > 0
    for i in range(20):  # only B's box was lip-synced; A is untouched
        x1, y1, x2, y2 = face_b(i)
        assert changed[i, y1:y2, x1:x2].any() and not changed[i, 90:160, 40:100].any()
    summary = next(r.getMessage() for r in caplog.records if "lip-synced" in r.getMessage())
    assert "followed the right-most face" in summary and "up to 2 faces in view" in summary


def test_marked_without_a_marker_and_a_mask_with_a_marker_are_refused(clip, fixture_checkpoint):
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    speech = {"waveform": torch.from_numpy(voice(0.4)[None]), "sample_rate": 16000}
    with pytest.raises(settings_mod.HaloLipsyError, match="no face_marker is given"):
        pipeline.lipsync_images(clip[:10], speech, Settings(fps=FPS, face="marked"), hooks)
    with pytest.raises(settings_mod.HaloLipsyError, match="Connect one of them"):
        pipeline.lipsync_images(clip[:10], speech, Settings(fps=FPS), hooks,
                                face_mask=torch.ones(1, H, W), face_marker=torch.ones(1, H, W))
    with pytest.raises(settings_mod.HaloLipsyError, match="face_marker is empty"):
        pipeline.lipsync_images(clip[:10], speech, Settings(fps=FPS), hooks,
                                face_marker=torch.zeros(1, H, W))


def test_the_declared_face_choices_are_the_trackers():
    assert settings_mod.FACE_CHOICES == fd.FACE_CHOICES


# ------------------------------------------------------------------ silence


def voice(seconds, rate=16000, gaps=(), gain=1.0, noise_db=None, seed=0):
    """Voiced speech-like sound with silent `gaps` [(start, stop) seconds]; optional noise
    `noise_db` below the speech's level."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * 160 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    for start, stop in gaps:
        x[int(start * rate):int(stop * rate)] = 0.0
    if noise_db is not None:
        x = x + 0.3 * 10 ** (noise_db / 20) * np.random.default_rng(seed).standard_normal(t.size)
    return (gain * x).astype(np.float32)


def test_pauses_are_found_on_the_clips_own_loudness():
    gaps = [(0.8, 1.0), (1.6, 2.4)]  # a 0.2 s gap between words, a 0.8 s pause
    def voiced(samples):
        return audio_mod.voiced_columns(audio_mod.melspectrogram(samples))

    loud = voiced(voice(3.0, gaps=gaps))
    columns = audio_mod.MEL_FRAMES_PER_SECOND
    assert loud[int(0.85 * columns):int(0.95 * columns)].all()  # a gap between words is speech
    assert not loud[int(1.7 * columns):int(2.3 * columns)].any()  # the pause is silence
    quiet = voiced(voice(3.0, gaps=gaps, gain=0.01))  # 40 dB quieter
    noisy = voiced(voice(3.0, gaps=gaps, noise_db=-50))  # noise 50 dB down
    assert (quiet == loud).mean() > 0.99 and (noisy == loud).mean() > 0.99
    assert not voiced(np.zeros(16000, np.float32)).any()


def test_silence_keeps_the_real_mouth_with_fades(fixture_checkpoint):
    clip = two_faces(75, H, W, lambda i: [face_a(0)])
    speech = {"waveform": torch.from_numpy(voice(3.0, gaps=[(1.0, 2.0)])[None]), "sample_rate": 16000}
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    result = pipeline.lipsync_images(clip, speech, Settings(fps=FPS, silence="keep_original"), hooks)
    weight = result.mask.numpy().reshape(75, -1).max(axis=1)
    untouched = [torch.equal(result.images[i], clip[i]) for i in range(75)]
    # frames whose 0.2 s window lies in the pause keep exactly their own pixels, MASK 0
    quiet = [i for i in range(75) if untouched[i]]
    assert quiet and all(weight[i] == 0 for i in quiet)
    assert min(quiet) >= 25 and max(quiet) < 50  # inside the pause (1.0 s to 2.0 s)
    assert len(quiet) >= 8 and result.report.frames_kept_original == len(quiet)
    # speech frames get the generated mouth in full, and the edges fade over a few frames
    assert weight[:20].min() == 1.0 and weight[55:].min() == 1.0
    fading = [w for w in weight if 0 < w < 1]
    assert 2 <= len(fading) <= 2 * audio_mod.FADE_FRAMES
    # the default generates everywhere
    everywhere = pipeline.lipsync_images(clip, speech, Settings(fps=FPS), hooks)
    assert everywhere.mask.numpy().reshape(75, -1).max(axis=1).min() == 1.0
    assert everywhere.report.frames_kept_original == 0


# ------------------------------------------------------------------ dialogue


def test_a_dialogue_is_two_chained_nodes_and_loses_nothing(fixture_checkpoint):
    """A speaks first, B answers: A's node (left-most, keeping the real mouth in A's pauses),
    then B's node on its output (right-most, likewise). Each mouth moves only while its own
    voice speaks; nothing else changes; no frame is lost."""
    left, right = (30, 90, 90, 160), (230, 90, 290, 160)
    clip = two_faces(75, H, W, lambda i: [left, right])
    voice_a = voice(3.0, gaps=[(1.2, 3.0)])  # A: 0 - 1.2 s
    voice_b = voice(3.0, gaps=[(0.0, 1.8)])  # B: 1.8 - 3.0 s
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())

    def speaker(images, samples, face):
        return pipeline.lipsync_images(
            images, {"waveform": torch.from_numpy(samples[None]), "sample_rate": 16000},
            Settings(fps=FPS, face=face, silence="keep_original", face_padding=0), hooks)

    first = speaker(clip, voice_a, "left-most")
    second = speaker(first.images, voice_b, "right-most")
    assert first.images.shape == second.images.shape == clip.shape  # 3 s at 25 fps: 75 frames
    changed = (second.images - clip).abs().amax(dim=-1) > 0
    in_a = changed[:, left[1]:left[3] + 1, left[0]:left[2]].flatten(1).any(dim=1)
    in_b = changed[:, right[1]:right[3] + 1, right[0]:right[2]].flatten(1).any(dim=1)
    elsewhere = changed.clone()
    elsewhere[:, left[1]:left[3] + 1, left[0]:left[2]] = False
    elsewhere[:, right[1]:right[3] + 1, right[0]:right[2]] = False
    assert not elsewhere.any()
    assert in_a[:30].all() and not in_a[35:].any()  # A until 1.2 s, fading out over 3 frames
    # B while B speaks: from 1.8 s, whose sound frames from 1.6 s on see (their window is 0.2 s),
    # fading in over the 3 frames before
    assert in_b[45:].all() and not in_b[:36].any()
    assert first.report.face == "left-most" and second.report.face == "right-most"


def test_one_speaker_at_a_time_over_a_video_that_carries_the_dialogue(tmp_path, fixture_checkpoint):
    """The VIDEO route with output_sound 'video': B's voice drives the mouth, the output keeps
    the video's own track (the whole dialogue)."""
    import ffmpeg_reference as ref
    frames = (two_faces(25, H, W, lambda i: [(230, 90, 290, 160)]).numpy() * 255).astype(np.uint8)
    rate = 48000
    t = np.arange(rate) / rate
    dialogue = (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)  # the video's sound
    source = ref.encode(tmp_path / "in.mp4", frames, audio=dialogue, audio_rate=rate,
                        video_args=["-pix_fmt", "yuv420p"])
    speech = {"waveform": torch.from_numpy(voice(1.0)[None]), "sample_rate": 16000}
    hooks = hooks_with([fixture_checkpoint.parent], FaceBlobsDetector())
    for sound, expected_hz in (("video", 440), ("speech", 160)):
        out = tmp_path / f"{sound}.mp4"
        report = pipeline.lipsync_video(str(source), str(out), Settings(output_sound=sound), hooks,
                                        audio=speech)
        assert report.frames_synced == report.frames_out
        samples, got_rate, _ = ref.audio(out, channels=1)
        spectrum = np.abs(np.fft.rfft(samples[0]))
        peak = np.fft.rfftfreq(samples.shape[1], 1 / got_rate)[np.argmax(spectrum)]
        assert abs(peak - expected_hz) < 5, (sound, peak)
