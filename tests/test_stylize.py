"""Stylization and relighting nodes: looks, temporal stability with random access, AdaIN with random weights."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.footage import footage
from graph_engine import Clip, NodeError
from graph_engine.context import Context
from graph_engine.schedule import Schedule
from nodes.metrics.measures import psnr
from nodes.metrics.series import summary, warp_error
from nodes.relight import nodes as relight_nodes
from nodes.stylize import nodes as stylize_nodes
from node_call import Nodes


stylize, relight = Nodes(stylize_nodes), Nodes(relight_nodes)
W, H = 96, 64


@pytest.fixture(scope="module")
def source():
    return Clip.from_array(footage(24, W, H, seed=2))


@pytest.mark.parametrize("name, kw", [("painterly", {}), ("painterly", {"method": "edge_preserving"}),
                                      ("kuwahara", {}), ("sketch", {}), ("sketch", {"style": "ink"}),
                                      ("sketch", {"style": "color_pencil"}), ("cartoon", {}), ("posterize", {})])
def test_filters_change_the_look_and_keep_the_shape(source, name, kw):
    frames = source.frames(0, 2)
    out = getattr(stylize, name)(Context("s"), Clip.from_array(frames), **kw).to_array()
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert psnr(out[0], frames[0]) < 40 and out.std() > 5   # a new look, not a blank frame


def test_posterize_and_kuwahara_behave(source):
    frame = source.frames(0, 1)
    out = stylize.posterize(Context("s"), Clip.from_array(frame), levels=4).to_array()
    assert len(np.unique(out)) <= 4
    # Kuwahara flattens noise inside regions but keeps a step edge sharp (unlike a blur of the same size).
    step = np.zeros((1, 40, 40, 3), np.uint8)
    step[:, :, 20:] = 200
    noisy = np.clip(step + np.random.default_rng(0).normal(0, 12, step.shape), 0, 255).astype(np.uint8)
    k = stylize.kuwahara(Context("s"), Clip.from_array(noisy), radius=4).to_array()[0].astype(float)
    assert k[5:35, 4:14].std() < 0.5 * noisy[0, 5:35, 4:14].astype(float).std()
    assert k[20, 21:25].mean() - k[20, 15:19].mean() > 150


def shimmering(clip):
    """A per-frame stylization that is unstable in time: the look jitters from frame to frame."""
    rng = np.random.default_rng(0)
    frames = clip.to_array().astype(np.float32)
    jitter = rng.normal(0, 14, (len(frames), H // 8, W // 8, 3)).astype(np.float32)
    blotches = np.stack([cv2.resize(j, (W, H), interpolation=cv2.INTER_CUBIC) for j in jitter])
    return Clip.from_array(np.clip(frames + blotches, 0, 255).astype(np.uint8))


def test_temporal_lowers_warp_error_and_renders_any_range(source):
    sty = shimmering(source)
    ctx_events = []
    out = stylize.temporal(Context("t", emit=ctx_events.append), sty, source)
    full = out.to_array()
    before = summary(warp_error(None, sty, source))
    after = summary(warp_error(None, Clip.from_array(full), source))
    assert after < 0.6 * before
    assert ctx_events[-1]["done"] == len(full)
    # A shard: frames [14, 20) of a clip read in chunks of 4, each computed alone from 8 warm-up frames,
    # against the one sequential recursion over the whole clip.
    small = Clip(sty.length, 24, W, H, lambda a, b: sty.frames(a, b), chunk=4)
    part = stylize.temporal(Context("t"), small, source, warmup=8).frames(14, 20)
    ref = source.frames(14, 20)
    assert abs(np.mean([psnr(a, r) for a, r in zip(part, ref)]) -
               np.mean([psnr(a, r) for a, r in zip(full[14:20], ref)])) < 0.1
    with pytest.raises(NodeError, match="same length"):
        stylize.temporal(Context("t"), Clip.from_array(sty.frames(0, 5)), source)


def test_a_flow_does_not_depend_on_the_frame_size_measured_before():
    """OpenCV's DIS re-chose its pyramid levels for a small frame and kept them on the object
    estimate_flow reuses per thread: a 320x240 pair's flow changed by 34 px once a 48x48 pair had
    been measured, so stylize.temporal's output depended on what ran before it in the process."""
    from nodes.common.flow import estimate_flow
    big, small = footage(2, 320, 240, seed=3), footage(2, 48, 48, seed=3)
    first = estimate_flow(big[0], big[1], "medium")
    estimate_flow(small[0], small[1], "medium")
    np.testing.assert_array_equal(estimate_flow(big[0], big[1], "medium"), first)


def test_temporal_on_thin_and_tiny_clips_runs_without_crashing():
    """A 200x24 clip crashed the whole process (DIS read past its pyramid: SIGSEGV), a 5x3 one
    ended in OpenCV's "width or height >= 12". Run in a child: a crash must fail the test, not
    end pytest."""
    import subprocess
    import sys
    code = (
        "import numpy as np\n"
        "from graph_engine import Clip\nfrom graph_engine.context import Context\n"
        "from nodes.stylize import nodes\nfrom node_call import Nodes\n"
        "rng = np.random.default_rng(0)\n"
        "for w, h in ((200, 24), (320, 24), (5, 3), (1, 1), (4097, 33)):\n"
        "    src = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)\n"
        "    clip = Clip.from_array(src)\n"
        "    out = Nodes(nodes).temporal(Context('t'), clip, clip).to_array()\n"
        "    assert out.shape == src.shape and np.array_equal(out[0], src[0]), (w, h)\n"
        "print('ALL RAN')\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert r.returncode == 0 and "ALL RAN" in r.stdout, (r.returncode, r.stderr[-2000:])


def test_adain_runs_random_weights_and_names_missing_files(source, tmp_path):
    from nodes.stylize.adain import decoder, encoder
    torch.manual_seed(0)
    torch.save(encoder().state_dict(), tmp_path / "vgg.pth")
    torch.save(decoder().state_dict(), tmp_path / "dec.pth")
    style = footage(1, 48, 48, seed=5)[0]
    out = stylize.adain(Context("a"), Clip.from_array(source.frames(0, 2)), style,
                        encoder_path=str(tmp_path / "vgg.pth"), decoder_path=str(tmp_path / "dec.pth")).to_array()
    assert out.shape == (2, H, W, 3) and out.dtype == np.uint8
    with pytest.raises(NodeError, match="encoder weights not found.*vgg_normalised.pth"):
        stylize.adain(Context("a"), source, style, encoder_path=str(tmp_path / "no.pth"),
                      decoder_path=str(tmp_path / "dec.pth"))
    with pytest.raises(NodeError, match="not an AdaIN decoder state dict"):
        stylize.adain(Context("a"), source, style, encoder_path=str(tmp_path / "vgg.pth"),
                      decoder_path=str(tmp_path / "vgg.pth"))


def test_adain_of_tiny_frames_and_styles_runs(tmp_path):
    """Frames or a style image of 8 px or less on a side ended in "RuntimeError: Argument #4:
    Padding size should be less than the corresponding input dimension"."""
    from nodes.stylize.adain import decoder, encoder
    torch.manual_seed(0)
    torch.save(encoder().state_dict(), tmp_path / "vgg.pth")
    torch.save(decoder().state_dict(), tmp_path / "dec.pth")
    paths = dict(encoder_path=str(tmp_path / "vgg.pth"), decoder_path=str(tmp_path / "dec.pth"))
    for w, h in ((1, 1), (5, 3), (8, 8)):
        frames = footage(2, 16, 16, seed=1)[:, :h, :w].copy()
        out = stylize.adain(Context("a"), Clip.from_array(frames), footage(1, 48, 48, seed=5)[0], **paths)
        assert out.to_array().shape == (2, h, w, 3)
        tiny_style = footage(1, 16, 16, seed=5)[0][:h, :w].copy()
        out = stylize.adain(Context("a"), Clip.from_array(footage(1, 32, 24, seed=1)), tiny_style, **paths)
        assert out.to_array().shape == (1, 24, 32, 3)


def test_learned_weights_that_are_no_checkpoint_are_named_so(tmp_path):
    """A picture or a cut-off download given as weights was reported with torch's own text, which
    advises loading it again with weights_only=False (running whatever code the file holds)."""
    from nodes.metrics.learned import _state
    from nodes.stylize.adain import decoder, encoder
    torch.save(encoder().state_dict(), tmp_path / "vgg.pth")
    torch.save(decoder().state_dict(), tmp_path / "dec.pth")
    cv2.imwrite(str(tmp_path / "style.png"), footage(1, 16, 16, seed=5)[0])
    (tmp_path / "cut.pth").write_bytes((tmp_path / "dec.pth").read_bytes()[:5000])
    for bad in ("style.png", "cut.pth"):
        with pytest.raises(NodeError) as e:
            stylize.adain(Context("a"), Clip.from_array(footage(1, 16, 16, seed=1)), footage(1, 16, 16, seed=5)[0],
                          encoder_path=str(tmp_path / "vgg.pth"), decoder_path=str(tmp_path / bad))
        assert f"AdaIN decoder weights: {tmp_path / bad} is not a readable checkpoint" in str(e.value)
        assert "weights_only" not in str(e.value)
        with pytest.raises(NodeError) as e:
            _state(tmp_path / bad, "LPIPS weights")
        assert f"LPIPS weights: {tmp_path / bad} is not a readable checkpoint" in str(e.value)
        assert "weights_only" not in str(e.value)


def test_relight_follows_the_light(source):
    # A dome as depth: its side facing the light gets brighter than the far side.
    ys, xs = np.mgrid[0:H, 0:W]
    dome = np.clip(255 * (1 - ((xs - W / 2) ** 2 + (ys - H / 2) ** 2) / (H / 2) ** 2), 0, 255).astype(np.uint8)
    depth = Clip.from_array(np.repeat(dome[None, ..., None], 3, -1))
    grey = Clip.from_array(np.full((2, H, W, 3), 128, np.uint8))

    def lit(azimuth, **kw):
        return relight.directional(Context("r"), grey, depth=depth, azimuth=Schedule.constant(azimuth),
                                   elevation=Schedule.constant(30.0), **kw).to_array()[0].astype(float)

    right = lit(0.0)
    assert right[H // 2, W // 2 + 12].mean() > right[H // 2, W // 2 - 12].mean() + 20
    left = lit(180.0)
    assert left[H // 2, W // 2 - 12].mean() > left[H // 2, W // 2 + 12].mean() + 20
    warm = lit(0.0, color="#ff8040")
    assert warm[..., 0].mean() > warm[..., 2].mean() + 10
    same = lit(0.0, strength=0.0)
    assert np.abs(same - 128).max() <= 1
    from_frame = relight.directional(Context("r"), source, azimuth=Schedule.constant(90.0),
                                     elevation=Schedule.constant(30.0)).to_array()
    assert from_frame.shape == source.to_array().shape
    with pytest.raises(NodeError, match="#rrggbb"):
        relight.directional(Context("r"), grey, color="orange", azimuth=Schedule.constant(0.0),
                            elevation=Schedule.constant(30.0))


def test_relight_without_any_light_still_blends_by_strength(source):
    """ambient 0 and intensity 0 divided 0 by 0: every pixel nan, so black at any strength (and numpy
    warnings); strength 0.5 now gives half the light of the original, in linear light."""
    from nodes.common.color import linear_to_srgb, srgb_to_linear, to_float, to_uint8
    frames = source.frames(0, 2)
    out = relight.directional(Context("r"), Clip.from_array(frames), azimuth=Schedule.constant(0.0),
                              elevation=Schedule.constant(30.0), ambient=0.0, intensity=0.0,
                              strength=0.5).to_array()
    want = to_uint8(linear_to_srgb(0.5 * srgb_to_linear(to_float(frames))))
    assert np.abs(out.astype(int) - want).max() <= 1


def test_every_parameter_of_the_look_and_clip_nodes_says_what_it_does():
    """The editor shows a parameter's help as its tooltip: colour match strength, colour transfer's method
    and strength, Kuwahara sectors, sketch style, relight intensity, the video nodes' n, offset, start,
    fps and method and the test pattern's sizes had none, and relight's angles gave no unit."""
    from nodes.color import nodes as color_nodes
    from nodes.video import nodes as video_nodes, test_pattern
    bare = [f"{spec.type}.{name}"
            for module in (color_nodes, relight_nodes, stylize_nodes, video_nodes, test_pattern)
            for fn in vars(module).values() if hasattr(fn, "__kinograph_spec__")
            for spec in [fn.__kinograph_spec__] for name, p in spec.params.items() if not p.help.strip()]
    assert bare == []
    params = relight_nodes.directional.__kinograph_spec__.params
    assert params["azimuth"].help.startswith("degrees") and params["elevation"].help.startswith("degrees")


def test_relight_light_colour_is_the_colour_picked():
    """The light's #rrggbb is an sRGB swatch; it was used as linear gains, so a white wall facing a
    #ffd8a8 light came out (255, 236, 213), paler than the colour picked. Lit by it alone (no ambient),
    the wall is now that colour."""
    wall = Clip.from_array(np.full((1, 32, 32, 3), 255, np.uint8))
    for hex_colour in ("#ffd8a8", "#ff8040", "#80c0ff"):
        out = relight.directional(Context("r"), wall, color=hex_colour, ambient=0.0,
                                  azimuth=Schedule.constant(0.0), elevation=Schedule.constant(90.0)).to_array()
        want = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert np.abs(out[0, 16, 16].astype(int) - want).max() <= 1, hex_colour


def test_cartoon_bands_lightness_and_keeps_greys_grey():
    """A warm grey ramp (a wall: R a few levels above G above B) stays warm grey: banding R, G and B apart put
    the bin edges of the three channels at different places, so it came out in red, yellow and neutral stripes
    (R - B up to 40 levels, and G above R in places). A neutral ramp shows `levels` greys."""
    g = np.repeat(np.linspace(20, 230, 256)[None, :], 24, axis=0)
    warm = np.clip(np.dstack([g + 6, g + 2, g]), 0, 255).astype(np.uint8)[None]
    out = stylize.cartoon(Context("s"), Clip.from_array(warm), levels=8, edges=0.0, smoothing=0).to_array()[0]
    tint = out[..., 0].astype(int) - out[..., 2].astype(int)
    assert tint.min() >= 0 and tint.max() <= 14, (tint.min(), tint.max())
    assert (out[..., 1].astype(int) <= out[..., 0] + 1).all()
    grey = np.repeat(g.astype(np.uint8)[None, ..., None], 3, axis=-1)
    bands = stylize.cartoon(Context("s"), Clip.from_array(grey), levels=5, edges=0.0, smoothing=0).to_array()[0]
    assert (bands == bands[..., :1]).all() and 3 <= len(np.unique(bands)) <= 5


@pytest.mark.parametrize("sharpness", [1.0, 2.0, 8.0])
def test_kuwahara_keeps_an_edge_at_every_sharpness(sharpness):
    """Sharpness sets how fast rough sectors lose, never whether the filter is a Kuwahara: its lower half was a
    plain blur (a 200-level step kept 79 levels across two pixels at 1 and 2, the 195 of sharpness 8)."""
    step = np.zeros((1, 40, 40, 3), np.uint8)
    step[:, :, 20:] = 200
    noisy = np.clip(step + np.random.default_rng(0).normal(0, 12, step.shape), 0, 255).astype(np.uint8)
    k = stylize.kuwahara(Context("s"), Clip.from_array(noisy), radius=6, sharpness=sharpness).to_array()[0]
    k = k.astype(float)
    assert k[5:35, 21].mean() - k[5:35, 18].mean() > 140
    assert k[5:35, 4:12].std() < 0.5 * noisy[0, 5:35, 4:12].astype(float).std()


def test_adain_takes_a_style_image_at_the_scale_it_learned_styles(tmp_path, monkeypatch):
    """A large style image is brought to 512 px on its shorter side, as the release's style_size: at full size a
    bigger scan of the same painting gave smaller strokes (other feature statistics), and the encoder held 4.8 GB
    for a 3000x2000 picture (a 6000x4000 scan ran out of memory). A smaller one is taken as it is."""
    from nodes.stylize import adain
    torch.manual_seed(0)
    torch.save(adain.encoder().state_dict(), tmp_path / "vgg.pth")
    torch.save(adain.decoder().state_dict(), tmp_path / "dec.pth")
    seen, original = [], adain.encoder

    def watched():
        net = original()

        def hook(_, args):
            seen.append(tuple(args[0].shape[2:]))
            # Only the style's feature statistics are used, and this test is about the size the style is handed
            # in at: the encoder reads every 8th pixel of it (VGG at 512x768 was nearly all of the test's time).
            return (args[0][..., ::8, ::8],) if len(seen) == 1 else None
        net.register_forward_pre_hook(hook)
        return net
    monkeypatch.setattr(adain, "encoder", watched)
    frames = Clip.from_array(footage(1, 64, 48, seed=1))
    painting = footage(1, 64, 64, seed=5)[0]
    for w, h, want in ((1536, 1024, (512, 768)), (300, 200, (200, 300))):
        seen.clear()
        out = stylize.adain(Context("a"), frames, cv2.resize(painting, (w, h)), encoder_path=str(tmp_path / "vgg.pth"),
                            decoder_path=str(tmp_path / "dec.pth")).to_array()
        assert seen[0] == want and seen[1] == (48, 64) and out.shape == (1, 48, 64, 3)


@pytest.mark.parametrize("style", ["pencil", "color_pencil"])
def test_pencil_detail_goes_from_outlines_to_shading(source, style):
    """`detail` moved OpenCV's spatial sigma (18 to 170 px), which past 20 px changes almost nothing: detail 1, 2
    and 4 drew the same picture (2 levels apart on average). It sets which edges get strokes now."""
    frames = Clip.from_array(source.frames(0, 1))
    ink = [stylize.sketch(Context("s"), frames, style=style, detail=d).to_array().mean() for d in (0.2, 1.0, 4.0)]
    assert ink[0] - ink[1] > 15 and ink[1] - ink[2] > 15, ink


def test_temporal_blends_each_frame_at_most_twice_and_any_range_is_the_full_renders(source, monkeypatch):
    """Each chunk redid `warmup` blends before its first frame: at 1080p (chunks of 4 frames) 28 blends for 4
    frames, 25 a frame at 4K, more than half of the node's time. The recursions now go on from chunk to chunk;
    each frame comes from the restart point its index gives, so a shard is the full render's pixels exactly."""
    import graph_engine.clip as clip_module
    from nodes.stylize import temporal
    monkeypatch.setattr(clip_module, "MAX_CHUNK", 4)     # every clip in chunks of 4 frames, as at 1080p
    sty = shimmering(source)
    calls = []
    real = temporal.blend_step
    monkeypatch.setattr(temporal, "blend_step", lambda *a: calls.append(1) or real(*a))
    small = Clip(sty.length, 24, W, H, lambda a, b: sty.frames(a, b), chunk=4)
    full = np.concatenate([block for _, block in temporal.temporal_clip(None, small, source, warmup=8).chunks()])
    assert len(calls) <= 2 * sty.length
    for a, b in ((14, 20), (3, 4), (17, 24)):
        part = temporal.temporal_clip(None, small, source, warmup=8).frames(a, b)
        assert np.array_equal(part, full[a:b])


def test_temporal_scrubbed_back_a_chunk_measures_no_flow_again(source, monkeypatch):
    """The viewer reads a chunk from the middle, then the one before: both start at the same restart point, and
    the second finds the links (flows) of the first kept: with only a sequential render's few kept, it measured
    all 11 again (1.9 s at 1080p)."""
    import graph_engine.clip as clip_module
    from nodes.stylize import temporal
    monkeypatch.setattr(clip_module, "MAX_CHUNK", 4)
    measured = []
    real = temporal.link
    monkeypatch.setattr(temporal, "link", lambda *a: measured.append(1) or real(*a))
    sty = shimmering(source)
    out = temporal.temporal_clip(None, Clip(sty.length, 24, W, H, lambda a, b: sty.frames(a, b), chunk=4), source,
                                 warmup=8)
    out.frames(20, 24)
    measured.clear()
    out.frames(16, 20)
    assert len(measured) == 0


def test_temporal_keeps_a_middle_reads_links_only_as_far_as_its_memory_bound(source, monkeypatch):
    """A read from the middle kept every link of its span, up to warmup + period + a chunk of them: 2.2 GB at 4K
    with the default warmup, 5 GB at warmup 60, for a viewer scrubbing or a shard. It keeps them up to
    SPAN_LINK_BYTES now (measuring one again costs only time), and all of them where they fit."""
    import graph_engine.clip as clip_module
    from nodes.common.stream import PairCache
    from nodes.stylize import temporal
    monkeypatch.setattr(clip_module, "MAX_CHUNK", 4)
    held = []

    class Counted(PairCache):
        def get(self, key, compute):
            value = super().get(key, compute)
            held.append(len(self._data))
            return value
    monkeypatch.setattr(temporal, "PairCache", Counted)
    sty = shimmering(source)
    link_bytes = (2 * 2 + 1) * W * H      # a float16 flow (2 values) and a uint8 trust a pixel

    def middle_read(budget_links):
        monkeypatch.setattr(temporal, "SPAN_LINK_BYTES", budget_links * link_bytes, raising=False)
        held.clear()
        clip = Clip(sty.length, 24, W, H, lambda a, b: sty.frames(a, b), chunk=4)
        temporal.temporal_clip(None, clip, source, warmup=8).frames(20, 24)
        return max(held)
    assert middle_read(10) <= 10          # the span (restart 8 .. 24) has 15 links
    assert middle_read(1000) >= 15        # where they fit, all of them, so a scrub back measures none again
