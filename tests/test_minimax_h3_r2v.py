"""MiniMax H3 reference-to-video (ref2va): reference pictures read beside the video it makes, judged against
diffusers 0.42.1's own ref2va blocks on the same tiny weights (MiniMaxH3Ref2VAPrepareLayoutStep's packed sequence,
MiniMaxH3SetTimestepsStep's per-row timesteps, encode_vae_condition, get_qwen3vl_prompt_embeds) and ComfyUI's
MiniMaxH3ReferenceToVideo sizing written out (comfy_extras/nodes_minimax_h3.py: ref_image_size match)."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_minimax_h3_video import TEMPLATE_FILES as VIDEO_FILES  # noqa: E402
W, H, FRAMES = 96, 64, 22           # 7 latent frames of 3 x 2 patches, 37 sound latents a channel
PIXEL = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def minimax(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_minimax_h3 import build_minimax_h3
    yield from models_dir(tmp_path_factory, build_minimax_h3, "minimax_h3")


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


class _Picture:
    """diffusers' ref2va layout reads only a reference's kind (MiniMaxH3ImageReference's)."""
    kind, has_audio = "image", False


def _ref2va_reference(states, seen, refs, seed, video_noise, sound_rows, steps):
    """diffusers' ref2va loop written out: each reference picture noised to t = 0.999 by the request's generator, one
    draw each in packed order (MiniMaxH3PrepareConditionLatentsStep), laid out by diffusers'
    build_ref2va_packed_sequence, told max(t, 0.999), never stepped (test_minimax_h3_video's held_loop)."""
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3Ref2VAPrepareLayoutStep,
                                                                       patchify_video_latents)
    from test_minimax_h3_video import held_loop
    from tiny_minimax_h3 import transformer
    t, h, w = video_noise.shape[2:]
    sch, sound_sch = MiniMaxH3Scheduler(shift=12.0), MiniMaxH3Scheduler(shift=3.0)
    gen = torch.Generator().manual_seed(seed)
    held = torch.cat([patchify_video_latents(sch.scale_noise(r, 0.999, torch.randn(r.shape, generator=gen)),
                                             (1, 2, 2)) for r in refs])
    layout = MiniMaxH3Ref2VAPrepareLayoutStep.build_ref2va_packed_sequence(
        (~seen).long(), [_Picture()] * len(refs), refs, [], t, h, w, sound_rows.shape[0] // 2, (1, 2, 2), 2, 2, 0)
    return held_loop(transformer(), (sch, sound_sch), states, layout, held, video_noise, sound_rows, steps)


def test_reference_pictures_sample_as_diffusers_ref2va(minimax):
    """Two reference pictures of their own sizes (condition.references' reference latents) laid before the video and
    its sound, noised from the run's seed and held at t = 0.999, the video's clock starting one unit a picture
    later, the prompt's vision rows tagged as video: diffusers' ref2va samples the same latent and sound."""
    from nodes.generate.adapters.base import joined
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    latent = empty_latent(model, FRAMES, W, H, 24.0)
    g = torch.Generator().manual_seed(8)
    states = torch.randn(1, 6, TEXT, generator=g)
    refs = [torch.randn(1, 24, 1, 4, 6, generator=g), torch.randn(1, 24, 1, 2, 4, generator=g)]
    video_noise = torch.randn(latent.samples.shape, generator=g)
    sound_rows = torch.randn(2 * 37, 32, generator=g)
    noise = joined(video_noise, sound_rows.reshape(2, 37, 32).permute(2, 0, 1)[None])
    seen = torch.tensor([False, True, True, False, True, False])
    cond = Conditioning("minimax_h3", states, torch.ones(1, 6, dtype=torch.bool), extra={
        "reference0": refs[0], "reference1": refs[1], "minimax_h3_seen": seen[None]})
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise, seed=13)
    video, sound = _ref2va_reference(states, seen, refs, 13, video_noise, sound_rows, 3)
    got_sound = out.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, out.samples) < 1e-5, _err(video, out.samples)
    assert _err(sound, got_sound) < 1e-5, _err(sound, got_sound)
    plain = run_sampling(model, Conditioning("minimax_h3", states, torch.ones(1, 6, dtype=torch.bool),
                                             extra={"minimax_h3_seen": seen[None]}), None, latent, steps=3, cfg=1.0,
                         sampler="euler", noise=noise, seed=13)
    assert _err(video, plain.samples) > 1e-3       # the references change the video: the test can fail
    from graph_engine import NodeError
    with pytest.raises(NodeError, match="for a video, not a picture"):
        run_sampling(model, cond, None, empty_latent(model, 1, W, H, 24.0), steps=1, cfg=1.0, sampler="euler", seed=13)


def _comfy_match(picture, width, height):
    """ComfyUI's MiniMaxH3ReferenceToVideo, ref_image_size match: scaled down (never up) to the video's pixel area,
    keeping its shape, each side rounded to 32, Lanczos without a crop."""
    import math
    from PIL import Image
    w, h = picture.size
    scale = min(1.0, math.sqrt((width * height) / (w * h)))
    tw, th = (max(32, round(d * scale / 32) * 32) for d in (w, h))
    return picture.resize((tw, th), Image.LANCZOS)


def test_condition_references_encode_and_read_the_pictures_as_diffusers(minimax, tmp_path):
    """condition.references on the MiniMax H3 video VAE with the video's latent and Qwen3-VL: each picture sized as
    ComfyUI's match does, encoded by diffusers' encode_vae_condition on the same weights, and the prompt read after a
    "<Picture i>: " label and vision block of each (diffusers' ref2va presentation over get_qwen3vl_prompt_embeds);
    the latent passes on as given. A clip, a missing latent and another family's VAE given a latent are named."""
    import numpy as np
    from diffusers.modular_pipelines.minimax_h3.encoders import encode_vae_condition
    from PIL import Image
    from graph_engine import NodeError
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.reference import add_references
    from nodes.generate.split import load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from test_minimax_h3_video import read_after_pictures
    from tiny_minimax_h3 import vae as tiny_vae
    te = load_text_encoder(ModelManager(), "qwen3vl_minimax_tiny.safetensors", "", "minimax", "cpu")
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    latent = empty_latent(vae, FRAMES, W, H, 24.0)
    rng = np.random.default_rng(9)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((90, 50), (40, 40))]
    pictures = [Clip.from_array(a[None]) for a in arrays]
    prompt = "<Picture 2> walks into <Picture 1>"
    pos, neg, out = add_references(vae, encode_prompt(te, prompt), None, pictures, latent=latent, text_encoder=te,
                                   area=W * H)
    assert out is latent and neg is pos
    sized = [_comfy_match(Image.fromarray(a), W, H) for a in arrays]
    assert [p.size for p in sized] == [(64, 96), (32, 32)]      # 50x90 -> 64x96 (not up to its area), 40x40 -> 32x32
    ref = tiny_vae().float()
    for i, p in enumerate(sized):
        px = torch.from_numpy(np.array(p)).permute(2, 0, 1)[None, :, None]
        with torch.no_grad():
            want = encode_vae_condition(ref, px, *PIXEL, 42)
        got = pos.extra[f"reference{i}"]
        assert got.shape == want.shape, (got.shape, want.shape)
        assert _err(want, got) < 1e-3, (i, _err(want, got))     # a float16 rounding apart at most
    want, seen = read_after_pictures(tmp_path, sized, prompt)
    assert pos.embeds.shape == want.shape, (pos.embeds.shape, want.shape)
    assert _err(want, pos.embeds) < 1e-4, _err(want, pos.embeds)
    assert pos.extra["minimax_h3_seen"][0].tolist() == seen
    with pytest.raises(NodeError, match="reference videos"):
        add_references(vae, encode_prompt(te, prompt), None, [Clip.from_array(np.stack(arrays[1:] * 2))],
                       latent=latent, area=W * H)
    for reader in (te, None):       # the MiniMax H3 VAE without the video's latent: named
        with pytest.raises(NodeError, match="connect latent.empty's latent"):
            add_references(vae, encode_prompt(te, prompt), None, pictures, text_encoder=reader)
    with pytest.raises(NodeError, match="made with its sound"):
        add_references(vae, encode_prompt(te, prompt), None, pictures, latent=empty_latent(vae, 1, W, H, 24.0))


TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"
# the t2v / i2v templates' files, and the ref2va transformers (the same layout as fl2va's)
TEMPLATE_FILES = VIDEO_FILES + (("diffusion_models/minimax_h3_ref2va_pruned_int8_convrot.safetensors",
                                 "diffusion_models/minimax_h3_pruned_tiny.safetensors"),
                                ("diffusion_models/fasth3_omniref_8step_pruned_int8_convrot.safetensors",
                                 "diffusion_models/minimax_h3_fasth3_tiny.safetensors"))


def run_template(minimax, tmp_path, name, size, steps, pictures, sampler="res_multistep", frames=None):
    """ComfyUI's template imported with every node mapped, at 96x64, 22 frames, 2 euler steps, its prompt cut to
    its first paragraph, its LoadImage pictures random ones of their own sizes, `frames`' replacements made; run on
    the tiny files under its names. Returns (the YAML, the run's outputs, CreateVideo's video)."""
    import re
    import numpy as np
    from PIL import Image
    from comfy_layouts import _ran, imported_template
    _, yaml = imported_template(minimax / "models", TEMPLATE_FILES, TEMPLATES / name, (W, H), (steps, 2))
    # the tiny tokenizer reads a byte a token, and the prompt is read twice (alone, then after the pictures) by a
    # 51-layer encoder: the multi-frame template's 7066 characters were 12 of its test's 17 CPU s
    yaml = re.sub(r"(\n      text: \|-\n(?:        .+\n)+)(?:\n|        .*\n)+", r"\1", yaml, count=1)
    rng = np.random.default_rng(10)
    swaps = [(f"width: {size[0]}", f"width: {W}"), (f"height: {size[1]}", f"height: {H}"),
             ("frames: 124", f"frames: {FRAMES}"), (f"sampler: {sampler}", "sampler: euler"),
             *(frames or {}).items()]
    for picture, (h, w) in pictures.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / picture)
        swaps.append((f"path: {picture}", f"path: {tmp_path / picture}"))
    for a, b in swaps:
        assert a in yaml, a
        yaml = yaml.replace(a, b)
    out, _ = _ran(tmp_path / "minimax_r2v.kino.yaml", yaml, "sampler_custom_advanced")
    return yaml, out.outputs, next(v["video"] for k, v in out.outputs.items() if k.startswith("create_video"))


@pytest.mark.parametrize("name,size,steps,pictures,sampler", [
    ("video_minimax_h3_r2v.json", (864, 480), 20,
     {"red_superboy_on_city_roof.png": (90, 50), "mecha_dragon_lightning.png": (48, 80)}, "res_multistep"),
    # FastVideo's FastH3 OmniRef: MiniMaxH3SigmaShift 12 / 3, BlockSparseAttention (dense here)
    ("video_fasth3_ominiref_r2v.json", (1376, 768), 8, {"yellow_plane_ref.png": (64, 96)}, "euler")])
def test_comfyui_minimax_h3_r2v_templates_run_from_their_pictures(minimax, tmp_path, monkeypatch, name, size, steps,
                                                                  pictures, sampler):
    """ComfyUI's MiniMax H3 reference-to-video templates (MiniMaxH3ReferenceToVideo with ref_images from LoadImage,
    ref_image_size match) import with every node mapped (encode.text, latent.empty, condition.references reading the
    pictures with the prompt) and run on the tiny files under their names to a 22-frame video with its stereo
    soundtrack, the pictures read beside it."""
    import wave
    monkeypatch.chdir(tmp_path)
    yaml, outputs, clip = run_template(minimax, tmp_path, name, size, steps, pictures, sampler)
    assert "type: condition.references" in yaml and "resolution: match" in yaml
    assert clip.length == FRAMES and (clip.width, clip.height) == (W, H)
    with wave.open(clip.audio.path) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (2, 32000)
    positive = next(v["positive"] for k, v in outputs.items() if k.endswith("_pictures"))
    assert len([k for k in positive.extra if k.startswith("reference")]) == len(pictures)
    assert positive.extra["minimax_h3_seen"].any()


def _guided_reference(states, seen, keys, frames_at, refs, seed, video_noise, sound_rows, steps):
    """ComfyUI's MiniMax H3 model with guides and references (comfy/ldm/minimax/model.py's PackedLayout, written out
    on diffusers' ref2va layout): the guides' rows right after the prompt, on the video's grid, at rotary time
    prompt length + one unit a reference picture + 5/3 per pixel frame, then the references as diffusers lays them;
    all held at t = 0.999 and noised from the request's generator in that order (diffusers' one draw each)."""
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3Ref2VAPrepareLayoutStep,
                                                                       patchify_video_latents)
    from test_minimax_h3_video import held_loop
    from tiny_minimax_h3 import transformer
    t, h, w = video_noise.shape[2:]
    sch, sound_sch = MiniMaxH3Scheduler(shift=12.0), MiniMaxH3Scheduler(shift=3.0)
    gen = torch.Generator().manual_seed(seed)
    conds = [k[None, :, None] for k in keys] + refs
    held = torch.cat([patchify_video_latents(sch.scale_noise(r, 0.999, torch.randn(r.shape, generator=gen)),
                                             (1, 2, 2)) for r in conds])
    pos, tags, video, audio, text, n_held, n_sound = MiniMaxH3Ref2VAPrepareLayoutStep.build_ref2va_packed_sequence(
        (~seen).long(), [_Picture()] * len(refs), refs, [], t, h, w, sound_rows.shape[0] // 2, (1, 2, 2), 2, 2, 0)
    n, per_frame = text.numel(), (h // 2) * (w // 2)
    guide = torch.zeros(len(keys) * per_frame, 3, dtype=torch.float64)
    guide[:, 1:] = pos[-per_frame:, 1:].repeat(len(keys), 1)       # the video's own (h, w) grid
    guide[:, 0] = torch.tensor([n + len(refs) + 5.0 / 3.0 * f for f in frames_at],
                               dtype=torch.float64).repeat_interleave(per_frame)
    more = len(keys) * per_frame
    layout = (torch.cat([pos[:n], guide, pos[n:]]), torch.cat([tags[:n], torch.zeros(more, dtype=tags.dtype),
                                                                 tags[n:]]),
              torch.cat([torch.arange(n, n + more), video + more]), audio + more, text, n_held + more, n_sound)
    return held_loop(transformer(), (sch, sound_sch), states, layout, held, video_noise, sound_rows, steps)


def test_guides_and_references_sample_as_comfyuis_layout(minimax):
    """Guides at frames 5 and 21 (ComfyUI's MiniMaxH3AddGuide, chained) with two reference pictures: laid as
    ComfyUI's model lays them, held and noised as the conditioning rows of diffusers' loop."""
    from nodes.generate.adapters.base import joined
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import TEXT
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    latent = empty_latent(model, FRAMES, W, H, 24.0)
    g = torch.Generator().manual_seed(12)
    states = torch.randn(1, 5, TEXT, generator=g)
    keys = torch.randn(2, 24, H // 16, W // 16, generator=g)
    refs = [torch.randn(1, 24, 1, 2, 6, generator=g), torch.randn(1, 24, 1, 4, 4, generator=g)]
    video_noise = torch.randn(latent.samples.shape, generator=g)
    sound_rows = torch.randn(2 * 37, 32, generator=g)
    noise = joined(video_noise, sound_rows.reshape(2, 37, 32).permute(2, 0, 1)[None])
    seen = torch.tensor([False, True, True, False, False])
    cond = Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool), extra={
        "minimax_h3_keyframes": keys, "reference0": refs[0], "reference1": refs[1], "minimax_h3_seen": seen[None]},
        meta={"minimax_h3_anchors": [5, 21]})
    out = run_sampling(model, cond, None, latent, steps=3, cfg=1.0, sampler="euler", noise=noise, seed=14)
    video, sound = _guided_reference(states, seen, keys, (5, 21), refs, 14, video_noise, sound_rows, 3)
    got_sound = out.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, out.samples) < 1e-5, _err(video, out.samples)
    assert _err(sound, got_sound) < 1e-5, _err(sound, got_sound)
    moved = run_sampling(model, Conditioning("minimax_h3", states, cond.mask, extra=cond.extra,
                                             meta={"minimax_h3_anchors": [5, 20]}), None, latent, steps=3, cfg=1.0,
                         sampler="euler", noise=noise, seed=14)
    assert _err(video, moved.samples) > 1e-4       # the guide's frame matters: the test can fail


def test_condition_frames_chains_guides(minimax):
    """condition.frames' guide on MiniMax H3 (ComfyUI's MiniMaxH3AddGuide): the picture cover-cropped onto the
    canvas and encoded by diffusers' encode_vae_condition, pinned after the keyframes the prompt holds; frame -1 is
    the last; a frame outside the video is named."""
    import numpy as np
    from diffusers.modular_pipelines.minimax_h3.encoders import encode_vae_condition
    from PIL import Image
    from graph_engine import NodeError
    from nodes.generate.image_cond import condition_frames
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    from nodes.generate.vae_ops import empty_latent
    from tiny_minimax_h3 import vae as tiny_vae
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    latent = empty_latent(vae, FRAMES, W, H, 24.0)
    rng = np.random.default_rng(11)
    first, guide = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (90, 40, 3), dtype=np.uint8)
    cond = Conditioning("minimax_h3", torch.zeros(1, 2, 8))
    out = condition_frames(vae, cond, None, latent, first, None, None)["positive"]
    out = condition_frames(vae, out, None, latent, None, None, None, guide=guide, guide_frame=-1)["positive"]
    assert out.meta["minimax_h3_anchors"] == ["first", FRAMES - 1]
    keys = out.extra["minimax_h3_keyframes"]
    assert keys.shape == (2, 24, H // 16, W // 16)
    scale = max(W / 40, H / 90)     # ComfyUI's common_upscale "center": cover, then the middle
    size = (max(W, round(40 * scale)), max(H, round(90 * scale)))
    left, top = (size[0] - W) // 2, (size[1] - H) // 2
    pic = Image.fromarray(guide).resize(size, Image.LANCZOS).crop((left, top, left + W, top + H))
    px = torch.from_numpy(np.array(pic)).permute(2, 0, 1)[None, :, None]
    with torch.no_grad():
        want = encode_vae_condition(tiny_vae().float(), px, *PIXEL, 42)[0, :, 0]
    assert _err(want, keys[1]) < 1e-3, _err(want, keys[1])
    for frame in (FRAMES, -FRAMES - 1):
        with pytest.raises(NodeError, match="outside the video's 22 frames"):
            condition_frames(vae, out, None, latent, None, None, None, guide=guide, guide_frame=frame)


def test_comfyui_minimax_h3_multiframe_reference_template_runs(minimax, tmp_path, monkeypatch):
    """ComfyUI's MiniMax H3 multi-frame reference template (MiniMaxH3ReferenceToVideo with one picture, then three
    MiniMaxH3AddGuide chained) imports with every node mapped (condition.references, then condition.frames with a
    guide each) and runs on the tiny files; its guide frames 36, 72 and 120 of 124 put at 5, 10 and -1 of 22."""
    import wave
    monkeypatch.chdir(tmp_path)
    pictures = {f"h3_frame_ref_{i}.png": (40 + 8 * i, 70) for i in (1, 2, 3, 4)}
    yaml, outputs, clip = run_template(minimax, tmp_path, "video_minimax_h3_multiframe_reference.json", (864, 480),
                                       20, pictures, frames={"guide_frame: 36": "guide_frame: 5",
                                                             "guide_frame: 72": "guide_frame: 10",
                                                             "guide_frame: 120": "guide_frame: -1"})
    assert yaml.count("type: condition.frames") == 3
    assert clip.length == FRAMES and (clip.width, clip.height) == (W, H)
    with wave.open(clip.audio.path) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (2, 32000)
    positive = next(v["positive"] for k, v in outputs.items() if k.startswith("mini_max_h3_add_guide_169"))
    assert positive.meta["minimax_h3_anchors"] == [5, 10, FRAMES - 1]
    assert "reference0" in positive.extra and "reference1" not in positive.extra


def test_reference_videos_and_sounds_are_named_at_import():
    """MiniMaxH3ReferenceToVideo with a reference video or sound connected imports approximately, saying they are not
    read (not dropped without a word); its pictures map exactly."""
    import json
    from app.comfyui import import_data
    data = json.loads((TEMPLATES / "video_minimax_h3_r2v.json").read_text("utf-8"))
    node = next(n for n in data["nodes"] if n["type"] == "MiniMaxH3ReferenceToVideo")
    assert import_data(data).report.entries[str(node["id"])].status == "exact"
    picture = next(i["link"] for i in node["inputs"] if i["name"] == "ref_images.ref_image_0")
    for name in ("ref_videos.ref_video_0", "ref_audios.ref_audio_0"):
        slot = next(i for i in node["inputs"] if i["name"] == name)
        slot["link"] = picture
        entry = import_data(data).report.entries[str(node["id"])]
        assert entry.status == "approx" and any(n.startswith(name) and "not read yet" in n for n in entry.notes)
        slot["link"] = None


def _tiny_fun_control(path):
    """A tiny Fun ControlNet in ComfyUI's names (comfy/ldm/minimax/controlnet.py: control_proj_in over 49 channels'
    2x2 patches, control_blocks.N as MiniMax's blocks, before_proj on the first, after_proj on each), two blocks for
    the tiny transformer's two; returns (the file's diffusers-side modules: blocks, proj_in, before, afters)."""
    from safetensors.torch import save_file
    from diffusers import MiniMaxH3Transformer3DModel
    from tiny_minimax_h3 import bf16_weights, comfy_transformer, transformer
    base = transformer()
    torch.manual_seed(15)
    tower = bf16_weights(MiniMaxH3Transformer3DModel.from_config(base.config))
    hidden = base.config.hidden_size
    lin = [bf16_weights(torch.nn.Linear(a, hidden)) for a in (49 * 4, hidden, hidden, hidden)]
    for m in lin[1:]:       # zero-initialised in training; random here so that the test can fail
        torch.nn.init.normal_(m.weight, std=0.3)
    lin = [bf16_weights(m) for m in lin]
    state = {k.replace("blocks.", "control_blocks.", 1): v for k, v in comfy_transformer(tower).items()
             if k.startswith("blocks.")}
    for k, v in lin[0].state_dict().items():
        state[f"control_proj_in.{k}"] = v
    for k, v in lin[1].state_dict().items():
        state[f"control_blocks.0.before_proj.{k}"] = v
    for i, m in enumerate(lin[2:]):
        for k, v in m.state_dict().items():
            state[f"control_blocks.{i}.after_proj.{k}"] = v
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return tower.transformer_blocks, lin[0], lin[1], lin[2:]


def _comfy_control_latent(vae, frames, count, width, height):
    """ComfyUI's MiniMaxH3FunControlPatch: frame i of the control video (its last held), common_upscale bilinear
    "center" (the middle cut to the canvas' shape, then torch's bilinear), encoded to the posterior's mean,
    normalised (comfy/ldm/minimax/vae.py's encode) by diffusers' VAE on the same weights."""
    import torch.nn.functional as F
    x = torch.from_numpy(frames).float().div(255.0).permute(0, 3, 1, 2)
    x = x[torch.arange(count).clamp(max=len(frames) - 1)]
    h0, w0 = x.shape[-2:]
    old, new = w0 / h0, width / height
    dx = round((w0 - w0 * (new / old)) / 2) if old > new else 0
    dy = round((h0 - h0 * (old / new)) / 2) if old < new else 0
    x = F.interpolate(x[:, :, dy:h0 - dy, dx:w0 - dx], size=(height, width), mode="bilinear")
    mean, std = (torch.tensor(s).view(1, 3, 1, 1, 1) for s in PIXEL)
    with torch.no_grad():
        z = vae.encode((x.permute(1, 0, 2, 3)[None] - mean) / std).latent_dist.mode()
    lmean, lstd = (torch.tensor(s).view(1, -1, 1, 1, 1) for s in (vae.config.latents_mean, vae.config.latents_std))
    return (z - lmean) / lstd


def test_fun_controlnet_steers_as_comfyuis_patch(minimax, tmp_path, monkeypatch):
    """control.model_patch with MiniMax H3's Fun ControlNet (a tiny one in ComfyUI's names): the video and its sound
    sampled as diffusers' t2va loop with ComfyUI's MiniMaxH3FunControlPatch written out around diffusers' transformer
    (the tower's stream started at block 0 from its input, the control rows in the generated video's rows, each
    block's after_proj times the strength added after the transformer's block, the sound's rows left alone)."""
    import numpy as np
    from diffusers import MiniMaxH3Scheduler
    from diffusers.modular_pipelines.minimax_h3.before_denoise import (MiniMaxH3PrepareLayoutStep,
                                                                       patchify_video_latents)
    from graph_engine import Clip
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_patch import apply, load
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_vae
    from nodes.generate.vae_ops import empty_latent
    from test_minimax_h3_video import draws, held_loop
    from tiny_minimax_h3 import transformer, vae as tiny_vae
    patches = minimax / "models" / "model_patches"
    patches.mkdir(exist_ok=True)
    blocks, proj_in, before, afters = _tiny_fun_control(patches / "minimax_h3_fun_controlnet_tiny.safetensors")
    model = load_diffusion_model(ModelManager(), "minimax_h3_tiny.safetensors", "default", "cpu")
    vae = load_vae(ModelManager(), "minimax_h3_video_vae_tiny.safetensors", "cpu")
    frames = np.random.default_rng(16).integers(0, 256, (9, 50, 80, 3), dtype=np.uint8)   # shorter: its last held
    steered = apply(model, load(ModelManager(), "minimax_h3_fun_controlnet_tiny.safetensors"), vae,
                    Clip.from_array(frames), 0.7)
    latent = empty_latent(model, FRAMES, W, H, 24.0)
    states, video_noise, sound_rows, noise = draws(latent, 17)
    cond = Conditioning("minimax_h3", states, torch.ones(1, 5, dtype=torch.bool))
    out = run_sampling(steered, cond, None, latent, steps=2, cfg=1.0, sampler="euler", noise=noise, seed=3)

    base = transformer()
    z = _comfy_control_latent(tiny_vae().float(), frames, FRAMES, W, H)
    rows = torch.nn.functional.pad(patchify_video_latents(z, (1, 2, 2)), (0, 49 * 4 - 24 * 4))

    def comfy(hidden_states, audio_hidden_states, encoder_hidden_states, timestep, timestep_indices, token_tags,
              position_ids, video_indices, audio_indices, text_indices, return_dict):
        rotary = base.rope(position_ids)
        text = base.token_refiner(base.context_embedder(encoder_hidden_states))
        h = text.new_zeros(1, position_ids.shape[0], text.shape[-1]).index_copy(1, text_indices, text)
        h = h.index_copy(1, video_indices, base.proj_in(hidden_states.float()))
        h = h.index_copy(1, audio_indices, base.audio_proj_in(audio_hidden_states.float()))
        temb = base.time_embedder(base.time_proj(timestep))
        which = timestep_indices * 3 + token_tags
        for i, block in enumerate(base.transformer_blocks):
            pristine, h = h, block(h, temb, which, rotary)
            if i == 0:      # init_stream: every video row's control row; the generated ones hold the control video
                c = pristine.clone()
                full = rows.new_zeros(video_indices.numel(), rows.shape[1])
                full[-rows.shape[0]:] = rows
                c[:, video_indices] = proj_in(full)
                c = before(c) + pristine
            c = blocks[i](c, temb, which, rotary)
            skip = afters[i](c)
            skip[:, audio_indices] = 0
            h = h + 0.7 * skip
        h = base.norm_out(h, temb, timestep_indices)
        return base.proj_out(h).index_select(1, video_indices), base.audio_proj_out(h).index_select(1, audio_indices)
    t, h, w = video_noise.shape[2:]
    layout = MiniMaxH3PrepareLayoutStep.build_packed_sequence(torch.ones(5, dtype=torch.long), t, h, w, 37, (1, 2, 2),
                                                              2, 2, 0)
    video, sound = held_loop(comfy, (MiniMaxH3Scheduler(shift=12.0), MiniMaxH3Scheduler(shift=3.0)), states, layout,
                             torch.zeros(0, 96), video_noise, sound_rows, 2)
    got_sound = out.audio[0].permute(1, 2, 0).reshape(-1, 32)
    assert _err(video, out.samples) < 1e-5, _err(video, out.samples)
    assert _err(sound, got_sound) < 1e-5, _err(sound, got_sound)
    plain = run_sampling(model, cond, None, latent, steps=2, cfg=1.0, sampler="euler", noise=noise, seed=3)
    assert _err(video, plain.samples) > 1e-3       # the control steers: the test can fail
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    with pytest.raises(NodeError, match="inpainting"):     # its mask (inpainting) is named, not ignored
        apply(model, load(ModelManager(), "minimax_h3_fun_controlnet_tiny.safetensors"), vae,
              Clip.from_array(frames), 0.7, np.ones((9, 50, 80), dtype=np.float32))
    state = load_file(patches / "minimax_h3_fun_controlnet_tiny.safetensors")
    for places, words in (("[0, 7]", "after transformer blocks \\[0, 7\\]; this MiniMax H3 transformer has 2"),
                          ("[0, 'x']", "not a list of block numbers")):     # the file's placement, read and checked
        save_file(state, patches / "minimax_h3_fun_placed.safetensors", metadata={"control_blocks_places": places})
        with pytest.raises(NodeError, match=words):
            apply(model, load(ModelManager(), "minimax_h3_fun_placed.safetensors"), vae, Clip.from_array(frames), 1.0)


POSE_NODES = ("checkpoint_loader_simple_700_673", "resize_image_mask_node_700_674", "rtdetr_detect_700_678",
              "sd_pose_keypoint_extractor_700_671", "sd_pose_draw_keypoints_700_672")


def test_comfyui_minimax_h3_fun_controlnet_template_runs(minimax, tmp_path, monkeypatch):
    """ComfyUI's MiniMax H3 Fun ControlNet template (MiniMaxH3ReferenceToVideo without pictures, ModelPatchLoader,
    MiniMaxH3FunControlNetApply on the control video through PreviewImage) imports with every node mapped
    (control.model_patch on the model) and runs on the tiny files to a video with its sound; its pose pictures
    (SDPose, RT-DETR: tests/test_sdpose.py, test_rtdetr.py) are replaced by the loaded control video here."""
    import wave
    import numpy as np
    import yaml as yml
    from graph_engine import Clip
    from comfy_layouts import _ran, imported_template, link_as
    from nodes.io.video_write import write_video
    monkeypatch.chdir(tmp_path)
    patches = minimax / "models" / "model_patches"
    patches.mkdir(exist_ok=True)
    _tiny_fun_control(patches / "minimax_h3_fun_controlnet_tiny.safetensors")
    link_as(patches / "minimax_h3_fun_controlnet_union_pruned_int8_convrot.safetensors",
            patches / "minimax_h3_fun_controlnet_tiny.safetensors")
    write_video(Clip.from_array(np.random.default_rng(18).integers(0, 256, (12, 48, 80, 3), dtype=np.uint8)),
                str(tmp_path / "dancer_field_pose.mp4"), fps=24.0)
    _, text = imported_template(minimax / "models", TEMPLATE_FILES, TEMPLATES / "video_minimax_h3_fun_controlnet_union"
                                ".json", (W, H), (20, 2))
    wf = yml.safe_load(text)
    for name in POSE_NODES:
        del wf["nodes"][name]
        wf["ui"].pop(name, None)
    control = wf["nodes"]["mini_max_h3_fun_control_net_apply_172"]
    assert control["type"] == "control.model_patch" and control["inputs"]["video"].startswith("sd_pose_draw")
    control["inputs"]["video"] = "video_slice_705.video"
    wf["nodes"]["load_video_174"]["params"]["path"] = str(tmp_path / "dancer_field_pose.mp4")
    latent = wf["nodes"]["mini_max_h3_reference_to_video_136_latent"]["params"]
    assert (latent["width"], latent["height"], latent["frames"]) == (864, 480, 124)
    latent.update(width=W, height=H, frames=FRAMES)
    wf["nodes"]["sampler_custom_advanced_125"]["params"]["sampler"] = "euler"
    out, _ = _ran(tmp_path / "minimax_fun.kino.yaml", yml.safe_dump(wf, sort_keys=False, allow_unicode=True),
                  "sampler_custom_advanced")
    clip = next(v["video"] for k, v in out.outputs.items() if k.startswith("create_video"))
    assert clip.length == FRAMES and (clip.width, clip.height) == (W, H)
    with wave.open(clip.audio.path) as sound:
        assert (sound.getnchannels(), sound.getframerate()) == (2, 32000)
    steered = next(v["model"] for k, v in out.outputs.items() if k.startswith("mini_max_h3_fun_control_net_apply"))
    assert len(steered.option("controlnet")) == 1
