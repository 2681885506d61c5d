import contextlib
import dataclasses
import logging
import os
import time
import types
import weakref

import numpy as np
import pytest
import torch

from comfy_stand_ins import FakeComfy, FakeFolderPaths, real_folder_paths
from conftest import hooks_with, load_pack, pack_module
from fixture_weights import save_released_layout
from synthetic_clip import Clip, TruthDetector

pack = load_pack()
nodes = pack_module("nodes")
pipeline = pack_module("routes")
Settings = pack_module("settings").Settings
MODES = pack_module("settings").MODES

W, H, FPS = 160, 120, 25.0


@pytest.fixture(scope="module")
def clip():
    return Clip(width=W, height=H, fps=FPS, seconds=0.4, scenario="gentle")  # 10 frames


@pytest.fixture(scope="module")
def frames(clip):
    return clip.images()


@pytest.fixture(scope="module")
def face_mask(clip):
    mask = torch.zeros(clip.count, H, W)
    for i in range(clip.count):
        x1, y1, x2, y2 = (int(round(v)) for v in clip.truth(i)[0])
        mask[i, y1:y2, x1:x2] = 1.0
    return mask


def speech(seconds, rate=16000, channels=1):
    t = np.arange(int(round(seconds * rate))) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return {"waveform": torch.from_numpy(np.tile(voice, (channels, 1))[None].astype(np.float32)),
            "sample_rate": rate}


@pytest.fixture
def run(fixture_checkpoint):
    """The IMAGE route with the checkpoint folder (and a detector stand-in) through Hooks; its
    ImageResult unpacks as (images, audio, mask)."""
    def go(images, audio, detector=None, face_mask=None, search_dirs=None, generator=None,
           **settings):
        settings.setdefault("fps", FPS)
        hooks = hooks_with(search_dirs or [fixture_checkpoint.parent], detector)
        if generator is not None:  # a stand-in network, placed as the hooks place one
            hooks = dataclasses.replace(hooks, load_generator=lambda *a: generator)
        return pipeline.lipsync_images(images, audio, Settings(**settings), hooks, face_mask)
    return go


def schedule(mode, n_video, n_audio):
    """The input frame each output frame shows, for constant-rate frames and audio."""
    return pipeline.timeline(mode, np.arange(n_video) / FPS, n_audio / FPS, FPS).source


def mask_box(mask_frame):
    ys, xs = np.nonzero(mask_frame.numpy())
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


# ------------------------------------------------------------------ lengths and modes


def test_the_timeline_for_each_mode():
    assert schedule("sequential", 4, 7).tolist() == [0, 1, 2, 3, 3, 3, 3]
    assert schedule("sequential", 6, 3).tolist() == [0, 1, 2, 3, 4, 5]
    assert schedule("repetitive", 3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert schedule("pingpong", 4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    for mode in MODES:
        assert schedule(mode, 1, 5).tolist() == [0] * 5
    # 4.4 s of audio at 25 fps is 110 frames, not 111 (float noise never adds a frame)
    plan = pipeline.timeline("repetitive", np.arange(3) / FPS, 4.4, FPS)
    assert len(plan) == 110 and plan.positions[-1] == 109 and plan.end == pytest.approx(4.4)
    # variable frame rate: each frame keeps its duration through the loops
    plan = pipeline.timeline("pingpong", [0.0, 0.1, 0.15], 0.75, FPS, last_duration=0.2)
    assert plan.source.tolist() == [0, 1, 2, 1, 0, 1, 2]
    assert np.allclose(plan.times, [0, 0.1, 0.15, 0.35, 0.4, 0.5, 0.55])


@pytest.mark.parametrize("mode, seconds, expected", [
    ("sequential", 0.6, 15), ("sequential", 0.2, 10), ("repetitive", 0.6, 15),
    ("repetitive", 0.2, 5), ("pingpong", 0.6, 15), ("pingpong", 0.2, 5),
])
def test_output_length_by_mode(run, frames, face_mask, mode, seconds, expected):
    out, audio_out, _ = run(frames, speech(seconds, 44100, 2), mode=mode, face_mask=face_mask,
                         blend_edges=False, face_padding=0, smooth_box_frames=0)
    assert out.shape == (expected, H, W, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert audio_out["sample_rate"] == 44100
    assert audio_out["waveform"].shape == (1, 2, round(expected / FPS * 44100))
    for i, src in enumerate(schedule(mode, len(frames), round(seconds * FPS))):  # outside the face box each frame is its scheduled input
        x1, y1, x2, y2 = mask_box(face_mask[src])
        keep = torch.ones(H, W, dtype=torch.bool)
        keep[y1:y2, x1:x2] = False
        assert torch.equal(out[i][keep], frames[src][keep]), i
        assert not torch.equal(out[i][~keep], frames[src][~keep]), i  # every frame lip-synced


def test_a_single_image_becomes_a_talking_still(run, frames, face_mask):
    still = frames[:1]
    x1, y1, x2, y2 = mask_box(face_mask[0])
    for mode in MODES:
        out, _, _ = run(still, speech(0.5), mode=mode, face_mask=face_mask[:1], blend_edges=False,
                        face_padding=0, smooth_box_frames=0)
        assert out.shape == (13, H, W, 3)
        outside = torch.ones(H, W, dtype=torch.bool)
        outside[y1:y2, x1:x2] = False
        assert all(torch.equal(out[i][outside], still[0][outside]) for i in range(13))
        mouths = out[:, y1:y2, x1:x2]
        # the face talks: the generated face differs from frame to frame as the speech moves
        assert all(not torch.equal(mouths[i], mouths[i + 1]) for i in range(12)), mode


def test_audio_longer_than_the_video_holds_the_last_frame_and_keeps_syncing(run, frames, face_mask):
    out, audio_out, _ = run(frames, speech(1.0), face_mask=face_mask, blend_edges=False,
                         face_padding=0, smooth_box_frames=0)
    assert out.shape[0] == 25 and audio_out["waveform"].shape[-1] == 16000
    x1, y1, x2, y2 = mask_box(face_mask[-1])
    tail = out[10:, y1:y2, x1:x2]
    assert not torch.equal(tail[0], tail[-1])  # the held frame's mouth still moves


def test_audio_shorter_than_the_video_keeps_every_frame_in_sequential(run, frames, face_mask):
    out, audio_out, _ = run(frames, speech(0.1), face_mask=face_mask)
    assert out.shape[0] == 10
    assert audio_out["waveform"].shape[-1] == 6400  # padded with silence to 0.4 s
    assert torch.all(audio_out["waveform"][..., 1600:] == 0)


# ------------------------------------------------------------------ pixels and inputs


def test_pixels_outside_the_face_box_are_the_input_bit_for_bit(run, frames, face_mask):
    out, _, _ = run(frames, speech(0.4), face_mask=face_mask, blend_edges=False, face_padding=0,
                 smooth_box_frames=0)
    for i in range(len(frames)):
        x1, y1, x2, y2 = mask_box(face_mask[i])
        outside = torch.ones(H, W, dtype=torch.bool)
        outside[y1:y2, x1:x2] = False
        assert torch.equal(out[i][outside], frames[i][outside])


def test_blending_keeps_the_upper_face(run, frames, face_mask):
    out, _, _ = run(frames, speech(0.4), face_mask=face_mask, face_padding=0, smooth_box_frames=0)
    x1, y1, x2, y2 = mask_box(face_mask[0])
    upper = slice(y1, y1 + (y2 - y1) // 2)
    assert torch.equal(out[0, upper], frames[0, upper])
    assert not torch.equal(out[0, y2 - (y2 - y1) // 4], frames[0, y2 - (y2 - y1) // 4])


def test_inputs_are_not_modified(run, frames, face_mask):
    images, audio_in, mask = frames.clone(), speech(0.4, 22050, 2), face_mask.clone()
    wave = audio_in["waveform"].clone()
    out, audio_out, _ = run(images, audio_in, face_mask=mask)
    assert torch.equal(images, frames) and torch.equal(mask, face_mask)
    assert torch.equal(audio_in["waveform"], wave)
    assert out.data_ptr() != images.data_ptr()
    assert audio_out["waveform"].data_ptr() != audio_in["waveform"].data_ptr()


def test_rgba_keeps_its_alpha(run, frames, face_mask):
    alpha = torch.linspace(0, 1, W).expand(len(frames), H, W)[..., None]
    rgba = torch.cat([frames, alpha], dim=-1)
    out, _, _ = run(rgba, speech(0.4), face_mask=face_mask)
    assert out.shape == (10, H, W, 4)
    assert torch.equal(out[..., 3], rgba[..., 3])
    assert not torch.equal(out[..., :3], frames)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_works(run, frames, face_mask, dtype):
    out, _, _ = run(frames.to(dtype), speech(0.4), face_mask=face_mask.to(dtype), blend_edges=False,
                 face_padding=0, smooth_box_frames=0)
    assert out.dtype == torch.float32
    x1, y1, x2, y2 = mask_box(face_mask[0])
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert torch.equal(out[0][outside], frames[0].to(dtype).float()[outside])


def test_detection_path_with_known_boxes(run, clip, frames):
    detector = TruthDetector(clip)
    out, _, _ = run(frames, speech(0.4), detector=detector, face_padding=0, smooth_box_frames=0,
                 blend_edges=False)
    assert len(detector.requests) >= 1
    x1, y1, x2, y2 = (int(round(v)) for v in clip.truth(5)[0])
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[max(0, y1 - 2):y2 + 2, max(0, x1 - 2):x2 + 2] = False
    assert torch.equal(out[5][outside], frames[5][outside])
    assert not torch.equal(out[5][~outside], frames[5][~outside])


def test_frames_without_a_face_pass_through(run, frames, face_mask, caplog):
    mask = face_mask.clone()
    mask[3:6] = 0
    out, _, _ = run(frames, speech(0.4), face_mask=mask)
    assert torch.equal(out[3:6], frames[3:6])
    assert not torch.equal(out[2], frames[2])
    result = run(frames, speech(0.4), face_mask=torch.zeros(1, H, W))
    assert torch.equal(result.images, frames) and result.report.faces_found == 0
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        result.report.log()  # what the node does with it
    assert "no face was found in any frame" in caplog.text


class _DimmedCrop(torch.nn.Module):
    """A stand-in generator as cheap as a copy: the unmasked crop at half brightness."""

    def forward(self, mels, faces):
        return faces[:, 3:] * 0.5


def test_ten_thousand_frames_stream_through_the_generator(run):
    images = torch.rand(10000, 16, 16, 3) * 0.5 + 0.5
    mask = torch.zeros(1, 16, 16)
    mask[0, 2:14, 3:15] = 1
    result = run(images, speech(400.0, 8000), face_mask=mask, inference_batch=512,
                 blend_edges=False, face_padding=0, smooth_box_frames=0,
                 generator=(_DimmedCrop(), torch.device("cpu"), torch.float32, torch.contiguous_format))
    out, audio_out, weights = result
    assert out.shape == (10000, 16, 16, 3) and audio_out["waveform"].shape[-1] == 400 * 8000
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[2:14, 3:15] = False
    assert torch.equal(out[:, outside], images[:, outside])
    # every frame, the last included, went through the generator: its box is half as bright
    inside = out[:, 2:14, 3:15].mean(dim=(1, 2, 3)) / images[:, 2:14, 3:15].mean(dim=(1, 2, 3))
    assert float((inside - 0.5).abs().max()) < 0.02
    assert result.report.frames_synced == 10000 and bool((weights[:, 2:14, 3:15] == 1).all())


def test_sync_offset_through_the_whole_node(run, frames, face_mask):
    # a still image: the only thing that differs between output frames is the audio window,
    # so a positive offset k must show frame i's mouth at frame i + k (the lips later)
    still, one = frames[:1], face_mask[:1]
    kw = dict(face_mask=one, blend_edges=False, face_padding=0, smooth_box_frames=0, inference_batch=1)
    base, _, _ = run(still, speech(0.6), **kw)
    later, _, _ = run(still, speech(0.6), sync_offset=2, **kw)
    earlier, _, _ = run(still, speech(0.6), sync_offset=-3, **kw)
    x1, y1, x2, y2 = mask_box(one[0])
    box = (slice(None), slice(y1, y2), slice(x1, x2))
    torch.testing.assert_close(later[box][2:], base[box][:-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(earlier[box][:-3], base[box][3:], atol=1e-5, rtol=0)
    assert not torch.allclose(later[box][2:], base[box][2:], atol=1e-3)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("images, audio_value, words", [
    (torch.rand(3, 32, 32, 3), None, "No audio: connect an AUDIO"),
    (torch.zeros(0, 32, 32, 3), "speech", "'images' is empty"),
    (None, "speech", "no images"),
    (torch.rand(3, 32, 32, 2), "speech", "expected an IMAGE"),
])
def test_bad_images_or_audio(run, images, audio_value, words):
    audio_in = speech(0.2) if audio_value == "speech" else audio_value
    with pytest.raises(nodes.HaloLipsyError, match=words) as err:
        run(images, audio_in, face_mask=torch.zeros(1, 32, 32))
    assert str(err.value).startswith("Halo-Lipsy: ")


def test_a_mask_of_the_wrong_size(run, frames):
    with pytest.raises(nodes.HaloLipsyError, match="face_mask is 64x64 but the images are 160x120"):
        run(frames, speech(0.4), face_mask=torch.ones(10, 64, 64))


def test_an_unusable_checkpoint(run, frames, face_mask, tmp_path):
    (tmp_path / "wav2lip.pth").write_bytes(b"\x00" * 1000)
    with pytest.raises(nodes.HaloLipsyError, match="truncated or corrupt"):
        run(frames, speech(0.4), face_mask=face_mask, search_dirs=[tmp_path])
    with pytest.raises(nodes.HaloLipsyError, match="No Wav2Lip checkpoint found"):
        run(frames, speech(0.4), face_mask=face_mask, search_dirs=[tmp_path / "empty"])


@pytest.mark.parametrize("setting, value", [
    ("fps", 0), ("inference_batch", 0), ("face_detect_batch", -1), ("mode", "reverse"),
    ("mel_step_multiplier", 0.0), ("blend_radius", -3), ("sync_offset", float("nan")),
])
def test_bad_settings(run, frames, face_mask, setting, value):
    with pytest.raises(nodes.HaloLipsyError, match=setting if setting != "fps" else "fps is 0"):
        run(frames, speech(0.4), face_mask=face_mask, **{setting: value})


def test_the_mask_path_builds_no_detector(frames, face_mask, fixture_checkpoint):
    hooks = dataclasses.replace(hooks_with([fixture_checkpoint.parent]),
                                detector=lambda batch: pytest.fail("a detector was built"))
    out, _, _ = pipeline.lipsync_images(frames, speech(0.4), Settings(fps=FPS), hooks, face_mask)
    assert out.shape[0] == 10


def test_missing_detector_weights_offline_point_to_face_mask(run, frames, monkeypatch, tmp_path):
    weights = pack_module("face_detect.s3fd.weights")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(weights, "_download", offline)
    with pytest.raises(nodes.HaloLipsyError, match="face_mask"):
        run(frames, speech(0.4))


# ------------------------------------------------------------------ ComfyUI glue, faked


def comfy_models(tmp_path, fixture_checkpoint):
    models = tmp_path / "models"
    (models / "wav2lip").mkdir(parents=True)
    (models / "wav2lip" / fixture_checkpoint.name).symlink_to(fixture_checkpoint)
    return models


def test_comfyui_glue_progress_model_management_and_interrupt(frames, face_mask, fixture_checkpoint,
                                                             monkeypatch, tmp_path, clip):
    models = comfy_models(tmp_path, fixture_checkpoint)
    fake = FakeComfy(models_dir=models).install(monkeypatch, nodes)
    assert "wav2lip_gan.pth" in nodes.HaloLipsy.INPUT_TYPES()["required"]["checkpoint"][0]
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: TruthDetector(clip))
    out, _, _ = nodes.HaloLipsy().lipsync(frames, speech(0.8), fps=FPS, inference_batch=4)
    assert out.shape[0] == 20
    assert fake.loaded and fake.loaded[0][1] is True  # loaded through model management, fully
    assert fake.progress == sorted(fake.progress) and fake.progress[-1] == 1.0
    assert any(0 < p <= 0.3 for p in fake.progress)  # moves during detection too
    assert fake.checks >= 5  # an interrupt check every batch
    assert str(models / "wav2lip") == fake.folder_paths.get_folder_paths("wav2lip")[0]

    fake.interrupt_after, fake.checks = fake.checks // 2, 0
    with pytest.raises(KeyboardInterrupt):
        nodes.HaloLipsy().lipsync(frames, speech(0.8), fps=FPS, inference_batch=4, face_mask=face_mask)
    fake.interrupt_after = None
    again, _, _ = nodes.HaloLipsy().lipsync(frames, speech(0.8), fps=FPS, inference_batch=4,
                                            face_mask=face_mask)
    assert again.shape[0] == 20  # the next run works normally


def test_progress_and_interrupt_inside_one_generator_batch(frames, face_mask, fixture_checkpoint,
                                                          monkeypatch, tmp_path):
    # one batch of 20 frames runs on the CPU as 5 slices of 4: each is checked and reported
    fake = FakeComfy(models_dir=comfy_models(tmp_path, fixture_checkpoint)).install(monkeypatch, nodes)
    nodes.HaloLipsy().lipsync(frames, speech(0.8), fps=FPS, inference_batch=64, face_mask=face_mask)
    inside = [p for p in fake.progress if 0 < p < 1]
    assert len(set(inside)) >= 4 and fake.checks >= 6
    forwards = []
    real_forward = pack_module("wav2lip.inference").BatchedGenerator._forward
    monkeypatch.setattr(pack_module("wav2lip.inference").BatchedGenerator, "_forward",
                        lambda self, m, f: forwards.append(len(f)) or real_forward(self, m, f))
    fake.interrupt_after, fake.checks = 3, 0
    with pytest.raises(KeyboardInterrupt):
        nodes.HaloLipsy().lipsync(frames, speech(0.8), fps=FPS, inference_batch=64, face_mask=face_mask)
    assert 0 < len(forwards) < 5  # stopped inside the batch, not after it


def test_an_interrupt_during_detection_stops_before_generation(frames, clip, fixture_checkpoint,
                                                               monkeypatch, tmp_path):
    fake = FakeComfy(models_dir=comfy_models(tmp_path, fixture_checkpoint)).install(monkeypatch, nodes)
    full = TruthDetector(clip, batch_size=1)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: full)
    nodes.HaloLipsy().lipsync(frames, speech(0.4), fps=FPS)
    monkeypatch.setattr(pack_module("wav2lip.inference").BatchedGenerator, "__call__",
                        lambda *a, **k: pytest.fail("the generator ran after an interrupt"))
    fake.interrupt_after, fake.checks = 2, 0
    interrupted = TruthDetector(clip, batch_size=1)
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: interrupted)
    with pytest.raises(KeyboardInterrupt):
        nodes.HaloLipsy().lipsync(frames, speech(0.4), fps=FPS)
    assert len(interrupted.requests) < len(full.requests)


def test_models_stay_cached_across_workflows_until_comfyui_unloads_them(
        frames, face_mask, fixture_checkpoint, fixture_state, monkeypatch, tmp_path, clip):
    import gc
    checkpoint = pack_module("wav2lip.checkpoint")
    models = comfy_models(tmp_path, fixture_checkpoint)
    save_released_layout(fixture_state, models / "wav2lip" / "second.pth")
    fake = FakeComfy(models_dir=models).install(monkeypatch, nodes)
    nodes.release_models()
    reads = []
    real_read = checkpoint.read_state_dict
    monkeypatch.setattr(checkpoint, "read_state_dict", lambda p: reads.append(p) or real_read(p))
    node_a, node_b = nodes.HaloLipsy(), nodes.HaloLipsy()
    for _ in range(3):  # two nodes in one graph, different checkpoints, run after run
        node_a.lipsync(frames[:2], speech(0.08), checkpoint="wav2lip_gan.pth", face_mask=face_mask[:2])
        node_b.lipsync(frames[:2], speech(0.08), checkpoint="second.pth", face_mask=face_mask[:2])
    assert len(reads) == 2
    del node_a, node_b  # ComfyUI drops node objects when a workflow without them runs
    gc.collect()
    nodes.HaloLipsy().lipsync(frames[:2], speech(0.08), face_mask=face_mask[:2])
    assert len(reads) == 2  # no reload

    # "Unload models" / "Free model and node cache" / eviction: ComfyUI detaches the patcher
    patcher = fake.loaded[-1][0][0]
    unloaded = weakref.ref(patcher.model)
    patcher.detach()
    assert fake.detached == [patcher]
    del patcher
    fake.loaded.clear()
    fake.detached.clear()
    gc.collect()
    assert unloaded() is None  # nothing of ours holds it: its memory is really returned
    nodes.HaloLipsy().lipsync(frames[:2], speech(0.08), face_mask=face_mask[:2])
    assert len(reads) == 3  # loaded again after ComfyUI let it go
    nodes.release_models()


def folder_paths_under_test(tmp_path):
    """The real folder_paths where COMFYUI_DIR is set, else the stand-in."""
    if os.environ.get("COMFYUI_DIR"):
        return real_folder_paths(tmp_path / "models")
    return contextlib.nullcontext(FakeFolderPaths(tmp_path / "models"))


def test_model_folders_the_comfyui_way(tmp_path, monkeypatch, fixture_checkpoint):
    with folder_paths_under_test(tmp_path) as folder_paths:
        default = tmp_path / "models" / "wav2lip"
        extra = tmp_path / "elsewhere"  # from extra_model_paths.yaml, registered at startup
        (default / "sub").mkdir(parents=True)
        extra.mkdir()
        folder_paths.add_model_folder_path("wav2lip", str(extra))
        (default / "wav2lip.pth").write_bytes(b"another file")  # listed and resolved, never read
        (default / "sub" / "wav2lip_gan.pth").symlink_to(fixture_checkpoint)
        (default / "s3fd-619a316812.pth").write_bytes(b"detector")
        (default / "notes.txt").write_text("not a model")
        (extra / "custom.safetensors").write_bytes(b"x")
        monkeypatch.setattr(nodes, "_folder_paths", lambda: folder_paths)
        monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", tmp_path / "pack" / "checkpoints")

        nodes.register_model_folder()
        folders = folder_paths.get_folder_paths("wav2lip")
        assert folders[0] == str(default)
        assert str(extra) in folders and str(tmp_path / "pack" / "checkpoints") in folders
        choices = nodes.HaloLipsy.INPUT_TYPES()["required"]["checkpoint"][0]
        assert choices == ["auto", "custom.safetensors", "sub/wav2lip_gan.pth", "wav2lip.pth"]
        assert nodes.resolve_checkpoint_path("auto") == default / "sub" / "wav2lip_gan.pth"
        assert nodes.resolve_checkpoint_path("custom.safetensors") == extra / "custom.safetensors"

        # `auto` reruns when the file it resolves to changes
        first = nodes.HaloLipsy.IS_CHANGED(checkpoint="auto", fps=25.0)
        assert first == nodes.HaloLipsy.IS_CHANGED(checkpoint="auto")
        (default / "sub" / "wav2lip_gan.pth").unlink()
        second = nodes.HaloLipsy.IS_CHANGED(checkpoint="auto")
        assert second != first and "wav2lip.pth" in second  # now resolves to another file
        os.utime(default / "wav2lip.pth", ns=(time.time_ns(), time.time_ns() + 10**9))
        assert nodes.HaloLipsy.IS_CHANGED(checkpoint="auto") != second  # same name, rewritten
        assert nodes.HaloLipsy.IS_CHANGED(checkpoint="gone.pth").startswith("unresolved")


def test_force_fp32_and_a_precision_fallback_inside_comfyui(frames, face_mask, fixture_checkpoint,
                                                            monkeypatch, tmp_path, caplog):
    device_mod = pack_module("wav2lip.device")
    models = comfy_models(tmp_path, fixture_checkpoint)
    FakeComfy(models_dir=models, force_fp32=True).install(monkeypatch, nodes)
    monkeypatch.setattr(device_mod, "auto_dtype", lambda device: torch.float16)  # as on a GPU
    def dtype_logged(**settings):  # the node's summary line names the dtype it ran in
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="HaloLipsy"):
            nodes.HaloLipsy().lipsync(frames[:2], speech(0.08), fps=FPS, face_mask=face_mask[:2],
                                      **settings)
        summary = [r.getMessage() for r in caplog.records if "frames lip-synced" in r.getMessage()]
        assert len(summary) == 1
        return summary[0].rsplit("(", 1)[1].rstrip(")")

    assert dtype_logged() == "float32"  # --force-fp32: auto means fp32
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    assert dtype_logged(precision="bf16") == "float32"
    fallbacks = [r for r in caplog.records if "not computed natively" in r.getMessage()]
    assert len(fallbacks) == 1 and "AVX-512 BF16" in fallbacks[0].getMessage()
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)
    assert dtype_logged(precision="bf16") == "bfloat16"
    nodes.release_models()


# ------------------------------------------------------------------ the node's interface


def test_node_interface_is_the_documented_one():
    assert pack.NODE_CLASS_MAPPINGS == {"HaloLipsy": nodes.HaloLipsy, "HaloLipsyVideo": nodes.HaloLipsyVideo}
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == {"HaloLipsy": "Halo-Lipsy", "HaloLipsyVideo": "Halo-Lipsy (Video)"}
    spec = nodes.HaloLipsy.INPUT_TYPES()
    assert list(spec["required"]) == [
        "images", "audio", "checkpoint", "mode", "fps", "face_detect_batch", "inference_batch",
        "force_cpu", "sync_offset", "mel_step_multiplier", "face_padding", "smooth_box_frames",
        "blend_edges", "blend_radius", "precision", "face", "silence", "restore_strength",
        "codeformer_fidelity"]
    assert list(spec["optional"]) == ["face_mask", "face_marker", "face_marker_image", "restore_model",
                                      "restore_model_file"]
    for name, (kind, options) in {**spec["required"], **spec["optional"]}.items():
        assert options.get("tooltip"), name
    defaults = {k: v[1].get("default") for k, v in spec["required"].items()}
    assert defaults["fps"] == 25.0 and defaults["face_detect_batch"] == 4
    assert defaults["inference_batch"] == 64 and defaults["force_cpu"] is False
    assert defaults["sync_offset"] == 0 and defaults["mel_step_multiplier"] == 1.0
    assert defaults["face_padding"] == 10 and defaults["smooth_box_frames"] == 5
    assert defaults["blend_edges"] is True and defaults["blend_radius"] == 5
    assert defaults["precision"] == "auto"
    assert spec["required"]["precision"][0] == ["auto", "fp32", "fp16", "bf16"]
    assert spec["required"]["mode"][0] == ["sequential", "repetitive", "pingpong"]
    assert nodes.HaloLipsy.RETURN_TYPES == ("IMAGE", "AUDIO", "MASK")
    assert len(nodes.HaloLipsy.OUTPUT_TOOLTIPS) == 3
    assert nodes.HaloLipsy.CATEGORY == "Halo-Lipsy"
    assert not hasattr(nodes.HaloLipsy, "__del__")  # models outlive node objects (ComfyUI unloads them)


def test_the_node_method_runs_end_to_end(frames, face_mask, fixture_checkpoint, monkeypatch):
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    out, audio_out, mask = nodes.HaloLipsy().lipsync(frames, speech(0.4), face_mask=face_mask)
    assert out.shape == frames.shape and audio_out["waveform"].shape[-1] == 6400
    assert mask.shape == (10, H, W) and mask.dtype == torch.float32


@pytest.mark.parametrize("blend_edges", [False, True])
def test_the_mask_output_is_the_exact_blend_weight_of_each_pixel(run, frames, face_mask, blend_edges):
    cut = face_mask.clone()
    cut[4] = 0  # a frame without a face: all zero in the mask output
    out, _, mask = run(frames, speech(0.4), face_mask=cut, blend_edges=blend_edges, face_padding=0,
                       smooth_box_frames=0, blend_radius=4)
    assert mask.shape == (10, H, W) and float(mask.min()) >= 0 and float(mask.max()) == 1.0
    assert torch.count_nonzero(mask[4]) == 0 and torch.equal(out[4], frames[4])
    for i in (0, 7):
        changed = (out[i] != frames[i]).any(dim=-1)
        assert not changed[mask[i] == 0].any()  # nothing outside the mask changed
        if not blend_edges:  # rectangular paste: the weight is 1 over exactly the face box
            x1, y1, x2, y2 = mask_box(face_mask[i])
            box = torch.zeros(H, W)
            box[y1:y2, x1:x2] = 1
            assert torch.equal(mask[i], box)
        else:  # out = frame + (generated - frame) * w, so w is recovered where generated != frame
            assert ((mask[i] > 0) & (mask[i] < 1)).any() and (mask[i] == 1).any()
            x1, y1, x2, y2 = mask_box(face_mask[i])
            assert torch.count_nonzero(mask[i, y1:y1 + (y2 - y1) // 2]) == 0  # eyes keep their pixels


def test_an_output_too_large_for_memory_says_how_large(run, frames, face_mask, monkeypatch):
    import psutil
    real_empty = torch.empty

    def never(*shape, **kw):
        if shape and shape[0] == (25, H, W, 3):
            pytest.fail("the output was allocated although it cannot fit")
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", never)
    # Linux overcommit: allocation would succeed and the process be killed later, so the check
    # uses the memory actually available
    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=400 * 2**20))
    with pytest.raises(nodes.HaloLipsyError,
                       match=r"not enough memory for the output \(25 frames of 160x120: 0.0 GB .* 0.4 GB available"):
        run(frames, speech(1.0), face_mask=face_mask)


def test_an_allocation_failure_gets_the_same_message(run, frames, face_mask, monkeypatch):
    real_empty = torch.empty

    def no_room(*shape, **kw):
        if shape and shape[0] == (25, H, W, 3):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", no_room)
    with pytest.raises(nodes.HaloLipsyError, match=r"not enough memory for the output \(25 frames of 160x120"):
        run(frames, speech(1.0), face_mask=face_mask)


def test_uint8_images_are_scaled_to_float(run, frames, face_mask):
    pixels = (frames * 255).round().to(torch.uint8)
    out, _, _ = run(pixels, speech(0.4), face_mask=face_mask, blend_edges=False, face_padding=0,
                    smooth_box_frames=0)
    x1, y1, x2, y2 = mask_box(face_mask[0])
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert out.dtype == torch.float32 and float(out.max()) <= 1.0
    assert torch.allclose(out[0][outside], pixels[0].float()[outside] / 255.0)


def test_an_unsupported_dtype_names_what_works(run, frames, face_mask):
    with pytest.raises(nodes.HaloLipsyError, match=r"dtype torch.int32; expected float pixels in \[0, 1\].*or uint8"):
        run((frames * 255).to(torch.int32), speech(0.4), face_mask=face_mask)


def test_nan_pixels_never_spread_into_finite_ones(run, frames, face_mask, caplog):
    images = frames.clone()
    x1, y1, x2, y2 = mask_box(face_mask[3])
    images[3, y2 - 3, x1 + 4] = float("nan")  # in the mouth area, which is regenerated
    images[3, y2 - 5, x2 - 6, 1] = float("inf")
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        out, _, _ = run(images, speech(0.4), face_mask=face_mask, face_padding=0, smooth_box_frames=0)
    bad_in = ~torch.isfinite(images)
    assert torch.isfinite(out[~bad_in]).all()  # every finite input pixel stays finite
    assert int((~torch.isfinite(out)).sum()) <= int(bad_in.sum())
    assert not torch.equal(out[3, y1 + (y2 - y1) * 3 // 4], images[3, y1 + (y2 - y1) * 3 // 4])  # still synced
    warnings = [r.getMessage() for r in caplog.records if "NaN or infinite" in r.getMessage()]
    assert len(warnings) == 1 and "frames 3" in warnings[0]


def test_a_failing_detector_becomes_a_clear_error(run, frames):
    class Broken:
        batch_size = 4

        def detect(self, images):
            raise RuntimeError("Output size is too small")

    with pytest.raises(nodes.HaloLipsyError, match=r"160x120.*Output size is too small.*face_mask"):
        run(frames, speech(0.4), detector=Broken())


@pytest.mark.parametrize("height, width", [(20, 20), (36, 1080), (2000, 68)])
def test_tiny_and_extreme_frames_run_through_the_real_detector(run, height, width, tmp_path, monkeypatch):
    from face_alignment.detection.sfd.net_s3fd import s3fd as S3FDNet
    torch.manual_seed(0)
    torch.save(S3FDNet().state_dict(), tmp_path / "s3fd.pth")
    detector = pack_module("face_detect.s3fd").S3FDDetector(tmp_path / "s3fd.pth", Settings().face_detect_batch)
    images = torch.rand(2, height, width, 3)
    result = run(images, speech(0.08), detector=detector)
    assert result.report.detection_stats.image_count >= 1  # the network looked at these frames
    # random weights find no face in noise: every frame passes through untouched, none is lost
    assert result.report.faces_found == 0 and torch.equal(result.images, images)
