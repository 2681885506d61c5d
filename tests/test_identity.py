"""The right person or nobody: two different-looking drawn people, a detector stand-in that reads
skin-coloured pixels (it knows nothing of who is who), and the scenes that fool a tracker that
goes by position: a face that walks out while the other stays, a face covered for a second, a
shot/reverse-shot with the marked person absent from one shot, strokes on two frames."""

import logging

import numpy as np
import pytest
import torch

import sounds
from conftest import hooks_with, pack_module
from synthetic_clip import SkinDetector, people_frames

fd = pack_module("face_detect")
identity = pack_module("face_detect.identity")
pipeline = pack_module("pipeline")
video_route = pack_module("video_route")
settings_mod = pack_module("settings")
Settings = settings_mod.Settings

W, H, FPS = 320, 180, 25.0


def track(images, choice, marker=None):
    """Boxes the tracker follows (no smoothing or padding), as the IMAGE route finds them."""
    marks = () if marker is None else fd.marks_from_mask(marker, H, W, len(images))
    config = fd.TrackerConfig(choice=choice, marks=tuple(marks), keyframe_interval=5)
    boxes, stats = fd.detect_boxes(images, len(images), SkinDetector(),
                                   fd.BoxSettings(face_padding=0, smooth_box_frames=0, max_gap=5), config)
    return boxes, stats


def on(box, face, tolerance=4):
    return box[0] >= 0 and np.abs(np.asarray(box) - np.asarray(face)).max() <= tolerance


def stroke(frames, at, face):
    """A face_marker MASK of `frames` frames with a rough stroke on `face` in frame `at`."""
    x1, y1, x2, y2 = face
    marker = torch.zeros(frames, H, W)
    marker[at, (y1 + y2) // 2 - 3:(y1 + y2) // 2 + 3, x1 + 10:x2 - 10] = 1.0
    return marker


def test_the_signature_tells_the_two_people_apart_and_knows_each_in_another_light():
    left, right = (40, 50, 100, 120), (200, 60, 260, 130)
    first = fd.TensorFrames(people_frames(1, H, W, lambda i: (1.0, [("A", left, 1.0), ("B", right, 1.0)])))
    swapped = fd.TensorFrames(people_frames(1, H, W, lambda i: (0.8, [("B", left, 0.8), ("A", right, 0.8)])))
    a1, b1 = identity.signature(first, 0, left), identity.signature(first, 0, right)
    b2, a2 = identity.signature(swapped, 0, left), identity.signature(swapped, 0, right)
    assert a1.similarity(a2) >= identity.SAME and b1.similarity(b2) >= identity.SAME
    assert max(a1.similarity(b1), a1.similarity(b2), a2.similarity(b1)) < identity.NOT_SOMEONE_ELSE
    assert identity.best_match([b2, a2], [a1]) == 1 and identity.best_match([b2], [a1]) is None


# ------------------------------------------------------------------ lost within a shot


A_START = (40, 50, 100, 120)
B_STAYS = (220, 55, 280, 125)


def walks_out(i):
    """A walks left out of the picture from frame 10 (gone from about frame 30); B stays."""
    x = A_START[0] - max(0, i - 10) * 7
    return 1.0, [("A", (x, A_START[1], x + 60, A_START[3]), 1.0), ("B", B_STAYS, 1.0)]


def test_a_face_that_walks_out_is_not_handed_to_the_one_who_stays():
    images = people_frames(50, H, W, walks_out)
    boxes, _ = track(images, "left-most")
    assert all(on(boxes[i], walks_out(i)[1][0][1]) for i in range(10))
    gone = range(32, 50)  # A is out of the picture
    assert all(boxes[i][0] < 0 for i in gone), [tuple(boxes[i]) for i in gone]
    assert not any(on(b, B_STAYS, 10) for b in boxes)  # B never speaks A's voice


A_SEATED, B_BESIDE = (60, 40, 130, 120), (150, 50, 200, 110)  # B sits close, within A's reach
COVERED = range(15, 40)  # a hand over A's face for a second


def covered(i):
    people = [("A", A_SEATED, 1.0), ("B", B_BESIDE, 1.0)]
    return 1.0, people


def test_a_covered_face_is_taken_up_again_and_the_neighbour_never_gets_its_voice():
    images = people_frames(60, H, W, covered)
    x1, y1, x2, y2 = A_SEATED
    images[COVERED.start:COVERED.stop, y1 - 5:y2 + 5, x1 - 5:x2 + 5] = torch.tensor([0.35, 0.35, 0.45])
    boxes, _ = track(images, "largest")
    before, after = range(0, COVERED.start), range(COVERED.stop + 1, 60)
    assert all(on(boxes[i], A_SEATED) for i in [*before, *after])
    assert all(boxes[i][0] < 0 for i in range(COVERED.start, COVERED.stop))
    assert not any(on(b, B_BESIDE, 10) for b in boxes)


# ------------------------------------------------------------------ marked: a person, not a place


SHOTS = (20, 40)  # cuts


def shot_reverse_shot(i):
    """Shot 1: A left, B right. Shot 2: B alone (A absent). Shot 3: the reverse angle, B left and
    A right, lit differently."""
    if i < SHOTS[0]:
        return 1.0, [("A", (40, 50, 100, 120), 1.0), ("B", (200, 60, 260, 130), 1.0)]
    if i < SHOTS[1]:
        return 0.6, [("B", (120, 40, 200, 130), 0.9)]
    return 0.85, [("B", (30, 50, 95, 125), 0.85), ("A", (210, 55, 270, 125), 0.85)]


@pytest.fixture(scope="module")
def dialogue():
    return people_frames(60, H, W, shot_reverse_shot)


@pytest.mark.parametrize("aligned", [True, False], ids=["one marker frame per image", "one painted image"])
def test_marked_is_a_person_followed_across_cuts_or_nobody(dialogue, aligned):
    a_first = shot_reverse_shot(0)[1][0][1]
    marker = stroke(60, 5, a_first) if aligned else stroke(1, 0, a_first)
    boxes, stats = track(dialogue, "marked", marker)
    a_in = {i: [f for name, f, _ in shot_reverse_shot(i)[1] if name == "A"] for i in range(60)}
    assert all(on(boxes[i], a_in[i][0]) for i in range(SHOTS[0]))
    assert all(boxes[i][0] < 0 for i in range(SHOTS[0], SHOTS[1]))  # A absent: nobody, not B
    assert all(on(boxes[i], a_in[i][0]) for i in range(SHOTS[1], 60))  # back, on the other side
    assert stats.unmatched_marks == []


def test_strokes_on_two_frames_all_mark_the_same_person():
    """In the second shot A wears a coat, a hat and glasses under other light: the first stroke alone does not know
    that A (nobody is followed there); with a second stroke on that shot, A is followed in both."""
    def scene(i):
        if i < 30:
            return 1.0, [("A", (40, 50, 100, 120), 1.0), ("B", (200, 60, 260, 130), 1.0)]
        return 0.7, [("B", (40, 50, 100, 120), 0.75), ("A in a coat and hat", (200, 55, 262, 128), 0.75)]

    images = people_frames(60, H, W, scene)
    one = stroke(60, 5, (40, 50, 100, 120))
    boxes, _ = track(images, "marked", one)
    assert all(on(boxes[i], (40, 50, 100, 120)) for i in range(30))
    assert all(boxes[i][0] < 0 for i in range(30, 60))
    both = one.clone()
    both[45] = stroke(60, 45, (200, 55, 262, 128))[45]
    boxes, _ = track(images, "marked", both)
    assert all(on(boxes[i], (40, 50, 100, 120)) for i in range(30))
    assert all(on(boxes[i], (200, 55, 262, 128)) for i in range(30, 60))


def test_the_log_names_per_shot_whom_it_followed_or_that_it_kept_the_original(
        dialogue, fixture_checkpoint, caplog):
    speech = {"waveform": torch.from_numpy(sounds.speech()[None, :int(60 / FPS * sounds.RATE)]),
              "sample_rate": sounds.RATE}
    hooks = hooks_with([fixture_checkpoint.parent], SkinDetector())
    with caplog.at_level(logging.INFO, logger="HaloLipsy"):
        result = pipeline.lipsync_images(dialogue, speech, Settings(fps=FPS), hooks,
                                         face_marker=stroke(1, 0, (40, 50, 100, 120)))
    lines = [r.getMessage() for r in caplog.records]
    assert any("shot 1, 0.00-0.80 s: followed the marked face" in m for m in lines), lines
    assert any("shot 2, 0.80-1.60 s: the marked face is not in view; kept the original" in m for m in lines)
    assert any("shot 3, 1.60-2.40 s: followed the marked face" in m for m in lines)
    changed = result.mask.numpy() > 0
    assert not changed[SHOTS[0]:SHOTS[1]].any()  # shot 2 passes through
    assert changed[:SHOTS[0], 50:120, 40:100].any(axis=(1, 2)).all()
    assert not changed[:SHOTS[0], 60:130, 200:260].any()  # B's mouth is never touched
    assert not changed[SHOTS[1]:, 50:125, 30:95].any()


def test_the_video_route_follows_the_marked_person(tmp_path, dialogue, fixture_checkpoint):
    import ffmpeg_reference as ref

    frames = (dialogue.numpy() * 255 + 0.5).astype(np.uint8)
    speech = sounds.speech()[None, :int(60 / FPS * sounds.RATE)]
    source = ref.encode(tmp_path / "dialogue.mp4", frames, FPS, audio=speech, audio_rate=sounds.RATE,
                        video_args=["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p"])
    out = tmp_path / "out.mp4"
    hooks = hooks_with([fixture_checkpoint.parent], SkinDetector())
    video_route.lipsync_video(str(source), str(out), Settings(quality=12), hooks,
                              face_marker=stroke(1, 0, (40, 50, 100, 120)))
    given, made = ref.frames(source).astype(int), ref.frames(out).astype(int)
    n = min(len(given), len(made), 60)

    def moved(i, face):
        x1, y1, x2, y2 = face
        return np.abs(made[i, y1:y2, x1:x2] - given[i, y1:y2, x1:x2]).max() > 40

    assert all(moved(i, (40, 50, 100, 120)) for i in range(SHOTS[0]))
    assert not any(moved(i, (200, 60, 260, 130)) for i in range(SHOTS[0]))
    assert not any(moved(i, (120, 40, 200, 130)) for i in range(SHOTS[0], SHOTS[1]))
    assert all(moved(i, (210, 55, 270, 125)) for i in range(SHOTS[1], n))
    assert not any(moved(i, (30, 50, 95, 125)) for i in range(SHOTS[1], n))
