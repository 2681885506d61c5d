import gc
import os
import time
import weakref

import numpy as np
import pytest
import torch

from conftest import pack_module
from fixture_weights import save_released_layout

w2l = pack_module("wav2lip")
BATCH = pack_module("settings").Settings().inference_batch  # the setting's default
checkpoint = pack_module("wav2lip.checkpoint")
device_mod = pack_module("wav2lip.device")
cpu_mod = pack_module("common.cpu")


@pytest.fixture(scope="module")
def model_io(fixtures_dir):
    return (np.load(fixtures_dir / "model_in_mels.npy"), np.load(fixtures_dir / "model_in_faces.npy"),
            np.load(fixtures_dir / "model_out.npy"))


def run_model(model, mels, faces):
    with torch.inference_mode():
        return model(torch.from_numpy(mels), torch.from_numpy(faces)).numpy()


# ------------------------------------------------------------------ network

# The fixture's outputs were computed on another CPU: oneDNN sums in another order on each kind
# (and for each batch size): up to 1.2e-4 apart on an AVX2-only EPYC, on outputs in [0, 1].
MODEL_ATOL = 5e-4


def test_state_dict_keys_and_shapes_are_the_released_ones(fixtures_dir):
    rows = [line.split("\t") for line in (fixtures_dir / "wav2lip_state_dict.tsv").read_text().splitlines()[1:]]
    state = w2l.Wav2Lip().state_dict()
    assert len(rows) == 352
    assert list(state) == [key for key, _, _ in rows]
    for key, shape, dtype in rows:
        want = () if shape == "scalar" else tuple(int(v) for v in shape.split("x"))
        assert tuple(state[key].shape) == want, key
        assert str(state[key].dtype) == "torch." + dtype, key


def test_architecture_fixture_output_is_reproduced(fixture_state, model_io):
    mels, faces, expected = model_io
    model = checkpoint.build_generator(fixture_state)
    np.testing.assert_allclose(run_model(model, mels, faces), expected, atol=MODEL_ATOL, rtol=0)


# ------------------------------------------------------------------ formats


def test_every_accepted_format_loads_the_same_weights(tmp_path, fixture_state, model_io):
    from safetensors.torch import save_file
    mels, faces, expected = model_io
    files = [
        save_released_layout(fixture_state, tmp_path / "released.pth"),
        tmp_path / "bare.pth",
        tmp_path / "prefixed_bare.pt",
        tmp_path / "wrapped.pth",
        tmp_path / "weights.safetensors",
    ]
    torch.save(fixture_state, files[1])
    torch.save({"module." + k: v for k, v in fixture_state.items()}, files[2])
    torch.save({"state_dict": fixture_state}, files[3])
    save_file({k: v.contiguous() for k, v in fixture_state.items()}, str(files[4]))
    for path in files:
        model = checkpoint.build_generator(checkpoint.read_state_dict(path), path.name)
        np.testing.assert_allclose(run_model(model, mels[:1], faces[:1]), expected[:1], atol=MODEL_ATOL,
                                   err_msg=path.name)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_whose_unpickling_runs_code_is_refused(tmp_path, fixture_state):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": fixture_state, "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(checkpoint.CheckpointError, match="Refused to load evil.pth"):
        checkpoint.read_state_dict(path)
    assert not marker.exists()


def test_the_s3fd_detector_picked_by_mistake_is_named(tmp_path):
    from face_alignment.detection.sfd.net_s3fd import s3fd
    path = tmp_path / "s3fd_by_mistake.pth"
    torch.save(s3fd().state_dict(), path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.build_generator(checkpoint.read_state_dict(path), path.name)
    text = str(err.value)
    assert "not a Wav2Lip generator" in text and "S3FD" in text
    assert "missing keys, first: face_encoder_blocks.0.0.conv_block.0.weight" in text


def test_the_syncnet_expert_is_named(tmp_path):
    state = {"face_encoder.0.conv_block.0.weight": torch.zeros(32, 15, 7, 7),
             "audio_encoder.0.conv_block.0.weight": torch.zeros(32, 1, 3, 3)}
    path = tmp_path / "lipsync_expert.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(checkpoint.CheckpointError, match="SyncNet"):
        checkpoint.build_generator(checkpoint.read_state_dict(path), path.name)


def test_wrong_shapes_are_listed(fixture_state):
    state = dict(fixture_state)
    state["output_block.1.weight"] = torch.zeros(4, 32, 1, 1)
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"wrong shapes: output_block.1.weight \(4, 32, 1, 1\) \(expected \(3, 32, 1, 1\)\)"):
        checkpoint.build_generator(state)


def test_a_truncated_file_says_so_and_gives_the_expected_size(tmp_path, fixture_checkpoint):
    data = fixture_checkpoint.read_bytes()
    path = tmp_path / "wav2lip_gan.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read_state_dict(path)
    text = str(err.value)
    assert "truncated or corrupt" in text and f"{len(data) // 2:,} bytes" in text and "416 MB" in text


def test_a_truncated_safetensors_file_says_so(tmp_path, fixture_state):
    from safetensors.torch import save_file
    path = tmp_path / "wav2lip.safetensors"
    save_file({k: v.contiguous() for k, v in fixture_state.items()}, str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(checkpoint.CheckpointError, match="wav2lip.safetensors is truncated or corrupt"):
        checkpoint.read_state_dict(path)


def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        checkpoint.read_state_dict(path)


def test_a_long_loader_error_is_never_cut_mid_sentence(tmp_path, monkeypatch):
    path = tmp_path / "wav2lip.pth"
    path.write_bytes(b"PK" + b"\x00" * 100)
    long_text = ("PytorchStreamReader failed reading zip archive: failed finding central directory. "
                 "This usually means the file was not fully written, which happens when a download "
                 "stops early or the disk fills up, and depends on how large your checkpoint file "
                 "is. More text follows here.")

    def fail(*args, **kwargs):
        raise RuntimeError(long_text)

    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read_state_dict(path)
    text = str(err.value)
    assert "truncated or corrupt" in text and "Download it again." in text
    assert text.endswith(" ...)") and "your checkpoint file is. Download" not in text
    assert text.index("Download it again.") < text.index("PytorchStreamReader")


class _CallsGetcwd:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_plain_pickle_with_code_is_refused_as_such(tmp_path, protocol):
    import pickle
    path = tmp_path / "wav2lip.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": 1}, "x": _CallsGetcwd()}, f, protocol=protocol)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.read_state_dict(path)
    text = str(err.value)
    assert "Refused to load wav2lip.pth" in text and "getcwd" in text
    assert "truncated" not in text


def test_a_plain_pickle_without_code_is_called_a_pickle(tmp_path):
    import pickle
    path = tmp_path / "wav2lip.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": [1.0, 2.0]}}, f, protocol=4)
    with pytest.raises(checkpoint.CheckpointError, match="plain Python pickle, not a PyTorch checkpoint"):
        checkpoint.read_state_dict(path)


# ------------------------------------------------------------------ discovery and cache


def test_discovery_order_and_auto_choice(tmp_path):
    pack_dir, comfy_dir = tmp_path / "pack", tmp_path / "comfy"
    pack_dir.mkdir(), comfy_dir.mkdir()
    for name in ("custom.pth", "s3fd-619a316812.pth", "readme.txt"):
        (pack_dir / name).write_bytes(b"x")
    (comfy_dir / "wav2lip.pth").write_bytes(b"x")
    (comfy_dir / "custom.pth").write_bytes(b"y")
    dirs = [pack_dir, comfy_dir, tmp_path / "missing"]
    found = checkpoint.find_checkpoints(dirs)
    assert list(found) == ["custom.pth", "wav2lip.pth"]
    assert found["custom.pth"] == pack_dir / "custom.pth"  # the pack folder comes first
    assert checkpoint.resolve_checkpoint("auto", dirs) == comfy_dir / "wav2lip.pth"
    (comfy_dir / "wav2lip_gan.pth").write_bytes(b"x")
    assert checkpoint.resolve_checkpoint("auto", dirs) == comfy_dir / "wav2lip_gan.pth"
    assert checkpoint.resolve_checkpoint("custom.pth", dirs) == pack_dir / "custom.pth"
    (comfy_dir / "wav2lip_gan.pth").unlink(), (comfy_dir / "wav2lip.pth").unlink()
    assert checkpoint.resolve_checkpoint("auto", dirs) == pack_dir / "custom.pth"


def test_nothing_found_lists_the_folders_and_where_to_get_weights(tmp_path):
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.resolve_checkpoint("auto", [tmp_path / "a", tmp_path / "b"])
    text = str(err.value)
    assert str(tmp_path / "a") in text and str(tmp_path / "b") in text
    assert "wav2lip_gan.pth" in text and "Rudrabha/Wav2Lip" in text
    with pytest.raises(checkpoint.CheckpointError, match="'gone.pth' was not found"):
        checkpoint.resolve_checkpoint("gone.pth", [tmp_path])


def test_a_second_load_is_a_cache_hit_until_the_file_changes(tmp_path, fixture_state, monkeypatch):
    path = save_released_layout(fixture_state, tmp_path / "wav2lip.pth")
    checkpoint.release_generators()
    reads = []
    real_read = checkpoint.read_state_dict
    monkeypatch.setattr(checkpoint, "read_state_dict", lambda p: reads.append(p) or real_read(p))
    first = checkpoint.load_generator(path)
    assert checkpoint.load_generator(path) is first and len(reads) == 1
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    stale = weakref.ref(first)
    second = weakref.ref(checkpoint.load_generator(path))
    assert second() is not first and len(reads) == 2
    del first
    gc.collect()
    assert stale() is None  # the stale weights of the old file went: their memory is free
    checkpoint.release_generators()
    gc.collect()
    assert second() is None


def test_a_few_generators_stay_cached_side_by_side(tmp_path, fixture_state, monkeypatch):
    paths = [save_released_layout(fixture_state, tmp_path / f"w{k}.pth") for k in range(4)]
    checkpoint.release_generators()
    reads = []
    real_read = checkpoint.read_state_dict
    monkeypatch.setattr(checkpoint, "read_state_dict", lambda p: reads.append(p) or real_read(p))
    for _ in range(3):  # two nodes in one graph, run after run: no reload
        a = checkpoint.load_generator(paths[0])
        b = checkpoint.load_generator(paths[1])
        c = checkpoint.load_generator(paths[1], dtype=torch.bfloat16)
    assert len(reads) == 3  # three side by side: none read twice
    checkpoint.load_generator(paths[2])  # a fourth: the least recently used (paths[0]) goes
    assert checkpoint.load_generator(paths[1]) is b and len(reads) == 4
    assert checkpoint.load_generator(paths[0]) is not a and len(reads) == 5
    assert checkpoint.release_generator(b) and not checkpoint.release_generator(b)
    assert not checkpoint.release_generator(c)  # evicted by the reload of paths[0]
    checkpoint.release_generators()


# ------------------------------------------------------------------ devices and batching


def test_device_choice_never_assumes_nvidia(monkeypatch):
    """Each backend torch may see is found by its own query: ROCm through torch.cuda (its device
    type is "cuda"), Apple MPS, Intel XPU; no GPU at all is the CPU, and force_cpu always is."""
    import types
    found = {"cuda": False, "mps": False, "xpu": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: found["cuda"])
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: found["mps"])
    monkeypatch.setattr(torch, "xpu", types.SimpleNamespace(is_available=lambda: found["xpu"]),
                        raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda d=None: pytest.fail("device choice asked for an NVIDIA capability"))
    assert device_mod.pick_device().type == "cpu"  # no GPU: the CPU, in fp32
    assert device_mod.pick_dtype(torch.device("cpu"), "auto") == (torch.float32, None)
    found["xpu"] = True
    assert device_mod.pick_device().type == "xpu"  # Intel Arc
    found["mps"] = True
    assert device_mod.pick_device().type == "mps"  # Apple, before XPU
    found["cuda"] = True
    monkeypatch.setattr(torch.version, "hip", "6.2", raising=False)
    assert device_mod.pick_device().type == "cuda"  # ROCm: torch.cuda, no NVIDIA query
    assert device_mod.pick_dtype(torch.device("cuda"), "auto")[0] == torch.float16  # ROCm: fp16
    for name in found:
        assert device_mod.pick_device(force_cpu=True).type == "cpu"
        found[name] = False
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (6, 1))
    assert device_mod.pick_dtype(torch.device("cuda"), "auto")[0] == torch.float32  # Pascal: fp32
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 9))
    assert device_mod.pick_dtype(torch.device("cuda"), "auto")[0] == torch.float16


@pytest.mark.parametrize("device, capability, hip, bf16_cpu, precision, expected, falls_back", [
    ("cpu", None, None, True, "bf16", torch.bfloat16, False),  # AVX-512 BF16 / AMX
    ("cpu", None, None, False, "bf16", torch.float32, True),  # emulated: slower than fp32
    ("cpu", None, None, True, "fp16", torch.float32, True),  # CPUs emulate fp16 (~9x slower here)
    ("cpu", None, None, False, "fp32", torch.float32, False),
    ("cpu", None, None, True, "auto", torch.float32, False),  # auto never picks bf16 by itself
    ("cuda", (6, 1), None, False, "fp16", torch.float32, True),  # Pascal
    ("cuda", (7, 5), None, False, "fp16", torch.float16, False),  # Turing
    ("cuda", (7, 5), None, False, "bf16", torch.float32, True),
    ("cuda", (8, 6), None, False, "bf16", torch.bfloat16, False),  # Ampere
    ("cuda", (8, 6), None, False, "auto", torch.float16, False),
    ("cuda", None, "6.2", False, "bf16", torch.bfloat16, False),  # ROCm
    ("cuda", None, "6.2", False, "auto", torch.float16, False),
    ("mps", None, None, False, "fp16", torch.float16, False),
    ("mps", None, None, False, "bf16", torch.float32, True),
    ("mps", None, None, False, "auto", torch.float32, False),
    ("xpu", None, None, False, "bf16", torch.bfloat16, False),
])
def test_precision_choice_and_fallback(monkeypatch, device, capability, hip, bf16_cpu, precision,
                                       expected, falls_back):
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: bf16_cpu)
    monkeypatch.setattr(torch.version, "hip", hip, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    dtype, note = device_mod.pick_dtype(torch.device(device), precision)
    assert dtype == expected
    assert (note is not None) == falls_back
    if falls_back:
        assert precision in note and "fp32" in note


def test_force_fp32_makes_auto_fp32_but_leaves_explicit_choices(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (8, 9))
    assert device_mod.pick_dtype(torch.device("cuda"), "auto", force_fp32=True) == (torch.float32, None)
    assert device_mod.pick_dtype(torch.device("cuda"), "fp16", force_fp32=True)[0] == torch.float16
    with pytest.raises(ValueError, match="precision 'int8' is unknown"):
        device_mod.pick_dtype(torch.device("cpu"), "int8")


def test_the_cpu_bf16_query_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx512_bf16": False, "amx_bf16": True})
    assert cpu_mod.cpu_has_native_bf16() is True
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: {"avx512_bf16": False, "avx2": True})
    assert cpu_mod.cpu_has_native_bf16() is False


# Differences from fp32 on the fixture's inputs, in grey levels (0-255), measured with torch 2.13
# on the CPU (BatchNorm folded, channels_last), and the bounds the tests allow:
#   fp16: mean 0.11, p99 3.2  -> bound mean 0.25, p99 6.5 (fp16 keeps 11 bits of mantissa)
#   bf16: mean 0.75, p99 23   -> bound mean 1.5, p99 45 (bf16 keeps 8: ~8x fp16's step, through
#         ~60 layers with the fixture's random weights; a trained net is better conditioned)
# About twice the measured value: room for other kernels and CPUs, while a wrong cast (inputs not
# converted, a layer left in another dtype, BGR flipped) moves the mean by tens of levels.
PRECISION_BOUNDS = {torch.float16: (0.25, 6.5), torch.bfloat16: (1.5, 45.0)}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_with_channels_last_stays_near_fp32(fixture_state, model_io, dtype):
    # the GPU configuration (fp16 + channels_last) and the bf16 CPU one, through the same
    # BatchedGenerator the node uses; it runs on the CPU (slowly for fp16) to check the numbers
    mels, faces, expected = model_io
    fp32 = w2l.BatchedGenerator(checkpoint.build_generator(fixture_state).fuse_for_inference(), "cpu",
                                torch.float32, BATCH)
    reference = fp32(mels[:, 0], faces)
    np.testing.assert_allclose(reference, expected, atol=1e-3)
    model = checkpoint.build_generator(fixture_state).fuse_for_inference()
    model = model.to(dtype=dtype, memory_format=torch.channels_last)
    gen = w2l.BatchedGenerator(model, "cpu", dtype, 4, torch.channels_last)
    out = gen(mels[:, 0], faces)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    diff = np.abs(out - reference) * 255
    mean_bound, p99_bound = PRECISION_BOUNDS[dtype]
    assert diff.mean() <= mean_bound and np.percentile(diff, 99) <= p99_bound, (diff.mean(), np.percentile(diff, 99))
    assert diff.mean() > 0  # it really ran in the reduced precision


class _FlakyModel(torch.nn.Module):
    """Runs out of memory above `limit` frames; otherwise returns a value derived from the input."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.sizes = []

    def forward(self, mels, faces):
        self.sizes.append(len(faces))
        if len(faces) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return faces[:, 3:] * 0.5 + mels.mean(dim=(1, 2, 3))[:, None, None, None]


def test_out_of_memory_halves_the_batch_and_keeps_every_frame():
    rng = np.random.default_rng(0)
    mels = rng.standard_normal((37, 80, 16)).astype(np.float32)
    faces = rng.random((37, 6, 96, 96)).astype(np.float32)
    model = _FlakyModel(limit=5)
    gen = w2l.BatchedGenerator(model, "cpu", torch.float32, 64)
    gen.batch_size = 32  # as on a GPU, where the CPU slice cap does not apply
    out = gen(mels, faces)
    expected = faces[:, 3:] * 0.5 + mels.mean(axis=(1, 2))[:, None, None, None]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert model.sizes[:3] == [32, 16, 8] and gen.batch_size == 4
    assert max(s for s in model.sizes[3:]) <= 4


def test_out_of_memory_at_batch_one_is_a_clear_error():
    gen = w2l.BatchedGenerator(_FlakyModel(limit=0), "cpu", torch.float32, 4)
    with pytest.raises(w2l.GeneratorOutOfMemory, match="even for one frame.*force_cpu"):
        gen(np.zeros((3, 80, 16), np.float32), np.zeros((3, 6, 96, 96), np.float32))


def test_other_errors_are_not_swallowed():
    class Broken(torch.nn.Module):
        def forward(self, mels, faces):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        w2l.BatchedGenerator(Broken(), "cpu", torch.float32, BATCH)(np.zeros((2, 80, 16), np.float32),
                                              np.zeros((2, 6, 96, 96), np.float32))


def test_batched_generator_matches_the_plain_model(fixture_state, model_io):
    mels, faces, expected = model_io
    model = checkpoint.build_generator(fixture_state)
    gen = w2l.BatchedGenerator(model, "cpu", torch.float32, 3)
    np.testing.assert_allclose(gen(mels[:, 0], faces), expected, atol=MODEL_ATOL)
    # channels_last (the faster CPU layout) takes other kernels: same result within rounding
    model = checkpoint.build_generator(fixture_state).to(memory_format=torch.channels_last)
    gen = w2l.BatchedGenerator(model, "cpu", torch.float32, 3, memory_format=torch.channels_last)
    np.testing.assert_allclose(gen(mels[:, 0], faces), expected, atol=1e-3)


# ------------------------------------------------------------------ compositing


def test_a_pure_red_rgb_crop_reaches_the_model_as_bgr():
    frame = np.zeros((120, 160, 3), np.float32)
    frame[..., 0] = 1.0  # red in RGB
    face = w2l.face_input(frame, (20, 10, 140, 110))
    assert face.shape == (6, 96, 96)
    np.testing.assert_array_equal(face[5], 1.0)  # unmasked crop: B, G, R -> R last
    np.testing.assert_array_equal(face[3:5], 0.0)
    np.testing.assert_array_equal(face[2, :48], 1.0)  # masked crop: upper half kept
    np.testing.assert_array_equal(face[:3, 48:], 0.0)  # lower half zeroed


def test_a_generated_bgr_face_is_pasted_as_rgb():
    frame = np.zeros((100, 100, 3), np.float32)
    blue_bgr = np.zeros((3, 96, 96), np.float32)
    blue_bgr[0] = 1.0
    w2l.paste(frame, (10, 10, 90, 90), blue_bgr, blend_edges=False, blend_radius=5)
    np.testing.assert_array_equal(frame[10:90, 10:90, 2], 1.0)
    np.testing.assert_array_equal(frame[10:90, 10:90, :2], 0.0)


@pytest.mark.parametrize("box", [(30, 20, 131, 117), (0, 0, 57, 43), (101, 77, 160, 120)])
def test_rectangular_paste_leaves_everything_outside_the_box_bit_for_bit(box):
    rng = np.random.default_rng(1)
    frame = rng.random((120, 160, 4)).astype(np.float32)
    before = frame.copy()
    w2l.paste(frame, box, rng.random((3, 96, 96)).astype(np.float32), blend_edges=False,
              blend_radius=5)
    x1, y1, x2, y2 = box
    inside = np.zeros(frame.shape[:2], bool)
    inside[y1:y2, x1:x2] = True
    np.testing.assert_array_equal(frame[~inside], before[~inside])
    np.testing.assert_array_equal(frame[..., 3], before[..., 3])  # alpha untouched
    assert not np.array_equal(frame[inside][:, :3], before[inside][:, :3])


@pytest.mark.parametrize("radius", [0, 5, 12])
def test_blended_paste_keeps_the_upper_face_and_outside_the_mask(radius):
    rng = np.random.default_rng(2)
    frame = rng.random((200, 200, 3)).astype(np.float32)
    before = frame.copy()
    box = (50, 40, 151, 161)  # odd sizes: 101 x 121
    generated = rng.random((3, 96, 96)).astype(np.float32)
    w2l.paste(frame, box, generated, blend_edges=True, blend_radius=radius)
    x1, y1, x2, y2 = box
    mask = pack_module("wav2lip.composite").lower_face_mask(y2 - y1, x2 - x1, radius)[..., 0]
    full = np.zeros(frame.shape[:2], np.float32)
    full[y1:y2, x1:x2] = mask
    np.testing.assert_array_equal(frame[full == 0], before[full == 0])
    assert (mask[: (y2 - y1) // 2] == 0).all()  # eyes and brows keep the frame's own pixels
    assert (mask[(y2 - y1) * 3 // 4, (x2 - x1) // 2] == 1.0)  # the mouth is replaced
    assert not np.array_equal(frame[full == 1], before[full == 1])
    if radius:
        assert ((mask > 0) & (mask < 1)).any()  # feathered


@pytest.mark.parametrize("blend_edges, strength", [(True, 1.0), (True, 0.6), (False, 1.0), (False, 0.6)])
def test_a_uint8_frame_is_read_and_pasted_as_the_same_frame_in_floats_then_rounded(blend_edges, strength):
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (150, 170, 3), dtype=np.uint8)
    scaled = frame.astype(np.float32) * np.float32(1 / 255)  # how the pack reads uint8 as [0, 1]
    box = (21, 14, 140, 131)  # odd sizes: 119 x 117
    generated = rng.random((3, 96, 96)).astype(np.float32)
    np.testing.assert_array_equal(w2l.face_input(frame, box), w2l.face_input(scaled, box))
    before = frame.copy()
    w2l.paste(scaled, box, generated, blend_edges, 5, strength=strength)
    w2l.paste(frame, box, generated, blend_edges, 5, strength=strength)
    expected = np.floor(np.clip(scaled.astype(np.float64) * 255 + 0.5, 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(frame, expected)
    changed = frame != before
    assert changed.any()
    x1, y1, x2, y2 = box
    outside = np.ones(frame.shape, bool)
    outside[y1 + (y2 - y1) // 2 if blend_edges else y1:y2, x1:x2] = False
    assert not changed[outside].any()  # the upper face too, when blending


def test_boxes_at_the_edge_are_clipped_and_tiny_ones_rejected():
    assert w2l.clip_box((-10, -5, 50, 60), 100, 100) == (0, 0, 50, 60)
    assert w2l.clip_box((80, 90, 130, 140), 100, 100) == (80, 90, 100, 100)
    assert w2l.clip_box((10, 10, 17, 40), 100, 100) is None
    assert w2l.clip_box((95, 10, 130, 40), 100, 100) is None
    frame = np.random.default_rng(3).random((100, 100, 3)).astype(np.float32)
    face = w2l.face_input(frame, w2l.clip_box((80, 90, 130, 140), 100, 100))
    assert face.shape == (6, 96, 96) and np.isfinite(face).all()


def test_folding_batchnorm_for_inference_keeps_the_output(fixture_state, model_io):
    mels, faces, expected = model_io
    fused = checkpoint.build_generator(fixture_state).fuse_for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    out = run_model(fused, mels, faces)
    np.testing.assert_allclose(out, expected, atol=1e-3)
    assert np.abs(out - expected).mean() < 1e-5
    loaded = checkpoint.build_generator(fixture_state)
    assert list(loaded.state_dict()) == list(fixture_state)  # unfused: the released layout


def test_cpu_slices_hold_the_same_bytes_in_every_precision():
    model = torch.nn.Identity()
    assert w2l.BatchedGenerator(model, "cpu", torch.float32, 64).batch_size == 4
    assert w2l.BatchedGenerator(model, "cpu", torch.bfloat16, 64).batch_size == 8
    assert w2l.BatchedGenerator(model, "cpu", torch.bfloat16, 3).batch_size == 3
    assert w2l.BatchedGenerator(model, "meta", torch.float16, 64).batch_size == 64  # not a CPU
