"""The command line's promises: it never destroys its input or an earlier output, checks the
output before any work, leaves nothing behind on failure or interrupt, writes the container the
extension names, and says how it ended with its exit code (0 / 2 bad input / 130 / 1)."""

import importlib.util
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
    assert "the speech file" in err and "not a video" not in err
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
    pipeline = cli.load_pack()["pipeline"]
    monkeypatch.setattr(pipeline, "lipsync_video", lambda *a, **k: 1 / 0)
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


def test_sigterm_cleans_up_and_exits_130(tmp_path, models):
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
    assert process.returncode == 130, err.decode()
    assert "interrupted; nothing written" in err.decode()
    assert output.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "mask.png", "out.mp4"]


def test_the_face_choice_flags(work, models, capsys):
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
    assert main(source, "-o", out, "--models", models, "--face-marker", folder / "marker.png",
                "--silence", "keep_original", "--cpu") == 0
    assert "followed the marked face" in capsys.readouterr().out
    assert listing(folder) == ["in.mp4", "marker.png", "out.mp4"]
