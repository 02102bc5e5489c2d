"""generate.feedback, Deforum's loop: each frame img2img of the previous generated frame moved by the camera.

The loop alone (nodes/generate/feedback.py: FeedbackLoop) is checked with stand-in moves and diffusions; the node
on a tiny random-weight SD 1.5 (tests/tiny_models.py) through the same sampling code as generate.sample."""
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


# -- the loop alone ----------------------------------------------------------------------------------------------
def _shift(img, k):
    """A stand-in camera step: the picture one pixel to the right (so each frame shows where it came from)."""
    return np.roll(img, 1, axis=1)


def _loop(tmp_path, n=7, cadence=1, calls=None, diffuse=None, **kw):
    from nodes.generate.feedback import FeedbackLoop, KeyStore
    calls = [] if calls is None else calls

    def made(picture, k):
        calls.append(k)
        if diffuse is not None:
            return diffuse(picture, k)
        base = np.zeros((8, 8, 3), np.uint8) if picture is None else picture
        return (base.astype(int) + 10).clip(0, 255).astype(np.uint8)
    return FeedbackLoop(n, cadence, _shift, made, KeyStore(tmp_path / "keys"), (8, 8, 3), **kw), calls


def _ramp():
    return np.tile(np.arange(8, dtype=np.uint8)[None, :, None] * 20, (8, 1, 3))


def test_every_frame_is_the_previous_generated_frame_moved_then_diffused(tmp_path):
    loop, calls = _loop(tmp_path, first=_ramp())
    frames = [loop.frame(j) for j in range(7)]
    assert calls == list(range(7))
    want = _ramp() + 10
    np.testing.assert_array_equal(frames[0], want)
    for j in range(1, 7):
        want = _shift(want, j) + 10             # the previous *output* moved, then diffused
        np.testing.assert_array_equal(frames[j], want)


def test_cadence_diffuses_one_frame_in_n_and_crossfades_the_moved_ones_between(tmp_path):
    loop, calls = _loop(tmp_path, n=8, cadence=3, first=_ramp())
    frames = [loop.frame(j) for j in range(8)]
    assert calls == [0, 3, 6]
    d0 = _ramp() + 10
    moved = [d0]
    for k in range(1, 8):
        moved.append(_shift(moved[-1], k))
    np.testing.assert_array_equal(frames[1], moved[1])           # before the second diffused frame: D0 moved
    np.testing.assert_array_equal(frames[2], moved[2])
    d3 = moved[3] + 10
    # Deforum's turbo frames: frame 3 is 2/3 of D0 moved on to it and 1/3 of D3, frame 5 all of D3 moved
    want3 = np.rint(2 / 3 * moved[3].astype(np.float32) + 1 / 3 * d3.astype(np.float32)).astype(np.uint8)
    np.testing.assert_array_equal(frames[3], want3)
    np.testing.assert_array_equal(frames[5], _shift(_shift(d3, 4), 5))


def test_a_loop_that_stopped_goes_on_from_its_kept_frames(tmp_path):
    def fail_at_4(picture, k):
        if k == 4:
            raise KeyboardInterrupt         # the run stopped while frame 4 was being diffused
        return (picture.astype(int) + 10).clip(0, 255).astype(np.uint8)
    first, _ = _loop(tmp_path, diffuse=fail_at_4, first=_ramp())
    with pytest.raises(KeyboardInterrupt):
        [first.frame(j) for j in range(7)]
    said = []
    again, calls = _loop(tmp_path, first=_ramp(), log=said.append)
    frames = [again.frame(j) for j in range(7)]
    assert calls == [4, 5, 6] and "taking up a loop that stopped" in said[0]
    fresh, _ = _loop(tmp_path / "other", first=_ramp())
    for j in range(7):
        np.testing.assert_array_equal(frames[j], fresh.frame(j))


def test_reading_an_earlier_frame_again_diffuses_nothing_again(tmp_path):
    loop, calls = _loop(tmp_path, n=9, cadence=2, first=_ramp())
    frames = [loop.frame(j) for j in range(9)]
    assert calls == [0, 2, 4, 6, 8]
    for j in (5, 1, 8, 0, 3):
        np.testing.assert_array_equal(loop.frame(j), frames[j])
    assert calls == [0, 2, 4, 6, 8]


def test_colour_coherence_matches_the_moved_picture_to_frame_0_before_it_is_diffused(tmp_path):
    from nodes.common.color import histogram_matcher
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    seen = []

    def warmer(picture, k):                 # a model that pushes every frame towards red
        seen.append(picture)
        base = first if picture is None else picture
        return (base.astype(int) + [40, 0, -40]).clip(0, 255).astype(np.uint8)

    def distance(a, b):
        """How far apart two pictures' histograms are, in the space they were matched in."""
        code = {"rgb": None, "lab": cv2.COLOR_RGB2LAB, "hsv": cv2.COLOR_RGB2HSV}[space]
        a, b = (x if code is None else cv2.cvtColor(x, code) for x in (a, b))
        return sum(np.abs(np.sort(a[..., c].ravel()).astype(int) - np.sort(b[..., c].ravel())).mean() for c in range(3))
    plain, _ = _loop(tmp_path / "a", n=4, diffuse=warmer)
    drift = [plain.frame(j) for j in range(4)]
    for space in ("rgb", "lab", "hsv"):
        seen.clear()
        kept, _ = _loop(tmp_path / space, n=4, diffuse=warmer, matcher=lambda ref, s=space: histogram_matcher(ref, s))
        frames = [kept.frame(j) for j in range(4)]
        # the picture handed to the model at frame 3 has frame 0's histograms (nearly: they are 8-bit levels)
        assert distance(seen[3], frames[0]) < 0.25 * distance(_shift(drift[2], 3), drift[0]), space
        assert distance(frames[3], frames[0]) < distance(drift[3], drift[0]), space


def test_colour_coherence_after_diffusion_is_deforums_current_matching(tmp_path):
    """Deforum since legacy_colormatch (off by default): its sample is diffused frame 0 itself; each moved frame is
    matched to it before it is diffused and each diffused frame after. Walked here as render.py walks it, with a
    matcher that moves a picture's mean to the reference's."""
    rng = np.random.default_rng(1)
    first = rng.integers(0, 200, (8, 8, 3), dtype=np.uint8)

    def matcher(ref):
        return lambda p: (p.astype(int) - p.mean(axis=(0, 1)).round().astype(int)
                          + ref.mean(axis=(0, 1)).round().astype(int)).clip(0, 255).astype(np.uint8)

    def warmer(picture, k):
        base = first if picture is None else picture
        return (base.astype(int) + [40, 0, -40]).clip(0, 255).astype(np.uint8)
    loop, _ = _loop(tmp_path, n=5, diffuse=warmer, matcher=matcher, match_diffused=True)
    got = [loop.frame(j) for j in range(5)]
    sample = prev = warmer(None, 0)
    want = [sample]
    for k in range(1, 5):
        moved = matcher(sample)(_shift(prev, k))
        prev = matcher(sample)(warmer(moved, k))
        want.append(prev)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    legacy, _ = _loop(tmp_path / "legacy", n=5, diffuse=warmer, matcher=matcher)
    assert not np.array_equal(legacy.frame(4), want[4])


def _deforum_walk(n, diffuse, step, matcher, *, legacy, image=None, init=None, video=None, hybrid=None, every=1):
    """render.py's colour matching walked in its order, cadence 1: 'Image' coherence when `image` (its sample, loaded
    before the loop), 'Video Input' coherence when `hybrid` (a hybrid video: its frame is the sample, taken anew at
    every `every`-th frame), else Match Frame 0; `init`: use_init with an init picture; `video`: its Video Input mode,
    where each frame's init is the video's and nothing is fed back (prev_img stays None)."""
    sample, prev, use_init, out = image, None, init is not None or video is not None, []
    for k in range(n):
        if hybrid is not None and k % every == 0:
            sample = hybrid[k]
        picture = init if k == 0 else None
        if prev is not None:
            prev = step(prev, k)
            if sample is None:
                sample = prev.copy()
            else:
                prev = matcher(sample)(prev)
            picture, use_init = prev, True
        if video is not None:
            picture = video[k]
        got = diffuse(picture, k)
        if k == 0 and (image is not None or hybrid is not None):
            got = matcher(sample)(got)
        elif sample is not None and not legacy:
            got = matcher(sample)(got)
        if not legacy and not use_init and image is None and hybrid is None:  # (legacy: at strength 0, never here)
            sample = got
        if video is None:
            prev = got
        out.append(got)
    return out


def test_colour_coherence_to_an_image_after_an_init_picture_and_on_a_video_as_deforum_walks_it(tmp_path):
    """Four of render.py's colour coherence paths the loop had wrong or lacked, each against the walk above (a
    matcher moving a picture's mean to the reference's): 'Image' coherence (a fixed picture: frame 0 is matched to it
    after it is diffused, the moved frames before); 'Video Input' coherence with hybrid video (the same, to the
    video's frame taken every 2 frames); an init picture with legacy_colormatch off (the first moved
    picture becomes the sample, as Deforum takes no sample from an init's frame 0: the loop recursed for ever
    looking for its reference); and Video Input mode, where each frame starts from the video's frame and only the
    diffused frames are matched."""
    from nodes.generate.feedback import FeedbackLoop, KeyStore, video_reference
    rng = np.random.default_rng(2)
    first, image, init = (rng.integers(0, 200, (8, 8, 3), dtype=np.uint8) for _ in range(3))
    video, hybrid = (rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8) for _ in range(2))

    def matcher(ref):
        return lambda p: (p.astype(int) - p.mean(axis=(0, 1)).round().astype(int)
                          + ref.mean(axis=(0, 1)).round().astype(int)).clip(0, 255).astype(np.uint8)

    def warmer(picture, k):
        base = first if picture is None else picture
        return (base.astype(int) + [40, 0, -40 + k]).clip(0, 255).astype(np.uint8)
    cases = [dict(image=image), dict(init=init), dict(video=video), dict(video=video, image=image),
             dict(hybrid=hybrid, every=2)]
    for i, (case, legacy) in enumerate((c, lg) for c in cases for lg in (False, True)):
        want = _deforum_walk(5, warmer, _shift, matcher, legacy=legacy, **case)
        v = case.get("video")
        step = _shift if v is None else (lambda picture, k: v[k])
        loop = FeedbackLoop(5, 1, step, warmer, KeyStore(tmp_path / str(i)), (8, 8, 3),
                            v[0] if v is not None else case.get("init"),
                            # (Match Frame 0 matches nothing in Video Input mode: the import sets none)
                            None if v is not None and "image" not in case else matcher, match_diffused=not legacy,
                            reference=video_reference(lambda p, k: hybrid[k], 2, 1) if "hybrid" in case else
                            case.get("image"), from_video=v is not None)
        got = [loop.frame(j) for j in range(5)]
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), (case.keys(), legacy)
    # with cadence 2 Deforum takes the video's frame only at diffused frames that are multiples of `every` (3)
    assert [video_reference(lambda p, k: k, 3, 2)(k)[1] for k in (0, 2, 4, 6, 8, 12)] == [0, 0, 0, 6, 6, 12]
    # the reference did something: Match Frame 0 in its place gives other frames
    plain = FeedbackLoop(5, 1, _shift, warmer, KeyStore(tmp_path / "plain"), (8, 8, 3), None, matcher,
                         match_diffused=True)
    assert not np.array_equal(plain.frame(4), _deforum_walk(5, warmer, _shift, matcher, legacy=False,
                                                             image=image)[4])


def test_histogram_matching_moves_a_frame_toward_the_reference():
    from nodes.common.color import histogram_matcher
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    dark = (rng.integers(0, 256, (32, 32, 3)) * 0.4).astype(np.uint8)
    for space in ("rgb", "lab", "hsv"):
        out = histogram_matcher(ref, space)(dark)
        assert abs(out.mean() - ref.mean()) < 0.2 * abs(dark.mean() - ref.mean()), space


def test_schedules_are_evaluated_per_frame_and_checked():
    from graph_engine import NodeError
    from nodes.generate.feedback import frame_schedules
    p = frame_schedules(7, 2, denoise="0:(0.2), 6:(0.8)", cfg="0:(4), 3:(10)", steps="0:(2), 6:(8)", seed=5)
    np.testing.assert_allclose(p.denoise, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert list(p.steps) == [2, 3, 4, 5, 6, 7, 8] and p.cfg[3] == 10 and p.cfg[1] == 6
    assert list(p.seeds) == [5, 5, 6, 6, 7, 7, 8]          # iter: one more for every diffused frame
    assert list(frame_schedules(3, 1, denoise=0.5, cfg=7, steps=4, seed=5, seed_behaviour="fixed").seeds) == [5] * 3
    assert list(frame_schedules(3, 1, denoise=0.5, cfg=7, steps=4, seed=5, seed_behaviour="schedule",
                                seed_schedule="100+t*t").seeds) == [100, 101, 104]
    with pytest.raises(NodeError, match="denoise is 1.1 at frame 1; it must be within 0..1: change the denoise schedule"):
        frame_schedules(3, 1, denoise="0:(1), 2:(1.2)", cfg=7, steps=4, seed=0)


def test_hybrid_settings_that_would_do_nothing_are_refused():
    """A hybrid composite, motion or video colour coherence with no hybrid video connected, or a hybrid video beside a
    video to diffuse, rendered as if they were not set, without a word. Refused before any model is touched."""
    from graph_engine import NodeError
    from graph_engine.clip import Clip
    from nodes.generate.feedback import feedback_clip
    clip = Clip(3, 8.0, 64, 64, lambda a, b: np.zeros((b - a, 64, 64, 3), np.uint8))
    kw = dict(width=64, height=64, denoise="0.5", cfg="5", steps="3", sampler="euler", scheduler="default", seed=3,
              seed_behaviour="iter", seed_schedule="0", cadence=1, color_coherence="lab", border="replicate", fps=8.0)
    with pytest.raises(NodeError, match="^generate.feedback: hybrid_composite normal and color_video_every 2 without a "
                                        "hybrid video: connect hybrid_video .an io.load_video., or set hybrid_composite "
                                        "to none and color_video_every to 0$"):
        feedback_clip(_Ctx(), None, None, None, None, None, None, hybrid={"composite": "normal", "motion": "none"},
                      color_video_every=2, **kw)
    with pytest.raises(NodeError, match="a video and a hybrid video: diffusing a video frame by frame"):
        feedback_clip(_Ctx(), None, None, None, None, None, None, video=clip, hybrid_video=clip,
                      hybrid={"composite": "normal", "motion": "none"}, **kw)


def test_the_moved_picture_is_greyed_scaled_and_sharpened_in_deforums_order():
    """Deforum's order before img2img: grey (color_force_grayscale), contrast, anti-blur (an unsharp mask), checked
    against the luma weights, a Gaussian written out from its formula and numpy's reflecting border."""
    from nodes.generate.feedback import frame_schedules, prepared
    pic = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8), (0, 0), 1.5)
    plan = frame_schedules(3, 1, denoise="0.5", cfg=7, steps=4, seed=0, contrast="0.9", sharpen="0:(0), 1:(0.6)",
                           sharpen_kernel="5", sharpen_sigma="1.2", sharpen_threshold="0:(0), 1:(0), 2:(255)",
                           grayscale=True)
    scaled = np.clip(np.rint(np.rint(pic.astype(np.float64) @ [0.299, 0.587, 0.114]) * 0.9), 0, 255)
    x = np.arange(5) - 2
    g = np.exp(-x ** 2 / (2 * 1.2 ** 2))
    g /= g.sum()
    padded = np.pad(scaled, 2, mode="reflect")
    blur = np.rint(sum(g[i] * g[j] * padded[i:i + 32, j:j + 40] for i in range(5) for j in range(5)))
    want = np.clip(np.rint(1.6 * scaled - 0.6 * blur), 0, 255)
    for k, expected in ((0, scaled), (1, want)):
        got = prepared(pic, plan, k).astype(int)
        assert (got == got[..., :1]).all()                                  # grey
        err = np.abs(got[..., 0] - expected)
        assert err.max() <= 2 and err.mean() < 0.3, (k, err.max(), err.mean())
    assert np.abs(want - scaled).mean() > 1                                 # the sharpening did something
    # frame 2 sharpens as much, but above a threshold no detail reaches: left as it is
    np.testing.assert_array_equal(prepared(pic, plan, 2)[..., 0], prepared(pic, plan, 0)[..., 0])


def test_perlin_noise_is_deforums_gradient_noise():
    """Against Deforum's rand_perlin_2d written out in torch (the gist it cites), with the same gradients."""
    import math
    import torch
    from nodes.generate.feedback import perlin_octaves
    h, w, res = 32, 48, (2, 4)
    got = perlin_octaves(h, w, res[1], res[0], 1, 0.5, np.random.default_rng(5))
    angles = torch.from_numpy(np.random.default_rng(5).uniform(0, 2 * np.pi, (res[0] + 1, res[1] + 1)))
    delta, d = (res[0] / h, res[1] / w), (h // res[0], w // res[1])
    grid = torch.stack(torch.meshgrid(torch.arange(0, res[0], delta[0], dtype=torch.float64),
                                      torch.arange(0, res[1], delta[1], dtype=torch.float64), indexing="ij"), -1) % 1
    grads = torch.stack((torch.cos(angles), torch.sin(angles)), -1)

    def tile(a, b):
        return grads[a[0]:a[1], b[0]:b[1]].repeat_interleave(d[0], 0).repeat_interleave(d[1], 1)

    def dot(grad, shift):
        return (torch.stack((grid[..., 0] + shift[0], grid[..., 1] + shift[1]), -1) * grad).sum(-1)
    n00, n10 = dot(tile([0, -1], [0, -1]), [0, 0]), dot(tile([1, None], [0, -1]), [-1, 0])
    n01, n11 = dot(tile([0, -1], [1, None]), [0, -1]), dot(tile([1, None], [1, None]), [-1, -1])
    t = 6 * grid ** 5 - 15 * grid ** 4 + 10 * grid ** 3
    want = math.sqrt(2) * torch.lerp(torch.lerp(n00, n10, t[..., 0]), torch.lerp(n01, n11, t[..., 0]), t[..., 1])
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    assert got.std() > 0.1


def test_perlin_noise_comes_in_blobs():
    """The noise mixed into the moved picture: white noise is equally strong everywhere; Perlin-shaped noise is
    strong in some 8x8 blocks and faint in others."""
    from nodes.generate.feedback import frame_schedules, prepared
    grey = np.full((64, 64, 3), 128, np.uint8)

    def block_spread(perlin):
        plan = frame_schedules(1, 1, denoise="0.5", cfg=7, steps=4, seed=9, noise="0.5", perlin=perlin)
        dev = prepared(grey, plan, 0).astype(float) - 128
        blocks = dev[..., 0].reshape(8, 8, 8, 8).std(axis=(1, 3))
        return blocks.max() / blocks.min()
    assert block_spread(None) < 1.6          # 1.23-1.32 over seeds 0-3
    assert block_spread((4, 4, 2, 0.5)) > 2.2    # 2.49-4.06


def test_sharpening_kernel_sizes_are_odd():
    from graph_engine import NodeError
    from nodes.generate.feedback import frame_schedules
    plan = frame_schedules(5, 1, denoise="0.5", cfg=7, steps=4, seed=0, sharpen="0.2", sharpen_kernel="0:(3), 4:(7)")
    assert list(plan.sharpen_kernel) == [3, 5, 5, 7, 7]     # 3, 4, 5, 6, 7: each the nearest odd size, ties up
    with pytest.raises(NodeError, match="at frame 0 sharpen_kernel and sharpen_sigma are both 0"):
        frame_schedules(4, 1, denoise="0.5", cfg=7, steps=4, seed=0, sharpen="0.2", sharpen_kernel="0",
                        sharpen_sigma="0")


# -- on a tiny SD 1.5 --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    import torch
    from tiny_models import build_sd15_single_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.text import encode_prompt
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = build_sd15_single_file(tmp_path_factory.mktemp("tiny_sd"))
    mm = ModelManager(max_loaded=2)
    h = mm.load("sd", str(root / "diffusers"))
    parts = mm.components(h)
    enc = parts["text_encoder"]
    yield dict(root=root, model=h, vae=parts["vae"], pos=encode_prompt(enc, "0: a cat, 2: a dog"),
               neg=encode_prompt(enc, ""))
    torch.set_num_threads(threads)


class _Ctx:
    def __init__(self, folder=None):
        self.node_id, self.wants_previews, self.said, self.folder = "fb", False, [], folder
        self.device = "cpu"

    def check(self):
        pass

    def progress(self, done, total, message=""):
        pass

    def log(self, message):
        self.said.append(message)

    def partial_folder(self):
        return self.folder


def _clip(sd, cam, image=None, **kw):
    from nodes.generate.feedback import feedback_clip
    p = dict(width=64, height=64, denoise="0.5", cfg="5", steps="3", sampler="euler", scheduler="default", seed=3,
             seed_behaviour="iter", seed_schedule="0", cadence=1, color_coherence="none", border="replicate", fps=8.0)
    p.update(kw)
    return feedback_clip(_Ctx(), sd["model"], sd["vae"], sd["pos"], sd["neg"], cam, image, **p)


@pytest.fixture
def sampled(monkeypatch):
    """Each sampling run's frame settings, the run itself going through as usual."""
    import nodes.generate.sampling as sampling
    runs = []
    real = sampling.run_sampling

    def spy(handle, positive, negative, latent, **kw):
        runs.append(dict(kw, embeds=positive.embeds.clone(), frames=latent.frames))
        return real(handle, positive, negative, latent, **kw)
    monkeypatch.setattr(sampling, "run_sampling", spy)
    return runs


def test_with_denoise_0_each_frame_is_the_previous_one_zoomed_as_opencv_zooms_it(sd, sampled):
    """Frame 0 drawn from noise, then denoise 0: every frame is the one before moved by the camera step, checked
    against OpenCV's own zoom about the centre (Deforum's 2-D step) applied to the node's previous frame."""
    from nodes.motion.camera import build_path
    cam = build_path(5, 64, 64, per_frame=True, zoom="1.1", rotation_roll="3")
    frames = _clip(sd, cam, denoise="0").to_array()
    assert frames.shape == (5, 64, 64, 3) and len(sampled) == 1 and sampled[0]["denoise"] == 1.0
    step = cv2.getRotationMatrix2D((31.5, 31.5), 3, 1.1)
    for j in range(1, 5):
        want = cv2.warpAffine(frames[j - 1], step, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(frames[j].astype(int) - want).max() <= 1
        assert np.abs(frames[j].astype(int) - frames[j - 1]).mean() > 2        # it did move


def test_schedules_reach_each_frames_sampling_run(sd, sampled):
    from nodes.motion.camera import build_path
    # 32 px: what is checked is each run's settings, and 30 sampling steps at 64 px took 8.5 s of a CI worker
    cam = build_path(5, 32, 32, per_frame=True, zoom="1.05")
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    _clip(sd, cam, image, width=32, height=32, denoise="0:(0.25), 4:(0.75)", cfg="0:(2), 4:(6)", steps="0:(4), 4:(8)",
          seed=10, seed_behaviour="iter", noise_multiplier="0:(1), 4:(1.2)").to_array()
    assert [r["denoise"] for r in sampled] == [0.25, 0.375, 0.5, 0.625, 0.75]
    assert [round(r["noise_scale"], 6) for r in sampled] == [1.0, 1.05, 1.1, 1.15, 1.2]
    assert [r["cfg"] for r in sampled] == [2, 3, 4, 5, 6] and [r["steps"] for r in sampled] == [4, 5, 6, 7, 8]
    assert [r["seed"] for r in sampled] == [10, 11, 12, 13, 14] and {r["frames"] for r in sampled} == {1}
    # the prompt schedule '0: a cat, 2: a dog': frame 1 is halfway, frame 2 on is the dog
    e = [r["embeds"] for r in sampled]
    assert not np.allclose(e[0], e[2]) and np.allclose(e[2], e[4])
    np.testing.assert_allclose(e[1], (e[0] + e[2]) / 2, atol=1e-5)


def test_cadence_samples_only_every_nth_frame(sd, sampled):
    from nodes.motion.camera import build_path
    cam = build_path(7, 64, 64, per_frame=True, zoom="1.05")
    frames = _clip(sd, cam, cadence=3, seed_behaviour="fixed").to_array()
    assert len(frames) == 7 and len(sampled) == 3 and {r["seed"] for r in sampled} == {3}


WORKFLOW = """kinograph: 1
nodes:
  model: {type: load.sd, params: {path: MODEL}}
  prompt: {type: encode.text, inputs: {text_encoder: model.text_encoder}, params: {text: a cat}}
  camera: {type: motion.camera_path, params: {frames: 5, width: 64, height: 64, zoom: '1.1', schedules: per_frame}}
  loop:
    type: generate.feedback
    inputs: {model: model.model, vae: model.vae, positive: prompt.positive, negative: prompt.negative,
             camera: camera.camera}
    params: {width: 64, height: 64, steps: '2', denoise: '0.5', seed: 0}
  save: {type: io.save_video, inputs: {video: loop.video}, params: {path: out.mp4, fps: 8}}
"""


def test_the_node_runs_in_a_graph_and_a_cancelled_run_keeps_its_frames(sd, sampled, tmp_path, monkeypatch):
    import av
    from graph_engine.context import CancelToken
    from graph_engine.api import Session, load_workflow
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    wf = tmp_path / "loop.yaml"
    wf.write_text(WORKFLOW.replace("MODEL", str(sd["root"] / "diffusers")))
    cancel = CancelToken()

    def stop_after_frame_2(e):
        if e.get("event") == "node_progress" and e.get("node") == "loop" and e["done"] >= 3:
            cancel.cancel()
    res = Session(device="cpu").run(load_workflow(wf), cancel=cancel, on_event=stop_after_frame_2)
    # frames 0..2 made (iter seeds 0, 1, 2), stopped before frame 3
    assert res.cancelled and [r["seed"] for r in sampled] == [0, 1, 2]
    said = []
    res = Session(device="cpu").run(load_workflow(wf), on_event=lambda e: said.append(str(e.get("message", ""))))
    assert res.ok, res.failed
    assert [r["seed"] for r in sampled[3:]] == [3, 4]        # only what the stopped run had not made
    assert any("taking up a loop that stopped" in m for m in said)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_a_frame_that_fails_fails_the_node_with_its_own_message(sd, monkeypatch, tmp_path):
    """The loop's frames are made while the engine stores them in the disk cache: an error there is the node's
    (it read as 'could not write the disk cache', and the run went on to fail again in the writer)."""
    import nodes.generate.sampling as sampling
    from graph_engine import NodeError
    from graph_engine.api import Session, load_workflow
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    real = sampling.run_sampling

    def broken(handle, positive, negative, latent, **kw):
        if kw["seed"] == 2:
            raise NodeError("sampling broke down at step 1 of 2")
        return real(handle, positive, negative, latent, **kw)
    monkeypatch.setattr(sampling, "run_sampling", broken)
    wf = tmp_path / "loop.yaml"
    wf.write_text(WORKFLOW.replace("MODEL", str(sd["root"] / "diffusers")))
    said = []
    res = Session(device="cpu").run(load_workflow(wf), on_event=lambda e: said.append(str(e.get("message", ""))))
    assert not res.ok and res.failed["loop"] == "sampling broke down at step 1 of 2" and "save" not in res.failed
    assert not any("disk cache" in m for m in said)


def test_a_start_picture_of_another_size_is_resized_to_the_loop(sd, sampled):
    """Deforum resizes its init image to W x H; a 100x70 photo was refused (not a multiple of 8) or set the size."""
    from nodes.motion.camera import build_path
    photo = np.random.default_rng(2).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    clip = _clip(sd, build_path(2, 64, 64, per_frame=True, zoom="1.05"), photo, denoise="0")
    frames = clip.to_array()
    assert frames.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(frames[0], cv2.resize(photo, (64, 64), interpolation=cv2.INTER_AREA))
    assert sampled == []                    # denoise 0 everywhere: the picture as it is, moved


def test_each_frames_sampling_run_is_steered_by_its_own_control_frame(sd, monkeypatch):
    """A ControlNet on the model (control.apply) steers frame k by control frame k: every one-frame sampling run read
    the control video's first frame."""
    import nodes.generate.sampling as sampling
    from nodes.generate.control import Control
    from nodes.motion.camera import build_path
    seen = []

    def spy(handle, positive, negative, latent, **kw):
        seen.append(handle.option("controlnet")[0].frames)
        return latent
    monkeypatch.setattr(sampling, "run_sampling", spy)
    control = np.arange(4, dtype=np.uint8)[:, None, None, None] * np.ones((4, 8, 8, 3), np.uint8)   # frame k is k
    sd = dict(sd, model=sd["model"].with_option("controlnet", (Control("net", control, 0.8),)))
    _clip(sd, build_path(6, 64, 64, per_frame=True, zoom="1.05")).to_array()
    assert [f.shape[0] for f in seen] == [1] * 6
    assert [int(f[0, 0, 0, 0]) for f in seen] == [0, 1, 2, 3, 3, 3]    # past its end, its last frame


def test_grayscale_greys_the_picture_fed_back_and_every_diffused_frame(sd, sampled):
    """Deforum's color_force_grayscale: the moved picture img2img starts from is grey, and so is what comes out
    (a grade after the loop would have fed colour back into every frame)."""
    from nodes.motion.camera import build_path
    # 32 px: the colour of the ungreyed run was 45.0 levels between channels at 64 px, 43.9 at 32, at a sixth of the CPU
    photo = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cam = build_path(3, 32, 32, per_frame=True, zoom="1.05")
    frames = _clip(sd, cam, photo, grayscale=True, width=32, height=32).to_array()
    assert (frames == frames[..., :1]).all()
    colour = _clip(sd, cam, photo, width=32, height=32).to_array()
    assert np.abs(colour[..., 0].astype(int) - colour[..., 1]).mean() > 5     # the tiny model's output has colour


def test_an_init_image_is_diffused_at_its_own_denoise(sd, sampled):
    """Deforum's init strength is frame 0's alone; the strength schedule takes over from frame 1."""
    from nodes.motion.camera import build_path
    photo = np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _clip(sd, build_path(3, 64, 64, per_frame=True, zoom="1.05"), photo, denoise="0.5", image_denoise=0.2).to_array()
    assert [r["denoise"] for r in sampled] == [0.2, 0.5, 0.5]


def test_the_noise_multiplier_scales_the_noise_a_run_starts_from(sd):
    """run_sampling's noise_scale (A1111's initial noise multiplier) is the same run given its own noise scaled."""
    import torch
    from graph_engine import Clip
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import run_sampling
    from nodes.generate.vae_ops import encode_clip
    picture = np.random.default_rng(8).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    latent = encode_clip(sd["vae"], Clip.from_array(picture, 8.0), lambda: None)
    kw = dict(steps=3, cfg=5.0, sampler="euler", denoise=0.6, seed=21)
    scaled = run_sampling(sd["model"], sd["pos"], sd["neg"], latent, noise_scale=1.5, **kw).samples
    noise = get_adapter("sd").draw_noise(tuple(latent.samples.shape), torch.Generator("cpu").manual_seed(21))
    given = run_sampling(sd["model"], sd["pos"], sd["neg"], latent, noise=noise * 1.5, **kw).samples
    plain = run_sampling(sd["model"], sd["pos"], sd["neg"], latent, **kw).samples
    torch.testing.assert_close(scaled, given)
    assert (scaled - plain).abs().mean() > 1e-3


def test_with_a_depth_model_near_things_move_more_than_far_ones(monkeypatch):
    """Deforum's depth warping: the camera steps sideways, and the half of the picture its depth model calls near
    (left) slides further than the far half (measured by phase correlation of each half against the picture)."""
    import nodes.depth.estimate as depth
    from nodes.generate.feedback import camera_step
    from nodes.motion.camera import build_path
    from nodes.motion.warp import CameraMover, picture_at

    class Near:                     # left half near (disparity 1), right half far (0)
        def disparity(self, frame):
            d = np.zeros(frame.shape[:2], np.float32)
            d[:, : frame.shape[1] // 2] = 1.0
            return d
    monkeypatch.setattr(depth, "load_estimator", lambda name, device="cpu": Near())
    picture = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 256, (64, 128, 3), dtype=np.uint8), (0, 0), 2)
    cam = build_path(2, 128, 64, per_frame=True, translation_x="0.02")
    mover = CameraMover(picture_at(cam, 1.0), 128, 64, "perspective", "compounding", "replicate")

    def shift(moved, half):
        cols = slice(8, 56) if half == 0 else slice(72, 120)
        a, b = (np.float32(cv2.cvtColor(x[8:56, cols], cv2.COLOR_RGB2GRAY)) for x in (picture, moved))
        return cv2.phaseCorrelate(a, b)[0][0]
    deep = camera_step(mover, "tiny-depth", (1.0, 3.0), "cpu")(picture, 1)
    flat = camera_step(mover, "", (1.0, 3.0), "cpu")(picture, 1)
    near, far = abs(shift(deep, 0)), abs(shift(deep, 1))
    assert near > 2 * far > 0.3                       # 3x the distance: a third of the shift
    assert abs(shift(flat, 0) - shift(flat, 1)) < 0.2   # a plane moves as one
    assert abs(abs(shift(flat, 0)) - near) < 0.2       # the plane is 1 away, as the near half


def test_the_loop_runs_with_a_depth_model_from_the_model_folders(sd, sampled, tmp_path, monkeypatch):
    from tiny_models import build_depth_anything
    from nodes.motion.camera import build_path
    build_depth_anything(tmp_path / "models" / "depth" / "tiny-da")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    photo = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cam = build_path(3, 64, 64, per_frame=True, translation_z="0.05", translation_x="0.02")
    deep = _clip(sd, cam, photo, denoise="0", depth_model="tiny-da").to_array()
    flat = _clip(sd, cam, photo, denoise="0").to_array()
    assert deep.shape == (3, 64, 64, 3) and np.abs(deep[2].astype(int) - flat[2]).mean() > 1


# -- hybrid video --------------------------------------------------------------------------------------------------
def _deforum_hybrid_composite(prev_rgb, video_rgb, alpha, mask_type, blend, contrast, inverse, equalize="None",
                              auto_contrast=False, low=0, high=100):
    """hybrid_video.py's hybrid_composite (Deforum, 2023), its pictures in RGB and without its file handling."""
    from PIL import Image, ImageChops, ImageEnhance, ImageOps
    prev_img_hybrid, video_image = Image.fromarray(prev_rgb), Image.fromarray(video_rgb)
    hybrid_mask = None
    if mask_type == 'Blend':
        hybrid_mask = Image.blend(ImageOps.grayscale(prev_img_hybrid), ImageOps.grayscale(video_image), blend)
    elif mask_type == 'Difference':
        hybrid_mask = ImageChops.difference(ImageOps.grayscale(prev_img_hybrid), ImageOps.grayscale(video_image))
    if inverse and mask_type != "None":
        hybrid_mask = ImageOps.invert(hybrid_mask)
    if hybrid_mask is None:
        hybrid_comp = video_image
    else:
        hybrid_mask = ImageOps.grayscale(hybrid_mask)
        if equalize in ['Before', 'Both']:
            hybrid_mask = ImageOps.equalize(hybrid_mask)
        hybrid_mask = ImageEnhance.Contrast(hybrid_mask).enhance(contrast)
        if auto_contrast:
            image = np.array(hybrid_mask)
            min_val, max_val = np.percentile(image, low), np.percentile(image, high)
            image = np.clip(255 * (image - min_val) / (max_val - min_val), 0, 255)
            hybrid_mask = ImageOps.grayscale(Image.fromarray(image))
        if equalize in ['After', 'Both']:
            hybrid_mask = ImageOps.equalize(hybrid_mask)
        hybrid_comp = Image.composite(prev_img_hybrid, video_image, hybrid_mask)
    return np.asarray(Image.blend(prev_img_hybrid, hybrid_comp, alpha))


def _deforum_flow_move(img, flow, flow_factor):
    """hybrid_video.py's image_transform_optical_flow with its remap (a quarter of the picture reflected around it)."""
    flow = flow * flow_factor if flow_factor != 1 else flow.copy()
    flow = -flow
    h, w = img.shape[:2]
    flow[:, :, 0] += np.arange(w)
    flow[:, :, 1] += np.arange(h)[:, np.newaxis]
    dh, dw = int(h * 0.25), int(w * 0.25)
    larger = cv2.copyMakeBorder(img, dh, dh, dw, dw, cv2.BORDER_REFLECT_101)
    lh, lw = larger.shape[:2]
    xg, yg = np.meshgrid(np.arange(lw), np.arange(lh))
    big = np.dstack((xg, yg)).astype(np.float32)
    flow[:, :, 0] += dw
    flow[:, :, 1] += dh
    big[dh:dh + h, dw:dw + w] = flow
    out = cv2.remap(larger, big, None, cv2.INTER_LINEAR, cv2.BORDER_REFLECT_101)
    return out[dh:lh - dh, dw:lw - dw]


def test_hybrid_composite_and_motion_are_deforums():
    """The composite (each mask type, inverted, contrast) against hybrid_video.py's own code; the flow move against its
    padded remap; the DIS medium flow against OpenCV's preset as Deforum calls it; the fitted moves find a shift."""
    from nodes.generate.hybrid import composited, flow_moved, matrix_moved, video_flow, video_matrix
    rng = np.random.default_rng(4)
    prev, video = (cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), np.uint8), (0, 0), 2) for _ in range(2))
    for mask, name in (("none", "None"), ("blend", "Blend"), ("difference", "Difference")):
        for alpha, blend, contrast, inverse, eq, cut in ((0.5, 0.5, 1.0, False, "None", None),
                                                         (0.3, 0.8, 1.7, True, "Before", (0, 100)),
                                                         (0.7, 0.2, 0.8, False, "Both", (10, 90))):
            np.testing.assert_array_equal(
                composited(prev, video, alpha, mask, blend, contrast, inverse, eq.lower(), cut),
                _deforum_hybrid_composite(prev, video, alpha, name, blend, contrast, inverse, eq, cut is not None,
                                          *(cut or (0, 100))))
    moved = np.roll(prev, (2, 3), axis=(0, 1))
    flow = video_flow(prev, moved, "dis_medium")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    np.testing.assert_array_equal(flow, dis.calc(*(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (prev, moved)), None))
    for factor in (1.0, 0.5):
        got = flow_moved(prev, flow, factor).astype(int)
        assert np.abs(got - _deforum_flow_move(prev, flow, factor)).max() <= 1
    # the flow carries the picture along: prev moved by the flow is the shifted picture (inside the edges)
    assert np.abs(flow_moved(prev, flow, 1.0)[8:-8, 8:-8].astype(int) - moved[8:-8, 8:-8]).mean() < 3
    for method in ("dis_fine", "farneback"):
        f = video_flow(prev, moved, method)
        assert np.abs(np.median(f[16:-16, 16:-16].reshape(-1, 2), axis=0) - (3, 2)).max() < 0.5, method
    boxes = np.full((96, 128, 3), 90, np.uint8)         # corners for SIFT to find
    for x, y, w, h in rng.integers(0, 128, (40, 4)):
        cv2.rectangle(boxes, (int(x), int(y) % 96), (int(x + 4 + w % 12), int(y % 96 + 4 + h % 12)),
                      rng.integers(0, 256, 3).tolist(), -1)
    shifted = np.roll(boxes, (2, 3), axis=(0, 1))
    assert np.array_equal(video_matrix(boxes, boxes[:, :, :1].repeat(3, 2) * 0, "affine"), np.eye(3)[:2])
    for kind in ("affine", "perspective"):
        m = video_matrix(boxes, shifted, kind)
        np.testing.assert_allclose(m[:2, 2], (3, 2), atol=0.3)
        assert np.abs(matrix_moved(boxes, m)[8:-8, 8:-8].astype(int) - shifted[8:-8, 8:-8]).mean() < 3


def test_hybrid_video_blends_into_and_moves_the_loops_frames(sd, sampled):
    """Deforum's hybrid video on the loop, denoise 0 (each frame is the moved picture as it goes to the model): a
    still camera, the video's flow from frame k-1 to k moving the frame before, then the video's frame k blended in
    at that frame's alpha; After Generation blends it into what the model made. The clip is cut to the video."""
    from graph_engine import Clip
    from nodes.generate.hybrid import composited, flow_moved, video_flow
    from nodes.motion.camera import build_path
    rng = np.random.default_rng(5)
    base = cv2.GaussianBlur(rng.integers(0, 256, (32, 48, 3), np.uint8), (0, 0), 1.5)
    v = np.stack([np.roll(base, (0, 2 * k), axis=(0, 1))[:, :32] for k in range(4)])
    cam = build_path(6, 32, 32, per_frame=True)
    hybrid = dict(composite="normal", alpha="0:(0.2), 3:(0.8)", mask="none", mask_blend="0.5", mask_contrast="1",
                  mask_inverse=False, mask_equalize="none", mask_auto_contrast=False, mask_cutoff_low="0",
                  mask_cutoff_high="100", motion="optical_flow", flow="dis_medium", flow_factor="1")
    frames = _clip(sd, cam, width=32, height=32, denoise="0", hybrid_video=Clip.from_array(v, 8.0), hybrid=hybrid).to_array()
    assert len(frames) == 4 and len(sampled) == 1
    for k in range(1, 4):
        moved = flow_moved(frames[k - 1], video_flow(v[k - 1], v[k], "dis_medium"), 1.0)
        want = composited(moved, v[k], 0.2 + 0.2 * k, "none")
        assert np.abs(frames[k].astype(int) - want).max() <= 1, k
    after = _clip(sd, cam, width=32, height=32, denoise="0", hybrid_video=Clip.from_array(v, 8.0),
                  hybrid=dict(hybrid, composite="after_generation", motion="none", alpha="0.5")).to_array()
    for k in range(1, 4):
        assert np.abs(after[k].astype(int) - composited(after[k - 1], v[k], 0.5, "none")).max() <= 1, k
    # 'Video Input' colour coherence: each moved picture matched to the video's frame, taken every 2 frames
    from nodes.common.color import histogram_matcher
    kept = _clip(sd, cam, width=32, height=32, denoise="0", hybrid_video=Clip.from_array(v, 8.0), color_coherence="lab",
                 color_video_every=2, hybrid=dict(hybrid, motion="none", alpha="0.5")).to_array()
    for k in range(1, 4):
        want = histogram_matcher(v[k - k % 2], "lab")(composited(kept[k - 1], v[k], 0.5, "none"))
        assert np.abs(kept[k].astype(int) - want).max() <= 1, k


def test_the_loop_offers_only_samplers_that_draw_one_picture():
    """ar_video makes a video block by block with an autoregressive Wan model; the loop diffuses one picture a frame,
    where it could only fail."""
    from graph_engine.registry import default_registry
    param = default_registry().get("generate.feedback").params["sampler"]
    assert "ar_video" not in param.choices and "euler" in param.choices
