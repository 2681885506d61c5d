"""Dubbing control: which face speaks (chosen where a shot starts, then tracked by identity, and
chosen again after a cut), and a dialogue of two voices. Faces are drawn patches a
pixel-reading detector stand-in finds; the dialogue's voices are real speech over room tone."""

import numpy as np
import pytest
import torch

from conftest import hooks_with, pack_module
import sounds
from synthetic_clip import FaceBlobsDetector, two_faces

fd = pack_module("face_detect")
audio_mod = pack_module("audio")
pipeline = pack_module("routes")
video_route = pack_module("routes")
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


def followed(clip, choice, marks=(), detector=None):
    config = fd.TrackerConfig(choice=choice, marks=tuple(marks), keyframe_interval=5)
    boxes, stats = fd.detect_boxes(clip, len(clip), detector or FaceBlobsDetector(),
                                   fd.BoxSettings(face_padding=0, smooth_box_frames=0, max_gap=5), config)
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
    # Load Image of a frame without painted strokes gives a 64x64 empty MASK: say so, not "size"
    for empty in (torch.zeros(1, H, W), torch.zeros(1, 64, 64)):
        with pytest.raises(settings_mod.HaloLipsyError, match="nothing was painted on the face_marker"):
            pipeline.lipsync_images(clip[:10], speech, Settings(fps=FPS), hooks, face_marker=empty)


def voice(seconds, rate=16000):
    """A voiced tone: sound for the tests where what the mouth follows does not matter."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * 160 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


# ------------------------------------------------------------------ dialogue


def test_a_dialogue_is_two_chained_nodes_and_loses_nothing(fixture_checkpoint):
    """A speaks first, B answers: A's node (left-most, keeping the real mouth in A's pauses),
    then B's node on its output (right-most, likewise). Each mouth moves only while its own
    voice speaks; nothing else changes; no frame is lost."""
    left, right = (30, 90, 90, 160), (230, 90, 290, 160)
    clip = two_faces(75, H, W, lambda i: [left, right])
    speech = sounds.speech()  # real speech, each voice over its own room tone
    voice_a = sounds.over_room_tone(sounds.placed(speech[:int(1.2 * sounds.RATE)], 3.0, 0.0), -50)
    voice_b = sounds.over_room_tone(sounds.placed(speech[:int(1.2 * sounds.RATE)], 3.0, 1.8), -50, seed=1)
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
    # A while A speaks (to 1.2 s; a frame's mouth follows the middle of its 0.2 s window),
    # fading out over FADE_S; B from 1.8 s, fading in before
    assert in_a[3:25].all() and not in_a[30:].any()
    assert in_b[46:70].all() and not in_b[:40].any()
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
        report = video_route.lipsync_video(str(source), str(out), Settings(output_sound=sound), hooks,
                                           audio=speech)
        assert report.frames_synced == report.frames_out
        samples, got_rate, _ = ref.audio(out, channels=1)
        spectrum = np.abs(np.fft.rfft(samples[0]))
        peak = np.fft.rfftfreq(samples.shape[1], 1 / got_rate)[np.argmax(spectrum)]
        assert abs(peak - expected_hz) < 5, (sound, peak)
