"""The VIDEO route's stages run side by side (decoding, tracking and encoding in threads of their
own, and a generator that does not take the CPU's cores in one too): the output's bytes do not
depend on thread timing, a cancel anywhere leaves nothing and does not hang, a stage that raises
stops the others, and the one decoding pass lip-syncs every output frame with the box the
whole-clip tracker gives."""

import io
import random
import threading
import time

import numpy as np
import pytest
import torch

from conftest import face_recognizer, hooks_with, pack_module
from synthetic_clip import Clip, SkinDetector, TruthDetector, people_frames
from video_files import speech_wave, write_video

pipeline = pack_module("routes")
video_route = pack_module("routes")
steps = pack_module("routes.steps")
output_mod = pack_module("routes.output")
inference = pack_module("wav2lip.inference")
video = pack_module("video")
Settings = pack_module("settings").Settings


@pytest.fixture(scope="module")
def clip():
    return Clip(width=160, height=120, fps=25.0, seconds=1.2, scenario="gentle")


@pytest.fixture(scope="module")
def talking(tmp_path_factory, clip):
    path = tmp_path_factory.mktemp("stages") / "talking.mp4"
    return write_video(path, clip, audio=speech_wave(1.2), audio_rate=16000, pix_fmt="yuv420p")


def lip_sync(source, out, clip, checkpoint, **hooks_kw):
    hooks = hooks_with([checkpoint.parent], TruthDetector(clip), **hooks_kw)
    return video_route.lipsync_video(str(source), str(out), Settings(quality=23, inference_batch=4), hooks)


STAGE_THREADS = ("Halo-Lipsy decoder", "Halo-Lipsy tracker", "Halo-Lipsy encoder", "Halo-Lipsy generator")


def stage_threads():
    """The route's own threads still running (the decoder's, the tracker's, the encoder's and the
    generator's), after giving them a moment to end."""
    for thread in [t for t in threading.enumerate() if t.name.startswith(STAGE_THREADS)]:
        thread.join(timeout=10)
    return [t.name for t in threading.enumerate() if t.name.startswith(STAGE_THREADS)]


def stopped_run(tmp_path, talking, clip, checkpoint, error, match=None, **hooks_kw):
    """A run that must stop with `error`: soon, leaving nothing behind (no file, no thread)."""
    out = tmp_path / "out.mp4"
    started = time.monotonic()
    with pytest.raises(error, match=match):
        lip_sync(talking, out, clip, checkpoint, **hooks_kw)
    assert time.monotonic() - started < 60
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert stage_threads() == []


def generator_on_its_own(monkeypatch):
    """The generator as the route sees one on a GPU: it leaves the CPU's cores to the other
    stages, so it runs in a thread of its own (here it still computes on the CPU)."""
    monkeypatch.setattr(inference.BatchedGenerator, "shares_the_cpu", property(lambda self: False))


@pytest.mark.parametrize("own_thread", [False, True])
def test_the_output_bytes_do_not_depend_on_thread_timing(tmp_path, talking, clip, fixture_checkpoint,
                                                        monkeypatch, own_thread):
    plain = tmp_path / "plain.mp4"
    lip_sync(talking, plain, clip, fixture_checkpoint)  # the generator on this thread, in turn
    made_here, real_generate = [], inference.BatchedGenerator.__call__

    def generate(self, *a, **k):
        made_here.append(threading.current_thread() is threading.main_thread())
        return real_generate(self, *a, **k)

    monkeypatch.setattr(inference.BatchedGenerator, "__call__", generate)
    if own_thread:
        generator_on_its_own(monkeypatch)
    rng = random.Random(0)  # each stage sleeps at random (a thread's own generator: no shared state)
    slowed_stages = [(video.Picture, "of", 0.02, True), (video.VideoWriter, "_encode", 0.02, False),
                     (inference.BatchedGenerator, "_forward", 0.03, False), (TruthDetector, "detect", 0.02, False),
                     (output_mod, "paste_mouths", 0.02, False)]
    for owner, name, most, is_classmethod in slowed_stages:
        real = getattr(owner, name)
        wait = random.Random(rng.random())

        def slow(*a, real=real, wait=wait, most=most, **k):
            time.sleep(wait.uniform(0, most))
            return real(*a, **k)

        monkeypatch.setattr(owner, name, staticmethod(slow) if is_classmethod else slow)
    slowed = tmp_path / "slowed.mp4"
    lip_sync(talking, slowed, clip, fixture_checkpoint)
    assert len(made_here) >= 5 and set(made_here) == {not own_thread}
    assert slowed.read_bytes() == plain.read_bytes()
    assert stage_threads() == []


def test_the_progress_bar_moves_forward_from_the_first_frames_to_the_end(tmp_path, talking, clip,
                                                                         fixture_checkpoint, monkeypatch):
    batches, seen = [0], []
    real_paste = output_mod.paste_mouths

    def paste(*a, **k):
        batches[0] += 1
        return real_paste(*a, **k)

    monkeypatch.setattr(output_mod, "paste_mouths", paste)
    lip_sync(talking, tmp_path / "out.mp4", clip, fixture_checkpoint,
             progress=lambda fraction: seen.append((fraction, batches[0])))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0 < f for f, done in seen if done == 0)  # while the first batch's faces are found
    assert len(set(fractions)) > 10


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def interrupt_checks(tmp_path_factory, talking, clip, fixture_checkpoint):
    """How many times a whole run checks for a cancel."""
    calls = [0]
    out = tmp_path_factory.mktemp("count") / "out.mp4"
    lip_sync(talking, out, clip, fixture_checkpoint, check_interrupt=lambda: calls.__setitem__(0, calls[0] + 1))
    return calls[0]


@pytest.mark.parametrize("share", [0.05, 0.5, 0.97])  # during detection, in generation, at the end
def test_a_cancel_anywhere_leaves_nothing_and_does_not_hang(tmp_path, talking, clip, fixture_checkpoint,
                                                            interrupt_checks, share):
    when = max(1, int(share * interrupt_checks))
    calls = [0]

    def check_interrupt():
        calls[0] += 1
        if calls[0] == when:
            raise Stop("cancelled")

    stopped_run(tmp_path, talking, clip, fixture_checkpoint, Stop, check_interrupt=check_interrupt)
    assert calls[0] == when  # it stopped there: nothing ran on


@pytest.mark.parametrize("stage", ["decoder", "detector", "generator", "generator in its own thread", "encoder"])
def test_a_stage_that_raises_stops_the_others(tmp_path, talking, clip, fixture_checkpoint, monkeypatch, stage):
    owner, name = {"decoder": (video.Picture, "of"), "detector": (TruthDetector, "detect"),
                   "generator": (inference.BatchedGenerator, "_forward"),
                   "generator in its own thread": (inference.BatchedGenerator, "_forward"),
                   "encoder": (video.VideoWriter, "_encode")}[stage]
    if stage == "generator in its own thread":
        generator_on_its_own(monkeypatch)
    real = getattr(owner, name)
    calls = [0]

    def failing(*a):
        calls[0] += 1
        if calls[0] == 2:  # once the stages are under way
            raise RuntimeError(f"the {stage} broke")
        return real(*a)

    monkeypatch.setattr(owner, name, staticmethod(failing) if stage == "decoder" else failing)
    stopped_run(tmp_path, talking, clip, fixture_checkpoint, Exception, match=f"the {stage} broke")
    assert calls[0] == 2


def test_a_cancel_while_the_generators_thread_works_leaves_nothing_and_does_not_hang(
        tmp_path, talking, clip, fixture_checkpoint, monkeypatch):
    generator_on_its_own(monkeypatch)
    slices, real_forward = [], inference.BatchedGenerator._forward

    def forward(self, mels, faces):
        slices.append(threading.current_thread().name)
        time.sleep(0.05)  # a GPU's batch: the output waits for it, checking for a cancel
        return real_forward(self, mels, faces)

    def check_interrupt():
        if len(slices) >= 3:
            raise Stop("cancelled")

    monkeypatch.setattr(inference.BatchedGenerator, "_forward", forward)
    stopped_run(tmp_path, talking, clip, fixture_checkpoint, Stop, check_interrupt=check_interrupt)
    made = len(slices)
    time.sleep(0.3)
    assert 3 <= made <= 4 and len(slices) == made  # the batch in hand at most, then nothing ran on
    assert all(name.startswith("Halo-Lipsy generator") for name in slices)


def test_the_detector_never_runs_while_a_generator_that_takes_every_core_does(tmp_path, fixture_checkpoint,
                                                                             monkeypatch):
    long_clip = Clip(width=160, height=120, fps=25.0, seconds=4.0, scenario="gentle")
    talking = write_video(tmp_path / "talking.mp4", long_clip, audio=speech_wave(4.0), audio_rate=16000,
                          pix_fmt="yuv420p")
    inference = pack_module("wav2lip.inference")
    spans = {"detector": [], "generator": []}

    def timed(kind, real):
        def run(*a):
            start = time.monotonic()
            time.sleep(0.01)  # long enough to overlap if nothing kept them apart
            try:
                return real(*a)
            finally:
                spans[kind].append((start, time.monotonic()))
        return run

    monkeypatch.setattr(TruthDetector, "detect", timed("detector", TruthDetector.detect))
    monkeypatch.setattr(inference.BatchedGenerator, "_forward", timed("generator", inference.BatchedGenerator._forward))
    monkeypatch.setattr(inference.BatchedGenerator, "shares_the_cpu", property(lambda self: True))
    lip_sync(talking, tmp_path / "out.mp4", long_clip, fixture_checkpoint)
    assert len(spans["detector"]) >= 4 and len(spans["generator"]) >= 20
    for d1, d2 in spans["detector"]:
        assert all(d2 <= g1 or g2 <= d1 for g1, g2 in spans["generator"])


# ------------------------------------------------------------------ a stage ahead of its caller

run_ahead = pack_module("common.ahead").run_ahead
stop_mod = pack_module("common.stop")


def test_a_stage_runs_ahead_in_order_by_at_most_its_limit():
    made = []

    def numbers(left):
        for n in range(50):
            made.append(n)
            yield n

    with run_ahead(numbers, 5, "Halo-Lipsy test stage", stop_mod.StopSignal()) as items:
        first = next(items)
        time.sleep(0.3)  # the stage fills its queue, then waits
        assert first == 0 and len(made) <= 1 + 5 + 1  # taken, queued, and one waiting to be
        assert [first] + list(items) == list(range(50))


def test_a_stage_error_reaches_the_caller_before_the_items_still_queued():
    taken = threading.Event()

    def failing(left):
        yield 1
        taken.wait(5)
        yield from (2, 3)
        raise RuntimeError("the stage broke")

    got, stop = [], stop_mod.StopSignal()
    with pytest.raises(RuntimeError, match="the stage broke"):
        with run_ahead(failing, 8, "Halo-Lipsy test stage", stop) as items:
            got.append(next(items))
            taken.set()
            time.sleep(0.3)  # 2, 3 and the error are all made by now
            got.extend(items)
    assert got == [1]
    assert stop.is_set and str(stop.reason) == "the stage broke"  # the run's other stages stop too


def test_leaving_stops_the_stage_in_its_own_thread_and_a_wait_checks_for_a_cancel():
    ended, waits = [], [0]

    def endless(left):
        try:
            n = 0
            while True:
                if n == 1:
                    time.sleep(0.35)  # a slow step: the caller checks for a cancel meanwhile
                yield n
                n += 1
        finally:
            ended.append((threading.current_thread().name, left()))

    stop = stop_mod.StopSignal(outside=lambda: waits.__setitem__(0, waits[0] + 1))
    with run_ahead(endless, 2, "Halo-Lipsy test stage", stop) as items:
        assert next(items) == 0 and next(items) == 1
    assert ended == [("Halo-Lipsy test stage", True)]  # closed where it ran, knowing the caller left
    assert waits[0] >= 2 and not stop.is_set  # leaving is not a cancel
    assert not any(t.name == "Halo-Lipsy test stage" for t in threading.enumerate())


class OneShotInterrupt(Exception):
    """ComfyUI's InterruptProcessingException: its check raises once, then forgets the flag."""


def test_an_interrupt_a_worker_thread_sees_first_is_raised_in_the_run_as_itself():
    flag = threading.Event()

    def comfy_check():  # comfy.model_management.throw_exception_if_processing_interrupted
        if flag.is_set():
            flag.clear()
            raise OneShotInterrupt()

    stop = stop_mod.StopSignal(comfy_check)
    in_worker = []

    def worker():
        while True:
            try:
                stop.check()
            except BaseException as err:  # noqa: BLE001 - what it saw is checked below
                in_worker.append(err)
                return
            time.sleep(0.01)

    with pytest.raises(OneShotInterrupt):
        with stop.scope():
            thread = threading.Thread(target=worker)
            thread.start()
            flag.set()  # the user presses Cancel; the worker's check takes the flag
            thread.join(5)
            assert isinstance(in_worker[0], OneShotInterrupt) and not flag.is_set()
            stop.check()  # the flag is gone from ComfyUI, but the run stops with it
    with pytest.raises(stop_mod.Stopped):
        stop.check()  # once stopped, every later check in any stage stops


def test_an_exception_in_the_runs_own_thread_stops_every_stage():
    stop = stop_mod.StopSignal()
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C, or the command line's SIGTERM handler
        with stop.scope():
            raise KeyboardInterrupt
    assert stop.is_set and isinstance(stop.reason, KeyboardInterrupt)


# ------------------------------------------------------------------ one pass = the whole clip

fd = pack_module("face_detect")
W, H, FPS = 192, 108, 25.0


def scene(i):
    """Two different-looking people; a cut at frame 40 swaps their places and sizes; both
    hidden for frames 55-57 (bridged); the right-hand one away for frames 70-84, the left-hand
    one for frames 88-95 (not bridged)."""
    drift = i // 4
    small, large = (26, 32), (34, 42)
    if i < 40:
        level, left, right = 1.0, ("A", small), ("B", large)
    else:
        level, left, right = 0.6, ("B", large), ("A", small)
    people = []
    if not 55 <= i <= 57:
        (ln, (lw, lh)), (rn, (rw, rh)) = left, right
        if not 88 <= i <= 95:
            people.append((ln, (20 + drift, 30, 20 + drift + lw, 30 + lh), 1.0))
        if not 70 <= i <= 84:
            people.append((rn, (120 - drift, 26, 120 - drift + rw, 26 + rh), 1.0))
    return level, people


class Drawn:
    """The scene as write_video draws it."""

    def __init__(self, count):
        self.frames = people_frames(count, H, W, scene).numpy()
        self.count, self.fps, self.width, self.height = count, FPS, W, H

    def frame(self, i):
        return self.frames[i]


@pytest.fixture(scope="module")
def people_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    drawn = Drawn(100)
    steady = write_video(folder / "steady.mp4", drawn, pix_fmt="yuv420p")
    vfr_times = np.cumsum([0.0] + [0.03 if i % 3 else 0.06 for i in range(99)])  # 33, 17 and 33 fps
    vfr = write_video(folder / "vfr.mp4", drawn, times=list(vfr_times), pix_fmt="yuv420p")
    return {"steady": steady, "vfr": vfr}


def marker_on_a():
    """A stroke on person A where frame 0 shows them."""
    _, people = scene(0)
    x1, y1, x2, y2 = next(face for name, face, _ in people if name == "A")
    mask = np.zeros((1, H, W), np.float32)
    mask[0, (y1 + y2) // 2 - 3:(y1 + y2) // 2 + 3, x1 + 4:x2 - 4] = 1.0
    return mask


def whole_clip_boxes(source, settings, config):
    """Every frame decoded first, then tracked and finished at once: each frame's usable box."""
    info = video.probe(str(source))
    frames = fd.WindowFrames(info.height, info.width)
    times, last = [], None
    for i, (t, _, frame) in enumerate(video.decode(str(source), info)):
        frames.put(i, video.Picture.of(frame, info))
        times.append(t)
        last = video.frame_duration(frame)
    tracker = fd.FaceTracker(SkinDetector(batch_size=settings.face_detect_batch), config,
                             recognizer=face_recognizer())
    raw, starts = tracker.track(frames)
    box_settings = fd.BoxSettings(settings.face_padding, settings.smooth_box_frames,
                                  max(1, round(steps.MAX_GAP_SECONDS * float(info.fps))))
    boxes = fd.finish_boxes(raw, info.height, info.width, box_settings, starts)
    times = np.asarray(times) - times[0]
    return steps.usable_boxes(boxes, info.height, info.width), times, info, starts, last


@pytest.mark.parametrize("mode,face,clock,speech", [
    ("sequential", "largest", "steady", 4.6), ("sequential", "left-most", "vfr", 4.5),
    ("repetitive", "right-most", "steady", 5.0), ("pingpong", "marked", "steady", 5.0),
    ("pingpong", "largest", "vfr", 4.6)])
def test_the_one_pass_lip_syncs_with_the_whole_clip_trackers_boxes(tmp_path, people_files, fixture_checkpoint,
                                                                 monkeypatch, mode, face, clock, speech):
    source = people_files[clock]
    marker = marker_on_a() if face == "marked" else None
    painted_on = torch.from_numpy(Drawn(1).frame(0)[None]) if face == "marked" else None
    settings = Settings(mode=mode, face=face, inference_batch=8, face_detect_batch=4)
    config = steps.tracker_config(settings, None, marker, H, W, face_marker_image=painted_on)
    usable, times, info, starts, last = whole_clip_boxes(source, settings, config)
    assert 40 in starts and any(u is None for u in usable) and sum(u is not None for u in usable) > 50
    used = []
    real_of = output_mod.OutputFrame.of.__func__

    def record(cls, picture, box, info, margin):
        used.append(None if box is None else tuple(int(v) for v in box))
        return real_of(cls, picture, box, info, margin)

    monkeypatch.setattr(output_mod.OutputFrame, "of", classmethod(record))
    # which boxes, not what the mouth looks like: the generator hands back the face it was given
    monkeypatch.setattr(pack_module("wav2lip.inference").BatchedGenerator, "_forward",
                        lambda self, mels, faces: np.ascontiguousarray(faces[:, 3:6]))
    speech_audio = {"waveform": torch.from_numpy(speech_wave(speech))[None], "sample_rate": 16000}
    hooks = hooks_with([fixture_checkpoint.parent], SkinDetector(batch_size=4))
    report = video_route.lipsync_video(str(source), str(tmp_path / "out.mp4"), settings, hooks,
                                       audio=speech_audio, face_marker=marker,
                                       face_marker_image=painted_on)
    plan = pipeline.timeline(mode, times, speech, float(info.fps),
                             info.last_frame_duration(info.start + times[-1], last))
    expected = [None if usable[s] is None else tuple(int(v) for v in usable[s]) for s in plan.source]
    assert report.frames_out == len(plan) > 100 and report.frames_in == 100
    assert used == expected


def test_a_generator_in_its_own_thread_writes_the_file_the_serial_route_writes(tmp_path, people_files,
                                                                              fixture_checkpoint, monkeypatch):
    """Batches are written in order: one without a mouth (nobody there) waits for the batch the
    generator's thread still works on."""
    monkeypatch.setattr(inference.BatchedGenerator, "_forward",
                        lambda self, mels, faces: np.ascontiguousarray(faces[:, 3:6]) * 0.9)
    without_mouth, real_inputs = [], output_mod.mouth_inputs

    def inputs(*a):
        work = real_inputs(*a)
        without_mouth.append(work is None)
        return work

    monkeypatch.setattr(output_mod, "mouth_inputs", inputs)
    speech_audio = {"waveform": torch.from_numpy(speech_wave(4.6))[None], "sample_rate": 16000}

    def lip_sync_people(name):
        hooks = hooks_with([fixture_checkpoint.parent], SkinDetector(batch_size=4))
        video_route.lipsync_video(str(people_files["steady"]), str(tmp_path / name),
                                  Settings(inference_batch=8, face_detect_batch=4), hooks, audio=speech_audio)
        return (tmp_path / name).read_bytes()

    in_turn = lip_sync_people("in_turn.mp4")
    generator_on_its_own(monkeypatch)
    assert lip_sync_people("own_thread.mp4") == in_turn
    assert any(without_mouth) and not all(without_mouth)
    assert stage_threads() == []


# ------------------------------------------------------------------ the IMAGE route's frames


def test_the_image_route_pastes_a_batchs_frames_side_by_side_with_the_same_result(fixture_checkpoint,
                                                                                  monkeypatch):
    clip = Clip(width=160, height=120, fps=25.0, seconds=0.6, scenario="gentle")
    images = clip.images()
    speech = {"waveform": torch.from_numpy(speech_wave(0.6))[None], "sample_rate": 16000}
    w2l = pack_module("wav2lip")
    real_paste, threads = w2l.paste, set()

    def paste(*a, **k):
        threads.add(threading.get_ident())
        time.sleep(0.005)  # long enough for every worker to take a frame
        return real_paste(*a, **k)

    monkeypatch.setattr(w2l, "paste", paste)
    # the generator's own sums depend on torch's thread count: a stand-in hands back the face
    monkeypatch.setattr(pack_module("wav2lip.inference").BatchedGenerator, "_forward",
                        lambda self, mels, faces: np.ascontiguousarray(faces[:, 3:6]) * 0.9)
    hooks = hooks_with([fixture_checkpoint.parent], TruthDetector(clip))
    cores = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = pipeline.lipsync_images(images, speech, Settings(fps=25.0), hooks)
        assert threads == {threading.get_ident()}
        threads.clear()
        torch.set_num_threads(2)
        side_by_side = pipeline.lipsync_images(images, speech, Settings(fps=25.0), hooks)
        assert len(threads) == 2 and threading.get_ident() not in threads
    finally:
        torch.set_num_threads(cores)
    assert alone.report.frames_synced == side_by_side.report.frames_synced == 15
    assert torch.equal(alone.images, side_by_side.images) and torch.equal(alone.mask, side_by_side.mask)


def test_audio_that_ends_inside_the_first_run_leaves_no_frames_waiting(tmp_path, people_files,
                                                                       fixture_checkpoint, monkeypatch):
    held = []
    real_put = fd.WindowFrames.put

    def put(self, index, frame):
        real_put(self, index, frame)
        held.append(len(self.window))

    monkeypatch.setattr(fd.WindowFrames, "put", put)
    kept, real_drop = [], output_mod.StreamOutput.drop_shown

    def drop_shown(self):
        real_drop(self)
        kept.append(len(self.pictures))

    monkeypatch.setattr(output_mod.StreamOutput, "drop_shown", drop_shown)
    speech = {"waveform": torch.from_numpy(speech_wave(1.0))[None], "sample_rate": 16000}
    hooks = hooks_with([fixture_checkpoint.parent], SkinDetector(batch_size=4))
    report = video_route.lipsync_video(str(people_files["steady"]), str(tmp_path / "out.mp4"),
                                       Settings(mode="repetitive", inference_batch=8), hooks,
                                       audio=speech)
    assert report.frames_in == 100 and report.frames_out == 25
    assert len(held) == 100 and max(held) <= 60  # the tracker's window only, not the unshown rest
    assert len(kept) == 100 and kept[-20:] == [0] * 20  # the output ended: it keeps no frame


class Stalling(io.BytesIO):
    """A file that stops answering (a network share gone away, a pipe nobody writes to) while the
    route decodes it: a read of the decoder's past `stall_at` bytes waits until `release` is set."""

    def __init__(self, data: bytes, stall_at: int):
        super().__init__(data)
        self.stall_at, self.release, self.stalled = stall_at, threading.Event(), threading.Event()

    def read(self, *args):
        if self.tell() >= self.stall_at and threading.current_thread().name.startswith("Halo-Lipsy decoder"):
            self.stalled.set()
            self.release.wait()
        return super().read(*args)


def test_a_source_that_stalls_forever_is_cancelled_within_a_second(tmp_path, fixture_checkpoint):
    long = Clip(width=160, height=120, fps=25.0, seconds=8, scenario="gentle")
    path = write_video(tmp_path / "long.mp4", long, audio=speech_wave(8), audio_rate=16000,
                       pix_fmt="yuv420p", crf=30)
    data = path.read_bytes()
    source = Stalling(data, stall_at=len(data) // 2)
    cancelled_at = []

    def check_interrupt():
        if source.stalled.is_set():
            if not cancelled_at:
                cancelled_at.append(time.monotonic())  # the user presses Cancel now
            raise KeyboardInterrupt

    hooks = hooks_with([fixture_checkpoint.parent], TruthDetector(long), check_interrupt=check_interrupt)
    speech = {"waveform": torch.from_numpy(speech_wave(8.0))[None], "sample_rate": 16000}
    ended = []

    def run():  # in a thread of its own, so that a run that never stops fails the test, not CI
        try:
            video_route.lipsync_video(source, str(tmp_path / "out.mp4"), Settings(inference_batch=4),
                                      hooks, audio=speech)
        except BaseException as err:  # noqa: BLE001 - what stopped it is checked below
            ended.append((err, time.monotonic()))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        worker.join(timeout=60)
        assert not worker.is_alive(), "a cancel during a stalled read never returned"
        assert isinstance(ended[0][0], KeyboardInterrupt)
        assert ended[0][1] - cancelled_at[0] < 1.0
        assert not (tmp_path / "out.mp4").exists()
    finally:
        source.release.set()  # the stalled read returns; its thread ends
    assert stage_threads() == []


def test_a_frame_is_never_handed_to_the_writer_while_the_tracker_may_still_read_it(tmp_path, fixture_checkpoint,
                                                                                    monkeypatch):
    """The picture-sharing rule is asserted where frames are shown: the writer merges mouths
    into a shown frame's YUV in its own thread, so a tracker still reading that frame breaks it."""
    stream = pack_module("routes.stream")
    longer = Clip(width=160, height=120, fps=25.0, seconds=4, scenario="gentle")  # frames shown while decoding
    source = write_video(tmp_path / "longer.mp4", longer, audio=speech_wave(4), audio_rate=16000, pix_fmt="yuv420p")
    lip_sync(source, tmp_path / "kept.mp4", longer, fixture_checkpoint)  # the rule holds
    monkeypatch.setattr(stream._FaceBoxes, "needed_from", property(lambda self: 0))  # reads all
    with pytest.raises(AssertionError, match="would be written while the tracker still reads"):
        lip_sync(source, tmp_path / "broken.mp4", longer, fixture_checkpoint)
    assert not (tmp_path / "broken.mp4").exists()
