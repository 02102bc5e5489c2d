"""MiniMax Music 3 from the files ComfyUI users have (the DiT, the text encoder with its depth decoder and tokenizer,
the DAV, in ComfyUI's key names), on tiny random weights: the language model's frames and the rendered song against
diffusers' MiniMaxMusic3Blocks with the same weights, prompt and seeds; ComfyUI's windows and tiled decode written
out; the pruned text encoder layout; ComfyUI's template imported and run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests.comfy_layouts import _save, models_dir

CODE0 = 151675                      # the first semantic code's token
VOCAB = CODE0 + 16384
END = 151670
SPECIAL = {"<|im_start|>": 151644, "<|im_end|>": 151645, "<|audio_cfg|>": 151654, "<|audio_start|>": 151669,
           "<|audio_end|>": END, "<|caption_start|>": 151671, "<|caption_end|>": 151672,
           "<|lyrics_start|>": 151673, "<|lyrics_end|>": 151674}
WORDS = ["[UNK]", "\n", "[start]", "[verse]", "[chorus]", "la", "hey", "lo-fi", "piano", "rain", "is", "soft"]
FILES = dict(diffusion_model="minimax_music3_tiny_dit.safetensors", text_encoder="minimax_music3_tiny_te.safetensors",
             vae="minimax_music3_tiny_dav.safetensors")
PRUNED = "minimax_music3_tiny_te_pruned.safetensors"
MERGED = "minimax_music3_tiny_te_merged.safetensors"        # qkv_proj / gate_up_proj, as ComfyUI may write them
THETA = "minimax_music3_tiny_dit_theta500.safetensors"      # rotary frequencies of another base
CAPTION, LYRICS = "lo-fi piano, **soft** rain", "[Verse]\nla la hey\n[chorus] hey hey"
DURATION = 0.4                      # 10 frames of the language model


def tokenizer_json() -> str:
    """A word-level tokenizer whose special tokens have the checkpoint's ids."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    vocab = {w: i for i, w in enumerate(WORDS)}
    vocab.update(SPECIAL)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(r"\s+|[,.*]", "isolated")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    return tok.to_str()


def tiny_parts() -> dict:
    from diffusers import (MiniMaxMusic3ConditionEncoder, MiniMaxMusic3RVQDepthDecoder,
                           MiniMaxMusic3Transformer1DModel, MiniMaxMusic3Vocoder)
    from transformers import Qwen3Config, Qwen3ForCausalLM
    torch.manual_seed(0)
    lm = Qwen3ForCausalLM(Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6,
                                      rope_theta=1000000.0, tie_word_embeddings=False))
    depth = MiniMaxMusic3RVQDepthDecoder(hidden_size=32, num_layers=2, num_attention_heads=16, intermediate_size=48,
                                         audio_vocab_size=64, num_codebooks=8)
    cond = MiniMaxMusic3ConditionEncoder(condition_hidden_dim=32, num_condition_layers=8, out_dim=16)
    dit = MiniMaxMusic3Transformer1DModel(in_channels=8, condition_dim=16, num_layers=2, num_attention_heads=2,
                                          attention_head_dim=64, ff_inner_dim=32, rotary_dim=32,
                                          fourier_embedding_dim=16)
    vocoder = MiniMaxMusic3Vocoder(latent_channels=8, decoder_input_dim=16, decoder_hidden_dim=16)
    with torch.no_grad():       # norms, scales and snakes away from their starts, so a swapped one shows
        for m in (depth, cond, dit, vocoder, lm):
            for k, p in m.named_parameters():
                if re.search(r"norm|layer_scale|logits|alpha", k):
                    p.add_(torch.randn_like(p) * 0.3)
        lm.lm_head.weight.mul_(4)
        lm.lm_head.weight[END].zero_()         # the song goes on (a random head ends it early now and then)
    return {k: m.eval() for k, m in dict(language_model=lm, rvq_depth_decoder=depth, condition_encoder=cond,
                                         transformer=dit, vocoder=vocoder).items()}


# -- ComfyUI's key names (comfy/ldm/minimax_music/{ar,dit,dav}.py, comfy/text_encoders/minimax_music.py) ------------
def merged(sd: dict) -> dict:
    """The text encoder's projections merged (ComfyUI's merged_qkv / merged_mlp forms)."""
    out = dict(sd)
    for key in [k for k in sd if k.endswith("self_attn.q_proj.weight")]:
        base = key[:-len("q_proj.weight")]
        out[base + "qkv_proj.weight"] = torch.cat([out.pop(base + p + "_proj.weight") for p in "qkv"])
    for key in [k for k in sd if k.endswith("mlp.gate_proj.weight")]:
        base = key[:-len("gate_proj.weight")]
        out[base + "gate_up_proj.weight"] = torch.cat([out.pop(base + "gate_proj.weight"),
                                                       out.pop(base + "up_proj.weight")])
    return out


def dit_original(dit, cond, theta: float = 10000.0) -> dict:
    sd = {"latent_conditioners.0.weight": cond.proj.weight, "latent_conditioners.0.bias": cond.proj.bias,
          "cond_layer_logits": cond.layer_weight_logits, "cond_layer_scale": cond.layer_scale}
    t = "diffusion_transformer."
    inv = 1.0 / (theta ** (torch.arange(0, 32, 2).float() / 32))
    sd.update({t + "timestep_features.weight": dit.time_proj.weight, t + "preprocess_conv.weight":
               dit.preprocess_conv.weight, t + "postprocess_conv.weight": dit.postprocess_conv.weight,
               t + "transformer.project_in.weight": dit.proj_in.weight,
               t + "transformer.project_out.weight": dit.proj_out.weight,
               t + "transformer.rotary_pos_emb.inv_freq": inv})
    for i, lin in ((0, dit.time_embed.linear_1), (2, dit.time_embed.linear_2)):
        sd[f"{t}to_timestep_embed.{i}.weight"], sd[f"{t}to_timestep_embed.{i}.bias"] = lin.weight, lin.bias
    for i, b in enumerate(dit.transformer_blocks):
        p = f"{t}transformer.layers.{i}."
        sd.update({p + "pre_norm.gamma": b.norm1.weight, p + "pre_norm.beta": b.norm1.bias,
                   p + "ff_norm.gamma": b.norm2.weight, p + "ff_norm.beta": b.norm2.bias,
                   p + "self_attn.to_qkv.weight": torch.cat([b.attn.to_q.weight, b.attn.to_k.weight,
                                                             b.attn.to_v.weight]),
                   p + "self_attn.to_out.weight": b.attn.to_out[0].weight,
                   p + "ff.ff.0.proj.weight": b.ff_in.weight, p + "ff.ff.0.proj.bias": b.ff_in.bias,
                   p + "ff.ff.2.weight": b.ff_out.weight, p + "ff.ff.2.bias": b.ff_out.bias})
    return {k: v.detach().clone() for k, v in sd.items()}


def te_original(lm, depth, pruned: bool = False) -> dict:
    sd = {k: v for k, v in lm.state_dict().items() if k.startswith("model.") and "embed_tokens" not in k}
    embed, head = lm.model.embed_tokens.weight, lm.lm_head.weight
    if pruned:
        sd.update({"model.embed_tokens_prefill.weight": embed[:CODE0],
                   "model.embed_tokens_audio.weight": embed[CODE0:],
                   "model.lm_head_pruned.weight": torch.cat([head[END:END + 1], head[CODE0:]])})
    else:
        sd.update({"model.embed_tokens.weight": embed, "model.lm_head.weight": head})
    sd["model.audio_extra_embedding.weight"] = depth.audio_embeddings.weight
    for k, v in depth.state_dict().items():
        if k == "audio_embeddings.weight":
            continue
        k = re.sub(r"\.attn\.to_(q|k|v)\.", r".self_attn.\1_proj.", k).replace(".attn.to_out.", ".self_attn.o_proj.")
        k = re.sub(r"(layers\.\d+)\.(gate|up|down)_proj", r"\1.mlp.\2_proj", k)
        sd["model.audio_decoder." + k] = v
    sd["tokenizer_json"] = torch.tensor(list(tokenizer_json().encode("utf-8")), dtype=torch.uint8)
    return {k: v.detach().clone() for k, v in sd.items()}


def dav_original(vocoder, parametrized: bool = False) -> dict:
    blocks = {"snake1.": "block.0.", "conv_t1.": "block.1.", "res_unit1.": "block.2.", "res_unit2.": "block.3.",
              "res_unit3.": "block.4."}
    unit = {"snake1.": "block.0.", "conv1.": "block.1.", "snake2.": "block.2.", "conv2.": "block.3."}
    n = len(vocoder.blocks)
    sd = {}
    for k, v in vocoder.state_dict().items():
        if k.startswith("conv_in."):
            k = "decoder.model.0." + k[len("conv_in."):]
        elif k.startswith("blocks."):
            i, rest = k[len("blocks."):].split(".", 1)
            head = next(h for h in blocks if rest.startswith(h))
            rest = blocks[head] + rest[len(head):]
            if head.startswith("res_unit"):
                inner = rest[len("block.2."):]
                h2 = next(h for h in unit if inner.startswith(h))
                rest = rest[:len("block.2.")] + unit[h2] + inner[len(h2):]
            k = f"decoder.model.{int(i) + 1}.{rest}"
        elif k.startswith("snake_out."):
            k = f"decoder.model.{n + 1}." + k[len("snake_out."):]
        elif k.startswith("conv_out."):
            k = f"decoder.model.{n + 2}." + k[len("conv_out."):]
        if parametrized:
            k = k.replace("weight_g", "parametrizations.weight.original0").replace(
                "weight_v", "parametrizations.weight.original1")
        sd[k] = v.detach().clone()
    return sd


def build(root: Path) -> Path:
    p = tiny_parts()
    m = root / "models"
    _save(dit_original(p["transformer"], p["condition_encoder"]), m / "diffusion_models" / FILES["diffusion_model"])
    _save(te_original(p["language_model"], p["rvq_depth_decoder"]), m / "text_encoders" / FILES["text_encoder"])
    _save(te_original(p["language_model"], p["rvq_depth_decoder"], pruned=True), m / "text_encoders" / PRUNED)
    _save(merged(te_original(p["language_model"], p["rvq_depth_decoder"])), m / "text_encoders" / MERGED)
    _save(dit_original(p["transformer"], p["condition_encoder"], theta=500.0), m / "diffusion_models" / THETA)
    _save(dav_original(p["vocoder"], parametrized=True), m / "vae" / FILES["vae"])
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    yield from models_dir(tmp_path_factory, build, "music3")


@pytest.fixture(scope="module")
def parts(tiny):
    """The same seeded modules build() saved as ComfyUI's files, made again rather than pickled beside them."""
    return tiny_parts()


@pytest.fixture(scope="module")
def model(tiny):
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate.model_manager import ModelManager
    return mm3.load(ModelManager(), FILES["diffusion_model"], FILES["text_encoder"], FILES["vae"], "cpu")


def reference_frames(parts, seed: int, duration: float = DURATION) -> torch.Tensor:
    """diffusers' semantic stage (tokenize, autoregressive) on the same modules, its generator ComfyUI's seed."""
    from diffusers.modular_pipelines import MiniMaxMusic3Blocks
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer
    from nodes.generate.minimax_music3 import derive_seed
    stage = MiniMaxMusic3Blocks().sub_blocks["semantic_generator"]
    pipe = stage.init_pipeline()
    pipe.update_components(tokenizer=PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json())),
                           language_model=parts["language_model"], rvq_depth_decoder=parts["rvq_depth_decoder"])
    return pipe(prompt=CAPTION, lyrics=LYRICS, audio_duration=duration,
                generator=torch.Generator().manual_seed(derive_seed(seed, "ar")), output="frame_hiddens")


def reference_song(parts, frames: torch.Tensor, seed: int, steps: int, cfg: float):
    """diffusers' flow stage (one window: <= 200 frames) and decode on the same modules: KSampler's noise (its
    generator seeded with the seed), ComfyUI's simple schedule (1000 / steps whole: diffusers' linspace), then
    VAEDecodeAudio's loudness rule. (latent, waveform [2, samples])."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from diffusers.guiders import ClassifierFreeGuidance
    from diffusers.modular_pipelines import MiniMaxMusic3Blocks
    blocks = MiniMaxMusic3Blocks()
    blocks.sub_blocks.pop("semantic_generator")
    pipe = blocks.init_pipeline()
    pipe.update_components(transformer=parts["transformer"], condition_encoder=parts["condition_encoder"],
                           vocoder=parts["vocoder"], guider=ClassifierFreeGuidance(guidance_scale=cfg),
                           scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, invert_sigmas=True))
    state = pipe(frame_hiddens=frames, generator=torch.Generator().manual_seed(seed), num_inference_steps=steps,
                 output_type="pt", output=["latent_chunks", "audios"])
    (latent,) = state["latent_chunks"]
    wave = parts["vocoder"](latent)[0].detach()
    return latent, wave / max(float(wave.std()) * 5.0, 1.0)


def test_frames_match_diffusers(model, parts):
    """The language model's frames (semantic code with guidance, seven depth codes, their hidden states) for the
    caption, lyrics and seed: diffusers' for ComfyUI's seed."""
    from nodes.generate import minimax_music3 as mm3
    got = mm3.frame_states(model, CAPTION, LYRICS, 7, mm3.frames_for(DURATION))
    want = reference_frames(parts, 7)
    assert got.shape == want.shape == (1, 10, 8 * 32)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
    other = mm3.frame_states(model, CAPTION, LYRICS, 8, mm3.frames_for(DURATION))
    assert float((other - want).abs().max()) > 1e-3


def test_song_matches_diffusers(model, parts):
    """KSampler's way (euler, simple, 10 steps, cfg 1.7 against no conditioning) on the frames: diffusers' latent
    and waveform."""
    from nodes.generate import minimax_music3 as mm3
    frames = reference_frames(parts, 3)
    latent = mm3.generate(model, frames, 0.0, 10, 1.7, "euler", "simple", 11)
    want_latent, want = reference_song(parts, frames, 11, 10, 1.7)
    assert latent.shape == want_latent.shape == (1, 8, mm3.latent_length(10))
    assert torch.allclose(latent, want_latent, atol=1e-5), float((latent - want_latent).abs().max())
    wave = mm3.decode(model, latent)
    assert wave.shape == (2, latent.shape[-1] * 512) and float(want.abs().max()) > 0.01
    assert torch.allclose(wave, want, atol=1e-5), float((wave - want).abs().max())


def test_pruned_text_encoder_is_the_full_one(tiny, model):
    """ComfyUI's pruned text encoder (embed_tokens_prefill / embed_tokens_audio, lm_head_pruned: <|audio_end|> then
    the codes) holds the full file's rows; it writes frames as the full one does (its draws over the pruned head:
    ComfyUI's own rule)."""
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate.model_manager import ModelManager
    pruned = mm3.load(ModelManager(), FILES["diffusion_model"], PRUNED, FILES["vae"], "cpu")
    assert pruned.pruned_head and not model.pruned_head
    assert torch.equal(pruned.prompt_table, model.prompt_table[:CODE0])
    assert torch.equal(pruned.code_table, model.code_table)
    assert torch.equal(pruned.head, torch.cat([model.head[END:END + 1], model.head[CODE0:]]))
    frames = mm3.frame_states(pruned, CAPTION, LYRICS, 7, 6)
    assert frames.shape == (1, 6, 8 * 32) and torch.equal(frames, mm3.frame_states(pruned, CAPTION, LYRICS, 7, 6))


def test_long_latent_in_overlapping_windows(model, parts, monkeypatch):
    """Past 200 frames the DiT runs on windows of 200 frames' latents, 100 frames apart, averaged where they overlap
    (ComfyUI's MiniMaxMusic3DiT.forward, written out here, the windows made small)."""
    from nodes.generate import minimax_music3 as mm3
    monkeypatch.setattr(mm3, "WINDOW_FRAMES", 4)
    monkeypatch.setattr(mm3, "WINDOW_HOP_FRAMES", 2)
    torch.manual_seed(5)
    x, cond = torch.randn(2, 8, 30), torch.randn(2, 30, 16)
    dit = parts["transformer"]
    window, hop = mm3.latent_length(4), mm3.latent_length(2)
    want, count, start = torch.zeros_like(x), torch.zeros(1, 1, 30), 0
    t = torch.full((2,), 0.25)
    while start < 30:
        end = min(start + window, 30)
        want[..., start:end] += dit(x[..., start:end], t, cond[:, start:end], return_dict=False)[0]
        count[..., start:end] += 1
        if end == 30:
            break
        start += hop
    with torch.no_grad():
        got = mm3.velocity(model, x, 0.75, cond)
    assert window < 30 and torch.allclose(got, (want / count).detach(), atol=1e-5)


def test_tiled_decode_blends_as_comfyui(model, parts):
    """VAEDecodeAudioTiled: tiles of tile_size latent frames starting (tile - overlap) apart, each weighted by linear
    ramps over the overlap's samples (comfy.utils.tiled_scale_multidim, written out here), then the loudness rule;
    a latent within one tile is decoded whole."""
    from nodes.generate import minimax_music3 as mm3
    torch.manual_seed(6)
    latent = torch.randn(1, 8, 20)
    tile, overlap = 8, 2
    with torch.no_grad():
        out, div = torch.zeros(1, 2, 20 * 512), torch.zeros(1, 2, 20 * 512)
        for start in range(0, 20 - overlap, tile - overlap):
            pos = max(0, min(20 - overlap, start))
            ps = parts["vocoder"](latent[..., pos:pos + min(tile, 20 - pos)])
            mask = torch.ones_like(ps)
            feather = overlap * 512
            for t in range(feather):
                a = (t + 1) / feather
                mask[..., t] *= a
                mask[..., mask.shape[-1] - 1 - t] *= a
            out[..., pos * 512:pos * 512 + ps.shape[-1]] += ps * mask
            div[..., pos * 512:pos * 512 + ps.shape[-1]] += mask
        want = (out / div)[0]
        want = want / max(float(want.std()) * 5.0, 1.0)
        whole = mm3.decode(model, latent)
    got = mm3.decode(model, latent, tile, overlap)
    assert got.shape == want.shape == (2, 20 * 512)
    assert torch.allclose(got, want, atol=1e-5) and float((got - whole).abs().max()) > 1e-4
    assert torch.equal(mm3.decode(model, latent, 32, overlap), whole)


def imported():
    from app.comfyui import import_workflow
    from graph_engine.api import load_workflow
    result = import_workflow(str(Path(__file__).parent / "data" / "comfyui" / "templates" /
                                 "audio_minimax_music_3.json"))
    wf = load_workflow(text=result.yaml, check=False)
    (song,) = [n for n in wf.graph.nodes.values() if n.type == "generate.minimax_music3"]
    (save,) = [n for n in wf.graph.nodes.values() if n.type == "io.save_audio"]
    return result, wf, song, save


def test_comfyui_template_imports():
    """ComfyUI's MiniMax Music 3 template (a subgraph; its switch picks VAEDecodeAudioTiled): the loaders,
    MiniMaxMusic3TextEncode, ConditioningZeroOut, EmptyMiniMaxMusic3LatentAudio (its seconds the language model's),
    KSampler and the tiled decoder become one generate.minimax_music3; the unpicked VAEDecodeAudio does not run."""
    result, _, song, save = imported()
    p = song.params
    assert {k: p[k] for k in ("diffusion_model", "text_encoder", "vae", "max_duration", "cfg_scale", "top_k",
                              "seconds", "steps", "cfg", "sampler", "scheduler", "tile_size", "overlap")} == \
        {"diffusion_model": "minimax_music3_dit_fp16.safetensors",
         "text_encoder": "minimax_music3_text_encoder_pruned_int8_convrot.safetensors",
         "vae": "minimax_music3_dav.safetensors", "max_duration": 60, "cfg_scale": 1.7, "top_k": 50, "seconds": 0.0,
         "steps": 30, "cfg": 1.7, "sampler": "euler", "scheduler": "simple", "tile_size": 1536, "overlap": 64}
    assert p["seed"] == p["lm_seed"] == 197122968890040
    assert p["caption"].startswith("Global Metadata: Lo-fi") and p["lyrics"].startswith("[Intro]\nMmm...")
    assert (save.params["path"], save.params["quality"]) == ("out/audio/audio_minimax_music3.mp3", "V0")
    unpicked = [e for e in result.report.entries.values() if e.class_type == "VAEDecodeAudio"]
    assert [e.status for e in unpicked] == ["ui"]


def test_comfyui_template_runs_and_saves_its_song(tiny, parts, tmp_path):
    """The template on the tiny files (0.4 s at most, 4 steps; the language model's guidance at 1.5, diffusers'
    fixed one): its FLAC holds the reference's song for its caption, lyrics and seeds."""
    from graph_engine.api import Session
    from tests.test_stable_audio import decoded
    _, wf, song, save = imported()
    p = song.params
    p.update(FILES, caption=CAPTION, lyrics=LYRICS, max_duration=DURATION, cfg_scale=1.5, steps=4)
    save.params["path"] = str(tmp_path / "song.flac")
    run = Session(device="cpu").run(wf, use_cache=False)
    assert run.ok, run.failed
    _, want = reference_song(parts, reference_frames(parts, p["lm_seed"]), p["seed"], 4, 1.7)
    codec, rate, got = decoded(tmp_path / "song.flac")
    assert (codec, rate, got.shape) == ("flac", 44100, tuple(want.shape))
    assert float(abs(got - want.clamp(-1, 1).numpy()).max()) < 2 / 32768


def test_files_refused_by_name(tiny, model):
    """Another model's file in a place, an empty caption or lyrics: a message naming the thing and the fix."""
    from graph_engine import NodeError
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate.model_manager import ModelManager
    with pytest.raises(NodeError, match="tiny_dav.safetensors is not a MiniMax Music 3 diffusion model"):
        mm3.load(ModelManager(), str(tiny / "models" / "vae" / FILES["vae"]), FILES["text_encoder"], FILES["vae"],
                 "cpu")
    with pytest.raises(NodeError, match="tiny_dit.safetensors is not a MiniMax Music 3 text encoder"):
        mm3.load(ModelManager(), FILES["diffusion_model"], str(tiny / "models" / "diffusion_models" /
                                                               FILES["diffusion_model"]), FILES["vae"], "cpu")
    with pytest.raises(NodeError, match="needs lyrics"):
        mm3.frame_states(model, CAPTION, " ", 0, 4)
    with pytest.raises(NodeError, match="needs a caption"):
        mm3.frame_states(model, "", LYRICS, 0, 4)


@pytest.mark.parametrize("folder, name", [("diffusion_models", FILES["diffusion_model"]),
                                          ("text_encoders", FILES["text_encoder"]), ("text_encoders", PRUNED),
                                          ("vae", FILES["vae"])])
def test_files_named_with_the_node_that_reads_them(tiny, folder, name):
    """kinograph info names each of the three files with generate.minimax_music3 (the text encoder not as a plain
    Qwen3), and a model loader given one says that node reads it."""
    from graph_engine import NodeError
    from nodes.generate.model_manager import describe_model, detect_family
    path = tiny / "models" / folder / name
    d = describe_model(path)
    assert d["loads"] == "yes" and "generate.minimax_music3" in d["note"] and d["family"] == "minimax_music3", d
    with pytest.raises(NodeError, match="MiniMax Music 3.*generate.minimax_music3"):
        detect_family(path)


def test_merged_projections_and_rotary_base(tiny, model, parts):
    """A text encoder with merged projections (qkv_proj, gate_up_proj) writes the same frames; a DiT whose rotary
    frequencies were made with another base runs with that base (diffusers' transformer told it)."""
    import copy
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate.model_manager import ModelManager
    other = mm3.load(ModelManager(), THETA, MERGED, FILES["vae"], "cpu")
    want = mm3.frame_states(model, CAPTION, LYRICS, 2, 5)
    assert torch.equal(mm3.frame_states(other, CAPTION, LYRICS, 2, 5), want)
    assert abs(other.transformer.rotary_emb.theta - 500.0) < 1e-2 and model.transformer.rotary_emb.theta == 10000.0
    dit = copy.deepcopy(parts["transformer"])
    dit.rotary_emb.theta = 500.0
    torch.manual_seed(3)
    x, cond, t = torch.randn(1, 8, 12), torch.randn(1, 12, 16), torch.full((1,), 0.4)
    with torch.no_grad():
        ref = dit(x, t, cond, return_dict=False)[0]
        assert torch.allclose(mm3.velocity(other, x, 0.6, cond), ref, atol=1e-4)
        assert float((mm3.velocity(model, x, 0.6, cond) - ref).abs().max()) > 1e-4



def test_weights_are_the_files_tensors_not_copies(tiny, monkeypatch):
    """The modules hold the tensors read from the files, not copies of them in modules first filled with random
    weights: built that way, loading the 8B language model (16 GB in bfloat16) held its file's tensors, a randomly
    initialised model as large and, still, the DiT's file tensors beside its module (some 50 GB of memory for the
    released files)."""
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate import weights
    from nodes.generate.model_manager import ModelManager
    read, load_weights = set(), weights.load_weights

    def recording(*args, **kwargs):
        state = load_weights(*args, **kwargs)
        read.update(v.untyped_storage().data_ptr() for v in state.values())
        return state
    monkeypatch.setattr(weights, "load_weights", recording)
    fresh = mm3.load(ModelManager(), FILES["diffusion_model"], FILES["text_encoder"], FILES["vae"], "cpu")
    for part in ("transformer", "condition_encoder", "lm", "depth"):
        module = getattr(fresh, part)
        copied = [k for k, p in module.named_parameters()
                  if p.untyped_storage().data_ptr() not in read and k != "embed_tokens.weight"]
        assert not copied, (part, copied[:3])


@pytest.mark.parametrize("part, state, said", [
    ("dav_part", {"dec_in_proj.weight": torch.zeros(4, 2, 1)}, "is not a MiniMax Music 3 DAV"),
    ("dit_parts", {"diffusion_transformer.preprocess_conv.weight": torch.zeros(2, 2, 1)}, "lacks cond_layer_logits"),
    ("tokenizer_of", torch.tensor(list(b"not json"), dtype=torch.uint8), "tokenizer_json is not a tokenizer"),
    ("tokenizer_of", torch.tensor([255, 254], dtype=torch.uint8), "tokenizer_json is not a tokenizer")])
def test_damaged_files_named_not_a_traceback(part, state, said):
    """A file of the right kind with a part missing or garbled (a DAV without its decoder, a DiT without its
    conditioning layers, a tokenizer that is not JSON): a message naming the file, not max()'s ValueError, a
    KeyError or the tokenizers library's parse error."""
    from graph_engine import NodeError
    from nodes.generate import minimax_music3 as mm3
    with pytest.raises(NodeError, match=f"damaged.safetensors.*{said}"):
        getattr(mm3, part)(state, "damaged.safetensors")


def test_whole_decode_out_of_memory_falls_back_to_tiles(model, monkeypatch):
    """VAEDecodeAudio's way: a song too long to decode whole in the memory there is (a six-minute one's DAV
    activations run to tens of GB) is decoded in tiles, as ComfyUI's VAE.decode retries with decode_tiled_1d; it
    stopped with out of memory where ComfyUI goes on. (The fallback tile made small for the tiny latent.)"""
    import dataclasses
    from nodes.generate import minimax_music3 as mm3
    monkeypatch.setattr(mm3, "FALLBACK_TILE", 8)
    monkeypatch.setattr(mm3, "FALLBACK_OVERLAP", 2)

    class Scarce(torch.nn.Module):
        def forward(self, latent):
            if latent.shape[-1] > 8:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 24.00 GiB")
            return model.vocoder(latent)
    torch.manual_seed(6)
    latent = torch.randn(1, 8, 20)
    got = mm3.decode(dataclasses.replace(model, vocoder=Scarce()), latent)
    assert torch.equal(got, mm3.decode(model, latent, 8, 2))


def test_language_model_rotary_frequencies_stay_float32_in_bfloat16(tiny, monkeypatch):
    """On a GPU the language model runs in bfloat16 (ComfyUI's should_use_bf16), but its rotary frequencies are
    float32 there, as ComfyUI makes them: cast with the weights, 1e6 ** (-2/8) became 0.03174 for 0.03162, and at
    the song's 5000th position the angle was half a radian off."""
    from nodes.generate import minimax_music3 as mm3
    from nodes.generate.model_manager import ModelManager
    monkeypatch.setattr(mm3, "lm_dtype", lambda device: torch.bfloat16)
    bf16 = mm3.load(ModelManager(), FILES["diffusion_model"], FILES["text_encoder"], FILES["vae"], "cpu")
    assert next(bf16.lm.parameters()).dtype == torch.bfloat16
    want = 1.0 / (1000000.0 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8))       # head_dim 8, rope_theta 1e6
    got = bf16.lm.rotary_emb.inv_freq
    assert got.dtype == torch.float32 and torch.allclose(got.double(), want, rtol=1e-6), got
