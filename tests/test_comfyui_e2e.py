"""End to end through a real ComfyUI: start the server with this pack, queue example workflow 1
(LoadVideo -> GetVideoComponents -> Halo-Lipsy -> CreateVideo -> SaveVideo) over the HTTP API
with a generated talking clip, and check the saved video's frame count and duration. Then run a
workflow without the node and the first again (changed, so it executes): the checkpoint must
not be loaded a second time; after ComfyUI's "Free model and node cache" (POST /free) it is.

Runs when COMFYUI_DIR points at a ComfyUI checkout whose requirements are installed in this
environment (python main.py must work); skipped otherwise. The server listens on 127.0.0.1 only.
"""

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_workflow import workflow_to_prompt
from conftest import ROOT
from fixture_weights import save_released_layout
from synthetic_clip import Clip

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(
    not COMFYUI_DIR, reason="COMFYUI_DIR is not set: no ComfyUI checkout to run end to end")

FPS, VIDEO_SECONDS, SPEECH_SECONDS = 25, 1.0, 1.6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, payload=None, timeout=10):
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
        return json.loads(body) if body else None


def write_talking_clip(path: Path):
    import av

    clip = Clip(width=160, height=128, fps=FPS, seconds=VIDEO_SECONDS, scenario="gentle")
    rate = 44100
    t = np.arange(int(SPEECH_SECONDS * rate)) / rate
    voice = (0.3 * np.sin(2 * np.pi * 170 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, 1)).astype(np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(clip.count):
            rgb = (clip.frame(i) * 255).astype(np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode())
        step = 1024
        for start in range(0, len(voice), step):
            frame = av.AudioFrame.from_ndarray(voice[None, start:start + step], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return clip


def probe(path: Path):
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        rate = float(video.average_rate)
    with av.open(str(path)) as container:
        audio_samples = sum(f.samples for f in container.decode(audio=0))
        audio_rate = container.streams.audio[0].rate
    return frames, rate, audio_samples / audio_rate


def coded_video(path: Path) -> bytes:
    """The video stream's coded packets, concatenated: equal only for the same encoded pictures."""
    import av

    with av.open(str(path)) as container:
        return b"".join(bytes(p) for p in container.demux(video=0) if p.size)


def run_prompt(url, prompt, tmp_path):
    prompt_id = http(f"{url}/prompt", {"prompt": prompt, "client_id": "halo-lipsy-e2e"})["prompt_id"]
    history = {}
    deadline = time.time() + 300
    while time.time() < deadline and prompt_id not in history:
        time.sleep(1)
        history = http(f"{url}/history/{prompt_id}")
    assert prompt_id in history, (tmp_path / "comfyui.log").read_text()[-3000:]
    status = history[prompt_id]["status"]
    assert status["status_str"] == "success", json.dumps(status["messages"])[-3000:]


@pytest.fixture
def comfy_base(tmp_path, fixture_state):
    from face_alignment.detection.sfd.net_s3fd import s3fd

    base = tmp_path / "comfy"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "Halo-Lipsy").symlink_to(ROOT, target_is_directory=True)
    models = base / "models" / "wav2lip"
    models.mkdir(parents=True)
    save_released_layout(fixture_state, models / "wav2lip_gan.pth")
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), models / "s3fd.pth")  # random weights: the wiring, offline
    (base / "input").mkdir()
    write_talking_clip(base / "input" / "talking_head.mp4")
    # a super-resolution model for core's Load Upscale Model: spandrel's Compact x2, random weights
    from test_restore import compact
    upscale = base / "models" / "upscale_models"
    upscale.mkdir(parents=True)
    torch.save(compact(2)[0], upscale / "RealESRGAN_x2plus.pth")
    # a face restoration model, random weights, wrapped as GFPGAN's release wraps them: in
    # upscale_models for core's loader, and in facerestore_models for the node's own list
    from face_models import network
    gfpgan = {"params_ema": network("GFPGAN").state_dict()}
    torch.save(gfpgan, upscale / "GFPGANv1.4.pth")
    (base / "models" / "facerestore_models").mkdir()
    torch.save(gfpgan, base / "models" / "facerestore_models" / "GFPGANv1.4.pth")
    return base


def test_example_workflow_runs_in_a_real_comfyui(comfy_base, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "comfyui.log", "w")
    server = subprocess.Popen(
        [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--base-directory", str(comfy_base), "--disable-auto-launch"],
        cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        info = None
        while time.time() < deadline and server.poll() is None:
            try:
                info = http(f"{url}/object_info")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        assert info is not None, (tmp_path / "comfyui.log").read_text()[-3000:]
        assert "HaloLipsy" in info, "the pack did not load: " + (tmp_path / "comfyui.log").read_text()[-3000:]
        assert "wav2lip_gan.pth" in info["HaloLipsy"]["input"]["required"]["checkpoint"][0]

        workflow = json.loads((ROOT / "example_workflows" / "halo_lipsy_core_video.json").read_text())
        prompt = workflow_to_prompt(workflow, info)
        run_prompt(url, prompt, tmp_path)
        saved = sorted((comfy_base / "output" / "video").glob("halo-lipsy*.mp4"))

        loads = "Halo-Lipsy: loaded wav2lip_gan.pth"
        plain = {"1": {"class_type": "LoadVideo", "inputs": {"file": "talking_head.mp4"}},
                 "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "plain",
                                                             "format": "auto", "codec": "auto"}}}
        run_prompt(url, plain, tmp_path)  # ComfyUI drops the Halo-Lipsy node object here
        lipsy_id = next(k for k, v in prompt.items() if v["class_type"] == "HaloLipsy")
        prompt[lipsy_id]["inputs"]["sync_offset"] = 1  # a change, so the node runs again
        run_prompt(url, prompt, tmp_path)
        log_text = (tmp_path / "comfyui.log").read_text()
        assert log_text.count("Halo-Lipsy: 25 frames in") == 2, log_text[-3000:]
        assert log_text.count(loads) == 1, log_text[-3000:]  # the second run reused the model

        http(f"{url}/free", {"unload_models": True, "free_memory": True})
        deadline = time.time() + 30
        while "cached models released" not in (tmp_path / "comfyui.log").read_text() and time.time() < deadline:
            time.sleep(0.5)
        prompt[lipsy_id]["inputs"]["sync_offset"] = 2
        run_prompt(url, prompt, tmp_path)
        log_text = (tmp_path / "comfyui.log").read_text()
        assert "cached models released" in log_text and log_text.count(loads) == 2, log_text[-3000:]

        # Load Video -> Halo-Lipsy (Video) -> Save Video, streamed; Save Video remuxes it as it is
        assert "HaloLipsyVideo" in info
        workflow = json.loads((ROOT / "example_workflows" / "halo_lipsy_video_node.json").read_text())
        run_prompt(url, workflow_to_prompt(workflow, info), tmp_path)
        streamed = sorted((comfy_base / "output" / "video").glob("halo-lipsy-video*.mp4"))
        temp_files = sorted((comfy_base / "temp" / "halo-lipsy").glob("*.mp4"))

        # Get Video Components can still open the node's VIDEO
        video_prompt = workflow_to_prompt(workflow, info)
        lipsy_video = next(k for k, v in video_prompt.items() if v["class_type"] == "HaloLipsyVideo")
        video_prompt[lipsy_video]["inputs"]["sync_offset"] = 1
        save = next(k for k, v in video_prompt.items() if v["class_type"] == "SaveVideo")
        video_prompt["90"] = {"class_type": "GetVideoComponents", "inputs": {"video": [lipsy_video, 0]}}
        video_prompt["91"] = {"class_type": "CreateVideo", "inputs": {"images": ["90", 0], "audio": ["90", 1],
                                                                     "fps": ["90", 2]}}
        video_prompt[save]["inputs"].update(video=["91", 0], filename_prefix="video/components")
        run_prompt(url, video_prompt, tmp_path)
        components = sorted((comfy_base / "output" / "video").glob("components*.mp4"))

        # core's Load Upscale Model -> restore_model, on both nodes
        workflow = json.loads((ROOT / "example_workflows" / "halo_lipsy_restore.json").read_text())
        restore_prompt = workflow_to_prompt(workflow, info)
        loader = next(k for k, v in restore_prompt.items() if v["class_type"] == "UpscaleModelLoader")
        restore_save = next(k for k, v in restore_prompt.items() if v["class_type"] == "SaveVideo")
        restore_prompt[restore_save]["inputs"]["filename_prefix"] = "video/restored"
        run_prompt(url, restore_prompt, tmp_path)
        video_prompt = workflow_to_prompt(json.loads((ROOT / "example_workflows" / "halo_lipsy_video_node.json")
                                                     .read_text()), info)
        lipsy_video = next(k for k, v in video_prompt.items() if v["class_type"] == "HaloLipsyVideo")
        video_prompt[loader] = restore_prompt[loader]
        video_prompt[lipsy_video]["inputs"]["restore_model"] = [loader, 0]
        save = next(k for k, v in video_prompt.items() if v["class_type"] == "SaveVideo")
        video_prompt[save]["inputs"]["filename_prefix"] = "video/restored-stream"
        run_prompt(url, video_prompt, tmp_path)
        # a face restoration model: through core's loader on the IMAGE node, from the node's own
        # facerestore_models list on the VIDEO node
        restore_prompt[loader]["inputs"]["model_name"] = "GFPGANv1.4.pth"
        restore_prompt[restore_save]["inputs"]["filename_prefix"] = "video/face-restored"
        run_prompt(url, restore_prompt, tmp_path)
        choices = info["HaloLipsyVideo"]["input"]["optional"]["restore_model_file"][0]
        assert "facerestore_models/GFPGANv1.4.pth" in choices, choices
        del video_prompt[lipsy_video]["inputs"]["restore_model"]
        video_prompt[lipsy_video]["inputs"]["restore_model_file"] = "facerestore_models/GFPGANv1.4.pth"
        video_prompt[save]["inputs"]["filename_prefix"] = "video/face-restored-stream"
        run_prompt(url, video_prompt, tmp_path)
        restored = sorted((comfy_base / "output" / "video").glob("restored*.mp4"))
        face_restored = sorted((comfy_base / "output" / "video").glob("face-restored*.mp4"))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    assert len(streamed) == 1 and len(temp_files) == 1
    assert probe(streamed[0])[0] == probe(saved[0])[0]
    # Save Video stored the node's file without re-encoding: the same coded pictures, byte for byte
    assert coded_video(streamed[0]) == coded_video(temp_files[0])
    assert probe(streamed[0]) == probe(temp_files[0])
    assert len(components) == 1 and probe(components[0])[0] == probe(streamed[0])[0]
    assert len(saved) == 1
    frames, rate, audio_seconds = probe(saved[0])
    _, _, input_audio_seconds = probe(comfy_base / "input" / "talking_head.mp4")
    expected = max(int(VIDEO_SECONDS * FPS), math.ceil(round(input_audio_seconds * FPS, 6)))
    assert rate == pytest.approx(FPS)
    assert abs(frames - expected) <= 1 and frames >= SPEECH_SECONDS * FPS  # the whole speech
    assert audio_seconds == pytest.approx(frames / FPS, abs=0.05)  # audio matches the frames
    assert "Halo-Lipsy:" in (tmp_path / "comfyui.log").read_text()  # the run's summary line
    assert len(restored) == 2 and all(probe(path)[0] == frames for path in restored)
    assert len(face_restored) == 2 and all(probe(path)[0] == frames for path in face_restored)
    assert (tmp_path / "comfyui.log").read_text().count("faces restored") == 2
