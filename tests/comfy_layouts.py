"""Tiny random-weight LTX-Video, HunyuanVideo, SVD and CogVideoX models written twice: as a diffusers
folder and in the files a ComfyUI user holds (original key names, one file per part, the folders
ComfyUI keeps them in). The original names come from inverting Kinograph's converters, and each
writer checks that converting its file back gives the diffusers tensors exactly, so a fixture can
never drift from the converter it tests. Sizes are tiny, but the head widths (LTX-Video: the head
count, 32) are the released models' (the loaders derive the other from them, as ComfyUI does)."""
from __future__ import annotations

import re
from pathlib import Path

from nodes.generate.split import scheduler
from tests.tiny_models import _rm, _seed, t5_encoder, t5_tokenizer


def link_as(link: Path, target: Path) -> None:
    """Make `link` (a file name a ComfyUI template asks for) a symbolic link to a tiny model file. A module's model
    folder is shared by its tests, so a link made earlier is replaced; a real file there is never deleted."""
    if link.is_symlink():
        link.unlink()
    assert not link.exists(), f"{link} is a file, not a link a test made"
    link.symlink_to(target)


def built(builder, tmp_path_factory):
    """A module fixture's body: the tiny models built once, sampled with one torch thread (on a shared
    2-core machine tiny ops thrash with two)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield builder(tmp_path_factory.mktemp(builder.__name__))
    torch.set_num_threads(threads)


def imported_template(models: Path, links, template: Path, size: tuple, steps: tuple):
    """A ComfyUI template run on tiny models: each (name it asks for, tiny file) linked under models/, the template
    imported with every node mapped, and its Kinograph YAML at the tiny `size` (width, height for its 1024 x 1024)
    with `steps` (as published, as run). Returns (the template's JSON, the YAML)."""
    import json
    from app.comfyui import import_data
    for link, target in links:
        link_as(models / link, models / target)
    data = json.loads(template.read_text("utf-8"))
    res = import_data(data)
    assert "unmapped" not in {e.status for e in res.report.entries.values()}
    yaml = res.yaml.replace("width: 1024", f"width: {size[0]}").replace("height: 1024", f"height: {size[1]}")
    return data, yaml.replace(f"steps: {steps[0]}", f"steps: {steps[1]}")


def run_on_picture(template: Path, picture: Path, out: Path, edit=None):
    """A ComfyUI template that reads one picture and saves frames, imported with every node mapped and run on the
    CPU uncached: its LoadImage reading `picture`, its save writing into `out`, `edit(node)` on each node before
    the run. Returns (the workflow, the run)."""
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    res = import_workflow(str(template))
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = load_workflow(text=res.yaml, check=False)
    for n in wf.graph.nodes.values():
        if n.type == "io.load_image":
            n.params["path"] = str(picture)
        if n.type == "io.save_frames":
            n.params["path"] = str(out)
        if edit:
            edit(n)
    return wf, Session(device="cpu").run(wf, use_cache=False)


def sampled_latent(workflow: Path, yaml: str, sampler: str = "k_sampler"):
    """The first frame of the sampler's latent (the node whose name starts with `sampler`) from running `yaml`
    (written to `workflow`) on the CPU, uncached."""
    return _ran(workflow, yaml, sampler)[1]


def written_and_sampled(workflow: Path, yaml: str):
    """(the text its text.generate node wrote, the first frame of its k_sampler's latent) from running `yaml` (written
    to `workflow`) on the CPU, uncached: a template whose prompt a language model rewrites first."""
    out, latent = _ran(workflow, yaml, "k_sampler")
    return next(v["text"] for k, v in out.outputs.items() if k.startswith("text_generate")), latent


def _ran(workflow: Path, yaml: str, sampler: str):
    from graph_engine.api import Session, load_workflow
    workflow.write_text(yaml)
    out = Session(device="cpu").run(load_workflow(workflow, check=False), use_cache=False)
    assert out.ok, out.failed
    return out, next(v["latent"] for k, v in out.outputs.items() if k.startswith(sampler)).samples[:, :, 0]


def sample_cat(model, te, vae, cfg: float, negative, size: tuple):
    """The first frame of the latent Kinograph samples for "a cat" (with `negative` where given) at `cfg`, 2 euler steps,
    seed 7, on an empty latent of `size` (width, height): what the family tests compare with their pipeline's."""
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    pos = encode_prompt(te, "a cat")
    neg = encode_prompt(te, negative) if negative is not None else None
    return run_sampling(model, pos, neg, empty_latent(vae, 1, *size, 8.0), steps=2, cfg=cfg, sampler="euler",
                        seed=7).samples[:, :, 0]


def close_to(want, got, tol: float = 1e-4) -> None:
    """got is want within tol of want's largest magnitude (a reference pipeline's latent against Kinograph's)."""
    err = float((want - got).abs().max() / want.abs().max())
    assert err < tol, err


def packed_latent(pipe, prompt: str, negative: str, cfg: float, seed: int, size: tuple, **kw):
    """A FLUX.1-packed pipeline's latent (LongCat-Image's, Ovis-Image's: output_type latent gives the 2x2-patch
    tokens) for `prompt` against `negative` at `size` (width, height), unpacked to [1, 16, h, w]."""
    import torch
    from nodes.generate.adapters.flux import unpack
    w, h = size
    out = pipe(prompt, negative_prompt=negative, width=w, height=h, guidance_scale=cfg, output_type="latent",
               generator=torch.Generator().manual_seed(seed), **kw).images
    return unpack(out, h // 8, w // 8)


def auto_encoder_mismatch(model_file: str, text_encoder_file: str) -> str:
    """The message sampling the tiny model in `model_file` gives with a text encoder file loaded as type auto, which
    reads it for another family (t5xxl: LTX-Video's, qwen_3_4b: FLUX.2 [klein]'s)."""
    import pytest
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, model_file, "default", "cpu")
    te = load_text_encoder(mm, text_encoder_file, "", "auto", "cpu")
    with pytest.raises(NodeError) as e:
        run_sampling(model, encode_prompt(te, "a cat"), None, empty_latent(load_vae(mm, "ae.safetensors", "cpu"), 1,
                     64, 48, 8.0), steps=1, cfg=1.0, sampler="euler", seed=1)
    return str(e.value)


def models_dir(tmp_path_factory, builder, name: str, **kw):
    """A module fixture's body for builders of ComfyUI's model folder layout: built once under `name`, with
    KINOGRAPH_MODELS pointing at its models/ and one torch thread (as `built`)."""
    import pytest
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    root = builder(tmp_path_factory.mktemp(name), **kw)
    mp.setenv("KINOGRAPH_MODELS", str(root / "models"))
    yield root
    mp.undo()
    torch.set_num_threads(threads)


def on_tiny_wan(graph, diffusion_model: str, settings: dict) -> None:
    """An imported Wan workflow pointed at the tiny files of tiny_models.build_wan_comfy (diffusion_model: which
    of them), with `settings` {node type: params} laid over its nodes."""
    names = {"load.diffusion_model": diffusion_model, "load.text_encoder": "umt5_tiny_fp16.safetensors",
             "load.vae": "wan_tiny_vae.safetensors", "load.clip_vision": "clip_vision_tiny.safetensors"}
    for n in graph.nodes.values():
        if n.type in names:
            n.params["name"] = names[n.type]
        n.params.update(settings.get(n.type, {}))


def imported_run(api: dict, folder: Path, prefix: str):
    """A ComfyUI graph imported with every node mapped and run on the CPU from `folder`, where its SaveImage (prefix)
    wrote one picture: (the import, the run)."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    res = import_data(api)
    assert not [e for e in res.report.entries.values() if e.status == "unmapped"], res.report
    wf = folder / "imported.kino.yaml"
    wf.write_text(res.yaml)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    assert len(list((folder / "out" / prefix).glob("*.png"))) == 1
    return res, run


def _check_roundtrip(original: dict, expected: dict, convert) -> None:
    back = convert(dict(original))
    for part, state in expected.items():
        got = back[part]
        assert set(got) == set(state), (part, sorted(set(got) ^ set(state))[:6])
        for k, v in state.items():
            assert got[k].shape == v.shape and bool((got[k] == v).all()), (part, k)


def _save(state: dict, path: Path) -> Path:
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def _sub(key: str, rules) -> str:
    for pat, rep in rules:
        key, n = re.subn(pat, rep, key)
        if n:
            break
    return key


# -- LTX-Video ---------------------------------------------------------------------------------
def ltx_original(transformer: dict, vae: dict, version: str = "0.9.5") -> dict:
    """Lightricks' names, as in ltx-video-2b-v0.9.5.safetensors: `model.diffusion_model.` + the VAE under `vae.`."""
    return {**ltx_transformer_original(transformer), **ltx_vae_original(vae, version)}


def ltx_transformer_original(transformer: dict) -> dict:
    """A diffusers LTX transformer in Lightricks' names under `model.diffusion_model.`."""
    out = {}
    for k, v in transformer.items():
        for new, old in (("proj_in", "patchify_proj"), ("time_embed", "adaln_single"), ("norm_q", "q_norm"),
                         ("norm_k", "k_norm")):
            k = k.replace(new, old)
        out["model.diffusion_model." + k] = v
    return out


def ltx_vae_original(vae: dict, version: str) -> dict:
    """A diffusers LTX VAE in Lightricks' flat block lists, by inverting the converter's table of `version`:
    each diffusers block prefix (longest first) goes back to the original index it came from."""
    from nodes.generate.converters.ltx import _vae_table
    back = {"encoder": sorted(((n, o) for o, n in _vae_table(version) if o.startswith("down_blocks")),
                              key=lambda r: -len(r[0])),
            "decoder": sorted(((n, o) for o, n in _vae_table(version) if o.startswith("up_blocks")),
                              key=lambda r: -len(r[0]))}
    top = {"decoder.time_embedder.": "decoder.last_time_embedder.",
           "decoder.scale_shift_table": "decoder.last_scale_shift_table",
           "latents_mean": "per_channel_statistics.mean-of-means", "latents_std": "per_channel_statistics.std-of-means"}
    out = {}
    for k, v in vae.items():
        part, _, rest = k.partition(".")
        hit = next(((n, o) for n, o in back.get(part, ()) if rest.startswith(n + ".")), None)
        if hit:
            k = f"{part}.{hit[1]}{rest[len(hit[0]):]}"
        k = next((o2 + k[len(o1):] for o1, o2 in top.items() if k.startswith(o1)), k)
        k = k.replace("resnets", "res_blocks").replace("conv_shortcut.conv", "conv_shortcut").replace("norm3.", "norm3.norm.")
        out["vae." + k] = v
    out["vae.per_channel_statistics.channel"] = vae["latents_mean"].new_zeros(vae["latents_mean"].shape)
    out["vae.per_channel_statistics.mean-of-stds"] = vae["latents_std"].clone()
    return out


def ltx_vae(version: str):
    """A tiny LTX VAE of one released generation's structure (widths doubling like the real ones)."""
    from diffusers import AutoencoderKLLTXVideo
    common = dict(in_channels=3, out_channels=3, latent_channels=8, patch_size=4, patch_size_t=1)
    if version == "0.9.5":
        return AutoencoderKLLTXVideo(
            **common, block_out_channels=(8, 8, 16, 16, 32), down_block_types=("LTXVideo095DownBlock3D",) * 4,
            decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True,) * 4,
            decoder_spatio_temporal_scaling=(True,) * 3, decoder_inject_noise=(False,) * 4,
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            upsample_residual=(True,) * 3, upsample_factor=(2, 2, 2), timestep_conditioning=True,
            spatial_compression_ratio=32, temporal_compression_ratio=8)
    if version == "0.9.1":
        return AutoencoderKLLTXVideo(
            **common, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32),
            layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1),
            decoder_spatio_temporal_scaling=(True,) * 3, decoder_inject_noise=(True, True, True, False),
            upsample_residual=(True,) * 3, upsample_factor=(2, 2, 2), timestep_conditioning=True)
    return AutoencoderKLLTXVideo(**common, block_out_channels=(8, 16, 32, 32), decoder_block_out_channels=(8, 16, 32, 32),
                                 layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1))


def build_ltx(root: Path) -> dict[str, Path]:
    """DIR/diffusers/ltx (a diffusers folder) and the ComfyUI files: checkpoints/ltx-video-2b-v0.9.5.safetensors
    (transformer + VAE), text_encoders/t5xxl_fp16.safetensors."""
    import torch
    from diffusers import LTXPipeline, LTXVideoTransformer3DModel

    from nodes.generate.converters import ltx
    _seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=32, attention_head_dim=2, cross_attention_dim=64,
                                             num_layers=1, caption_channels=32)
    vae = ltx_vae("0.9.5")
    with torch.no_grad():           # non-trivial latent statistics, so their conversion is tested too
        vae.latents_mean.uniform_(-0.5, 0.5)
        vae.latents_std.uniform_(0.5, 1.5)
    text = t5_encoder(32)
    folder = root / "diffusers" / "ltx"
    LTXPipeline(scheduler=scheduler("ltx"), vae=vae, text_encoder=text,
                tokenizer=t5_tokenizer(root / "_tok"), transformer=transformer).save_pretrained(
        str(folder), safe_serialization=True)
    _rm(root / "_tok")
    t_state, v_state = transformer.state_dict(), vae.state_dict()
    original = ltx_original(t_state, v_state)
    _check_roundtrip(original, {"transformer": t_state, "vae": v_state}, ltx.to_diffusers)
    models = root / "models"
    t5_tokenizer(models / "text_encoders" / "t5xxl_fp16")        # found beside the file, never downloaded
    return {"diffusers": folder, "models": models,
            "checkpoint": _save(original, models / "checkpoints" / "ltx-video-2b-v0.9.5.safetensors"),
            "text_encoder": _save(t5_file(text), models / "text_encoders" / "t5xxl_fp16.safetensors")}


def t5_file(encoder) -> dict:
    """A T5 encoder as ComfyUI's t5xxl files hold it: transformers' names, the tied embedding once."""
    return {k: v for k, v in encoder.state_dict().items() if k != "encoder.embed_tokens.weight"}


# -- HunyuanVideo ------------------------------------------------------------------------------
_HY_BLOCK = [("norm1.linear", "img_mod.linear"), ("norm1_context.linear", "txt_mod.linear"),
             ("attn.norm_q", "img_attn_q_norm"), ("attn.norm_k", "img_attn_k_norm"),
             ("attn.norm_added_q", "txt_attn_q_norm"), ("attn.norm_added_k", "txt_attn_k_norm"),
             ("attn.to_out.0", "img_attn_proj"), ("attn.to_add_out", "txt_attn_proj"),
             ("ff.net.0.proj", "img_mlp.fc1"), ("ff.net.2", "img_mlp.fc2"),
             ("ff_context.net.0.proj", "txt_mlp.fc1"), ("ff_context.net.2", "txt_mlp.fc2")]
_HY_TOP = [("x_embedder.", "img_in."), ("time_text_embed.timestep_embedder.linear_1.", "time_in.mlp.0."),
           ("time_text_embed.timestep_embedder.linear_2.", "time_in.mlp.2."),
           ("time_text_embed.guidance_embedder.linear_1.", "guidance_in.mlp.0."),
           ("time_text_embed.guidance_embedder.linear_2.", "guidance_in.mlp.2."),
           ("time_text_embed.text_embedder.linear_1.", "vector_in.in_layer."),
           ("time_text_embed.text_embedder.linear_2.", "vector_in.out_layer."),
           ("proj_out.", "final_layer.linear."),
           ("context_embedder.time_text_embed.timestep_embedder.linear_1.", "txt_in.t_embedder.mlp.0."),
           ("context_embedder.time_text_embed.timestep_embedder.linear_2.", "txt_in.t_embedder.mlp.2."),
           ("context_embedder.time_text_embed.text_embedder.linear_1.", "txt_in.c_embedder.linear_1."),
           ("context_embedder.time_text_embed.text_embedder.linear_2.", "txt_in.c_embedder.linear_2."),
           ("context_embedder.proj_in.", "txt_in.input_embedder.")]
_HY_REFINER = [("norm_out.linear", "adaLN_modulation.1"), ("attn.to_out.0", "self_attn_proj"),
               ("ff.net.0.proj", "mlp.fc1"), ("ff.net.2", "mlp.fc2")]


def hunyuan_original(t: dict) -> dict:
    """Tencent's names, as in hunyuan_video_t2v_720p_bf16.safetensors (fused qkv, fused single-block linear1)."""
    import torch
    out, fused = {}, {}
    for k, v in t.items():
        m = re.match(r"(transformer_blocks|single_transformer_blocks|context_embedder\.token_refiner\.refiner_blocks)"
                     r"\.(\d+)\.(.*)$", k)
        if k.startswith("norm_out.linear."):
            scale, shift = v.chunk(2, dim=0)
            out[k.replace("norm_out.linear.", "final_layer.adaLN_modulation.1.")] = torch.cat([shift, scale])
        elif m is None:
            out[next((k.replace(a, b, 1) for a, b in sorted(_HY_TOP, key=lambda r: -len(r[0]))
                      if k.startswith(a)), k)] = v
        else:
            kind, n, rest = m.groups()
            name, kind_ = rest.rsplit(".", 1)
            if kind == "transformer_blocks":
                base = f"double_blocks.{n}"
                qkv = {"attn.to_q": ("img_attn_qkv", 0), "attn.to_k": ("img_attn_qkv", 1),
                       "attn.to_v": ("img_attn_qkv", 2), "attn.add_q_proj": ("txt_attn_qkv", 0),
                       "attn.add_k_proj": ("txt_attn_qkv", 1), "attn.add_v_proj": ("txt_attn_qkv", 2)}
                if name in qkv:
                    fused.setdefault(f"{base}.{qkv[name][0]}.{kind_}", {})[qkv[name][1]] = v
                    continue
                out[f"{base}.{dict(_HY_BLOCK).get(name, name)}.{kind_}"] = v
            elif kind == "single_transformer_blocks":
                base = f"single_blocks.{n}"
                order = {"attn.to_q": 0, "attn.to_k": 1, "attn.to_v": 2, "proj_mlp": 3}
                if name in order:
                    fused.setdefault(f"{base}.linear1.{kind_}", {})[order[name]] = v
                    continue
                out[f"{base}.{ {'proj_out': 'linear2', 'attn.norm_q': 'q_norm', 'attn.norm_k': 'k_norm', 'norm.linear': 'modulation.linear'}.get(name, name)}.{kind_}"] = v
            else:
                base = f"txt_in.individual_token_refiner.blocks.{n}"
                order = {"attn.to_q": 0, "attn.to_k": 1, "attn.to_v": 2}
                if name in order:
                    fused.setdefault(f"{base}.self_attn_qkv.{kind_}", {})[order[name]] = v
                    continue
                out[f"{base}.{dict(_HY_REFINER).get(name, name)}.{kind_}"] = v
    for k, parts in fused.items():
        out[k] = torch.cat([parts[i] for i in sorted(parts)], dim=0)
    return out


def ldm_vae_original(vae: dict) -> dict:
    """Diffusers autoencoder names -> LDM ones (encoder.down.N.block.M, mid.attn_1 as 1x1 convolutions)."""
    levels = 1 + max(int(k.split(".")[2]) for k in vae if k.startswith("decoder.up_blocks."))
    rules = [(r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.mid.block_1."),
             (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.mid.block_2."),
             (r"^(encoder|decoder)\.mid_block\.attentions\.0\.group_norm\.", r"\1.mid.attn_1.norm."),
             (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_(q|k|v)\.", r"\1.mid.attn_1.\2."),
             (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_out\.0\.", r"\1.mid.attn_1.proj_out."),
             (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2."),
             (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample."),
             (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}."),
             (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample."),
             (r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out.")]
    conv_dims = vae["encoder.conv_in.weight" if "encoder.conv_in.weight" in vae else "encoder.conv_in.conv.weight"].ndim
    out = {}
    for k, v in vae.items():
        k = _sub(k, rules).replace(".conv_shortcut.", ".nin_shortcut.")
        if ".attn_1." in k and k.endswith(".weight") and v.ndim == 2:
            v = v.reshape(*v.shape, *([1] * (conv_dims - 2)))
        out[k] = v
    return out


def hunyuan_vae_original(vae: dict) -> dict:
    """ComfyUI's names for the Hunyuan VAE (LDM blocks, 3-D convolutions), as in hunyuan_video_vae_bf16.safetensors."""
    return ldm_vae_original(vae)


def llama_file(llama) -> dict:
    """llava_llama3's text tower as ComfyUI's text_encoders file holds it (transformers' LlamaModel names
    under `model.`)."""
    return {"model." + k: v for k, v in llama.state_dict().items()}


def tiny_hunyuan_vae():
    from diffusers import AutoencoderKLHunyuanVideo
    return AutoencoderKLHunyuanVideo(in_channels=3, out_channels=3, latent_channels=4,
                                     down_block_types=("HunyuanVideoDownBlock3D",) * 4,
                                     up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(32,) * 4,
                                     layers_per_block=1, act_fn="silu", norm_num_groups=32, scaling_factor=0.476986,
                                     spatial_compression_ratio=8, temporal_compression_ratio=4,
                                     mid_block_add_attention=True)


def build_hunyuan(root: Path) -> dict[str, Path]:
    """DIR/diffusers/hunyuan and the ComfyUI files: diffusion_models/hunyuan_video_t2v_720p_bf16.safetensors,
    vae/hunyuan_video_vae_bf16.safetensors, text_encoders/llava_llama3_fp16.safetensors, text_encoders/clip_l.safetensors."""
    from diffusers import HunyuanVideoPipeline, HunyuanVideoTransformer3DModel
    from transformers import LlamaConfig, LlamaModel

    from nodes.generate.converters import hunyuan
    from transformers import CLIPTextConfig, CLIPTextModel
    from tests.tiny_models import clip_tokenizer, llama_tokenizer
    _seed(0)
    transformer = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=1, attention_head_dim=128, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=True,
        text_embed_dim=128, pooled_projection_dim=64, rope_axes_dim=(16, 56, 56))
    vae = tiny_hunyuan_vae()
    llama = LlamaModel(LlamaConfig(vocab_size=300, hidden_size=128, intermediate_size=37, num_hidden_layers=2,
                                   num_attention_heads=1, num_key_value_heads=1, head_dim=128,
                                   max_position_embeddings=1024, rope_theta=500000.0, rms_norm_eps=1e-5,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=2))
    # clip_l's 64-wide heads (the loader derives the head count from them), with the tiny tokenizer's ids.
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=64,
                                        intermediate_size=37, num_attention_heads=1, num_hidden_layers=2,
                                        vocab_size=1000, projection_dim=64, hidden_act="quick_gelu"))
    folder = root / "diffusers" / "hunyuan"
    HunyuanVideoPipeline(text_encoder=llama, tokenizer=llama_tokenizer(root / "_tok"), transformer=transformer,
                         vae=vae, scheduler=scheduler("hunyuan"), text_encoder_2=clip,
                         tokenizer_2=clip_tokenizer(root / "_tok2")).save_pretrained(str(folder), safe_serialization=True)
    _rm(root / "_tok")
    _rm(root / "_tok2")
    t_state, v_state = transformer.state_dict(), vae.state_dict()
    original, vae_orig = hunyuan_original(t_state), hunyuan_vae_original(v_state)
    _check_roundtrip(original, {"transformer": t_state},
                     lambda s: {"transformer": hunyuan.transformer_to_diffusers(s)})
    _check_roundtrip(vae_orig, {"vae": v_state}, lambda s: {"vae": hunyuan.vae_to_diffusers(s)})
    models = root / "models"
    llama_tokenizer(models / "text_encoders" / "llava_llama3_fp16")
    clip_tokenizer(models / "text_encoders" / "clip_l")
    return {"diffusers": folder, "models": models,
            "diffusion_model": _save(original, models / "diffusion_models" / "hunyuan_video_t2v_720p_bf16.safetensors"),
            "vae": _save(vae_orig, models / "vae" / "hunyuan_video_vae_bf16.safetensors"),
            "text_encoder": _save(llama_file(llama), models / "text_encoders" / "llava_llama3_fp16.safetensors"),
            "text_encoder_2": _save(clip.state_dict(), models / "text_encoders" / "clip_l.safetensors")}


# -- HunyuanVideo image-to-video --------------------------------------------------------------
LLAMA3_TOKENS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<image>"]


def llava_tokenizer(folder: Path):
    """The tiny byte-level llama tokenizer with llama-3's chat tokens and llava's <image> as special tokens and
    the template's role words as single tokens, as llava-llama-3's tokenizer has them (diffusers' pipeline
    counts the assistant header as 4 tokens)."""
    from transformers import AutoTokenizer
    from tests.tiny_models import llama_tokenizer
    tok = llama_tokenizer(folder)
    tok.add_special_tokens({"additional_special_tokens": LLAMA3_TOKENS})
    tok.add_tokens(["system", "user", "assistant"])
    tok.save_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))


def tiny_llava(image_token: int):
    """llava-llama-3 in miniature: a CLIP vision tower (28 px, 14 px patches: 4 image tokens) and a llama
    whose heads are the released 128 wide."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    return LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=128, intermediate_size=37, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=28, patch_size=14),
        text_config=LlamaConfig(vocab_size=300, hidden_size=128, intermediate_size=37, num_hidden_layers=2,
                                num_attention_heads=1, num_key_value_heads=1, head_dim=128,
                                max_position_embeddings=2048, rope_theta=500000.0, rms_norm_eps=1e-5,
                                bos_token_id=1, eos_token_id=2, pad_token_id=2),
        image_token_index=image_token, pad_token_id=2, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default"))


def llava_vision_file(llava) -> dict:
    """llava's image side as clip_vision/llava_llama3_vision.safetensors holds it."""
    m = llava.model
    return {**{"vision_model." + k: v for k, v in m.vision_tower.state_dict().items()},
            **{"multi_modal_projector." + k: v for k, v in m.multi_modal_projector.state_dict().items()}}


def build_hunyuan_i2v(root: Path) -> dict[str, Path]:
    """The files of ComfyUI's two HunyuanVideo image-to-video examples, under their names in models/:
    diffusion_models/hunyuan_video_image_to_video_720p_bf16.safetensors (v1, 2 x 4 + 1 input channels),
    diffusion_models/hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors (v2, 4), text_encoders/
    llava_llama3_fp8_scaled.safetensors + clip_l.safetensors, clip_vision/llava_llama3_vision.safetensors,
    vae/hunyuan_video_vae_bf16.safetensors; and the same v1 model as a diffusers folder
    (HunyuanVideoImageToVideoPipeline), the v2 transformer as diffusers' token_replace model folder."""
    from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    from nodes.generate.converters import hunyuan
    from tests.tiny_models import clip_tokenizer
    _seed(0)
    kw = dict(out_channels=4, num_attention_heads=1, attention_head_dim=128, num_layers=1, num_single_layers=1,
              num_refiner_layers=1, patch_size=2, patch_size_t=1, guidance_embeds=True, text_embed_dim=128,
              pooled_projection_dim=64, rope_axes_dim=(16, 56, 56))
    v1 = HunyuanVideoTransformer3DModel(in_channels=9, image_condition_type="latent_concat", **kw)
    v2 = HunyuanVideoTransformer3DModel(in_channels=4, image_condition_type="token_replace", **kw)
    vae = tiny_hunyuan_vae()
    models = root / "models"
    tok = llava_tokenizer(models / "text_encoders" / "llava_llama3_fp8_scaled")
    llava = tiny_llava(tok.convert_tokens_to_ids("<image>"))
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=512, eos_token_id=513, pad_token_id=513, hidden_size=64,
                                        intermediate_size=37, num_attention_heads=1, num_hidden_layers=2,
                                        vocab_size=1000, projection_dim=64, hidden_act="quick_gelu"))
    clip_tok = clip_tokenizer(models / "text_encoders" / "clip_l")
    processor = CLIPImageProcessor(crop_size={"height": 28, "width": 28}, size={"shortest_edge": 28})
    folder = root / "diffusers" / "hunyuan_i2v"
    HunyuanVideoImageToVideoPipeline(text_encoder=llava, tokenizer=tok, transformer=v1, vae=vae,
                                     scheduler=scheduler("hunyuan"), text_encoder_2=clip, tokenizer_2=clip_tok,
                                     image_processor=processor).save_pretrained(str(folder), safe_serialization=True)
    v2.save_pretrained(str(root / "diffusers" / "hunyuan_v2_transformer"), safe_serialization=True)
    files = {}
    for name, model in (("v1", v1), ("v2", v2)):
        state = model.state_dict()
        original = hunyuan_original(state)
        _check_roundtrip(original, {"transformer": state}, lambda s: {"transformer": hunyuan.transformer_to_diffusers(s)})
        files[name] = original
    dm = models / "diffusion_models"
    return {"diffusers": folder, "v2_diffusers": root / "diffusers" / "hunyuan_v2_transformer", "models": models,
            "llava": llava, "tokenizer": tok, "clip": clip, "clip_tokenizer": clip_tok, "processor": processor,
            "v1": _save(files["v1"], dm / "hunyuan_video_image_to_video_720p_bf16.safetensors"),
            "v2": _save(files["v2"], dm / "hunyuan_video_v2_replace_image_to_video_720p_bf16.safetensors"),
            "vae": _save(hunyuan_vae_original(vae.state_dict()), models / "vae" / "hunyuan_video_vae_bf16.safetensors"),
            "text_encoder": _save(llama_file(llava.model.language_model),
                                  models / "text_encoders" / "llava_llama3_fp8_scaled.safetensors"),
            "text_encoder_2": _save(clip.state_dict(), models / "text_encoders" / "clip_l.safetensors"),
            "clip_vision": _save(llava_vision_file(llava), models / "clip_vision" / "llava_llama3_vision.safetensors")}


# -- Stable Video Diffusion --------------------------------------------------------------------
_RES_BACK = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
             ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]


def _res_back(rest: str) -> str:
    return next((n + rest[len(o):] for o, n in _RES_BACK if rest.startswith(o)), rest)


def _video_res_back(rest: str) -> str:
    if rest.startswith("spatial_res_block."):
        return _res_back(rest[len("spatial_res_block."):])
    if rest.startswith("temporal_res_block."):
        return "time_stack." + _res_back(rest[len("temporal_res_block."):])
    return rest


def svd_unet_original(unet: dict, layers: int) -> dict:
    """Stability's LDM names (input_blocks / middle_block / output_blocks, time_stack) for an SVD UNet."""
    top = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
           "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
           "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    up_attn = {int(k.split(".")[1]) for k in unet if k.startswith("up_blocks.") and ".attentions." in k}

    def attn_back(rest):
        rest = rest.replace("temporal_transformer_blocks.", "time_stack.")
        return rest.replace("time_pos_embed.linear_1.", "time_pos_embed.0.").replace(
            "time_pos_embed.linear_2.", "time_pos_embed.2.")

    out = {}
    for k, v in unet.items():
        new = next((n + k[len(o):] for o, n in top.items() if k.startswith(o)), None)
        m = re.match(r"^(down_blocks|up_blocks|mid_block)\.(?:(\d+)\.)?(resnets|attentions|downsamplers|upsamplers)"
                     r"\.(\d+)\.(.*)$", k)
        if new is None and m:
            where, i, kind, j, rest = m.group(1), int(m.group(2) or 0), m.group(3), int(m.group(4)), m.group(5)
            if where == "mid_block":
                new = f"middle_block.{2 * j}.{_video_res_back(rest)}" if kind == "resnets" else \
                    f"middle_block.1.{attn_back(rest)}"
            elif where == "down_blocks":
                k0 = 1 + i * (layers + 1)
                new = {"resnets": f"input_blocks.{k0 + j}.0.{_video_res_back(rest)}",
                       "attentions": f"input_blocks.{k0 + j}.1.{attn_back(rest)}",
                       "downsamplers": f"input_blocks.{k0 + layers}.0.op.{rest[len('conv.'):]}"}[kind]
            else:
                k0 = i * (layers + 1)
                new = {"resnets": f"output_blocks.{k0 + j}.0.{_video_res_back(rest)}",
                       "attentions": f"output_blocks.{k0 + j}.1.{attn_back(rest)}",
                       "upsamplers": f"output_blocks.{k0 + layers}.{2 if i in up_attn else 1}.{rest}"}[kind]
        out["model.diffusion_model." + (new or k)] = v
    return out


def svd_vae_original(vae: dict) -> dict:
    """Stability's names; its autoencoder has no quant_conv (the diffusers VAE's must be the identity)."""
    out = {}
    for k, v in ldm_vae_original({k: v for k, v in vae.items() if not k.startswith("quant_conv.")}).items():
        m = re.match(r"^(decoder\.(?:mid\.block_\d|up\.\d+\.block\.\d+))\.(spatial_res_block|temporal_res_block)\.(.*)$", k)
        if m:
            k = f"{m.group(1)}.{m.group(3)}" if m.group(2) == "spatial_res_block" else \
                f"{m.group(1)}.time_stack.{_res_back(m.group(3))}"
        elif k.startswith("decoder.time_conv_out."):
            k = "decoder.conv_out.time_mix_conv." + k[len("decoder.time_conv_out."):]
        out["first_stage_model." + k] = v
    return out


def open_clip_visual(clip: dict) -> dict:
    """OpenCLIP's visual tower names (as inside SVD's conditioner) for a CLIPVisionModelWithProjection."""
    import torch
    top = {"vision_model.embeddings.patch_embedding.weight": "conv1.weight",
           "vision_model.embeddings.class_embedding": "class_embedding",
           "vision_model.embeddings.position_embedding.weight": "positional_embedding"}
    block = [("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."),
             ("self_attn.out_proj.", "attn.out_proj.")]
    out, qkv = {}, {}
    for k, v in clip.items():
        if k == "visual_projection.weight":
            out["proj"] = v.t().contiguous()
        elif k in top:
            out[top[k]] = v
        elif k.startswith("vision_model.pre_layrnorm."):
            out["ln_pre." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("vision_model.post_layernorm."):
            out["ln_post." + k.rsplit(".", 1)[1]] = v
        else:
            m = re.match(r"^vision_model\.encoder\.layers\.(\d+)\.(.*)$", k)
            if m is None:
                continue                       # buffers (position ids)
            n, rest = m.groups()
            q = re.match(r"self_attn\.(q|k|v)_proj\.(weight|bias)$", rest)
            if q:
                qkv.setdefault(f"transformer.resblocks.{n}.attn.in_proj_{q.group(2)}", {})["qkv".index(q.group(1))] = v
                continue
            out[f"transformer.resblocks.{n}." + next((b + rest[len(a):] for a, b in block if rest.startswith(a)), rest)] = v
    for k, parts in qkv.items():
        out[k] = torch.cat([parts[0], parts[1], parts[2]])
    return {"conditioner.embedders.0.open_clip.model.visual." + k: v for k, v in out.items()}


def build_svd(root: Path) -> dict[str, Path]:
    """DIR/diffusers/svd and checkpoints/svd_xt.safetensors (UNet + VAE + image encoder in one file)."""
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection
    from nodes.generate.converters import svd
    _seed(0)
    layers = 1
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(64, 128), layers_per_block=layers, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=16,
        num_attention_heads=(1, 2), projection_class_embeddings_input_dim=96, addition_time_embed_dim=32)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D"] * 4, latent_channels=4, layers_per_block=1)
    with torch.no_grad():
        vae.quant_conv.weight.copy_(torch.eye(8).reshape(8, 8, 1, 1))
        vae.quant_conv.bias.zero_()
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=80, projection_dim=16, num_hidden_layers=1, num_attention_heads=1, image_size=224, hidden_act="gelu",
        intermediate_size=37, patch_size=32))
    folder = root / "diffusers" / "svd"
    StableVideoDiffusionPipeline(vae=vae, image_encoder=clip, unet=unet, scheduler=scheduler("svd"),
                                 feature_extractor=CLIPImageProcessor(crop_size=224, size=224)).save_pretrained(
        str(folder), safe_serialization=True)
    u, v, c = unet.state_dict(), vae.state_dict(), {k: t for k, t in clip.state_dict().items() if "position_ids" not in k}
    original = {**svd_unet_original(u, layers), **svd_vae_original(v), **open_clip_visual(c)}
    _check_roundtrip(original, {"unet": u, "vae": v, "image_encoder": c},
                     lambda s: {"unet": svd.unet_to_diffusers(svd._under(s, svd.UNET)),
                                "vae": svd.vae_to_diffusers(svd._under(s, svd.VAE)),
                                "image_encoder": svd.clip_to_transformers(svd._under(s, svd.CLIP))})
    return {"diffusers": folder, "models": root / "models",
            "checkpoint": _save(original, root / "models" / "checkpoints" / "svd_xt.safetensors")}


# -- running a workflow on them ----------------------------------------------------------------
def text_to_video(loaders: str, model: str, text_encoder: str, vae: str, frames: int, size: int = 64,
                  steps: int = 2, sampler: str = "euler", extra: str = ""):
    """Run a text-to-video workflow whose loader nodes are `loaders` (YAML lines) and return
    (the sampled latent tensor, the decoded frames as a float array)."""
    import yaml
    from graph_engine.api import Session, load_workflow
    text = f"""kinograph: 1
nodes:
{loaders}
  prompt:
    type: encode.text
    inputs: {{text_encoder: {text_encoder}}}
    params: {{text: "a (red:1.2) fox in the snow", negative: "blurry"}}
  latent:
    type: latent.empty
    inputs: {{vae: {vae}}}
    params: {{frames: {frames}, width: {size}, height: {size}}}
  sample:
    type: generate.sample
    inputs: {{model: {model}, positive: prompt.positive, negative: prompt.negative, latent: latent.latent}}
    params: {{steps: {steps}, sampler: {sampler}, seed: 42, cfg: 3.0}}
  decode: {{type: vae.decode, inputs: {{vae: {vae}, latent: sample.latent}}}}
{extra}"""
    yaml.safe_load(text)                       # a malformed template fails here, not deep in the engine
    res = Session(device="cpu").run(load_workflow(text=text, check=True), use_cache=False)
    assert res.ok, res.failed
    return res.outputs["sample"]["latent"].samples, res.outputs["decode"]["video"].to_array()


def same_frames(a, b) -> None:
    """Decoded 8-bit frames of one latent by two loads of the same VAE: equal up to one level. Two
    instances of the same module can differ in the last float bit (the CPU kernels pick their
    code path by memory alignment; seen between two diffusers instances of one LTX VAE), which
    can flip a rounding; anything a conversion error would cause is far larger."""
    import numpy as np
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert a.shape == b.shape and diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())


def image_to_video_svd(load: str, frames: int = 6, size: int = 64, steps: int = 2):
    """SVD's image-to-video workflow on the loader node `load` (YAML); (latent, decoded frames)."""
    from graph_engine.api import Session, load_workflow
    photo = Path(__file__).resolve().parents[1] / "resources" / "samples" / "coffee.png"
    text = f"""kinograph: 1
nodes:
{load}
  photo: {{type: io.load_image, params: {{path: '{photo}'}}}}
  clip_vision: {{type: encode.image, inputs: {{image_encoder: load.image_encoder, image: photo.image}}}}
  latent:
    type: latent.empty
    inputs: {{vae: load.vae}}
    params: {{frames: {frames}, width: {size}, height: {size}, fps: 7}}
  frames:
    type: condition.frames
    inputs: {{vae: load.vae, positive: clip_vision.conditioning, latent: latent.latent, first: photo.image}}
    params: {{motion: 127, noise_aug: 0.02}}
  sample:
    type: generate.sample
    inputs: {{model: load.model, positive: frames.positive, latent: latent.latent}}
    params: {{steps: {steps}, cfg: 3.0, sampler: euler, seed: 42}}
  decode: {{type: vae.decode, inputs: {{vae: load.vae, latent: sample.latent}}}}
"""
    res = Session(device="cpu").run(load_workflow(text=text, check=True), use_cache=False)
    assert res.ok, res.failed
    return res.outputs["sample"]["latent"].samples, res.outputs["decode"]["video"].to_array()


# -- CogVideoX ---------------------------------------------------------------------------------
def build_cogvideox(root: Path) -> dict:
    """DIR/diffusers/cogvideox and the folder ComfyUI's CogVideoX pack downloads: models/CogVideo/CogVideoX-5b/
    with transformer/, vae/ and scheduler/ only (no model_index.json), plus text_encoders/t5xxl_fp16.safetensors."""
    import shutil
    from tests.tiny_models import build_cogvideox as build_folder
    folder = root / "diffusers" / "cogvideox"
    folder.mkdir(parents=True)
    build_folder(folder)
    pack = root / "models" / "CogVideo" / "CogVideoX-5b"
    for part in ("transformer", "vae", "scheduler"):
        shutil.copytree(folder / part, pack / part)
    from transformers import T5EncoderModel
    text = T5EncoderModel.from_pretrained(str(folder / "text_encoder"))
    t5_tokenizer(root / "models" / "text_encoders" / "t5xxl_fp16")
    return {"diffusers": folder, "pack": pack, "models": root / "models",
            "text_encoder": _save(t5_file(text), root / "models" / "text_encoders" / "t5xxl_fp16.safetensors")}


def fp8_scaled(state: dict) -> dict:
    """ComfyUI's fp8_scaled form of a file: each block matrix stored as float8_e4m3fn of weight/scale with
    its `<layer>.scale_weight`, and a `scaled_fp8` marker."""
    import torch
    out = {}
    for k, v in state.items():
        if k.endswith(".weight") and v.ndim == 2 and ("blocks." in k):
            scale = (v.abs().max() / 448.0).clamp(min=1e-12).reshape(1).float()
            out[k] = (v / scale).to(torch.float8_e4m3fn)
            out[k[: -len(".weight")] + ".scale_weight"] = scale
        else:
            out[k] = v
    out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


def run_example(name: str, models: Path, out: Path, overrides=()):
    """Run examples/comfyui/<name>.yaml with KINOGRAPH_MODELS pointing at `models`; (latent, frames)."""
    import os
    from graph_engine.api import Session, load_workflow
    root = Path(__file__).resolve().parents[1]
    old = os.environ.get("KINOGRAPH_MODELS")
    os.environ["KINOGRAPH_MODELS"] = str(models)
    try:
        res = Session(device="cpu").run(load_workflow(root / "examples" / "comfyui" / f"{name}.yaml", check=False),
                                         overrides=[f"save.path={out}", *overrides], use_cache=False)
    finally:
        if old is None:
            os.environ.pop("KINOGRAPH_MODELS")
        else:
            os.environ["KINOGRAPH_MODELS"] = old
    assert res.ok, res.failed
    return res.outputs["sample"]["latent"].samples, res.outputs["decode"]["video"].to_array()


def randomised(net, seed: int):
    """`net` with every weight drawn from N(0, 0.1) after `seed` (projections that start at zero included), held at
    bf16 values (as the bf16 files written from it give them back), in eval mode."""
    import torch
    _seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    return net.bfloat16().float().eval()


def with_patches(builder, patches):
    """A builder for models_dir: `builder`'s folders plus models/model_patches/ holding patches() ({file name: state
    dict}), stored in bf16."""
    from safetensors.torch import save_file

    def build(root):
        builder(root)
        folder = root / "models" / "model_patches"
        folder.mkdir()
        for name, state in patches().items():
            save_file({k: v.bfloat16().contiguous() for k, v in state.items()}, str(folder / name))
        return root
    return build


def patch_steered(files: tuple, patch: str, control, size: tuple):
    """On ComfyUI's split files (diffusion model, (text encoder, type), VAE), load.model_patch's `patch` and
    sample(strength): the first latent frame of 2 euler steps at cfg 1 for "a cat" (seed 7) at `size`, steered by it
    at that strength by the picture `control` (uint8 H x W x 3). Returns (sample, model, vae, the patch, manager)."""
    from graph_engine import Clip
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.model_patch import apply, load
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_diffusion_model, load_text_encoder, load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    mm = ModelManager()
    model = load_diffusion_model(mm, files[0], "default", "cpu")
    te = load_text_encoder(mm, files[1][0], "", files[1][1], "cpu")
    vae = load_vae(mm, files[2], "cpu")
    handle = load(mm, patch)

    def sample(strength):
        steered = apply(model, handle, vae, Clip.from_array(control[None]), strength)
        return run_sampling(steered, encode_prompt(te, "a cat"), None, empty_latent(vae, 1, *size, 8.0), steps=2,
                            cfg=1.0, sampler="euler", seed=7).samples[:, :, 0]
    return sample, model, vae, handle, mm
