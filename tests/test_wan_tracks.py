"""Wan ATI and Wan-Move (trajectory-steered image-to-video): the conditioning against by-hand readings of the
published descriptions, ComfyUI's track JSON and GenerateTracks turned into tracks, and ComfyUI's video_wan_ati
and video_wanmove_480p templates imported, run on tiny models, and steered by their tracks."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nodes.motion.wan_tracks import ati_condition, from_comfyui, generate_tracks, wanmove_condition
from nodes.motion.tracks import Tracks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _by_hand(z, pts, vis, width, height, temperature, topk):
    """ATI as described: each track carries the start latent's feature (bilinear, at its first point; latent
    pixel centres at (i + 0.5) * 8 px); in latent frame t >= 1 (video frames 4t-3..4t) it sits at its mean
    visible position and spreads exp(-temperature * d^2) over the latent grid, positions measured from the
    picture centre in half short edges, the grid spanning the picture edge to edge; at each cell the topk largest
    weights blend their features over the latent, scaled by 1 - their sum (at most 1); the sum is the mask."""
    c, n, h, w = z.shape
    s = min(width, height)
    feats = []
    for k in range(len(pts)):
        u, v = pts[k, 0, 0] / width * w - 0.5, pts[k, 0, 1] / height * h - 0.5
        f = np.zeros(c)
        for j in (int(np.floor(u)), int(np.floor(u)) + 1):
            for i in (int(np.floor(v)), int(np.floor(v)) + 1):
                if 0 <= i < h and 0 <= j < w:
                    f += (1 - abs(u - j)) * (1 - abs(v - i)) * z[:, 0, i, j]
        feats.append(f)
    out, mask = z.copy(), np.ones((n, h, w))
    for t in range(1, n):
        frames = range(4 * t - 3, 4 * t + 1)
        for i in range(h):
            for j in range(w):
                gx = -width / s + 2 * width / s * j / (w - 1)
                gy = -height / s + 2 * height / s * i / (h - 1)
                ws = []
                for k in range(len(pts)):
                    seen = [f for f in frames if vis[k, f]]
                    if not seen:
                        ws.append(0.0)
                        continue
                    x = np.mean([pts[k, f, 0] for f in seen]) - width / 2
                    y = np.mean([pts[k, f, 1] for f in seen]) - height / 2
                    ws.append(np.exp(-temperature * ((x * 2 / s - gx) ** 2 + (y * 2 / s - gy) ** 2)))
                keep = sorted(range(len(pts)), key=lambda k: -ws[k])[:topk]
                total = sum(ws[k] for k in keep)
                out[:, t, i, j] = sum(ws[k] * feats[k] for k in keep) + z[:, t, i, j] * (1 - min(total, 1))
                mask[t, i, j] = total
    return out, mask


def test_ati_conditioning_matches_the_published_description():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 3, 6, 8)).astype(np.float32)
    pts = np.stack([rng.uniform([4, 4], [60, 44], size=(9, 2)) for _ in range(3)]).astype(np.float32)
    vis = np.ones((3, 9), bool)
    vis[1, 5:] = False               # gone for the whole second latent frame
    vis[2, [1, 3]] = False           # partly seen in the first
    tracks = Tracks(pts, vis, 64, 48)
    got, weights = ati_condition(torch.from_numpy(z), tracks, 64, 48, temperature=3.0, topk=2)
    want, mask = _by_hand(z, pts, vis, 64, 48, 3.0, 2)
    assert np.allclose(got.numpy(), want, atol=1e-5) and np.allclose(weights.numpy(), mask, atol=1e-6)
    assert 0.2 < mask[1:].max() and mask[2].max() > 0      # the tracks did reach the grid
    # tracks drawn at a quarter of the size land at the same places
    small = Tracks(pts / 4, vis, 16, 12)
    assert torch.allclose(ati_condition(torch.from_numpy(z), small, 64, 48, 3.0, 2)[0], got, atol=1e-5)
    with pytest.raises(ValueError, match="frames=9"):
        ati_condition(torch.from_numpy(z), Tracks(pts[:, :8], vis[:, :8], 64, 48), 64, 48)


def test_comfyui_track_json_becomes_one_point_per_frame():
    """121 samples at 24 fps over 81 frames at 16 fps: frame 0 takes sample 0, the others samples 1..120 each
    repeated twice and every third taken (ComfyUI's process_tracks); a track cut short is invisible after."""
    a = [{"x": i, "y": 2 * i} for i in range(121)]
    b = [{"x": 500 - i, "y": 7} for i in range(50)]
    tr = from_comfyui(json.dumps([a, b]), 81, 720, 480)
    pick = np.concatenate([[0], np.repeat(np.arange(1, 121), 2)[1::3]])
    assert tr.points.shape == (2, 81, 2) and (tr.width, tr.height) == (720, 480)
    assert np.array_equal(tr.points[0], np.stack([pick, 2 * pick], 1))
    assert np.array_equal(tr.visible[1], pick < 50) and np.array_equal(tr.visible[0], np.ones(81, bool))
    # one track alone, unwrapped
    assert np.array_equal(from_comfyui(json.dumps(a), 81, 720, 480).points, tr.points[:1])
    with pytest.raises(ValueError, match="list of tracks"):
        from_comfyui('[[{"x": 1}]]', 81, 720, 480)


@pytest.fixture(scope="module")
def wan_i2v(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_models import build_wan_comfy
    yield from models_dir(tmp_path_factory, build_wan_comfy, "wan_ati", i2v=True)


def test_comfyui_ati_template_imports_and_its_tracks_steer_the_video(wan_i2v, tmp_path):
    """ComfyUI's video_wan_ati template: every node mapped, its drawn track carried to a motion.tracks node;
    shrunk to 5 frames of 32x32 and run. The conditioning is the start latent moved along the tracks (checked
    against the by-hand reading), and moving the track changes the video."""
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine import NodeError
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import empty_latent
    wf = json.loads((ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wan_ati.json").read_text("utf-8"))
    drawn = json.loads(next(n for n in wf["nodes"] if n["type"] == "PrimitiveStringMultiline")["widgets_values"][0])
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wan_ati.json")
    assert not result.report.blocking and result.report.entries["248"].status == "exact"
    g = result.graph
    cond = next(n for n in g.nodes.values() if n.type == "condition.frames")
    trk = next(n for n in g.nodes.values() if n.type == "motion.tracks")
    assert cond.params == {"method": "ati", "temperature": 220, "topk": 10}
    assert g.inputs[cond.id]["tracks"] == (trk.id, "tracks")
    assert json.loads(trk.params["points"])["tracks"][0]["points"][0] == [drawn[0][0]["x"], drawn[0][0]["y"]]
    assert trk.params["frames"] == 81

    # the conditioning itself, on the tiny VAE
    img = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    vae = load_vae(ModelManager(max_loaded=4), "wan_tiny_vae.safetensors", "cpu")
    lat = empty_latent(vae, 9, 32, 32, 16.0)
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    pts = np.array([[[8 + 2 * f, 10 + f] for f in range(9)], [[24, 24]] * 9], np.float32)
    tracks = Tracks(pts, np.ones((2, 9), bool), 32, 32)
    plain = condition_frames(vae, pos, None, lat, img, None, None)["positive"].extra["concat"][0]
    steered = condition_frames(vae, pos, None, lat, img, None, None, tracks=tracks, temperature=20.0,
                               topk=2)["positive"].extra["concat"][0]
    z, mask = _by_hand(plain[4:].numpy(), pts, tracks.visible, 32, 32, 20.0, 2)
    assert np.allclose(steered[4:].numpy(), z, atol=1e-4)
    assert all(np.allclose(steered[c].numpy(), mask, atol=1e-5) for c in range(4))
    assert not torch.allclose(steered, plain)
    with pytest.raises(NodeError, match="cover 9 frames and the clip has 5: give motion.tracks frames=5"):
        condition_frames(vae, pos, None, empty_latent(vae, 5, 32, 32, 16.0), img, None, None, tracks=tracks)

    Image.fromarray(img).save(tmp_path / "in.png")

    def run(points, out):
        return _run_tiny(g, result, tmp_path, {"motion.tracks": dict(frames=5, points=json.dumps(
            {"width": 32, "height": 32, "tracks": [points]})), "condition.frames": {"temperature": 20.0}}, out)
    left, right = run([[4, 16], [28, 16]], tmp_path / "a.webp"), run([[28, 16], [4, 16]], tmp_path / "b.webp")
    assert left.shape == (5, 32, 32, 3) and np.abs(left.astype(int) - right.astype(int)).mean() > 0.5


def _run_tiny(g, result, tmp_path, settings, out):
    """An imported Wan i2v workflow on the tiny files, 5 frames of 32x32, one step: its frames as saved."""
    from PIL import Image
    from graph_engine.api import Session, load_workflow
    from comfy_layouts import on_tiny_wan
    on_tiny_wan(g, "wan_tiny_i2v_fp16.safetensors", {
        "latent.empty": dict(frames=5, width=32, height=32), "generate.sample": {"steps": 2},
        "io.load_image": {"path": str(tmp_path / "in.png")}, "io.save_video": dict(path=str(out), codec="webp"),
        **settings})
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    with Image.open(out) as im:
        return np.stack([np.asarray(im.convert("RGB")) for _ in range(im.n_frames) if not im.seek(_)])


def test_wanmove_conditioning_matches_the_published_description():
    """Wan-Move as described: in latent frame t >= 1 the latent pixel under a track at video frame 4t (visible,
    on the picture; 8 px per latent pixel) becomes dst + (src - dst) * strength, src the start latent under the
    track's first point; the start frame and all else stay."""
    rng = np.random.default_rng(2)
    z = rng.normal(size=(3, 3, 6, 8)).astype(np.float32)
    pts = rng.uniform([0, 0], [64, 48], size=(3, 9, 2)).astype(np.float32)
    pts[0, 4] = [70, 10]                 # off the picture at latent frame 1
    vis = np.ones((3, 9), bool)
    vis[1, 8] = False                    # hidden at latent frame 2
    got = wanmove_condition(torch.from_numpy(z), Tracks(pts, vis, 64, 48), 64, 48, strength=0.75).numpy()
    want = z.copy()
    for k in range(3):
        sx, sy = int(pts[k, 0, 0] // 8), int(pts[k, 0, 1] // 8)
        for t in (1, 2):
            x, y = pts[k, 4 * t]
            if vis[k, 4 * t] and 0 <= x < 64 and 0 <= y < 48:
                dst = z[:, t, int(y // 8), int(x // 8)]
                want[:, t, int(y // 8), int(x // 8)] = dst + (z[:, 0, sy, sx] - dst) * 0.75
    assert np.allclose(got, want) and not np.allclose(got, z)
    short = Tracks(pts[:, :5], vis[:, :5], 64, 48)        # 5 frames for a clip of 3 latent frames (9 frames)
    for steer in (wanmove_condition, ati_condition):
        with pytest.raises(ValueError, match="the tracks cover 5 frames and the clip has 9: give motion.tracks "
                                             "frames=9"):
            steer(torch.from_numpy(z), short, 64, 48)


def test_generated_tracks_follow_comfyuis_path_and_spread():
    """GenerateTracks: a line (or quadratic Bezier through mid), eased, count tracks side by side across the path
    spread * (width + height) / 2 apart."""
    tr = generate_tracks(100, 60, (0.1, 0.5), (0.9, 0.5), 5, 3, 0.1, interpolation="ease_in")
    u = np.linspace(0, 1, 5) ** 2
    assert np.allclose(tr.points[1, :, 0], 10 + 80 * u) and np.allclose(tr.points[1, :, 1], 30)
    assert np.allclose(tr.points[0, :, 1] - tr.points[1, :, 1], -8) and np.allclose(tr.points[2, :, 0], tr.points[1, :, 0])
    bz = generate_tracks(100, 60, (0.0, 0.0), (1.0, 0.0), 3, 1, 0.0, mid=(0.5, 1.0))
    assert np.allclose(bz.points[0, 1], [50, 30])     # (a + 2m + b) / 4 at the middle
    with pytest.raises(ValueError, match="unknown interpolation"):
        generate_tracks(100, 60, (0, 0), (1, 1), 3, 1, 0.0, interpolation="bounce")


def test_comfyui_wanmove_template_imports_and_its_tracks_steer_the_video(wan_i2v, tmp_path):
    """ComfyUI's video_wanmove_480p template: every node mapped; its three GenerateTracks bundles (17 tracks),
    concatenated, carried to one motion.tracks node at the video's size (GetImageSize of the ImageScale'd picture:
    832x480); the positive conditioning moves features, the negative's stays plain; moving the tracks changes
    the video."""
    from PIL import Image
    from app.comfyui import import_workflow
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import empty_latent
    result = import_workflow(ROOT / "tests" / "data" / "comfyui" / "templates" / "video_wanmove_480p.json")
    assert not result.report.blocking
    assert {result.report.entries[k].status for k in ("257:195", "244", "247", "257:226")} == {"exact"}
    g = result.graph
    cond = next(n for n in g.nodes.values() if n.type == "condition.frames")
    trk = json.loads(next(n for n in g.nodes.values() if n.type == "motion.tracks").params["points"])
    assert cond.params == {"method": "wan_move", "strength": 1}
    assert (trk["width"], trk["height"], trk["frames"], len(trk["tracks"])) == (832, 480, 81, 17)
    # node 244 (start 0.6, 0.27 of 720x480, 5 tracks 0.007 apart) comes first: its middle track starts there
    assert np.allclose(trk["tracks"][2]["points"][0], [432, 129.6], atol=1e-3)

    img = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    vae = load_vae(ModelManager(max_loaded=4), "wan_tiny_vae.safetensors", "cpu")
    lat = empty_latent(vae, 9, 32, 32, 16.0)
    pos = Conditioning("wan", torch.zeros(1, 4, 32))
    pts = np.array([[[4 + 3 * f, 12] for f in range(9)]], np.float32)
    plain = condition_frames(vae, pos, pos, lat, img, None, None)
    steered = condition_frames(vae, pos, pos, lat, img, None, None, tracks=Tracks(pts, np.ones((1, 9), bool), 32, 32),
                               method="wan_move")
    p, s = plain["positive"].extra["concat"][0], steered["positive"].extra["concat"][0]
    want = p.clone()
    want[4:, 1, 1, 2] = p[4:, 0, 1, 0]      # frame 4: x 16 -> column 2; frame 8: x 28 -> column 3
    want[4:, 2, 1, 3] = p[4:, 0, 1, 0]
    assert torch.allclose(s, want) and torch.equal(steered["negative"].extra["concat"], plain["negative"].extra["concat"])

    Image.fromarray(img).save(tmp_path / "in.png")

    def run(points, out):
        return _run_tiny(g, result, tmp_path, {"motion.tracks": dict(frames=5, points=json.dumps(
            {"width": 32, "height": 32, "tracks": [points]})), "video.scale": dict(width=32, height=32)}, out)
    left, right = run([[4, 4], [28, 28]], tmp_path / "a.webp"), run([[28, 4], [4, 28]], tmp_path / "b.webp")
    assert left.shape == (5, 32, 32, 3) and np.abs(left.astype(int) - right.astype(int)).mean() > 0.5


def test_comfyui_get_image_size_of_a_resize_still_counts_the_pictures():
    """GetImageSize after an ImageScale folds the width and height at import (GenerateTracks needs them), but the
    resize does not fix how many pictures there are: a length fed by its batch_size was dropped ('length comes from
    a node that did not convert') and now links to video.size's frames."""
    from app.comfyui import import_data

    def n(cls, **inputs):
        return {"class_type": cls, "inputs": inputs}
    api = {"1": n("LoadImage", image="photo.png"),
           "2": n("ImageScale", upscale_method="bilinear", width=64, height=48, crop="disabled", image=["1", 0]),
           "3": n("GetImageSize", image=["2", 0]),
           "4": n("EmptyHunyuanLatentVideo", width=["3", 0], height=["3", 1], length=["3", 2], batch_size=1),
           "5": n("CheckpointLoaderSimple", ckpt_name="x.safetensors"),
           "6": n("VAEDecode", samples=["4", 0], vae=["5", 2]),
           "7": n("SaveImage", filename_prefix="p", images=["6", 0])}
    got = import_data(api)
    assert {e.class_type: e.status for e in got.report.entries.values()}["EmptyHunyuanLatentVideo"] == "exact"
    g = got.graph
    latent = next(nid for nid, inst in g.nodes.items() if inst.type == "latent.empty")
    src, port = g.inputs[latent]["frames"]
    assert (g.nodes[src].type, port) == ("video.size", "frames")
    assert {k: g.nodes[latent].params[k] for k in ("width", "height")} == {"width": 64, "height": 48}
    del api["4"]["inputs"]["length"]
    assert "video.size" not in {inst.type for inst in import_data(api).graph.nodes.values()}
