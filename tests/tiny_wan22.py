"""A tiny random-weight Wan 2.2 TI2V-5B (48-channel transformer, Wan 2.2 VAE with its 2x2 patching and
residual blocks, umt5) saved twice: as a diffusers folder `root/diffusers/` (WanPipeline with
expand_timesteps, as Wan-AI/Wan2.2-TI2V-5B-Diffusers) and as ComfyUI's split files under `root/models/`
in the original key layout (diffusion_models/wan22_tiny_ti2v_fp16.safetensors,
vae/wan22_tiny_vae.safetensors, text_encoders/umt5_tiny_fp16.safetensors)."""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

from tiny_models import _seed, t5_encoder, t5_tokenizer, wan_original_transformer

RESIDUAL = {"norm1.": "residual.0.", "conv1.": "residual.2.", "norm2.": "residual.3.", "conv2.": "residual.6.",
            "conv_shortcut.": "shortcut."}


def wan22_vae():
    """The Wan 2.2 VAE's structure (residual blocks, 2x2 patching, 16x space) at a tiny width."""
    from diffusers import AutoencoderKLWan
    from nodes.generate.converters import model_config
    cfg = model_config("wan", "vae_2.2")
    cfg.update(base_dim=8, decoder_base_dim=12)
    return AutoencoderKLWan.from_config(cfg)


def wan_original_vae_22(diffusers_sd: dict, num_res_blocks: int = 2) -> dict:
    """The original Wan 2.2 VAE key names (ComfyUI's vae/wan2.2_vae.safetensors) of a diffusers AutoencoderKLWan:
    blocks nested as encoder.downsamples.<level>.downsamples.<i> / decoder.upsamples.<level>.upsamples.<i>, the
    resampler after the level's residual blocks. Checked by running Kinograph's forward converter on it (tensors
    pass through unchanged, so meta ones work too)."""
    from nodes.generate.converters.wan import vae
    from nodes.generate.detect import Detection
    out = {}
    for k, v in diffusers_sd.items():
        n = k
        m = re.match(r"^(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets\.(\d+)|downsampler|upsampler)\.(.*)$", k)
        if m:
            part, way, level, _, res, tail = m.groups()
            if res is not None:
                head = next(a for a in RESIDUAL if tail.startswith(a))
                idx, tail = res, RESIDUAL[head] + tail[len(head):]
            else:                        # the decoder's levels hold one more residual block than the encoder's
                idx = num_res_blocks + (part == "decoder")
            n = f"{part}.{way}samples.{level}.{way}samples.{idx}.{tail}"
        else:
            for a, b in (("mid_block.resnets.0.", "middle.0."), ("mid_block.resnets.1.", "middle.2."),
                         ("mid_block.attentions.0.", "middle.1."), ("norm_out.", "head.0."),
                         ("conv_out.", "head.2."), ("conv_in.", "conv1.")):
                if k.split(".", 1)[1].startswith(a):
                    part, tail = k.split(".", 1)
                    tail = b + tail[len(a):]
                    if a.startswith("mid_block.resnets"):
                        rest = tail[len(b):]
                        head = next(x for x in RESIDUAL if rest.startswith(x))
                        tail = b + RESIDUAL[head] + rest[len(head):]
                    n = f"{part}.{tail}"
                    break
            n = {"quant_conv.weight": "conv1.weight", "quant_conv.bias": "conv1.bias",
                 "post_quant_conv.weight": "conv2.weight", "post_quant_conv.bias": "conv2.bias"}.get(k, n)
        out[n] = v
    back = vae(dict(out), Detection("vae", "wan", "2.2", layout="original")).state_dict
    assert set(back) == set(diffusers_sd), sorted(set(back) ^ set(diffusers_sd))[:6]
    assert all(back[k] is diffusers_sd[k] for k in back)
    return out


def build_wan22_comfy(root: Path) -> Path:
    from safetensors.torch import save_file
    from diffusers import WanPipeline, WanTransformer3DModel
    from nodes.generate.split import scheduler
    _seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=48, out_channels=48,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32)
    vae = wan22_vae()
    text = t5_encoder(32, umt5=True)
    for m in (transformer, vae, text):           # fp16 values in both layouts, like the fp16 files users have
        m.half().float()
    models = root / "models"
    tok = t5_tokenizer(models / "text_encoders" / "umt5_tiny_fp16")
    WanPipeline(tokenizer=tok, text_encoder=text, vae=vae, scheduler=scheduler("wan", "ti2v"), transformer=transformer,
                expand_timesteps=True).save_pretrained(str(root / "diffusers"), safe_serialization=True)
    for sub in ("diffusion_models", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in wan_original_transformer(transformer.state_dict()).items()},
              str(models / "diffusion_models" / "wan22_tiny_ti2v_fp16.safetensors"))
    save_file({k: v.half().contiguous() for k, v in wan_original_vae_22(vae.state_dict()).items()},
              str(models / "vae" / "wan22_tiny_vae.safetensors"))
    te = {k: v for k, v in text.state_dict().items() if k != "encoder.embed_tokens.weight"}
    save_file({k: v.half().contiguous() for k, v in te.items()}, str(models / "text_encoders" / "umt5_tiny_fp16.safetensors"))
    return root



def save_umt5(models: Path) -> None:
    """ComfyUI's text_encoders/umt5 file of a tiny random umt5 (its tokenizer in the folder beside it)."""
    from safetensors.torch import save_file
    text = t5_encoder(32, umt5=True)
    t5_tokenizer(models / "text_encoders" / "umt5_tiny_fp16")
    save_file({k: v.half().contiguous() for k, v in text.state_dict().items() if k != "encoder.embed_tokens.weight"},
              str(models / "text_encoders" / "umt5_tiny_fp16.safetensors"))


def save_wan_vae(models: Path) -> None:
    """ComfyUI's vae/wan_tiny_vae.safetensors: a tiny random Wan 2.1 VAE in the original key names."""
    from safetensors.torch import save_file
    from diffusers import AutoencoderKLWan
    from tiny_models import wan_original_vae
    _seed(2)
    vae = AutoencoderKLWan(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                           temperal_downsample=[False, True, True])
    save_file({k: v.half().contiguous() for k, v in wan_original_vae(vae.state_dict()).items()},
              str(models / "vae" / "wan_tiny_vae.safetensors"))


EXPERT_INPUTS = {"t2v": 16, "i2v": 36, "fun_control": 52, "fun_camera": 36}


def build_wan22_experts(root: Path, *kinds: str) -> Path:
    """Wan 2.2 A14B's two experts of each of `kinds` as ComfyUI holds them (diffusion_models/wan22_tiny_<kind>_{high,
    low}_noise_fp16.safetensors, original keys, each expert its own random weights), with the Wan 2.1 VAE and umt5.
    kind t2v: 16 input channels; i2v: 16 noise + 4 mask + 16 start/end-frame channels, no CLIP image tokens;
    fun_control (Wan 2.2 Fun Control): 16 noise + 16 control + 4 mask + 16 start-frame channels and the reference
    image's `ref_conv` (a 2x2 convolution, stride 2, 16 channels to the width); fun_camera (Wan 2.2 Fun camera): as
    i2v, with Wan Fun's camera encoder (`control_adapter`)."""
    import torch
    from safetensors.torch import save_file
    from diffusers import WanTransformer3DModel
    from tiny_models import wan_camera_adapter
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    for kind, (seed, expert) in ((k, e) for k in kinds for e in ((0, "high"), (1, "low"))):
        _seed(seed)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=EXPERT_INPUTS[kind],
            out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
        state = wan_original_transformer(transformer.state_dict())
        if kind == "fun_control":
            ref = torch.nn.Conv2d(16, 128, 2, stride=2)
            state.update({"ref_conv.weight": ref.weight.detach(), "ref_conv.bias": ref.bias.detach()})
        elif kind == "fun_camera":
            state.update(wan_camera_adapter(128, seed=seed))
        save_file({k: v.half().contiguous() for k, v in state.items()},
                  str(models / "diffusion_models" / f"wan22_tiny_{kind}_{expert}_noise_fp16.safetensors"))
    save_wan_vae(models)
    save_umt5(models)
    return root


def build_wan22_fun_inpaint(root: Path) -> Path:
    """Wan 2.2 Fun InP 5B as ComfyUI holds it (diffusion_models/wan22_tiny_fun_inpaint_5B_fp16.safetensors, original
    keys): the 5B transformer reading 48 noise + 4 mask + 48 first/last-frame channels, with the Wan 2.2 VAE
    (vae/wan22_tiny_vae.safetensors) and umt5 beside it."""
    from safetensors.torch import save_file
    from diffusers import WanTransformer3DModel
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    _seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=100, out_channels=48,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32)
    save_file({k: v.half().contiguous() for k, v in wan_original_transformer(transformer.state_dict()).items()},
              str(models / "diffusion_models" / "wan22_tiny_fun_inpaint_5B_fp16.safetensors"))
    save_file({k: v.half().contiguous() for k, v in wan_original_vae_22(wan22_vae().state_dict()).items()},
              str(models / "vae" / "wan22_tiny_vae.safetensors"))
    save_umt5(models)
    return root


def wan_animate_transformer():
    """A tiny WanAnimateTransformer3DModel: one 128-wide head, two blocks with a face adapter after the first, CLIP
    image tokens of 32, and the face motion encoder on 4 channels taking 32 x 32 face crops (3 residual blocks; the
    released model's take 512 x 512, 7 blocks)."""
    from diffusers import WanAnimateTransformer3DModel
    _seed(3)
    return WanAnimateTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=36, latent_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, image_dim=32, added_kv_proj_dim=128,
        rope_max_seq_len=32, motion_encoder_size=32, motion_encoder_channel_sizes={str(2 ** i): 4 for i in range(2, 6)},
        motion_style_dim=16, motion_dim=4, motion_encoder_dim=16, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
        inject_face_latents_blocks=2)


def wan_animate_original(diffusers_sd: dict) -> dict:
    """ComfyUI's key names (diffusion_models/wan2.2_animate_14B_bf16.safetensors, the original Wan-Animate layout) of
    a diffusers WanAnimateTransformer3DModel: the face motion encoder under enc.net_app.convs (its activation biases
    [1, C, 1, 1]), enc.fc and dec.direction; the face adapters as fuser_blocks with one linear1_kv; the face encoder's
    causal convolutions as .conv. Checked against Kinograph's converter (diffusers' own, which knows the released
    encoder's depth only, after the encoder's last convolution is named)."""
    import re
    import torch
    from nodes.generate.converters.wan import transformer
    from nodes.generate.detect import Detection
    parts = ("motion_encoder.", "face_encoder.", "face_adapter.")
    out = wan_original_transformer({k: v for k, v in diffusers_sd.items() if not k.startswith(parts)})
    blocks = len({k.split(".")[2] for k in diffusers_sd if k.startswith("motion_encoder.res_blocks.")})
    for k, v in diffusers_sd.items():
        if k.startswith("face_encoder."):
            out[re.sub(r"^face_encoder\.(conv1_local|conv2|conv3)\.", r"face_encoder.\1.conv.", k)] = v
        elif k.startswith("face_adapter."):
            i, rest = k.split(".", 2)[1:]
            head = f"face_adapter.fuser_blocks.{i}."
            if rest.startswith("to_k."):
                out[head + "linear1_kv." + rest[5:]] = torch.cat([v, diffusers_sd[k.replace(".to_k.", ".to_v.")]])
            elif not rest.startswith("to_v."):
                for a, b in (("to_q.", "linear1_q."), ("to_out.", "linear2."), ("norm_q.", "q_norm."),
                             ("norm_k.", "k_norm.")):
                    rest = rest.replace(a, b)
                out[head + rest] = v
        elif k.startswith("motion_encoder."):
            rest = k[len("motion_encoder."):]
            m = re.match(r"res_blocks\.(\d+)\.(conv1|conv2|conv_skip)\.(act_fn\.bias|weight)$", rest)
            if m:
                n, conv, what = m.groups()
                slot = {("conv1", "weight"): "conv1.0.weight", ("conv1", "act_fn.bias"): "conv1.1.bias",
                        ("conv2", "weight"): "conv2.1.weight", ("conv2", "act_fn.bias"): "conv2.2.bias",
                        ("conv_skip", "weight"): "skip.1.weight"}[conv, what]
                name = f"enc.net_app.convs.{int(n) + 1}.{slot}"
            else:
                name = {"conv_in.weight": "enc.net_app.convs.0.0.weight", "conv_in.act_fn.bias": "enc.net_app.convs.0.1.bias",
                        "conv_out.weight": f"enc.net_app.convs.{blocks + 1}.weight",
                        "motion_synthesis_weight": "dec.direction.weight"}.get(rest) or rest.replace("motion_network.", "enc.fc.")
            out["motion_encoder." + name] = v[None, :, None, None] if name.endswith("bias") and ".convs." in name else v
    back = transformer(dict(out), Detection("diffusion_model", "wan", "animate-dim128", layout="original")).state_dict
    assert set(back) == set(diffusers_sd), sorted(set(back) ^ set(diffusers_sd))[:6]
    assert all(torch.equal(back[k], diffusers_sd[k]) for k in back)
    return out


def build_wan22_animate(root: Path) -> Path:
    """Wan 2.2 Animate as ComfyUI holds it: diffusion_models/wan22_tiny_animate_fp16.safetensors (original keys) and
    its fp8_scaled copy (as Kijai's Wan2_2-Animate-14B_fp8_e4m3fn_scaled_KJ, the template's default), the Wan 2.1 VAE, umt5 and a CLIP vision file (clip_vision/clip_vision_tiny.safetensors, 32 wide as the model's image
    tokens) beside it."""
    from safetensors.torch import save_file
    from tiny_models import to_fp8_scaled
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders", "clip_vision"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    state = wan_animate_original(wan_animate_transformer().state_dict())
    save_file({k: v.half().contiguous() for k, v in state.items()},
              str(models / "diffusion_models" / "wan22_tiny_animate_fp16.safetensors"))
    save_file(to_fp8_scaled({k: v.half() for k, v in state.items()}),
              str(models / "diffusion_models" / "wan22_tiny_animate_fp8_scaled.safetensors"))
    save_wan_vae(models)
    save_umt5(models)
    save_clip_vision(models)
    return root


def save_clip_vision(models: Path) -> None:
    """ComfyUI's clip_vision/clip_vision_tiny.safetensors: a tiny random CLIP vision tower, 32 wide (the image
    tokens a tiny Wan i2v model reads), 8x8 patches of 4 pixels."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel
    (models / "clip_vision").mkdir(parents=True, exist_ok=True)
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                              num_attention_heads=16, image_size=32, patch_size=4, hidden_act="gelu",
                                              projection_dim=32))
    save_file({"vision_model." + k.removeprefix("vision_model."): v.half().contiguous()
               for k, v in vision.state_dict().items()}, str(models / "clip_vision" / "clip_vision_tiny.safetensors"))


def comfy_ops(sd: dict):
    """(lin, rms, ln) over a state dict's tensors, as ComfyUI's Wan layers compute: a Linear, WanRMSNorm (eps 1e-6)
    and a LayerNorm (eps 1e-6 unless told, affine where the file has its weight and bias) named by key prefix."""
    import torch
    import torch.nn.functional as F

    def lin(v, k):
        return F.linear(v, sd[k + ".weight"], sd.get(k + ".bias"))

    def rms(v, k):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * sd[k + ".weight"]

    def ln(v, k=None, eps=1e-6):
        return F.layer_norm(v, v.shape[-1:], sd.get(f"{k}.weight"), sd.get(f"{k}.bias"), eps=eps)
    return lin, rms, ln


def comfy_rope(v, pos):
    """ComfyUI's Wan rotary embedding written out (flux's EmbedND / apply_rope1): v [..., N, head] rotated pairwise by
    2x2 matrices at the positions pos [N, 3] (time, height, width), the head split as ComfyUI's WanModel splits it."""
    import torch
    d = v.shape[-1]
    rows = []
    for axis, n in enumerate((d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6))):
        omega = 1.0 / 10000 ** torch.linspace(0, (n - 2) / n, n // 2, dtype=torch.float64)
        rows.append(pos[:, axis, None] * omega)
    ang = torch.cat(rows, 1).float()
    pair = v.reshape(*v.shape[:-1], -1, 2)
    c, s = ang.cos(), ang.sin()
    return torch.stack([c * pair[..., 0] - s * pair[..., 1], s * pair[..., 0] + c * pair[..., 1]], -1).flatten(-2)


def on_tiny_files(graph, names: dict, sound: Path, picture: Path, video: Path) -> None:
    """Point an imported template's graph at tiny files: each loader's `names[type]`, the voice and picture files,
    one sampling step, the video written to `video`; a LoRA (no file here) bypassed, the model passing on."""
    for n in graph.nodes.values():
        if n.type in names:
            n.params["name"] = names[n.type]
        elif n.type == "lora.image":
            graph.set_bypass(n.id, True)
        elif n.type in ("io.load_audio", "io.add_audio"):
            n.params["path"] = str(sound)
        elif n.type == "io.load_image":
            n.params["path"] = str(picture)
        elif n.type == "generate.sample":
            # The fewest steps the template's sampler takes: ComfyUI's uni_pc needs two (with one it hands back
            # the noise, which Kinograph refuses)
            n.params["steps"] = 2 if str(n.params.get("sampler", "")).startswith("uni_pc") else 1
        elif n.type == "io.save_video":
            n.params["path"] = str(video)


def encode_voice_logs(voice: Path, encoder: Path) -> list:
    """Run io.load_audio -> load.audio_encoder -> encode.audio on a voice file and a speech encoder file; the log
    lines (the run failing on none of its nodes)."""
    from graph_engine.api import Session, load_workflow
    events = []
    Session(use_disk=False).run(load_workflow(text=f"""kinograph: 1
nodes:
  voice: {{type: io.load_audio, params: {{path: '{voice}'}}}}
  enc: {{type: load.audio_encoder, params: {{name: '{encoder}'}}}}
  feats: {{type: encode.audio, inputs: {{audio_encoder: enc.audio_encoder, audio: voice.audio}}}}
"""), on_event=events.append)
    assert [e for e in events if e["event"] in ("error", "node_failed")] == []
    return [e["message"] for e in events if e["event"] == "log"]


@contextmanager
def tiny_wan_folder(root: Path, name: str, sd: dict):
    """ComfyUI's models/ folder under `root` holding a tiny umt5, a tiny Wan 2.1 VAE and the tensors `sd` (fp16, as
    ComfyUI's bf16/fp16 files are) as diffusion_models/`name`; while inside, KINOGRAPH_MODELS points there and torch
    runs one thread (tiny tensors: faster than waiting for several). Yields the diffusion model file's path."""
    import pytest
    import torch
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True)
    save_umt5(models)
    save_wan_vae(models)
    path = models / "diffusion_models" / name
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("KINOGRAPH_MODELS", str(models))
            yield path
    finally:
        torch.set_num_threads(threads)


def perturbed_wan(seed: int, in_channels: int, layers: int, text: int) -> dict:
    """A tiny random Wan transformer's tensors in the original key names (one 128-wide head, patch (1, 2, 2)), every
    tensor moved a little off its initial value so that modulations and norms are away from 0 / 1 and a wrong one
    shows."""
    import torch
    from diffusers import WanTransformer3DModel
    from tiny_models import wan_original_transformer
    torch.manual_seed(seed)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128,
                                in_channels=in_channels, out_channels=16, text_dim=text, freq_dim=256, ffn_dim=32,
                                num_layers=layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                rope_max_seq_len=32)
    sd = wan_original_transformer(wan.state_dict())
    return {k: v + 0.05 * torch.randn_like(v) for k, v in sd.items()}
