"""A super-resolution restore model on the generated mouth: spandrel's own architectures with
random weights (a Compact super-resolution model; a Compact at scale 1, which is a "Restoration"
model, as one to refuse), through the sharpener, both routes, the nodes' input and the command
line's flag. Face restoration models: test_face_restore.py."""

import sys

import numpy as np
import pytest
import torch
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact

import ffmpeg_reference as ref
from conftest import hooks_with, pack_module
from test_cli import cli
from synthetic_clip import Clip, TruthDetector
from video_files import speech_wave, write_video

restore = pack_module("restore")
routes = pack_module("routes")
nodes = pack_module("nodes")
Settings = pack_module("settings").Settings


def compact(scale: int, seed: int = 0):
    """A random-weight Compact (SRVGGNetCompact) as spandrel reads it from its state dict."""
    torch.manual_seed(seed)
    network = Compact(num_in_ch=3, num_out_ch=3, num_feat=16, num_conv=4, upscale=scale)
    return network.state_dict(), ModelLoader().load_from_state_dict(network.state_dict()).eval()


@pytest.fixture(scope="module")
def sr_model():
    return compact(2)[1]


def mouths(n=5, seed=1):
    return np.random.default_rng(seed).random((n, 3, 96, 96), dtype=np.float32)


def test_a_super_resolution_model_draws_the_mouths_larger_in_the_colour_order_it_was_trained_on(sr_model):
    assert restore.kind_of(sr_model) == restore.SUPER_RESOLUTION
    sharpener = restore.MouthSharpener(sr_model, "cpu", torch.float32, 2, 1.0)
    bgr = mouths()
    out = sharpener(bgr)
    assert out.shape == (5, 3, 192, 192) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    # the reference: spandrel's own call on the same mouths in RGB, its output turned back to BGR
    expected = sr_model(torch.from_numpy(bgr[:, ::-1].copy())).clamp(0, 1).numpy()[:, ::-1]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_restore_strength_blends_the_sharp_mouth_with_the_plain_one(sr_model):
    bgr = mouths(2)
    sharp = restore.MouthSharpener(sr_model, "cpu", torch.float32, 4, 1.0)(bgr)
    half = restore.MouthSharpener(sr_model, "cpu", torch.float32, 4, 0.5)(bgr)
    plain = torch.nn.functional.interpolate(torch.from_numpy(bgr), scale_factor=2, mode="bilinear").numpy()
    np.testing.assert_allclose(half, 0.5 * plain + 0.5 * sharp, atol=1e-5)


def test_out_of_memory_halves_the_batch_and_gives_the_same_mouths(sr_model, monkeypatch):
    bgr = mouths(8)
    expected = restore.MouthSharpener(sr_model, "cpu", torch.float32, 8, 1.0)(bgr)
    sharpener = restore.MouthSharpener(sr_model, "cpu", torch.float32, 8, 1.0)
    real = sharpener._forward

    def forward(batch):
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(batch)

    monkeypatch.setattr(sharpener, "_forward", forward)
    np.testing.assert_array_equal(sharpener(bgr), expected)
    assert sharpener.batch_size == 2  # 8, then 4, then 2


def test_the_model_computes_in_the_generators_precision_for_the_run_and_is_put_back_after(sr_model):
    sharpener = restore.MouthSharpener(sr_model, "cpu", torch.bfloat16, 4, 1.0)
    assert sharpener.dtype == torch.bfloat16  # Compact computes in bf16
    generator = restore.SharpenedGenerator(_Plain(), sharpener)
    with sharpener.placed():
        for _ in range(2):  # batch after batch, placed once
            out = generator(np.zeros((3, 80, 16), np.float32), np.zeros((3, 6, 96, 96), np.float32))
            assert out.shape == (3, 3, 192, 192) and sr_model.dtype == torch.bfloat16
    assert sr_model.dtype == torch.float32 and sr_model.device.type == "cpu"  # the user's model, as it was


class _Plain:
    """A generator stand-in: grey mouths."""

    shares_the_cpu = True

    def __call__(self, mels, faces, on_slice=None):
        return np.full((len(faces), 3, 96, 96), 0.5, np.float32)


def test_a_model_that_does_not_draw_the_mouth_larger_is_refused_naming_it():
    _, one_x = compact(1)
    assert one_x.purpose == "Restoration"
    with pytest.raises(restore.RestoreModelError, match=r"Compact is a Restoration model at scale 1.*Load a super-resolution model"):
        restore.kind_of(one_x)
    with pytest.raises(restore.RestoreModelError, match="not an image model: connect Load Upscale Model"):
        restore.kind_of(torch.nn.Conv2d(3, 3, 1))


# ------------------------------------------------------------------ the routes


@pytest.fixture(scope="module")
def clip():
    return Clip(width=160, height=120, fps=25.0, seconds=0.8, scenario="gentle")


def image_run(clip, checkpoint, restore_model=None, **settings):
    frames = torch.from_numpy(np.stack([np.clip(clip.frame(i), 0, 1) for i in range(clip.count)]).astype(np.float32))
    audio = {"waveform": torch.from_numpy(speech_wave(0.8))[None], "sample_rate": 16000}
    return routes.lipsync_images(frames, audio, Settings(inference_batch=8, **settings),
                                 hooks_with([checkpoint.parent], TruthDetector(clip)), restore_model=restore_model)


def test_strength_0_is_exactly_the_output_without_a_model_and_1_changes_only_the_pasted_pixels(
        clip, fixture_checkpoint, sr_model):
    plain = image_run(clip, fixture_checkpoint)
    assert torch.equal(image_run(clip, fixture_checkpoint, sr_model, restore_strength=0.0).images, plain.images)
    sharp = image_run(clip, fixture_checkpoint, sr_model)
    changed = (sharp.images != plain.images).any(dim=-1)
    assert changed.any()  # the model changed the mouths
    assert not (changed & (plain.mask == 0)).any()  # and nothing the mouth is not pasted into
    assert torch.equal(sharp.mask, plain.mask)


def test_the_video_route_applies_it_and_keeps_every_other_pixel(tmp_path, clip, fixture_checkpoint, sr_model):
    source = write_video(tmp_path / "in.mp4", clip, audio=speech_wave(0.8), audio_rate=16000, pix_fmt="yuv420p")
    outs = {}
    for name, model in (("plain", None), ("sharp", sr_model)):
        outs[name] = tmp_path / f"{name}.mp4"
        routes.lipsync_video(str(source), str(outs[name]), Settings(quality=1, inference_batch=8),
                             hooks_with([fixture_checkpoint.parent], TruthDetector(clip)), restore_model=model)
    plain, sharp = (ref.yuv_planes(outs[k]).astype(int) for k in ("plain", "sharp"))
    moved = np.abs(sharp - plain).max(axis=0)[:clip.height]  # luma rows, over all frames
    rows, cols = np.nonzero(moved > 2)
    assert len(rows)  # the mouths changed
    boxes = np.array([box for i in range(clip.count) for box in clip.truth(i)])
    # only inside the face boxes (plus the encoder's 16-pixel blocks around them)
    assert rows.min() >= boxes[:, 1].min() - 16 and rows.max() <= boxes[:, 3].max() + 16
    assert cols.min() >= boxes[:, 0].min() - 16 and cols.max() <= boxes[:, 2].max() + 16


def test_both_nodes_take_a_restore_model_from_load_upscale_model():
    for node in (nodes.HaloLipsy, nodes.HaloLipsyVideo):
        spec = node.INPUT_TYPES()
        assert spec["optional"]["restore_model"][0] == "UPSCALE_MODEL"
        assert spec["required"]["restore_strength"][0] == "FLOAT"


# ------------------------------------------------------------------ the command line


def test_the_command_line_reads_a_model_file_and_refuses_one_it_cannot_apply(tmp_path, fixture_checkpoint, capsys):
    import cv2

    clip = Clip(width=96, height=64, fps=25.0, seconds=0.4, scenario="gentle")
    source = write_video(tmp_path / "in.mp4", clip, audio=speech_wave(0.4), audio_rate=16000)
    mask = np.zeros((64, 96), np.uint8)
    mask[8:56, 24:72] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    models = tmp_path / "models"
    models.mkdir()
    (models / "wav2lip_gan.pth").symlink_to(fixture_checkpoint)
    state, _ = compact(2)
    torch.save(state, tmp_path / "2x_compact.pth")
    args = ["--models", models, "--face-mask", tmp_path / "mask.png", "-q"]
    assert cli.main([str(a) for a in [source, "-o", tmp_path / "out.mp4", "--restore-model",
                                          tmp_path / "2x_compact.pth", *args]]) == 0
    assert cli.main([str(a) for a in [source, "-o", tmp_path / "plain.mp4", *args]]) == 0
    sharp, plain = ref.frames(tmp_path / "out.mp4").astype(int), ref.frames(tmp_path / "plain.mp4").astype(int)
    assert sharp.shape == plain.shape and np.abs(sharp - plain)[:, 8:56, 24:72].max() > 8  # in the box
    torch.save(compact(1)[0], tmp_path / "1x_compact.pth")
    assert cli.main([str(a) for a in [source, "-o", tmp_path / "refused.mp4", "--restore-model",
                                          tmp_path / "1x_compact.pth", *args]]) == 2
    assert "is a Restoration model" in capsys.readouterr().err and not (tmp_path / "refused.mp4").exists()


def test_without_spandrel_the_command_line_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "spandrel", None)  # as if it were not installed
    with pytest.raises(restore.RestoreModelError, match="needs spandrel.*pip install spandrel"):
        restore.load_restore_model(tmp_path / "model.pth")
