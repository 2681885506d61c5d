import urllib.error

import numpy as np
import pytest
import torch

from conftest import default_tracking, face_recognizer, pack_module
from synthetic_clip import Clip, LazyFrames, MarkerDetector, TruthDetector, marker_frames

fd = pack_module("face_detect")


def track_lazily(clip, detector, settings):
    """Boxes for a clip drawn frame by frame as the tracker asks (no tensor of the whole clip):
    the tracker and the finishing steps, as the VIDEO route runs them."""
    frames = LazyFrames(clip, fd.TensorFrames)
    tracker = fd.FaceTracker(detector, default_tracking(), recognizer=face_recognizer())
    raw, starts = tracker.track(frames, clip.count)
    return fd.finish_boxes(raw, frames.height, frames.width, settings, starts), tracker.stats
boxes_mod = pack_module("face_detect.boxes")
s3fd = pack_module("face_detect.s3fd")
s3fd_detector = pack_module("face_detect.s3fd.detector")
weights = pack_module("face_detect.s3fd.weights")


# ------------------------------------------------------------------ tracking strategy


@pytest.fixture(scope="module")
def tracked():
    clip = Clip(scenario="tracking")  # 10 s, 1280x720, 25 fps
    detector = TruthDetector(clip, batch_size=4)
    boxes, stats = track_lazily(clip, detector, fd.BoxSettings(face_padding=0, smooth_box_frames=5, max_gap=5))
    return clip, detector, boxes, stats


def test_tracking_follows_the_true_boxes(tracked):
    clip, _, boxes, _ = tracked
    overlaps = [boxes_mod.iou(boxes[i], clip.truth(i)[0]) for i in range(clip.count) if clip.truth(i)]
    assert len(overlaps) == clip.count - 25
    assert np.mean(overlaps) >= 0.95
    assert min(overlaps) >= 0.8  # no frame is badly off, not even at the hard cut


def test_no_box_where_there_is_no_face(tracked):
    clip, _, boxes, _ = tracked
    empty = [i for i in range(clip.count) if not clip.truth(i)]
    assert empty == list(range(125, 150))
    assert (boxes[empty] == -1).all()


def test_the_same_face_is_kept_when_a_larger_one_enters(tracked):
    clip, _, boxes, _ = tracked
    both = [i for i in range(clip.count) if len(clip.truth(i)) == 2]
    assert len(both) > 40
    for i in both:
        first, second = clip.truth(i)
        assert boxes_mod.area(second) > boxes_mod.area(first)
        assert boxes_mod.iou(boxes[i], first) > 0.9


def test_detection_costs_a_small_fraction_of_per_frame_full_resolution(tracked):
    clip, detector, _, stats = tracked
    assert stats.image_count == len(detector.requests)
    assert sum(n for n in stats.images.values()) < clip.count / 2
    largest = max(h * w for h, w in stats.images)
    assert largest <= 480 * 270  # never a full-resolution look
    assert stats.cost_vs_full(clip.count, clip.height, clip.width) <= 0.10
    assert stats.calls <= stats.image_count and "detector calls" in stats.summary()


def test_requests_are_batched():
    clip = Clip(scenario="gentle", seconds=4)
    detector = TruthDetector(clip, batch_size=4)
    calls = []
    inner = detector.detect
    detector.detect = lambda images: calls.append(len(images)) or inner(images)
    track_lazily(clip, detector, fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5))
    assert max(calls) == 4 and sum(calls) == len(detector.requests)


def test_a_global_hard_cut_is_found_from_thumbnails():
    images = torch.zeros(20, 36, 64, 3)
    images[:8] = 0.2
    images[8:] = 0.8
    images[:, :, :, 0] += torch.linspace(0, 0.05, 20)[:, None, None]  # slow drift is no cut
    _, shot_starts = fd.FaceTracker(MarkerDetector(), default_tracking()).track(fd.TensorFrames(images), 20)
    assert list(shot_starts) == [8]


def test_frames_render_the_same_from_float_half_and_uint8_images():
    clip = Clip(width=160, height=120, scenario="gentle", seconds=0.2)
    images = clip.images()
    request = fd.DetectionRequest(2, (-20, 10, 100, 130), (64, 64))
    want = fd.TensorFrames(images).render(request)
    assert want.max() > 100 and (want[:, :10] == 0).all()  # the part left of the frame is black
    for variant in (images.half(), (images * 255).round().to(torch.uint8)):
        got = fd.TensorFrames(variant).render(request)
        assert np.abs(got.astype(int) - want).max() <= 2
        np.testing.assert_allclose(fd.TensorFrames(variant).thumbnails(0, 5),
                                   fd.TensorFrames(images).thumbnails(0, 5), atol=0.01)


def test_tracking_over_a_real_tensor_matches_the_lazy_source():
    clip = Clip(width=320, height=180, scenario="tracking", seconds=3, fps=10)
    images = clip.images()
    a, _ = fd.detect_boxes(images, clip.count, TruthDetector(clip), fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5), default_tracking())
    b, _ = track_lazily(clip, TruthDetector(clip), fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5))
    np.testing.assert_array_equal(a, b)
    assert (a[:, 0] >= 0).all()


# ------------------------------------------------------------------ a detector that reads pixels


def moving_marker(i):
    """A 60x70 marker gliding right and down, growing slowly; frame-pixel truth."""
    x1, y1 = 200 + 7 * i, 90 + 2 * i
    return (x1, y1, x1 + 60 + i // 3, y1 + 70 + i // 3)


def test_rendered_regions_map_back_to_frame_pixels_at_every_scale():
    # 640x360: whole-frame looks at 480x270 (scale 0.75) and ROI looks at 128x128 (~0.8); the
    # marker detector sees only pixels, so a wrong region->image->frame mapping moves the boxes
    images = marker_frames(40, 360, 640, moving_marker)
    detector = MarkerDetector(batch_size=4)
    raw, _ = fd.FaceTracker(detector, default_tracking()).track(fd.TensorFrames(images))
    sizes = set(detector.images_seen)
    assert (270, 480) in sizes and (128, 128) in sizes  # both scales were used
    checked = sorted({r.frame_index for r in detector.requests})
    assert len(checked) >= 5
    for request in detector.requests:
        sx, sy = request.scale
        truth = np.array(moving_marker(request.frame_index), float)
        box = raw[request.frame_index]
        assert np.abs(box[[0, 2]] - truth[[0, 2]]).max() <= 1.0 / sx + 0.5, (request, box, truth)
        assert np.abs(box[[1, 3]] - truth[[1, 3]]).max() <= 1.0 / sy + 0.5, (request, box, truth)
    for i in range(40):  # in between: interpolated along the straight path, within 2 px
        assert np.abs(raw[i] - np.array(moving_marker(i), float)).max() <= 2.5, i


def test_face_detect_batch_1_and_16_give_the_same_boxes_on_distinct_frames():
    # a marker that jumps (not interpolable) forces many distinct frames into each batch
    def jumping(i):
        x = 60 + (i * 37) % 300
        return (x, 40 + (i * 13) % 100, x + 64, 40 + (i * 13) % 100 + 72)

    # (a face lost at every frame is taken back only by who it is: all markers look alike)
    images = marker_frames(30, 240, 480, jumping, seed=3)
    settings = fd.BoxSettings(face_padding=0, smooth_box_frames=0, max_gap=5)
    one, _ = fd.detect_boxes(images, 30, MarkerDetector(batch_size=1), settings, default_tracking(), recognizer=face_recognizer())
    many_detector = MarkerDetector(batch_size=16)
    many, _ = fd.detect_boxes(images, 30, many_detector, settings, default_tracking(), recognizer=face_recognizer())
    np.testing.assert_array_equal(one, many)
    assert len(many_detector.requests) >= 16
    for i in range(30):
        assert np.abs(one[i] - np.array(jumping(i))).max() <= 2, i


@pytest.mark.parametrize("height, width", [(20, 20), (31, 31), (36, 1080), (2000, 68), (8, 8), (1, 300)])
def test_tiny_and_extreme_frames_are_padded_for_the_detector_not_stretched(height, width):
    images = torch.rand(3, height, width, 3) * 0.5
    detector = MarkerDetector(batch_size=4)
    boxes, stats = fd.detect_boxes(images, 3, detector, fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5), default_tracking())
    assert (boxes == -1).all()  # nothing green: no face, and no crash
    for request, shape in zip(detector.requests, detector.images_seen):
        assert min(shape) >= 32
        sx, sy = request.scale
        assert sx == pytest.approx(sy, rel=0.05)  # the same scale both ways: padding, not stretching


def test_a_marker_in_a_thin_frame_is_found_through_the_padding():
    images = marker_frames(2, 36, 1080, lambda i: (500, 4, 530, 32))
    boxes, _ = fd.detect_boxes(images, 2, MarkerDetector(min_face=4), fd.BoxSettings(face_padding=0, smooth_box_frames=0, max_gap=5), default_tracking())
    assert np.abs(boxes[0] - np.array([500, 4, 530, 32])).max() <= 3


def test_the_real_s3fd_survives_tiny_and_extreme_frames(random_s3fd_file):
    detector = s3fd.S3FDDetector(random_s3fd_file, batch_size=2)
    seen = []
    real = detector.detect_images
    detector.detect_images = lambda images: seen.append(images.shape[1:3]) or real(images)
    for height, width in [(20, 20), (36, 1080), (2000, 68)]:
        seen.clear()
        boxes, stats = fd.detect_boxes(torch.rand(2, height, width, 3), 2, detector, fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5), default_tracking())
        assert seen and stats.image_count >= 1  # the network really ran on these frames
        assert min(min(shape) for shape in seen) >= 32  # padded up to what S3FD's pooling needs
        inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= width) & (boxes[:, 3] <= height)
        assert ((boxes == -1).all(axis=1) | inside).all()  # "no face", or a box inside the frame


def test_a_failing_detector_names_the_frame_size():
    class Broken:
        batch_size = 4

        def detect(self, images):
            raise RuntimeError("Given input size: (512x1x1). Output size is too small")

    with pytest.raises(fd.DetectorError, match=r"frame 0 \(64x48, looked at as 64x48\).*Output size is too small"):
        fd.detect_boxes(torch.rand(2, 48, 64, 3), 2, Broken(), fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5), default_tracking())


def test_nan_pixels_render_black_for_the_detector():
    images = torch.rand(1, 40, 40, 3)
    images[0, 5:10, 5:10] = float("nan")
    image = fd.TensorFrames(images).render(fd.DetectionRequest(0, (0, 0, 40, 40), (40, 40)))
    assert (image[5:10, 5:10] == 0).all()


# ------------------------------------------------------------------ tracking a stream


class RgbPicture:
    """A uint8 RGB frame as a picture of a WindowFrames, read exactly as TensorFrames reads the
    same frame (the VIDEO route's pictures are kept in YUV; these compare with the IMAGE route)."""

    def __init__(self, frame):
        self.pixels = torch.as_tensor(frame)

    def crop(self, x1, y1, x2, y2):
        return self.pixels[y1:y2, x1:x2, :3]

    def grey(self, step_y, step_x):
        return self.pixels[::step_y, ::step_x, :3].float().mean(dim=-1) * (1.0 / 255.0)


def stream_boxes(images, detector, settings):
    """Feed the uint8 frames one at a time through a bounded window, as the VIDEO node does,
    taking each frame's finished box as soon as it is final."""
    frames = fd.WindowFrames(images.shape[1], images.shape[2])
    tracker = fd.FaceTracker(detector, default_tracking())
    run = tracker.start(frames)
    finished = fd.BoxStream(frames.height, frames.width, settings)
    most, taken, lag = 0, [], 0
    for i in range(len(images)):
        frames.put(i, RgbPicture(images[i]))
        run.advance(i + 1)
        taken.append(finished.take(run.boxes, run.shot_starts, run.settled))
        frames.drop_before(run.needed_from)
        most = max(most, len(frames.window))
        lag = max(lag, i + 1 - finished.done)
    raw, starts = run.finish()
    taken.append(finished.take(raw, starts, run.settled, finished=True))
    whole = fd.finish_boxes(raw, frames.height, frames.width, settings, starts)
    np.testing.assert_array_equal(np.concatenate(taken), whole)  # taken early = finished at once
    return whole, most, tracker.stats, lag


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_a_stream_through_a_window_gives_the_whole_clip_boxes(batch):
    # a cut, a faceless second, a second face entering: every path of the tracker
    clip = Clip(width=320, height=180, scenario="tracking", seconds=10, fps=25)
    images = (clip.images() * 255).round().to(torch.uint8)
    settings = fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5)
    whole, whole_stats = fd.detect_boxes(images, clip.count, TruthDetector(clip, batch), settings, default_tracking())
    streamed, most, stats, lag = stream_boxes(images, TruthDetector(clip, batch), settings)
    np.testing.assert_array_equal(streamed, whole)
    assert stats.image_count == whole_stats.image_count  # the same looks, no more
    assert most <= 50  # never more than a window of frames held
    assert lag <= 50 + 5 // 2 + 5 + 2  # a box is final a window and the finishing margin behind


def test_a_stream_reading_pixels_gives_the_whole_clip_boxes():
    def path(i):
        if 30 <= i < 37:
            return None  # the face leaves for a moment
        x = 40 + 3 * i if i < 60 else 300 - 2 * i  # turns round at 60
        return (x, 30 + i // 2, x + 50, 30 + i // 2 + 60)

    images = (marker_frames(90, 200, 400, path) * 255).round().to(torch.uint8)
    settings = fd.BoxSettings(face_padding=0, smooth_box_frames=3, max_gap=5)
    whole, _ = fd.detect_boxes(images, 90, MarkerDetector(batch_size=4), settings, default_tracking())
    streamed, _, _, _ = stream_boxes(images, MarkerDetector(batch_size=4), settings)
    np.testing.assert_array_equal(streamed, whole)
    assert (whole[30:37] == -1).all() and (whole[:30] >= 0).all()


# ------------------------------------------------------------------ finishing boxes


def test_padding_reproduces_wav2lips_default_crop():
    raw = np.array([[100.0, 50.0, 200.0, 170.0], [0.0, 0.0, 60.0, 295.0]])
    out = fd.finish_boxes(raw, 300, 400, fd.BoxSettings(face_padding=10, smooth_box_frames=0, max_gap=5))
    # Wav2Lip: y1 = max(0, y1 - 0), y2 = min(H, y2 + 10), x1 = max(0, x1 - 0), x2 = min(W, x2 + 0)
    assert out.tolist() == [[100, 50, 200, 180], [0, 0, 60, 300]]


def test_smoothing_is_centred_and_keeps_linear_motion_in_place():
    raw = np.stack([np.arange(20.0) * 3, np.full(20, 10.0), np.arange(20.0) * 3 + 50, np.full(20, 80.0)], 1)
    np.testing.assert_allclose(boxes_mod.smooth(raw, 5), raw)  # a forward window would lag
    jitter = raw.copy()
    jitter[10, 0] += 10
    smoothed = boxes_mod.smooth(jitter, 5)
    assert smoothed[10, 0] == pytest.approx(raw[10, 0] + 2) and smoothed[8, 0] == pytest.approx(raw[8, 0] + 2)
    assert smoothed[7, 0] == raw[7, 0]
    np.testing.assert_array_equal(boxes_mod.smooth(jitter, 1), jitter)
    np.testing.assert_array_equal(boxes_mod.smooth(jitter, 0), jitter)


def test_smoothing_never_crosses_a_cut_or_a_gap():
    raw = np.zeros((10, 4))
    raw[:, 2:] = 50
    raw[5:] += 300
    out = boxes_mod.smooth(raw, 5, shot_starts=[5])
    np.testing.assert_array_equal(out, raw)
    raw[4] = np.nan
    np.testing.assert_array_equal(boxes_mod.smooth(raw, 5)[:4], raw[:4])


def test_short_gaps_are_filled_and_long_or_open_ones_are_not():
    raw = np.tile(np.array([[10.0, 10, 50, 50]]), (30, 1))
    raw[:, [0, 2]] += np.arange(30)[:, None]
    holes = raw.copy()
    holes[[0, 1]] = np.nan  # leading
    holes[5:8] = np.nan  # short: filled
    holes[12:20] = np.nan  # long: kept empty
    holes[28:] = np.nan  # trailing
    out = boxes_mod.fill_gaps(holes, max_gap=5)
    np.testing.assert_allclose(out[5:8], raw[5:8])
    assert np.isnan(out[[0, 1, 28, 29]]).all() and np.isnan(out[12:20]).all()
    assert np.isnan(boxes_mod.fill_gaps(holes, max_gap=5, shot_starts=[6])[5:8]).all()


# ------------------------------------------------------------------ face_mask path


def test_mask_box_is_the_bounding_box_of_its_pixels():
    mask = torch.zeros(3, 40, 60)
    mask[0, 5:15, 10:30] = 1.0
    mask[2, 0, 59] = 0.6
    mask[0, 30:40, 0:60] = 0.3  # a JPEG mask's faint ringing is not paint: the box does not grow
    raw = pack_module("face_detect.mask").boxes_from_mask(mask, 3, 40, 60)
    assert raw[0].tolist() == [10, 5, 30, 15] and np.isnan(raw[1]).all() and raw[2].tolist() == [59, 0, 60, 1]
    out = fd.mask_boxes(mask, 3, 40, 60, fd.BoxSettings(face_padding=0, smooth_box_frames=0, max_gap=5))
    assert out.tolist() == [[10, 5, 30, 15], [-1, -1, -1, -1], [59, 0, 60, 1]]
    padded = fd.mask_boxes(mask, 3, 40, 60, fd.BoxSettings(face_padding=10, smooth_box_frames=0, max_gap=5))
    assert padded[0].tolist() == [10, 5, 30, 25]


def test_a_single_mask_frame_applies_to_every_image():
    mask = torch.zeros(1, 40, 60)
    mask[0, 10:20, 20:40] = 1
    out = fd.mask_boxes(mask, 4, 40, 60, fd.BoxSettings(face_padding=0, smooth_box_frames=5, max_gap=5))
    assert out.tolist() == [[20, 10, 40, 20]] * 4


@pytest.mark.parametrize("shape, words", [
    ((2, 40, 60), "has 2 frames but there are 3 images"),
    ((3, 30, 60), "face_mask is 60x30 but the images are 60x40"),
    ((3, 40, 60, 2), "expected a MASK"),
])
def test_a_mask_that_does_not_fit_gets_a_clear_message(shape, words):
    with pytest.raises(fd.MaskInputError, match=words):
        fd.mask_boxes(torch.ones(shape), 3, 40, 60, fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5))


# ------------------------------------------------------------------ S3FD through face-alignment


@pytest.fixture(scope="module")
def random_s3fd_file(tmp_path_factory):
    from face_alignment.detection.sfd.net_s3fd import s3fd as S3FDNet
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("s3fd") / "s3fd.pth"
    torch.save(S3FDNet().state_dict(), path)
    return path


@pytest.fixture
def fp32_looks(monkeypatch):
    """The detector as on a CPU without native bf16: every look in fp32, by `network`."""
    monkeypatch.setattr(s3fd_detector, "cpu_has_native_bf16", lambda: False)


def test_s3fd_loads_and_detects_batches_with_the_bgr_quirk(random_s3fd_file, fp32_looks):
    detector = s3fd.S3FDDetector(random_s3fd_file, batch_size=2)
    seen = []
    detector.network.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    red = torch.zeros(3, 64, 64, 3)
    red[..., 0] = 1.0  # pure red in ComfyUI's RGB
    frames = fd.TensorFrames(red)
    request = fd.DetectionRequest(0, (0, 0, 64, 64), (64, 64))
    image = frames.render(request)
    assert image[0, 0].tolist() == [0, 0, 255]  # handed over as BGR
    found = detector.detect(np.stack([image] * 3))
    assert len(found) == 3 and [len(x) for x in seen] == [2, 1]  # batches of face_detect_batch
    net_input = seen[0][0]
    # face-alignment flips to BGR and subtracts its means: the network sees red first, like Wav2Lip's S3FD
    assert float(net_input[0, 0, 0]) == pytest.approx(255 - 104)
    assert float(net_input[2, 0, 0]) == pytest.approx(0 - 123)
    for boxes in found:
        assert boxes.shape[1] == 5 and (boxes[:, 4] > 0.5).all()


def test_the_tracker_drives_a_real_s3fd(random_s3fd_file):
    clip = Clip(width=96, height=64, scenario="gentle", seconds=1, fps=8)
    detector = s3fd.S3FDDetector(random_s3fd_file, batch_size=4)
    boxes, stats = fd.detect_boxes(clip.images(), clip.count, detector, fd.BoxSettings(face_padding=10, smooth_box_frames=5, max_gap=5), default_tracking())
    assert boxes.shape == (8, 4) and boxes.dtype == np.int64
    assert stats.calls >= 1 and (64, 96) in stats.images  # whole frame, not upscaled


def test_s3fd_runs_channels_last_with_the_boxes_of_the_plain_layout(random_s3fd_file, fp32_looks):
    import cv2
    from skimage import data

    detector = s3fd.S3FDDetector(random_s3fd_file, batch_size=2)
    first_conv = next(m for m in detector.network.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    photo = cv2.resize(data.astronaut()[:, :, ::-1], (128, 96))
    images = np.stack([photo, np.ascontiguousarray(photo[::-1])])
    fast = detector.detect(images)
    detector.network.to(memory_format=torch.contiguous_format)
    plain = detector.detect(images)
    assert [len(b) for b in fast] == [len(b) for b in plain] and len(fast[0]) > 0
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


def test_weights_found_in_a_given_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "s3fd.pth").write_bytes(b"any")
    assert weights.find_s3fd_weights([tmp_path / "empty", tmp_path / "models"]) == tmp_path / "models" / "s3fd.pth"


def test_a_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "s3fd-619a316812.pth").write_bytes(b"not the detector")
    with pytest.raises(s3fd.DetectorWeightsError, match="SHA-256 does not start with 619a316812"):
        weights.find_s3fd_weights([tmp_path])


def test_a_download_with_the_wrong_hash_is_refused_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "_download", lambda url, dst: dst.write_bytes(b"captive portal page"))
    with pytest.raises(s3fd.DetectorWeightsError, match="SHA-256"):
        weights.find_s3fd_weights([tmp_path / "pack"])
    assert not (tmp_path / "hub" / "checkpoints" / "s3fd-619a316812.pth").exists()
    assert not (tmp_path / "hub").exists()  # the folders made for the download went too


def test_a_failed_download_leaves_no_folder_behind_but_keeps_existing_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(weights, "_download", offline)
    with pytest.raises(s3fd.DetectorWeightsError):
        weights.find_s3fd_weights([])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    with pytest.raises(s3fd.DetectorWeightsError):
        weights.find_s3fd_weights([])
    assert (tmp_path / "hub" / "checkpoints").is_dir()  # it was there before: left alone


def test_no_weights_and_no_network_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(weights, "_download", offline)
    with pytest.raises(s3fd.DetectorWeightsError) as err:
        weights.find_s3fd_weights([tmp_path / "pack" / "checkpoints", tmp_path / "models" / "wav2lip"])
    text = str(err.value)
    assert "could not be downloaded" in text and "s3fd-619a316812.pth" in text
    assert str(tmp_path / "pack" / "checkpoints") in text and str(tmp_path / "models" / "wav2lip") in text
    assert "face_mask" in text


# ------------------------------------------------------------------ S3FD's looks, fp32 and bf16


def astronaut_looks(count=2, side=128) -> np.ndarray:
    """BGR uint8 looks at a real face, as the tracker renders them."""
    import cv2
    from synthetic_clip import astronaut_head
    head = (astronaut_head()[:, :, ::-1] * 255).astype(np.uint8)
    look = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(look, 9 * k, axis=1) for k in range(count)])


def test_without_native_bf16_the_looks_are_face_alignments_own(random_s3fd_file, fp32_looks):
    """The detector decodes and filters as face-alignment's SFDDetector does (its own method is
    the reference), in fp32 where the CPU would only emulate bf16."""
    detector = s3fd.S3FDDetector(random_s3fd_file, batch_size=2)
    assert detector._fast is None
    looks = astronaut_looks()
    ours = detector.detect_images(looks)
    batch = torch.from_numpy(looks).permute(0, 3, 1, 2).float()
    reference = detector._sfd.detect_from_batch(batch)
    assert sum(len(found) for found in ours) > 0  # random weights score many anchors near 0.5
    for found, expected in zip(ours, reference):
        np.testing.assert_array_equal(found, np.asarray(expected, dtype=np.float64).reshape(-1, 5))


def test_bf16_looks_leave_the_close_calls_to_fp32(random_s3fd_file, monkeypatch):
    """Where bf16 is native, a look whose best face scores near the threshold is made again in
    fp32, and fp32's answer is kept; clear faces keep bf16's boxes; nothing found stays nothing."""
    import face_alignment.detection.sfd.detect as fa_detect

    monkeypatch.setattr(s3fd_detector, "cpu_has_native_bf16", lambda: True)
    detector = s3fd.S3FDDetector(random_s3fd_file, batch_size=4)
    assert isinstance(detector._fast, s3fd_detector.Bfloat16Network)
    face = [20.0, 30.0, 80.0, 100.0]
    answers = {  # image -> (bf16's score, fp32's score); None: no candidate at all
        0: (0.97, 0.98), 1: (0.55, 0.45), 2: (0.45, 0.52), 3: (None, None), 4: (0.30, 0.20)}
    exact_batches = []

    def fake_batch_detect(network, batch, device):
        fast = isinstance(network, s3fd_detector.Bfloat16Network)
        images = [int(b[0, 0, 0]) for b in batch]  # each fake image carries its number
        if not fast:
            exact_batches.append(images)
        scores = [answers[n][0 if fast else 1] for n in images]
        return np.array([[face[:2] + [face[2] + (1 if fast else 0), face[3], s]] if s is not None
                         else np.zeros((0, 5)) for s in scores], dtype=object)

    monkeypatch.setattr(fa_detect, "batch_detect", fake_batch_detect)
    images = np.zeros((5, 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(5)
    found = detector.detect(images)
    assert exact_batches == [[1, 2], [4]]  # batches of 4: images 1, 2 then 4 were close calls
    assert found[0].tolist() == [[20.0, 30.0, 81.0, 100.0, 0.97]]  # bf16's box, kept
    assert len(found[1]) == 0  # bf16 saw a face at 0.55, fp32 says no: no face
    assert found[2].tolist() == [[20.0, 30.0, 80.0, 100.0, 0.52]]  # fp32's box
    assert len(found[3]) == 0 and len(found[4]) == 0


def test_the_bf16_network_gives_fp32_tensors_close_to_fp32s(random_s3fd_file):
    detector_network = s3fd.S3FDDetector(random_s3fd_file, batch_size=1).network
    fast = s3fd_detector.Bfloat16Network(detector_network)
    assert next(detector_network.parameters()).dtype == torch.float32  # a copy: fp32 stays
    looks = torch.from_numpy(astronaut_looks(1, 64)).permute(0, 3, 1, 2).float() - 120.0
    with torch.inference_mode():
        exact, approximate = detector_network(looks), fast(looks)
    assert len(exact) == len(approximate) == 12
    for e, a in zip(exact, approximate):
        assert a.dtype == torch.float32 and a.shape == e.shape
        assert float((a - e).abs().max()) < 0.1 * float(e.std()) + 1e-6
