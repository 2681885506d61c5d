"""The command line's promises: it never destroys its input or an earlier output, checks the
output before any work, leaves nothing behind on failure or interrupt, writes the container the
extension names, and says how it ended with its exit code (0 / 2 bad input / 130 Ctrl-C /
143 SIGTERM / 1)."""

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import ffmpeg_reference as ref
from conftest import ROOT
from synthetic_clip import Clip
from video_files import speech_wave, write_video

FPS = 25.0


def load_cli():
    spec = importlib.util.spec_from_file_location("lipsync_cli_under_test", ROOT / "lipsync.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


cli = load_cli()


@pytest.fixture(scope="module")
def models(tmp_path_factory, fixture_checkpoint):
    from face_alignment.detection.sfd.net_s3fd import s3fd
    folder = tmp_path_factory.mktemp("models")
    (folder / "wav2lip_gan.pth").symlink_to(fixture_checkpoint)
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), folder / "s3fd.pth")  # random weights: the wiring, offline
    return folder


@pytest.fixture
def work(tmp_path):
    clip = Clip(width=96, height=64, fps=FPS, seconds=0.4, scenario="gentle")
    source = write_video(tmp_path / "in.mp4", clip, audio=speech_wave(0.4), audio_rate=16000)
    return tmp_path, source


def main(*args):
    return cli.main([str(a) for a in args])


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_the_output_may_not_be_the_input(work, models, capsys):
    folder, source = work
    before = source.read_bytes()
    assert main(source, "-o", source, "--models", models, "-q") == 2
    assert "is the input" in capsys.readouterr().err
    link = folder / "link.mp4"
    link.symlink_to(source)
    assert main(source, "-o", link, "--models", models, "-q") == 2  # the same file by another name
    assert "is the input" in capsys.readouterr().err
    assert source.read_bytes() == before and listing(folder) == ["in.mp4", "link.mp4"]


@pytest.mark.parametrize("output, words", [
    ("missing/out.mp4", "does not exist; create it first"),
    ("a_folder.mp4", "is a folder"),
    ("out.avi", "must end in .mp4, .mov, .mkv"),
])
def test_a_bad_output_is_refused_before_any_work(work, output, words, capsys):
    folder, source = work
    (folder / "a_folder.mp4").mkdir()
    # no model folder at all: had any work started, the message would be about missing weights
    assert main(source, "-o", folder / output, "--models", folder / "no-models", "-q") == 2
    assert words in capsys.readouterr().err
    assert listing(folder) == ["a_folder.mp4", "in.mp4"]


def test_the_extension_names_the_container(work, models):
    folder, source = work
    for name, container in (("out.mkv", "matroska"), ("out.mp4", "mov,mp4")):
        assert main(source, "-o", folder / name, "--models", models, "-q", "--cpu") == 0
        assert ref.describe(folder / name).container.startswith(container)
    assert listing(folder) == ["in.mp4", "out.mkv", "out.mp4"]  # no temporary file left


def test_each_run_writes_its_own_temporary_file_beside_the_output(tmp_path):
    output = tmp_path / "result.mp4"
    first, second = cli.temporary_output(output), cli.temporary_output(output)
    assert first != second and first.parent == second.parent == tmp_path
    assert first.suffix == second.suffix == ".mp4" and first.name.startswith(".result.")


def test_bad_input_exits_2_with_the_reason_and_leaves_an_earlier_output(work, models, capsys):
    folder, source = work
    earlier = folder / "out.mp4"
    earlier.write_bytes(b"an earlier result")
    words = folder / "speech.txt"
    words.write_text("hello\n" * 100)
    assert main(source, "--audio", words, "-o", earlier, "--models", models, "-q") == 2
    err = capsys.readouterr().err
    assert err.startswith("Halo-Lipsy: ") and "the speech file" in err and "not a video" not in err
    assert main(folder / "nowhere.mp4", "-o", earlier, "--models", models, "-q") == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(words, "-o", earlier, "--models", models, "-q") == 2  # FFmpeg's tty demuxer
    assert "is not a media file (FFmpeg reads it as 'tty'" in capsys.readouterr().err
    assert main(source, "-o", earlier, "--models", models, "-q", "--quality", "0") == 2
    assert "browsers and most players refuse" in capsys.readouterr().err
    assert earlier.read_bytes() == b"an earlier result"
    assert listing(folder) == ["in.mp4", "out.mp4", "speech.txt"]


def test_an_unexpected_error_exits_1_with_one_line(work, models, capsys, monkeypatch):
    folder, source = work
    video_route = cli.load_pack()["routes"]
    monkeypatch.setattr(video_route, "lipsync_video", lambda *a, **k: 1 / 0)
    assert main(source, "-o", folder / "out.mp4", "--models", models, "-q") == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("Halo-Lipsy: unexpected error (ZeroDivisionError")
    assert listing(folder) == ["in.mp4"]


def test_a_face_mask_image_replaces_detection(work, models, capsys):
    import cv2
    folder, source = work
    mask = np.zeros((64, 96), np.uint8)
    mask[10:50, 30:70] = 255
    cv2.imwrite(str(folder / "mask.png"), mask)
    out = folder / "out.mp4"
    assert main(source, "-o", out, "--models", models, "--face-mask", folder / "mask.png",
                "--cpu") == 0
    changed = np.abs(ref.frames(out)[:10].astype(int) - ref.frames(source)[:10].astype(int)).max(axis=-1)
    ys, xs = np.nonzero(changed.max(axis=0) > 30)
    assert 30 <= xs.min() and xs.max() < 70 and 10 <= ys.min() and ys.max() < 62  # in the mask's box
    assert main(source, "-o", out, "--models", models, "--face-mask", folder / "nope.png") == 2
    assert "face mask" in capsys.readouterr().err


def test_sigterm_cleans_up_and_exits_143(tmp_path, models):
    clip = Clip(width=160, height=120, fps=FPS, seconds=12, scenario="gentle")
    source = write_video(tmp_path / "long.mp4", clip, audio=speech_wave(12), audio_rate=16000,
                         crf=28, pix_fmt="yuv420p")
    mask = tmp_path / "mask.png"
    import cv2
    face = np.zeros((120, 160), np.uint8)
    face[20:100, 40:120] = 255
    cv2.imwrite(str(mask), face)
    output = tmp_path / "out.mp4"
    output.write_bytes(b"an earlier result")
    process = subprocess.Popen([sys.executable, str(ROOT / "lipsync.py"), str(source), "-o",
                                str(output), "--models", str(models), "--face-mask", str(mask),
                                "--cpu", "-q"], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*.partial.mp4")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    time.sleep(2.0)  # into the work
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()  # 128 + SIGTERM: a service stop, not a Ctrl-C
    assert "stopped (SIGTERM); nothing written" in err.decode()
    assert output.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "mask.png", "out.mp4"]


def test_a_killed_runs_leftover_is_removed_by_the_next_run_and_nothing_else_is(work, models, tmp_path):
    """SIGKILL leaves the hidden partial file (nothing can clean up then); the next run into the
    folder removes it once nobody has written it for a while, and only files provably its kind:
    a live run's partial, a recent one and other people's files stay."""
    folder, source = work
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    leftover = cli.temporary_output(folder / "out.mp4")  # this process's own name pattern ...
    dead = folder / leftover.name.replace(f".{os.getpid()}.", f".{killed.pid}.")
    leftover.rename(dead)  # ... as the killed run would have named it
    killed.kill()
    killed.wait()
    live = cli.temporary_output(folder / "other.mp4")  # a run of this (living) process
    recent = folder / dead.name.replace("out.", "recent.")
    recent.write_bytes(b"")
    theirs = folder / ".notes.123.abcdefgh.partial.txt.bak"
    theirs.write_bytes(b"")
    old = time.time() - cli.STALE_PARTIAL_S - 5
    for path in (dead, live, theirs):
        os.utime(path, (old, old))
    assert main(source, "-o", folder / "out.mp4", "--models", models, "-q", "--cpu") == 0
    assert not dead.exists()
    assert live.exists() and recent.exists() and theirs.exists()


def test_a_sigterm_python_drops_still_stops_the_run(work, models, capsys, monkeypatch):
    import gc
    import weakref

    folder, source = work
    earlier = folder / "out.mp4"
    earlier.write_bytes(b"an earlier result")
    video_route = cli.load_pack()["routes"]
    real = video_route.lipsync_video

    def signalled_inside_a_callback(*a, **k):
        class Held:
            pass

        held = Held()
        # the handler's exception is raised inside a weakref callback: Python prints and drops it
        watch = weakref.ref(held, lambda _: signal.raise_signal(signal.SIGTERM))
        del held
        gc.collect()
        assert watch() is None
        return real(*a, **k)

    monkeypatch.setattr(video_route, "lipsync_video", signalled_inside_a_callback)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert main(source, "-o", earlier, "--models", models, "-q") == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "stopped (SIGTERM); nothing written" in capsys.readouterr().err
    assert earlier.read_bytes() == b"an earlier result" and listing(folder) == ["in.mp4", "out.mp4"]


def test_the_face_choice_flags(work, models, capsys, caplog):
    import cv2
    folder, source = work
    out = folder / "out.mp4"
    assert main(source, "-o", out, "--models", models, "--face", "marked", "-q") == 2
    assert "no face_marker is given" in capsys.readouterr().err
    marker = np.zeros((64, 96), np.uint8)
    marker[20:40, 40:44] = 255
    cv2.imwrite(str(folder / "marker.png"), marker)
    assert main(source, "-o", out, "--models", models, "--face-marker", folder / "marker.png",
                "--face-mask", folder / "marker.png", "-q") == 2  # one or the other
    assert "Connect one of them" in capsys.readouterr().err
    # a stroke alone cannot say which frame (so whose face) it was painted on: nobody is marked
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        assert main(source, "-o", out, "--models", models, "--face-marker", folder / "marker.png", "-q") == 0
    assert "--face-marker-image" in caplog.text and "nobody is marked" in caplog.text
    # the frame with the stroke painted transparent, as ComfyUI's mask editor saves it
    frame = ref.frames(source)[0]
    painted = np.dstack([frame[:, :, ::-1], np.where(marker > 0, 0, 255).astype(np.uint8)])
    cv2.imwrite(str(folder / "painted.png"), painted)
    assert main(source, "-o", out, "--models", models, "--face-marker", folder / "painted.png",
                "--silence", "keep_original", "--cpu") == 0
    assert "followed the marked face" in capsys.readouterr().out
    cv2.imwrite(str(folder / "frame.png"), frame[:, :, ::-1])
    assert main(source, "-o", out, "--models", models, "--face-marker", folder / "marker.png",
                "--face-marker-image", folder / "frame.png", "--cpu", "-q") == 0
    assert listing(folder) == ["frame.png", "in.mp4", "marker.png", "out.mp4", "painted.png"]


def test_a_generator_out_of_memory_exits_2_with_what_to_do(work, models, capsys, monkeypatch):
    folder, source = work
    wav2lip = cli.load_pack("wav2lip")["wav2lip"]

    def no_memory(self, mels, faces):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(wav2lip.BatchedGenerator, "_forward", no_memory)
    mask = folder / "mask.png"
    import cv2
    cv2.imwrite(str(mask), np.full((64, 96), 255, np.uint8))
    assert main(source, "-o", folder / "out.mp4", "--models", models, "--face-mask", mask, "-q") == 2
    err = capsys.readouterr().err
    assert "Halo-Lipsy: Out of memory on cpu even for one frame" in err and "--cpu" in err
    assert listing(folder) == ["in.mp4", "mask.png"]


def test_start_and_duration_trim_the_input(tmp_path, models):
    clip = Clip(width=96, height=64, fps=FPS, seconds=2.0, scenario="gentle")
    source = write_video(tmp_path / "in.mp4", clip, audio=speech_wave(2.0), audio_rate=16000)
    out = tmp_path / "out.mp4"
    assert main(source, "-o", out, "--models", models, "--start", "0.4", "--duration", "0.8", "-q") == 0
    times, _ = ref.frame_times(out)
    assert len(times) == 20  # 0.8 s at 25 fps
    samples, rate, _ = ref.audio(out)
    assert samples.shape[1] / rate == pytest.approx(0.8, abs=0.03)
    # the first frame out is the input's frame at 0.4 s (ffmpeg's own trim is the reference)
    expected = ref.frames(source, vf="trim=start=0.4:duration=0.8,setpts=PTS-STARTPTS")
    got = ref.frames(out)
    assert np.abs(got[0, :16].astype(int) - expected[0, :16].astype(int)).mean() < 3
    assert main(source, "-o", out, "--models", models, "--start", "-1", "-q") == 2


def test_cover_art_is_never_taken_for_the_picture(tmp_path, models):
    import cv2
    clip = Clip(width=96, height=64, fps=FPS, seconds=0.4, scenario="gentle")
    plain = write_video(tmp_path / "plain.mp4", clip, audio=speech_wave(0.4), audio_rate=16000)
    cover = tmp_path / "cover.png"
    cv2.imwrite(str(cover), np.full((300, 300, 3), 200, np.uint8))
    with_cover = tmp_path / "with_cover.mp4"
    # the cover listed first, as some taggers write it
    ref.ffmpeg("-i", cover, "-i", plain, "-map", "0", "-map", "1", "-c", "copy",
               "-disposition:v:0", "attached_pic", with_cover)
    assert "attached pic" in ref.stream_text(with_cover)
    out = tmp_path / "out.mp4"
    assert main(with_cover, "-o", out, "--models", models, "-q") == 0
    described = ref.describe(out)
    assert (described.width, described.height) == (96, 64)  # the video's size, not the cover's
    got, given = ref.frames(out).astype(int), ref.frames(plain).astype(int)
    assert len(got) >= 10 and np.abs(got[:10] - given[:10]).mean() < 8  # the clip, not a grey card
