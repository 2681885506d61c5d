"""The VIDEO route's stages run side by side (encoding in a thread of its own): the output's bytes
do not depend on thread timing, a cancel anywhere leaves nothing and does not hang, and a stage
that raises stops the others."""

import random
import threading
import time

import numpy as np
import pytest

from conftest import hooks_with, pack_module
from synthetic_clip import Clip, TruthDetector
from video_files import speech_wave, write_video

pipeline = pack_module("pipeline")
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
    return pipeline.lipsync_video(str(source), str(out), Settings(quality=23, inference_batch=4), hooks)


def encoder_threads():
    return [t for t in threading.enumerate() if t.name == "Halo-Lipsy encoder"]


def test_the_output_bytes_do_not_depend_on_thread_timing(tmp_path, talking, clip, fixture_checkpoint,
                                                        monkeypatch):
    plain = tmp_path / "plain.mp4"
    lip_sync(talking, plain, clip, fixture_checkpoint)
    rng = random.Random(0)
    real_encode, real_sync = video.VideoWriter._encode, pipeline._sync_uint8

    def slow_encode(self, *a):
        time.sleep(rng.uniform(0, 0.02))
        return real_encode(self, *a)

    def slow_sync(*a):
        time.sleep(rng.uniform(0, 0.03))
        return real_sync(*a)

    monkeypatch.setattr(video.VideoWriter, "_encode", slow_encode)
    monkeypatch.setattr(pipeline, "_sync_uint8", slow_sync)
    slowed = tmp_path / "slowed.mp4"
    lip_sync(talking, slowed, clip, fixture_checkpoint)
    assert slowed.read_bytes() == plain.read_bytes()


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

    out = tmp_path / "out.mp4"
    started = time.monotonic()
    with pytest.raises(Stop):
        lip_sync(talking, out, clip, fixture_checkpoint, check_interrupt=check_interrupt)
    assert time.monotonic() - started < 60
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert calls[0] == when  # it stopped there: nothing ran on
    for thread in encoder_threads():
        thread.join(timeout=10)
    assert encoder_threads() == []


def test_an_encoder_that_raises_stops_the_route(tmp_path, talking, clip, fixture_checkpoint, monkeypatch):
    real_encode = video.VideoWriter._encode
    encoded = [0]

    def failing(self, *a):
        encoded[0] += 1
        if encoded[0] == 5:
            raise RuntimeError("the disk is full")
        return real_encode(self, *a)

    monkeypatch.setattr(video.VideoWriter, "_encode", failing)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="the disk is full"):
        lip_sync(talking, out, clip, fixture_checkpoint)
    assert not out.exists() and encoded[0] == 5
    for thread in encoder_threads():
        thread.join(timeout=10)
    assert encoder_threads() == []
