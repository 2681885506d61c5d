"""The same inputs through every route, and a SHA-256 of what each returns: run it on two versions
of the pack and compare, to show a change that must not change behaviour did not (not part of CI).

    python bench/same_bytes.py > now.json
    python bench/same_bytes.py --pack /path/to/other/checkout > then.json
    diff then.json now.json

The inputs are made here the same way each time (the tests' synthetic clips, the fixture speech
recording, the seeded architecture fixture as the generator, the clips' true boxes as the
detector); the routes: the IMAGE route, the streamed VIDEO route (loop and pingpong, the video's
own sound, an MPEG-TS copy, a phone video turned by its display matrix, a clip with a cut and a
stretch without a face) and a VIDEO held as frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import ffmpeg_reference as ref  # noqa: E402
from fixture_weights import fixture_state_dict, save_released_layout  # noqa: E402
from synthetic_clip import RENDERED, Clip, TruthDetector  # noqa: E402

# where each public name lives, newest layout first (the script runs on older versions too)
PLACES = {"plain_hooks": ("routes.steps", "pipeline"), "lipsync_images": ("routes.image", "pipeline"),
          "lipsync_video": ("routes.stream", "video_route"),
          "lipsync_components": ("routes.held_video", "video_route")}


def load_pack(folder: Path):
    name = "HaloLipsySameBytes"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    RENDERED.install(importlib.import_module(f"{name}.face_detect.base").TensorFrames)

    def find(what):
        for place in PLACES[what]:
            if importlib.util.find_spec(f"{name}.{place.split('.')[0]}") is None:
                continue
            return getattr(importlib.import_module(f"{name}.{place}"), what)
        raise LookupError(what)
    return find, importlib.import_module(f"{name}.settings").Settings


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def speech() -> tuple[np.ndarray, int]:
    with wave.open(str(ROOT / "tests" / "fixtures" / "speech16k.wav")) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return data.astype(np.float32) / 32768.0, w.getframerate()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", type=Path, default=ROOT, help="the checkout to run")
    args = parser.parse_args()
    find, Settings = load_pack(args.pack.resolve())
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="same_bytes_"))
    save_released_layout(fixture_state_dict(ROOT / "tests" / "fixtures" / "wav2lip_state_dict.tsv"),
                                      work / "wav2lip_gan.pth")
    voice, rate = speech()
    audio = {"waveform": torch.from_numpy(voice)[None, None], "sample_rate": rate}
    results = {}

    def hooks(clip):
        """The clip's true boxes (None: a detector that finds nobody). A run's renders its
        detector never took (the tracker looks ahead) must not answer the next run's looks."""
        RENDERED.pending.clear()
        return dataclasses.replace(find("plain_hooks")([work]), detector=lambda batch: (
            NoFace(batch) if clip is None else TruthDetector(clip, batch)))

    gentle = Clip(width=192, height=144, fps=25.0, seconds=2.0, scenario="gentle")
    frames = np.stack([np.clip(gentle.frame(i), 0, 1) for i in range(gentle.count)])
    uint8 = (frames * 255 + 0.5).astype(np.uint8)
    image = torch.from_numpy(frames.astype(np.float32))
    talking = ref.encode(work / "talking.mp4", uint8, 25.0, rgb_filter="format=yuv420p",
                         audio=voice[None], audio_rate=rate)
    ts = ref.remux(talking, work / "talking.ts")
    phone = ref.remux(talking, work / "phone.mp4", "-display_rotation", 90)
    tracking = Clip(width=256, height=144, fps=25.0, seconds=6.6, scenario="tracking")
    cut = ref.encode(work / "cut.mp4", np.stack([(np.clip(tracking.frame(i), 0, 1) * 255 + 0.5).astype(np.uint8)
                                                 for i in range(tracking.count)]), 25.0,
                     rgb_filter="format=yuv420p")

    result = find("lipsync_images")(image, audio, Settings(inference_batch=8), hooks(gentle))
    results["image route"] = digest(result.images, result.mask, result.audio["waveform"])
    videos = {"loop": (talking, gentle, {}, audio), "pingpong": (talking, gentle, {"mode": "pingpong"}, audio),
              "own sound": (talking, gentle, {}, None), "mpeg-ts": (ts, gentle, {}, audio),
              "phone (turned)": (phone, None, {}, audio), "cut, no face": (cut, tracking, {}, audio)}
    for name, (source, clip, chosen, speech_in) in videos.items():
        out = work / f"{name.split()[0]}.out.mp4"
        settings = Settings(inference_batch=8, quality=23, **chosen)
        find("lipsync_video")(str(source), str(out), settings, hooks(clip), audio=speech_in)
        results[f"video route: {name}"] = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    out = work / "held.mp4"
    find("lipsync_components")(image, audio, str(out), Settings(inference_batch=8, quality=23), hooks(gentle))
    results["held video route"] = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    print(json.dumps(results, indent=1))


class NoFace:
    """A detector that finds nobody (the turned clip: its faces are where the turn put them)."""

    def __init__(self, batch_size):
        self.batch_size = batch_size

    def detect(self, images):
        RENDERED.take(images)
        return [np.zeros((0, 5)) for _ in range(len(images))]


if __name__ == "__main__":
    main()
