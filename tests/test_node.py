import logging
import types

import numpy as np
import pytest
import torch

from conftest import load_pack, pack_module
from synthetic_clip import Clip, TruthDetector

pack = load_pack()
nodes = pack_module("nodes")

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
    def go(images, audio, **kw):
        kw.setdefault("search_dirs", [fixture_checkpoint.parent])
        kw.setdefault("fps", FPS)
        return nodes.run_lipsync(images, audio, **kw)
    return go


def mask_box(mask_frame):
    ys, xs = np.nonzero(mask_frame.numpy())
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


# ------------------------------------------------------------------ lengths and modes


def test_frame_schedule_for_each_mode():
    assert nodes.frame_schedule("sequential", 4, 7).tolist() == [0, 1, 2, 3, 3, 3, 3]
    assert nodes.frame_schedule("sequential", 6, 3).tolist() == [0, 1, 2, 3, 4, 5]
    assert nodes.frame_schedule("repetitive", 3, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert nodes.frame_schedule("pingpong", 4, 10).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    for mode in nodes.MODES:
        assert nodes.frame_schedule(mode, 1, 5).tolist() == [0] * 5


@pytest.mark.parametrize("mode, seconds, expected", [
    ("sequential", 0.6, 15), ("sequential", 0.2, 10), ("repetitive", 0.6, 15),
    ("repetitive", 0.2, 5), ("pingpong", 0.6, 15), ("pingpong", 0.2, 5),
])
def test_output_length_by_mode(run, frames, face_mask, mode, seconds, expected):
    out, audio_out = run(frames, speech(seconds, 44100, 2), mode=mode, face_mask=face_mask,
                         blend_edges=False, face_padding=0, smooth_box_frames=0)
    assert out.shape == (expected, H, W, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert audio_out["sample_rate"] == 44100
    assert audio_out["waveform"].shape == (1, 2, round(expected / FPS * 44100))
    schedule = nodes.frame_schedule(mode, len(frames), round(seconds * FPS))
    for i, src in enumerate(schedule):  # outside the face box each frame is its scheduled input
        x1, y1, x2, y2 = mask_box(face_mask[src])
        keep = torch.ones(H, W, dtype=torch.bool)
        keep[y1:y2, x1:x2] = False
        assert torch.equal(out[i][keep], frames[src][keep]), i
        assert not torch.equal(out[i][~keep], frames[src][~keep]), i  # every frame lip-synced


def test_a_single_image_becomes_a_talking_still(run, frames, face_mask):
    for mode in nodes.MODES:
        out, _ = run(frames[:1], speech(0.5), mode=mode, face_mask=face_mask[:1])
        assert out.shape[0] == 13


def test_audio_longer_than_the_video_holds_the_last_frame_and_keeps_syncing(run, frames, face_mask):
    out, audio_out = run(frames, speech(1.0), face_mask=face_mask, blend_edges=False,
                         face_padding=0, smooth_box_frames=0)
    assert out.shape[0] == 25 and audio_out["waveform"].shape[-1] == 16000
    x1, y1, x2, y2 = mask_box(face_mask[-1])
    tail = out[10:, y1:y2, x1:x2]
    assert not torch.equal(tail[0], tail[-1])  # the held frame's mouth still moves


def test_audio_shorter_than_the_video_keeps_every_frame_in_sequential(run, frames, face_mask):
    out, audio_out = run(frames, speech(0.1), face_mask=face_mask)
    assert out.shape[0] == 10
    assert audio_out["waveform"].shape[-1] == 6400  # padded with silence to 0.4 s
    assert torch.all(audio_out["waveform"][..., 1600:] == 0)


# ------------------------------------------------------------------ pixels and inputs


def test_pixels_outside_the_face_box_are_the_input_bit_for_bit(run, frames, face_mask):
    out, _ = run(frames, speech(0.4), face_mask=face_mask, blend_edges=False, face_padding=0,
                 smooth_box_frames=0)
    for i in range(len(frames)):
        x1, y1, x2, y2 = mask_box(face_mask[i])
        outside = torch.ones(H, W, dtype=torch.bool)
        outside[y1:y2, x1:x2] = False
        assert torch.equal(out[i][outside], frames[i][outside])


def test_blending_keeps_the_upper_face(run, frames, face_mask):
    out, _ = run(frames, speech(0.4), face_mask=face_mask, face_padding=0, smooth_box_frames=0)
    x1, y1, x2, y2 = mask_box(face_mask[0])
    upper = slice(y1, y1 + (y2 - y1) // 2)
    assert torch.equal(out[0, upper], frames[0, upper])
    assert not torch.equal(out[0, y2 - (y2 - y1) // 4], frames[0, y2 - (y2 - y1) // 4])


def test_inputs_are_not_modified(run, frames, face_mask):
    images, audio_in, mask = frames.clone(), speech(0.4, 22050, 2), face_mask.clone()
    wave = audio_in["waveform"].clone()
    out, audio_out = run(images, audio_in, face_mask=mask)
    assert torch.equal(images, frames) and torch.equal(mask, face_mask)
    assert torch.equal(audio_in["waveform"], wave)
    assert out.data_ptr() != images.data_ptr()
    assert audio_out["waveform"].data_ptr() != audio_in["waveform"].data_ptr()


def test_rgba_keeps_its_alpha(run, frames, face_mask):
    alpha = torch.linspace(0, 1, W).expand(len(frames), H, W)[..., None]
    rgba = torch.cat([frames, alpha], dim=-1)
    out, _ = run(rgba, speech(0.4), face_mask=face_mask)
    assert out.shape == (10, H, W, 4)
    assert torch.equal(out[..., 3], rgba[..., 3])
    assert not torch.equal(out[..., :3], frames)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_works(run, frames, face_mask, dtype):
    out, _ = run(frames.to(dtype), speech(0.4), face_mask=face_mask.to(dtype), blend_edges=False,
                 face_padding=0, smooth_box_frames=0)
    assert out.dtype == torch.float32
    x1, y1, x2, y2 = mask_box(face_mask[0])
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert torch.equal(out[0][outside], frames[0].to(dtype).float()[outside])


def test_detection_path_with_known_boxes(run, clip, frames):
    detector = TruthDetector(clip)
    out, _ = run(frames, speech(0.4), detector=detector, face_padding=0, smooth_box_frames=0,
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
    out, _ = run(frames, speech(0.4), face_mask=mask)
    assert torch.equal(out[3:6], frames[3:6])
    assert not torch.equal(out[2], frames[2])
    with caplog.at_level(logging.WARNING, logger="HaloLipsy"):
        out, _ = run(frames, speech(0.4), face_mask=torch.zeros(1, H, W))
    assert torch.equal(out, frames) and "no face found" in caplog.text


def test_ten_thousand_frames_stream_through(run):
    images = torch.rand(10000, 16, 16, 3)
    out, audio_out = run(images, speech(400.0, 8000), face_mask=torch.zeros(1, 16, 16),
                         inference_batch=512)
    assert out.shape == (10000, 16, 16, 3) and torch.equal(out, images)
    assert audio_out["waveform"].shape[-1] == 400 * 8000


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


def test_the_mask_path_builds_no_detector(run, frames, face_mask, monkeypatch):
    monkeypatch.setattr(nodes, "_s3fd_detector", lambda *a: pytest.fail("a detector was built"))
    out, _ = run(frames, speech(0.4), face_mask=face_mask)
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


class FakeComfy:
    def __init__(self, interrupt_after=None, models_dir=None):
        self.progress, self.loaded, self.checks = [], [], 0
        self.interrupt_after = interrupt_after
        fake = self

        class ProgressBar:
            def __init__(self, total):
                self.total = total

            def update_absolute(self, value, total=None, preview=None):
                fake.progress.append(value / self.total)

        class ModelPatcher:
            def __init__(self, model, load_device, offload_device):
                self.model, self.load_device = model, load_device

        def load_models_gpu(patchers, force_full_load=False):
            fake.loaded.append((patchers, force_full_load))

        def interrupted():
            fake.checks += 1
            if fake.interrupt_after is not None and fake.checks > fake.interrupt_after:
                raise KeyboardInterrupt("interrupted")

        self.modules = (
            types.SimpleNamespace(models_dir=str(models_dir), folder_names_and_paths={},
                                  get_folder_paths=lambda name: [str(models_dir / "wav2lip")]),
            types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu"),
                                  unet_offload_device=lambda: torch.device("cpu"),
                                  load_models_gpu=load_models_gpu,
                                  throw_exception_if_processing_interrupted=interrupted),
            types.SimpleNamespace(ModelPatcher=ModelPatcher),
            types.SimpleNamespace(ProgressBar=ProgressBar),
        )


def test_comfyui_glue_progress_model_management_and_interrupt(frames, face_mask, fixture_checkpoint,
                                                             monkeypatch, tmp_path, clip):
    models = tmp_path / "models"
    (models / "wav2lip").mkdir(parents=True)
    (models / "wav2lip" / fixture_checkpoint.name).symlink_to(fixture_checkpoint)
    fake = FakeComfy(models_dir=models)
    monkeypatch.setattr(nodes, "_comfy", lambda: fake.modules)
    assert "wav2lip_gan.pth" in nodes.HaloLipsy.INPUT_TYPES()["required"]["checkpoint"][0]
    detector = TruthDetector(clip)
    out, _ = nodes.run_lipsync(frames, speech(0.8), fps=FPS, inference_batch=4, detector=detector)
    assert out.shape[0] == 20
    assert fake.loaded and fake.loaded[0][1] is True  # loaded through model management, fully
    assert fake.progress == sorted(fake.progress) and fake.progress[-1] == 1.0
    assert any(0 < p <= 0.3 for p in fake.progress)  # moves during detection too
    assert fake.checks >= 5  # an interrupt check every batch
    assert models / "wav2lip" in [nodes.Path(p) for p in fake.modules[0].folder_names_and_paths["wav2lip"][0]]

    fake.interrupt_after, fake.checks = fake.checks // 2, 0
    with pytest.raises(KeyboardInterrupt):
        nodes.run_lipsync(frames, speech(0.8), fps=FPS, inference_batch=4, face_mask=face_mask)
    fake.interrupt_after = None
    again, _ = nodes.run_lipsync(frames, speech(0.8), fps=FPS, inference_batch=4, face_mask=face_mask)
    assert again.shape[0] == 20  # the next run works normally


# ------------------------------------------------------------------ the node's interface


def test_node_interface_is_the_documented_one():
    assert pack.NODE_CLASS_MAPPINGS == {"HaloLipsy": nodes.HaloLipsy}
    assert pack.NODE_DISPLAY_NAME_MAPPINGS == {"HaloLipsy": "Halo-Lipsy"}
    spec = nodes.HaloLipsy.INPUT_TYPES()
    assert list(spec["required"]) == [
        "images", "audio", "checkpoint", "mode", "fps", "face_detect_batch", "inference_batch",
        "force_cpu", "sync_offset", "mel_step_multiplier", "face_padding", "smooth_box_frames",
        "blend_edges", "blend_radius"]
    assert list(spec["optional"]) == ["face_mask"]
    for name, (kind, options) in {**spec["required"], **spec["optional"]}.items():
        assert options.get("tooltip"), name
    defaults = {k: v[1].get("default") for k, v in spec["required"].items()}
    assert defaults["fps"] == 25.0 and defaults["face_detect_batch"] == 4
    assert defaults["inference_batch"] == 64 and defaults["force_cpu"] is False
    assert defaults["sync_offset"] == 0 and defaults["mel_step_multiplier"] == 1.0
    assert defaults["face_padding"] == 10 and defaults["smooth_box_frames"] == 5
    assert defaults["blend_edges"] is True and defaults["blend_radius"] == 5
    assert spec["required"]["mode"][0] == ["sequential", "repetitive", "pingpong"]
    assert nodes.HaloLipsy.RETURN_TYPES == ("IMAGE", "AUDIO")
    assert nodes.HaloLipsy.CATEGORY == "Halo-Lipsy"


def test_the_node_method_runs_end_to_end(frames, face_mask, fixture_checkpoint, monkeypatch):
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    out, audio_out = nodes.HaloLipsy().lipsync(frames, speech(0.4), face_mask=face_mask)
    assert out.shape == frames.shape and audio_out["waveform"].shape[-1] == 6400


def test_dropping_the_node_releases_the_cached_models(frames, face_mask, fixture_checkpoint, monkeypatch):
    import gc
    checkpoint = pack_module("wav2lip.checkpoint")
    monkeypatch.setattr(nodes, "PACK_CHECKPOINTS", fixture_checkpoint.parent)
    node = nodes.HaloLipsy()
    node.lipsync(frames[:2], speech(0.08), face_mask=face_mask[:2])
    assert checkpoint.cached_generator_count() == 1
    del node  # what ComfyUI does with node instances when asked to free memory
    gc.collect()
    assert checkpoint.cached_generator_count() == 0


def test_an_output_too_large_for_memory_says_how_large(run, frames, face_mask, monkeypatch):
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
    out, _ = run(pixels, speech(0.4), face_mask=face_mask, blend_edges=False, face_padding=0,
                 smooth_box_frames=0)
    x1, y1, x2, y2 = mask_box(face_mask[0])
    outside = torch.ones(H, W, dtype=torch.bool)
    outside[y1:y2, x1:x2] = False
    assert out.dtype == torch.float32 and float(out.max()) <= 1.0
    assert torch.allclose(out[0][outside], pixels[0].float()[outside] / 255.0)
