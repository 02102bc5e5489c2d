"""Model files as users have them: detection by exact keys and shapes, weight formats, folders.

Key sets are those of the real files (ComfyUI's repackaged split files, the authors' checkpoints,
diffusers layouts), trimmed to the tensors the rules read plus near-misses that once fooled a
substring match (SD 1.5's `transformer_blocks.0.attn1.to_q.weight` contains Wan's
`blocks.0.attn1.to_q.weight`)."""
import json
import os
import re
import struct
import textwrap
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError
from tests.model_stub import stub

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

M = "model.diffusion_model."

# name -> (keys with shapes, expected (role, family, variant))
SD15 = {M + "input_blocks.0.0.weight": (320, 4, 3, 3), M + "out.2.weight": (4, 320, 3, 3),
        M + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": (320, 320),
        M + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
        "first_stage_model.encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3)}
WAN_T2V = {"head.modulation": (1, 2, 1536), "patch_embedding.weight": (1536, 16, 1, 2, 2),
           "blocks.0.self_attn.q.weight": (1536, 1536), "blocks.0.cross_attn.k.weight": (1536, 4096),
           "text_embedding.0.weight": (1536, 4096)}
WAN_I2V = {M + "head.modulation": (1, 2, 5120), M + "patch_embedding.weight": (5120, 36, 1, 2, 2),
           M + "img_emb.proj.0.bias": (1280,), M + "blocks.0.cross_attn.k_img.weight": (5120, 5120)}
CASES = {
    "sd15 checkpoint (not Wan)": (SD15, ("checkpoint", "sd", "sd15")),
    "sd15 unet only": ({k[len(M):]: v for k, v in SD15.items() if k.startswith(M)}, ("diffusion_model", "sd", "sd15")),
    "sd2 checkpoint": ({**SD15, M + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024)},
                       ("checkpoint", "sd", "sd2")),
    "sdxl checkpoint": ({**SD15, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight":
                         (49408, 768), M + "label_emb.0.0.weight": (1280, 2816)}, ("checkpoint", "sd", "sdxl")),
    "sd15 diffusers unet": ({"conv_in.weight": (320, 4, 3, 3), "time_embedding.linear_1.weight": (1280, 320),
                             "conv_norm_out.weight": (320,),
                             "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight": (320, 320),
                             "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": (320, 768)},
                            ("diffusion_model", "sd", "sd15")),
    "wan2.1 t2v 1.3B": (WAN_T2V, ("diffusion_model", "wan", "t2v-1.3B")),
    "wan2.1 t2v prefixed": ({M + k: v for k, v in WAN_T2V.items()}, ("diffusion_model", "wan", "t2v-1.3B")),
    "wan2.1 i2v 14B": (WAN_I2V, ("diffusion_model", "wan", "i2v-14B")),
    "wan2.1 flf2v 14B": ({**WAN_I2V, M + "img_emb.emb_pos": (1, 514, 1280)}, ("diffusion_model", "wan", "flf2v-14B")),
    "wan vace 1.3B": ({**WAN_T2V, "vace_patch_embedding.weight": (1536, 96, 1, 2, 2)},
                      ("diffusion_model", "wan", "vace-1.3B")),
    "wan2.2 i2v A14B": ({**WAN_I2V, M + "img_emb.proj.0.bias": None}, ("diffusion_model", "wan", "i2v-2.2-14B")),
    "wan2.2 ti2v 5B": ({"head.modulation": (1, 2, 3072), "patch_embedding.weight": (3072, 48, 1, 2, 2)},
                       ("diffusion_model", "wan", "ti2v-2.2-5B")),
    "wan2.2 fun control A14B": ({**WAN_I2V, M + "img_emb.proj.0.bias": None, M + "patch_embedding.weight":
                                 (5120, 52, 1, 2, 2), M + "ref_conv.weight": (5120, 16, 2, 2)},
                                ("diffusion_model", "wan", "control-2.2-14B")),
    "wan2.2 fun control 5B": ({"head.modulation": (1, 2, 3072), "patch_embedding.weight": (3072, 148, 1, 2, 2),
                               "ref_conv.weight": (3072, 48, 2, 2)}, ("diffusion_model", "wan", "control-2.2-5B")),
    "wan2.2 fun camera A14B": ({**WAN_I2V, M + "img_emb.proj.0.bias": None,
                                M + "control_adapter.conv.weight": (5120, 1536, 2, 2)},
                               ("diffusion_model", "wan", "camera-14B")),
    "wan2.2 s2v": ({**WAN_T2V, "casual_audio_encoder.encoder.final_linear.weight": (1536, 1024)},
                             ("diffusion_model", "wan", "s2v-1.3B")),
    "wan2.2 animate (refused)": ({**WAN_I2V, M + "face_adapter.fuser_blocks.0.k_norm.weight": (128,)},
                                 ("diffusion_model", "wan", "animate-14B")),
    "wan diffusers transformer": ({"scale_shift_table": (1, 2, 1536), "patch_embedding.weight": (1536, 16, 1, 2, 2),
                                   "condition_embedder.time_embedder.linear_1.weight": (1536, 256),
                                   "blocks.0.attn1.to_q.weight": (1536, 1536)}, ("diffusion_model", "wan", "t2v-1.3B")),
    "hunyuan video t2v": ({"txt_in.individual_token_refiner.blocks.0.norm1.weight": (3072,),
                           "double_blocks.0.img_attn_qkv.weight": (9216, 3072), "img_in.proj.weight": (3072, 16, 1, 2, 2),
                           "guidance_in.in_layer.weight": (3072, 256)}, ("diffusion_model", "hunyuan", "t2v-guidance")),
    "hunyuan video i2v": ({"txt_in.individual_token_refiner.blocks.0.norm1.weight": (3072,),
                           "img_in.proj.weight": (3072, 33, 1, 2, 2)}, ("diffusion_model", "hunyuan", "i2v")),
    "flux schnell (BFL)": ({"double_blocks.0.img_attn.qkv.weight": (9216, 3072), "img_in.weight": (3072, 64)},
                           ("diffusion_model", "flux", "schnell")),
    "flux dev (checkpoint)": ({M + "double_blocks.0.img_attn.qkv.weight": (9216, 3072), M + "img_in.weight": (3072, 64),
                               M + "guidance_in.in_layer.weight": (3072, 256), "vae.decoder.conv_in.weight":
                               (512, 16, 3, 3)}, ("checkpoint", "flux", "dev")),
    "flux fill (BFL)": ({"double_blocks.0.img_attn.qkv.weight": (9216, 3072), "img_in.weight": (3072, 384),
                         "guidance_in.in_layer.weight": (3072, 256)}, ("diffusion_model", "flux", "fill-dev")),
    # LongCat-Image and Ovis-Image: FLUX.1's BFL names without vector_in (ComfyUI's Flux model); Ovis' gated MLPs
    "longcat (BFL)": ({"double_blocks.0.img_attn.qkv.weight": (9216, 3072), "img_in.weight": (3072, 64),
                       "txt_in.weight": (3072, 3584)}, ("diffusion_model", "longcat", "")),
    "ovis (BFL)": ({"double_blocks.0.img_attn.qkv.weight": (9216, 3072), "img_in.weight": (3072, 64),
                    "txt_in.weight": (3072, 2048), "double_blocks.0.img_mlp.gate_proj.weight": (12288, 3072),
                    "txt_norm.scale": (2048,)}, ("diffusion_model", "ovis", "")),
    "longcat (diffusers)": ({"x_embedder.weight": (3072, 64), "context_embedder.weight": (3072, 3584),
                             "time_embed.timestep_embedder.linear_1.weight": (3072, 256),
                             "single_transformer_blocks.0.proj_mlp.weight": (12288, 3072)},
                            ("diffusion_model", "longcat", "")),
    "ovis (diffusers)": ({"x_embedder.weight": (3072, 64), "context_embedder.weight": (3072, 2048),
                          "context_embedder_norm.weight": (2048,), "timestep_embedder.linear_1.weight": (3072, 256),
                          "single_transformer_blocks.0.proj_mlp.weight": (24576, 3072)}, ("diffusion_model", "ovis", "")),
    "flux2 dev (BFL)": ({"double_blocks.0.img_attn.qkv.weight": (18432, 6144), "img_in.weight": (6144, 128),
                         "guidance_in.in_layer.weight": (6144, 256),
                         "single_stream_modulation.lin.weight": (18432, 6144)}, ("diffusion_model", "flux2", "dev")),
    "flux2 klein (BFL)": ({"double_blocks.0.img_attn.qkv.weight": (9216, 3072), "img_in.weight": (3072, 128),
                           "single_stream_modulation.lin.weight": (9216, 3072)}, ("diffusion_model", "flux2", "klein")),
    "ltx 2B checkpoint": ({M + "adaln_single.emb.timestep_embedder.linear_1.weight": (2048, 256),
                           M + "patchify_proj.weight": (2048, 128),
                           M + "transformer_blocks.0.attn1.to_q.weight": (2048, 2048),
                           "vae.decoder.up_blocks.0.res_blocks.0.conv1.conv.weight": (512, 512, 3, 3, 3),
                           "vae.per_channel_statistics.mean-of-means": (128,)}, ("checkpoint", "ltx", "2B")),
    "cogvideox diffusers 5B": ({"patch_embed.text_proj.weight": (3072, 4096), "patch_embed.proj.weight": (3072, 16, 2, 2),
                                "transformer_blocks.0.norm1.linear.weight": (18432, 512)},
                               ("diffusion_model", "cogvideox", "t2v-5B")),
    "cogvideox SAT": ({M + "mixins.patch_embed.proj.weight": (1920, 16, 2, 2)}, ("diffusion_model", "cogvideox", "t2v-2B")),
    "svd checkpoint": ({M + "input_blocks.0.0.weight": (320, 8, 3, 3), M + "out.2.weight": (4, 320, 3, 3),
                        M + "input_blocks.1.0.time_stack.in_layers.0.weight": (320,),
                        "first_stage_model.decoder.up.0.block.0.time_stack.in_layers.0.weight": (128,),
                        "conditioner.embedders.0.open_clip.model.visual.proj": (1280, 1024)},
                       ("checkpoint", "svd", "")),
    "animatediff v2 motion module": ({
        "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight": (320, 320),
        "down_blocks.3.motion_modules.0.temporal_transformer.proj_in.weight": (1280, 1280),
        "mid_block.motion_modules.0.temporal_transformer.norm.bias": (1280,),
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe":
            (1, 32, 320)}, ("motion_module", "animatediff", "v2")),
    "animatediff motion lora (original)": ({
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor."
        "to_q_lora.down.weight": (2, 320)}, ("lora", "animatediff", "original")),
    "wan lora (comfyui)": ({"diffusion_model.blocks.0.self_attn.q.lora_A.weight": (32, 1536),
                            "diffusion_model.blocks.0.self_attn.q.lora_B.weight": (1536, 32)}, ("lora", "wan", "peft")),
    "wan lora (kohya)": ({"lora_unet_blocks_0_cross_attn_k.lora_down.weight": (32, 1536),
                          "lora_unet_blocks_0_cross_attn_k.alpha": ()}, ("lora", "wan", "kohya")),
    "sd15 lora (kohya)": ({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight":
                           (4, 320), "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": (3072, 4)},
                          ("lora", "sd", "kohya")),
    "hunyuan lora": ({"diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight": (32, 3072)},
                     ("lora", "hunyuan", "peft")),
    "flux lora (comfyui)": ({"diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight": (16, 3072),
                             "diffusion_model.single_blocks.0.linear1.lora_A.weight": (16, 3072)},
                            ("lora", "flux", "peft")),
    "flux lora (kohya)": ({"lora_unet_double_blocks_0_img_mod_lin.lora_down.weight": (16, 3072),
                           "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (16, 3072)},
                          ("lora", "flux", "kohya")),
    # its text refiner's blocks.N.mlp.fc1 is also MiniMax H3's block name: the single blocks say HunyuanVideo
    "hunyuan lora (single blocks, token refiner)": ({
        "diffusion_model.single_blocks.0.linear1.lora_A.weight": (16, 3072),
        "diffusion_model.txt_in.individual_token_refiner.blocks.0.mlp.fc1.lora_A.weight": (16, 3072)},
        ("lora", "hunyuan", "peft")),
    "hunyuan lora (kohya)": ({"lora_unet_double_blocks_0_img_mlp_fc1.lora_down.weight": (16, 3072),
                              "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (16, 3072)},
                             ("lora", "hunyuan", "kohya")),
    "controlnet sd15 (original)": ({"control_model.input_hint_block.0.weight": (16, 3, 3, 3),
                                    "control_model.zero_convs.0.0.weight": (320, 320, 1, 1),
                                    "control_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": (320, 320)},
                                   ("controlnet", "sd", "sd15")),
    "controlnet sd15 (diffusers)": ({"controlnet_cond_embedding.conv_in.weight": (16, 3, 3, 3),
                                     "controlnet_down_blocks.0.weight": (320, 320, 1, 1),
                                     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight": (320, 320)},
                                    ("controlnet", "sd", "sd15")),
    "wan 2.1 vae": ({"decoder.middle.0.residual.0.gamma": (384, 1, 1, 1), "conv1.weight": (32, 32, 1, 1, 1),
                     "encoder.conv1.weight": (96, 3, 3, 3, 3)}, ("vae", "wan", "2.1")),
    "wan 2.2 vae": ({"decoder.middle.0.residual.0.gamma": (1024, 1, 1, 1), "conv1.weight": (96, 96, 1, 1, 1)},
                    ("vae", "wan", "2.2")),
    "sd vae (ldm)": ({"encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3),
                      "decoder.up.0.block.0.conv1.weight": (128, 256, 3, 3), "quant_conv.weight": (8, 8, 1, 1)},
                     ("vae", "sd", "")),
    "umt5 xxl": ({"encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096),
                  "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (32, 64),
                  "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight": (32, 64),
                  "shared.weight": (256384, 4096), "scaled_fp8": (0,)}, ("text_encoder", "umt5", "xxl")),
    "t5 xxl": ({"encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096),
                "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (32, 64),
                "shared.weight": (32128, 4096)}, ("text_encoder", "t5", "xxl")),
    "clip_l": ({"text_model.embeddings.token_embedding.weight": (49408, 768),
                "text_model.encoder.layers.0.self_attn.q_proj.weight": (768, 768)}, ("text_encoder", "clip_l", "")),
    "llava llama3": ({"model.embed_tokens.weight": (128320, 4096), "model.layers.0.self_attn.q_proj.weight": (4096, 4096)},
                     ("text_encoder", "llama", "llava-llama3")),
    "clip vision h": ({"vision_model.embeddings.patch_embedding.weight": (1280, 3, 14, 14),
                       "vision_model.encoder.layers.0.self_attn.q_proj.weight": (1280, 1280)},
                      ("clip_vision", "clip_vision", "vit-h")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_detection_by_exact_keys_and_shapes(name):
    from nodes.generate.detect import detect_keys
    keys, (role, fam, variant) = CASES[name]
    det = detect_keys({k: v for k, v in keys.items() if v is not None})
    assert (det.role, det.family, det.variant) == (role, fam, variant), det


def test_diffusers_layouts_of_every_family_are_detected():
    """The key sets of diffusers' own classes (tiny configs), as a diffusers-layout single file holds them."""
    from tiny_models import clip_vision, sd_vae, t5_encoder, wan_vae
    from nodes.generate.detect import detect_keys
    import diffusers

    def shapes(m):
        return {k: tuple(v.shape) for k, v in m.state_dict().items()}
    got = {
        "wan vae": detect_keys(shapes(wan_vae())), "sd vae": detect_keys(shapes(sd_vae())),
        "umt5": detect_keys(shapes(t5_encoder(32, umt5=True))), "t5": detect_keys(shapes(t5_encoder(32))),
        "clip vision": detect_keys(shapes(clip_vision(32, projection=False))),
        "motion adapter": detect_keys(shapes(diffusers.MotionAdapter(
            block_out_channels=(8, 8), motion_layers_per_block=2, motion_norm_num_groups=2,
            motion_num_attention_heads=4))),
    }
    assert (got["wan vae"].role, got["wan vae"].family) == ("vae", "wan")
    assert (got["sd vae"].role, got["sd vae"].family) == ("vae", "sd")
    assert (got["umt5"].role, got["umt5"].family) == ("text_encoder", "umt5")
    assert (got["t5"].role, got["t5"].family) == ("text_encoder", "t5")
    assert got["clip vision"].role == "clip_vision"
    assert got["motion adapter"].role == "motion_module"


def _write_safetensors_header(path: Path, header: dict) -> None:
    """A safetensors file whose data is zeros: enough for header-only readers."""
    end = 0
    full = {}
    for k, (dtype, shape) in header.items():
        n = 1
        for s in shape:
            n *= s
        size = n * {"F16": 2, "BF16": 2, "F32": 4, "F8_E4M3": 1}[dtype]
        full[k] = {"dtype": dtype, "shape": list(shape), "data_offsets": [end, end + size]}
        end += size
    blob = json.dumps(full).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * end)


@pytest.mark.parametrize("dtypes,expected", [
    ({"a.weight": "F16", "b.weight": "F16"}, "fp16"), ({"a.weight": "BF16"}, "bf16"), ({"a.weight": "F32"}, "fp32"),
    ({"a.weight": "F8_E4M3", "b.norm": "F32"}, "fp8_e4m3fn"),
    ({"a.weight": "F8_E4M3", "a.scale_weight": "F32", "scaled_fp8": "F8_E4M3"}, "fp8_scaled")])
def test_precision_from_the_header(tmp_path, dtypes, expected):
    from nodes.generate.detect import detect_file
    p = tmp_path / "x.safetensors"
    _write_safetensors_header(p, {k: (d, (4, 4) if k.endswith("weight") and "scale" not in k else (1,))
                                  for k, d in dtypes.items()})
    assert detect_file(p).precision == expected


def test_fp8_scaled_is_dequantised_with_its_scale(tmp_path):
    """ComfyUI's fp8_scaled: stored = weight / scale in fp8. Loading must give weight back, never the raw
    fp8 values (which are ~448 where the real weight is ~0.2)."""
    from safetensors.torch import save_file
    from nodes.generate.weights import load_weights
    torch.manual_seed(0)
    w = torch.randn(8, 16) * 0.2
    scale = w.abs().max() / 448.0
    stored = (w / scale).to(torch.float8_e4m3fn)
    p = tmp_path / "m_fp8_scaled.safetensors"
    save_file({"layer.weight": stored, "layer.scale_weight": scale.reshape(1), "layer.bias": torch.zeros(8),
               "scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}, str(p))
    sd = load_weights(p, torch.float32)
    assert set(sd) == {"layer.weight", "layer.bias"}
    assert stored.float().abs().max() > 400                      # the hazard: raw values
    assert torch.allclose(sd["layer.weight"], w, rtol=0.07, atol=2e-3)   # fp8 rounding (3 mantissa bits) only
    assert sd["layer.weight"].dtype == torch.float32


def test_a_scale_that_would_grow_its_weight_or_poison_it_is_named(tmp_path):
    """A hostile fp8mixed file: a 4 KB weight_scale of shape (1000, 1, 1) broadcast a (3072, 3072) weight into a
    37 GB product, and a NaN scale turned its layer to NaN (black frames, no word). Scales must fit the weight and be
    finite; a per-row and a single scale still load."""
    from safetensors.torch import save_file
    from nodes.generate.weights import load_weights
    stored = torch.full((4, 8), 2.0).to(torch.float8_e4m3fn)
    for scale, message in ((torch.ones(1000, 1, 1), "layer's scale of shape [1000, 1, 1] does not fit its weight of "
                                                     "shape [4, 8]: the file is damaged"),
                           (torch.ones(8, 1), "layer's scale of shape [8, 1] does not fit its weight of shape [4, 8]"),
                           (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "layer's scale holds NaN or infinite values"),
                           (torch.tensor(float("inf")), "layer's scale holds NaN or infinite values")):
        p = tmp_path / "fp8mixed.safetensors"
        save_file({"layer.weight": stored, "layer.weight_scale": scale}, str(p))
        with pytest.raises(NodeError) as e:
            load_weights(p)
        assert str(e.value).startswith(f"{p.name}: {message}")   # the file named first
    for scale in (torch.tensor([0.5, 1.0, 2.0, 4.0]), torch.tensor(0.25)):
        save_file({"layer.weight": stored, "layer.weight_scale": scale}, str(p))
        assert torch.equal(load_weights(p)["layer.weight"], 2.0 * scale.view(-1, 1).expand(4, 8))


def test_sft_and_pickle_read_the_same_tensors(tmp_path):
    from safetensors.torch import save_file
    from nodes.generate.weights import load_weights
    t = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    save_file(t, str(tmp_path / "x.sft"))
    torch.save({"state_dict": t}, str(tmp_path / "x.ckpt"))
    for name in ("x.sft", "x.ckpt"):
        got = load_weights(tmp_path / name)
        assert set(got) == set(t) and all(torch.equal(got[k], t[k]) for k in t)


def test_gguf_is_read_and_dequantised(tmp_path):
    import gguf
    import numpy as np
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    conv = rng.standard_normal((4, 2, 1, 2, 2)).astype(np.float32)
    p = tmp_path / "m-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(p), "wan")
    writer.add_tensor("blocks.0.ffn.0.weight", gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0),
                      raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    # 5-D weights are stored flattened, with the true shape in metadata (as city96's ComfyUI-GGUF writes them).
    writer.add_tensor("patch_embedding.weight", conv.reshape(4, -1).astype(np.float16))
    writer.add_array("comfy.gguf.orig_shape.patch_embedding.weight", list(conv.shape))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    det = detect_file(p)
    assert det.precision == "gguf-Q8_0"
    sd = load_weights(p)
    assert sd["patch_embedding.weight"].shape == conv.shape
    assert np.abs(sd["blocks.0.ffn.0.weight"].numpy() - w).max() < 0.05
    assert np.abs(sd["patch_embedding.weight"].numpy() - conv).max() < 0.01


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads a process's peak memory from /proc")
def test_header_reading_never_loads_the_tensors(tmp_path):
    """A .ckpt is inspected through a memory map: a 100 MB file costs no more memory than a 400-byte one
    (peak RSS of `kinograph info`'s detection in a fresh process, big minus small: it varies by some 0.2 MB from
    run to run, and read whole the big one adds its 100 MB to the 10 MB allowed)."""
    import subprocess

    small, big = tmp_path / "small.ckpt", tmp_path / "big.ckpt"
    # Written by another process (one for both files), so that no process here ever held the big tensor.
    subprocess.run([sys.executable, "-c", "import sys, torch\nfor path, shape in zip(sys.argv[1:], [(10, 10), (25, 1000, "
                    "1000)]): torch.save({'state_dict': {'model.diffusion_model.input_blocks.0.0.weight': "
                    "torch.zeros(shape)}}, path)", str(small), str(big)], check=True)

    def peak_kb(path):
        # The process's own peak (VmHWM). ru_maxrss is not: a child started from a process inherits that
        # process's peak through exec, so under a test worker that had held a big model both children read
        # the worker's peak and the difference was 0 whatever the detection read.
        code = ("import sys; from nodes.generate.detect import detect_file; d = detect_file(sys.argv[1]); "
                "print(d.precision, [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0])")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert out.returncode == 0, out.stderr
        precision, kb = out.stdout.split()
        assert precision == "fp32"
        return int(kb)

    assert peak_kb(big) - peak_kb(small) < big.stat().st_size // 1024 // 10


def test_comfyui_folder_names_subfolders_and_extra_model_paths(tmp_path, monkeypatch):
    from nodes.common import models_dirs
    comfy = tmp_path / "ComfyUI"
    for rel in ("models/diffusion_models/wan/wan2.1_t2v.safetensors", "models/diffusers/Wan-Diffusers/model_index.json",
                "models/animatediff_motion_lora/v2_lora_PanLeft.ckpt", "models/CogVideo/CogVideoX-2b/transformer/config.json",
                "custom_nodes/ComfyUI-Frame-Interpolation/ckpts/rife/rife49.pth",
                # ComfyUI's own frame interpolation (FrameInterpolationModelLoader) keeps its weights here
                "models/frame_interpolation/rife_v4.26.safetensors"):
        (comfy / rel).parent.mkdir(parents=True, exist_ok=True)
        (comfy / rel).write_text("{}")
    a1111 = tmp_path / "webui"
    (a1111 / "models" / "Stable-diffusion").mkdir(parents=True)
    stub(a1111 / "models" / "Stable-diffusion" / "dreamshaper.safetensors")
    (a1111 / "models" / "Lora").mkdir(parents=True)
    stub(a1111 / "models" / "Lora" / "ink.safetensors")
    (comfy / "extra_model_paths.yaml").write_text(
        f"a111:\n    base_path: {a1111}\n    checkpoints: models/Stable-diffusion\n    loras: |\n"
        "        models/Lora\n        models/LyCORIS\n")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    find = models_dirs.find_model
    assert find("wan/wan2.1_t2v.safetensors", "diffusion_models").name == "wan2.1_t2v.safetensors"
    assert find("wan\\wan2.1_t2v.safetensors", "diffusion_models").name == "wan2.1_t2v.safetensors"
    assert find("Wan-Diffusers", "diffusion_models").is_dir()
    assert find("CogVideoX-2b", "diffusion_models").is_dir()
    assert find("v2_lora_PanLeft.ckpt", "loras").parent.name == "animatediff_motion_lora"
    assert find("rife49.pth", "rife").parent.name == "rife"
    assert find("rife_v4.26.safetensors", "rife").parent.name == "frame_interpolation"
    assert find("dreamshaper.safetensors", "checkpoints").parent == a1111 / "models" / "Stable-diffusion"
    assert find("ink", "loras").parent == a1111 / "models" / "Lora"
    # Another author's sub-folder: the one file of that name is the one meant (test_model_names_elsewhere).
    assert find("other/wan2.1_t2v.safetensors", "diffusion_models").parent.name == "wan"
    with pytest.raises(NodeError, match="not found"):
        find("other/wan2.2_t2v.safetensors", "diffusion_models")


def test_original_motion_lora_gives_the_same_video_as_its_diffusers_form(tmp_path):
    """animatediff_motion_lora/v2_lora_PanLeft.ckpt's layout, applied to AnimateDiff, equals the PEFT file."""
    from safetensors.torch import load_file
    from tiny_models import build_all, motion_lora_original
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = build_all(tmp_path / "tiny", ("animatediff",))
        peft = root / "loras" / "tiny_motion_lora.safetensors"
        original = root / "v2_lora_Tiny.ckpt"
        torch.save(motion_lora_original(load_file(str(peft))), str(original))
        det = detect_file(original)
        assert (det.role, det.family, det.variant) == ("lora", "animatediff", "original")
        mm = ModelManager()
        h = mm.load("animatediff", str(root / "animatediff"))
        te, vae = mm.components(h)["text_encoder"], mm.components(h)["vae"]
        pos, neg = encode_prompt(te, "a cat"), encode_prompt(te, "")

        def sample(model):
            return run_sampling(model, pos, neg, empty_latent(vae, 8, 64, 64, 8.0), steps=2, cfg=5.0,
                                sampler="euler", seed=1).samples
        base, a, b = sample(h), sample(h.with_lora(str(peft), 0.8)), sample(h.with_lora(str(original), 0.8))
        assert not torch.allclose(base, a, atol=1e-3)
        assert torch.allclose(a, b, atol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_controlnet_single_file_loads_without_a_hub(tmp_path):
    """A ControlNet as one .safetensors file (its config comes from the UNet it steers): same as its folder."""
    import shutil
    from tiny_models import build_all
    from nodes.generate.model_manager import ModelManager
    root = build_all(tmp_path / "tiny", ("animatediff",))
    single = tmp_path / "control_tiny.safetensors"
    shutil.copy(root / "controlnet" / "diffusion_pytorch_model.safetensors", single)
    mm = ModelManager()
    h = mm.load("animatediff", str(root / "animatediff"))
    a = mm.controlnet(str(root / "controlnet"), h)
    b = mm.controlnet(str(single), h)
    assert list(b.config.conditioning_embedding_out_channels) == list(a.config.conditioning_embedding_out_channels)
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sd15_single_file_loads_with_the_shipped_config(tmp_path, monkeypatch):
    """An SD 1.5 checkpoints/ file (LDM keys) with no config folder: detected as SD 1.5 (not Wan), built from the
    shipped configs, and sampling equals the same model from its diffusers folder."""
    from tiny_models import build_sd15_single_file
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import decode_latent, empty_latent
    root = build_sd15_single_file(tmp_path)
    ckpt = root / "models" / "checkpoints" / "sd15_tiny.safetensors"
    det = detect_file(ckpt)
    assert (det.role, det.family, det.variant, det.precision) == ("checkpoint", "sd", "sd15", "fp16")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root / "models"))
    mm = ModelManager()

    def run(path):
        h = mm.load("sd", path)
        parts = mm.components(h)
        pos, neg = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "")
        lat = run_sampling(h, pos, neg, empty_latent(parts["vae"], 2, 32, 32, 8.0), steps=2, cfg=5.0,
                           sampler="euler", seed=1)
        return lat.samples, decode_latent(parts["vae"], lat).frames(0, 2)
    ref, ref_px = run(str(root / "diffusers"))
    got, got_px = run("sd15_tiny.safetensors")
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    assert abs(got_px.astype(int) - ref_px.astype(int)).max() <= 1


def test_sd_v_prediction_folder_and_marked_checkpoint_sample_as_diffusers(tmp_path, monkeypatch):
    """SD 2.x 768-v and SD 1.5 v-prediction fine-tunes. A diffusers folder whose scheduler says v_prediction (SD 2's
    EulerDiscreteScheduler) was sampled as epsilon (grey noise); it now gives diffusers' own pipeline's latent. A
    checkpoint with ComfyUI's `v_pred` marker samples as that folder does (on ComfyUI's simple schedule, which
    reads the same table of noise levels for both)."""
    import shutil
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file
    from tiny_models import build_sd15_single_file
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from nodes.generate.weights import load_weights
    root = build_sd15_single_file(tmp_path)
    sched = root / "diffusers" / "scheduler" / "scheduler_config.json"
    cfg = json.loads(sched.read_text())
    cfg.update(_class_name="EulerDiscreteScheduler", prediction_type="v_prediction")
    sched.write_text(json.dumps(cfg))
    index = json.loads((root / "diffusers" / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "EulerDiscreteScheduler"]
    (root / "diffusers" / "model_index.json").write_text(json.dumps(index))
    ckpts = root / "models" / "checkpoints"
    marked = ckpts / "sd15_vpred_tiny.safetensors"
    save_file({**load_weights(ckpts / "sd15_tiny.safetensors"), "v_pred": torch.tensor([])}, str(marked))
    shutil.copytree(ckpts / "sd15_tiny", ckpts / marked.stem)
    assert "sampled as v-prediction" in describe_model(marked)["note"]
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root / "models"))
    mm = ModelManager()

    def run(path, scheduler):
        h = mm.load("sd", path)
        parts = mm.components(h)
        pos, neg = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "blurry")
        return run_sampling(h, pos, neg, empty_latent(parts["vae"], 1, 32, 32, 8.0), steps=3, cfg=5.0,
                            sampler="euler", seed=1, scheduler=scheduler).samples[:, :, 0]
    folder = run(str(root / "diffusers"), "default")
    ref = StableDiffusionPipeline.from_pretrained(str(root / "diffusers"), local_files_only=True, safety_checker=None)
    want = ref("a cat", negative_prompt="blurry", width=32, height=32, num_inference_steps=3, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(1), output_type="latent").images
    assert float((folder - want).abs().max() / want.abs().max()) < 1e-4
    on_table = run(str(root / "diffusers"), "simple")
    assert torch.allclose(run(marked.name, "simple"), on_table, atol=1e-5)
    assert not torch.allclose(run("sd15_tiny.safetensors", "simple"), on_table, atol=1e-2)     # unmarked: epsilon


def test_an_sd2_checkpoint_says_to_load_its_diffusers_folder(tmp_path):
    """v2-1_768-ema-pruned.safetensors (1024-wide context, OpenCLIP-H) was "sd sd2 checkpoint fp32, not a Stable
    Diffusion 1.5 checkpoint", with nothing to do; now it is named as SD 2.x with the folder that loads."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager, describe_model
    path = tmp_path / "v2-1_768-ema-pruned.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3),
               "model.diffusion_model.out.2.weight": torch.zeros(4, 8, 3, 3),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(8, 1024),
               "cond_stage_model.model.token_embedding.weight": torch.zeros(10, 1024)}, str(path))
    got = describe_model(path)
    assert got["loads"] == "no" and "Stable Diffusion 2.x" in got["note"] and "diffusers folder" in got["note"]
    with pytest.raises(NodeError) as e:
        ModelManager().load("sd", str(path))
    msg = str(e.value)
    assert "v2-1_768-ema-pruned.safetensors is a Stable Diffusion 2.x checkpoint" in msg and "load.sd" in msg, msg


def test_umt5_tokenizer_embedded_in_the_file_as_comfyui_stores_it(tmp_path, monkeypatch):
    """ComfyUI's umt5 files carry their sentencepiece model as a uint8 tensor `spiece_model`: the tokenizer comes
    from there (no folder beside, no hub) and tokenizes as sentencepiece itself does."""
    import io
    import numpy as np
    import sentencepiece as spm
    from safetensors.torch import save_file
    from tiny_models import t5_encoder
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    lines = ["a red fox in the snow", "a cat running on grass", "blurry static video", "the quick brown fox"] * 50
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=proto, vocab_size=30,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2)
    data = proto.getvalue()
    state = {k: v.contiguous() for k, v in t5_encoder(32, umt5=True).state_dict().items()
             if k != "encoder.embed_tokens.weight"}
    state["spiece_model"] = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())
    (tmp_path / "text_encoders").mkdir()
    save_file(state, str(tmp_path / "text_encoders" / "umt5_tiny_scaled.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    handle = load_text_encoder(ModelManager(), "umt5_tiny_scaled.safetensors", "", "auto", "cpu")
    assert handle.family == "wan"
    want = spm.SentencePieceProcessor(model_proto=data).encode("a red fox") + [1]
    assert handle.pipe.tokenizer("a red fox").input_ids == want
    from nodes.generate.text import encode_prompt
    cond = encode_prompt(handle, "a red fox")
    assert cond.embeds.shape[-1] == 32 and torch.isfinite(cond.embeds).all()


def test_a_model_file_replaced_under_its_name_reruns_what_it_feeds(tmp_path, monkeypatch):
    """A LoRA retrained and saved under the same name, or a diffusion model downloaded again, must change the
    cache keys of the nodes it feeds: the key fingerprints the file found in the model folders (it fingerprinted
    the name joined to the workflow's folder, where no file is, so the next run served the old video)."""
    import time
    from graph_engine.api import load_workflow
    from graph_engine.plan import plan_run
    from graph_engine.registry import default_registry
    models = tmp_path / "models"
    for rel in ("loras/mine.safetensors", "diffusion_models/wan.safetensors", "checkpoints/ltx.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        (models / rel).write_bytes(b"old weights")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    (tmp_path / "wf").mkdir()
    wf_file = tmp_path / "wf" / "w.yaml"
    wf_file.write_text(textwrap.dedent("""\
        kinograph: 1
        nodes:
          u: {type: load.diffusion_model, params: {name: wan.safetensors}}
          l: {type: lora.image, inputs: {model: u.model}, params: {path: mine.safetensors}}
          c: {type: load.model, params: {path: ltx.safetensors}}
        """))

    def keys():
        return plan_run(load_workflow(str(wf_file)), default_registry()).keys
    before = keys()
    time.sleep(0.01)
    (models / "loras" / "mine.safetensors").write_bytes(b"new weights")
    after = keys()
    assert after["l"] != before["l"] and after["u"] == before["u"]
    (models / "diffusion_models" / "wan.safetensors").write_bytes(b"new weights")
    (models / "checkpoints" / "ltx.safetensors").write_bytes(b"new weights")
    last = keys()
    assert last["u"] != after["u"] and last["l"] != after["l"] and last["c"] != after["c"]


def test_weights_replaced_inside_a_diffusers_folder_rerun_what_they_feed(tmp_path):
    """A diffusers folder keeps its weights one level down (transformer/, vae/): the key fingerprinted the
    folder's own files (model_index.json) alone, so a transformer copied in again over the old one kept
    serving the old video from the cache."""
    import time
    from graph_engine.api import load_workflow
    from graph_engine.plan import plan_run
    from graph_engine.registry import default_registry
    model = tmp_path / "wan-diffusers"
    for rel in ("model_index.json", "transformer/diffusion_pytorch_model.safetensors", "vae/config.json"):
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_bytes(b"old")
    (model / "transformer" / "deeper").mkdir()
    wf_file = tmp_path / "w.yaml"
    wf_file.write_text("kinograph: 1\nnodes:\n  m: {type: load.model, params: {path: wan-diffusers}}\n")

    def key():
        return plan_run(load_workflow(str(wf_file)), default_registry()).keys["m"]
    before = key()
    time.sleep(0.01)
    (model / "transformer" / "deeper" / "notes.txt").write_bytes(b"two levels down is not a model layout")
    assert key() == before
    (model / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"new")
    assert key() != before


def test_a_text_encoder_of_another_family_is_refused_by_name(tmp_path, monkeypatch):
    """umt5 (Wan's encoder) with type hunyuan_video stopped encode.text with "AttributeError: 'NoneType' object
    has no attribute 'dtype'", and with type sd it loaded and encoded as if it were SD's CLIP: the loader now
    names the file, the encoder it holds and the type that reads it."""
    from safetensors.torch import save_file
    from tiny_models import t5_encoder, t5_tokenizer
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    (tmp_path / "text_encoders").mkdir()
    state = {k: v.contiguous() for k, v in t5_encoder(32, umt5=True).state_dict().items()
             if k != "encoder.embed_tokens.weight"}
    save_file(state, str(tmp_path / "text_encoders" / "umt5_tiny.safetensors"))
    t5_tokenizer(tmp_path / "text_encoders" / "umt5_tiny")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    for type_ in ("hunyuan_video", "sd", "ltxv"):
        with pytest.raises(NodeError) as e:
            load_text_encoder(ModelManager(), "umt5_tiny.safetensors", "", type_, "cpu")
        msg = str(e.value)
        assert "umt5_tiny.safetensors" in msg and "umt5" in msg and "type wan" in msg, msg
    assert load_text_encoder(ModelManager(), "umt5_tiny.safetensors", "", "wan", "cpu").family == "wan"


def test_linked_model_folders_are_searched_as_comfyui_searches_them(tmp_path, monkeypatch):
    """diffusion_models/wan linked to a folder on another drive: ComfyUI finds the files in it, Kinograph said
    'not found' (Path.rglob does not enter linked folders) and `kinograph info` did not list them. A link to a
    file on a drive that is not mounted is named as such."""
    from nodes.common import models_dirs
    nas = tmp_path / "nas" / "wan"
    nas.mkdir(parents=True)
    stub(nas / "wan2.1_t2v.safetensors")
    folder = tmp_path / "models" / "diffusion_models"
    folder.mkdir(parents=True)
    (folder / "wan").symlink_to(nas)
    (folder / "loop").symlink_to(folder)                # a link back up is walked once
    (folder / "gone.safetensors").symlink_to(tmp_path / "unmounted" / "gone.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    found = models_dirs.find_model("wan2.1_t2v.safetensors", "diffusion_models")
    assert found.resolve() == (nas / "wan2.1_t2v.safetensors").resolve()
    assert [p.name for p in models_dirs.list_models()["diffusion_models"]] == ["wan2.1_t2v.safetensors"]
    with pytest.raises(NodeError) as e:
        models_dirs.find_model("gone.safetensors", "diffusion_models")
    assert f"is a link to {tmp_path / 'unmounted' / 'gone.safetensors'}, which does not exist" in str(e.value)


def test_a_model_name_not_found_says_where_else_it_is_and_close_names(tmp_path, monkeypatch):
    """load.diffusion_model given the VAE's name, or a name one letter off, said 'diffusion model not found:
    <the workflow's folder>/<name>' and to copy 'the model (a diffusers folder ...)' there. Now: the name as
    written, the vae folder that holds it and the node that loads it, and the close names."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    models = tmp_path / "models"
    for rel in ("diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors", "vae/wan_2.1_vae.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        stub(models / rel)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    with pytest.raises(NodeError) as e:
        load_diffusion_model(ModelManager(), "wan_2.1_vae.safetensors", "default", "cpu")
    msg = str(e.value)
    assert "not found: 'wan_2.1_vae.safetensors'" in msg and "never downloads" in msg
    assert f"wan_2.1_vae.safetensors is in {models / 'vae'} (vae): files there are loaded by load.vae" in msg
    with pytest.raises(NodeError) as e:
        load_diffusion_model(ModelManager(), "wan2.1_t2v_1.3B_fp61.safetensors", "default", "cpu")
    assert "Close names there: wan2.1_t2v_1.3B_fp16.safetensors" in str(e.value)


@pytest.mark.parametrize("content", [b"", b"<!DOCTYPE html><html><body>404</body></html>", bytes(range(256)) * 4])
def test_a_damaged_ckpt_is_not_called_an_old_style_pickle(tmp_path, content):
    """An empty .ckpt, an HTML page saved under a model's name or random bytes were called 'an old-style (pre-zip)
    torch pickle that cannot be inspected ...; convert it to .safetensors': nothing to convert, the file is
    damaged. A real pre-zip torch file keeps that message."""
    from nodes.generate.detect import detect_file
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(content)
    with pytest.raises(NodeError) as e:
        detect_file(bad)
    msg = str(e.value)
    assert "model.ckpt" in msg and "old-style" not in msg and "re-download" in msg, msg
    legacy = tmp_path / "legacy.pth"
    torch.save({"a.weight": torch.zeros(2, 2)}, str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(NodeError, match="old-style"):
        detect_file(legacy)


def test_a_diffusers_layout_sd_file_is_named_and_not_listed_as_loading(tmp_path, monkeypatch):
    """A diffusers-layout SD UNet or VAE saved as one file (unet/diffusion_pytorch_model.safetensors copied out of
    its folder) was refused without naming the file, and `kinograph info` listed it as loading."""
    from safetensors.torch import save_file
    from diffusers import UNet2DConditionModel
    from tiny_models import sd_unet_config, sd_vae
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.split import load_diffusion_model, load_vae
    for sub, name, module in (("diffusion_models", "sd_unet.safetensors", UNet2DConditionModel(**sd_unet_config())),
                              ("vae", "sd_vae.safetensors", sd_vae())):
        (tmp_path / sub).mkdir()
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp_path / sub / name))
        assert describe_model(tmp_path / sub / name)["loads"] == "no"
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    for load, name in ((lambda n: load_diffusion_model(ModelManager(), n, "default", "cpu"), "sd_unet.safetensors"),
                       (lambda n: load_vae(ModelManager(), n, "cpu"), "sd_vae.safetensors")):
        with pytest.raises(NodeError) as e:
            load(name)
        assert name in str(e.value) and "diffusers folder" in str(e.value)


def test_validate_names_model_files_that_are_not_in_the_model_folders(tmp_path, monkeypatch, capsys):
    """`kinograph validate` said 'ok' for a workflow whose diffusion model, VAE or upscaler is in no model folder
    (interpolate.rife's was already checked); the run then stopped at that node. Now each missing file is a
    located problem (exit 2), and files that are there, beside the workflow or in the model folders, pass."""
    from app.cli import main
    models = tmp_path / "models"
    for rel in ("vae/wan_2.1_vae.safetensors", "loras/mine.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        stub(models / rel)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    (tmp_path / "wf").mkdir()
    stub(tmp_path / "wf" / "beside.safetensors")
    wf = tmp_path / "wf" / "w.yaml"
    wf.write_text(textwrap.dedent("""\
        kinograph: 1
        nodes:
          unet: {type: load.diffusion_model, params: {name: wan2.1_t2v_1.3B_fp16.safetensors}}
          vae: {type: load.vae, params: {name: wan_2.1_vae.safetensors}}
          lora: {type: lora.image, inputs: {model: unet.model}, params: {path: mine.safetensors}}
          lora2: {type: lora.image, inputs: {model: lora.model}, params: {path: beside.safetensors}}
          lora3: {type: lora.image, inputs: {model: lora2.model}, params: {path: other.safetensors}}
          src: {type: generate.test_pattern}
          up: {type: upscale.model, inputs: {video: src.video}}
        """))
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert f"{wf}:3: node unet: name: 'wan2.1_t2v_1.3B_fp16.safetensors' is not in the model folders" in err
    # The folder it goes in, as the run says it: a file copied into the model folder itself is not looked for.
    assert f"put wan2.1_t2v_1.3B_fp16.safetensors into {models / 'diffusion_models'}," in err
    assert f"{wf}:7: node lora3: path: 'other.safetensors'" in err
    assert "node up: model: 'RealESRGAN_x4plus.pth'" in err
    assert "node vae" not in err and "node lora:" not in err and "node lora2" not in err
    assert str(models) in err and "Traceback" not in err


def test_a_model_copied_into_the_model_folder_itself_is_pointed_out(tmp_path, monkeypatch, capsys):
    """A newcomer's first copy went into the model folder itself (models/wan_2.1_vae.safetensors), where nothing
    is looked for: `kinograph info` said 'models found: none' and the run 'not found', neither saying why. Both
    now name the file and the sub-folder it belongs in; files in the kinds' sub-folders are not flagged."""
    from app.cli import main
    from nodes.common.models_dirs import find_model
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    stub(models / "wan_2.1_vae.safetensors")
    stub(models / "loras" / "mine.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    with pytest.raises(NodeError) as e:
        find_model("wan_2.1_vae.safetensors", "vae")
    assert (f"wan_2.1_vae.safetensors is in {models} itself, where no model is looked for: move it into "
            f"{models / 'vae'}") in str(e.value)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"{models / 'wan_2.1_vae.safetensors'} is in the model folder itself, where no model is looked for" in out
    assert "mine.safetensors is in the model folder" not in out


def test_a_pipelines_parts_put_directly_in_diffusers_are_pointed_to_a_folder_of_their_own(tmp_path, monkeypatch,
                                                                                          capsys):
    """A diffusers pipeline copied into models/diffusers/ itself (model_index.json, vae/, ... directly there):
    `kinograph info` listed its parts as checkpoints and said "load.vae looks in vae/, not checkpoints/: move it
    into models/vae", while the pipeline loads as load.model NAME once in diffusers/NAME/. It says that now, and
    moved there, the pipeline is listed as one model."""
    from app.cli import main
    from tiny_models import wan_vae
    models = tmp_path / "models"
    pipe = models / "diffusers"
    wan_vae().save_pretrained(str(pipe / "vae"))
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "vae": ["diffusers",
                                                                                              "AutoencoderKLWan"]}))
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))         # info adds the folder named to it: restored after
    assert main(["info", str(models)]) == 0
    out = capsys.readouterr().out
    assert (f"{pipe} holds one model's parts directly, where load.model looks for a folder by its name and finds "
            f"none: move them into a folder of their own, {pipe / 'NAME'}/, and give load.model NAME") in out
    assert "not checkpoints/" not in out and "diffusion_pytorch_model" not in out
    (pipe / "wan").mkdir()
    for part in ("vae", "model_index.json"):
        (pipe / part).rename(pipe / "wan" / part)
    assert main(["info", str(models)]) == 0
    out = capsys.readouterr().out
    assert "holds one model's parts directly" not in out
    assert [ln.split()[-1] for ln in out.splitlines() if str(pipe) in ln] == [str(pipe / "wan")]


def test_an_artists_comfyui_folder_is_named_to_info_and_validate_names_its_close_files(tmp_path, monkeypatch,
                                                                                        capsys):
    """An artist with a ComfyUI models folder: `kinograph info ~/ComfyUI/models` was refused ('unrecognized
    arguments') and its help said nothing of how to point it at one; with no models it said only 'see README'.
    Naming ComfyUI/models/checkpoints itself called its files 'in the model folder itself' and said to move them
    (out of the ComfyUI install they are in). validate, given a workflow's svd.safetensors beside the folder's
    svd_xt.safetensors, named no close name (the run did; and compared with '.safetensors' on, every file was);
    importing ComfyUI's SVD workflow said 'mapped exactly' and nothing of the file it names not being there."""
    from app.cli import main
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "models found: none. Put model files into the sub-folder of their kind" in out
    assert "`kinograph info ~/ComfyUI/models` shows what is found there" in out and "mini_text_to_video.yaml" in out
    checkpoints = tmp_path / "ComfyUI" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("svd_xt.safetensors", "ltx-video-2b-v0.9.5.safetensors"):
        _write_safetensors_header(checkpoints / name, {"a.weight": ("F16", (2,))})
    assert main(["info", str(checkpoints)]) == 0
    out = capsys.readouterr().out
    assert f"\n  {checkpoints.parent}\n" in out and "itself" not in out
    assert str(checkpoints / "svd_xt.safetensors") in out.split("models found:")[1]
    assert f"export KINOGRAPH_MODELS={checkpoints} " in out
    assert main(["info", str(tmp_path / "nowhere")]) == 2
    assert f"{tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "ComfyUI"))
    example = ROOT / "examples" / "comfyui" / "svd.yaml"
    assert main(["validate", str(example), "--set", "load.path=../models/svd.safetensors"]) == 2
    err = capsys.readouterr().err
    assert (f"nor beside the workflow ({ROOT / 'examples' / 'models' / 'svd.safetensors'}); close names there: "
            f"svd_xt.safetensors (set path to one); put svd.safetensors at "
            f"{ROOT / 'examples' / 'models' / 'svd.safetensors'}") in err
    # ComfyUI's own SVD workflow names svd.safetensors: the import says so, where it said only 'mapped exactly'.
    assert main(["import", str(ROOT / "tests" / "data" / "comfyui" / "svd_i2v.json"), "-o", str(tmp_path / "svd.yaml")]) == 0
    err = capsys.readouterr().err
    assert ("model files it names that your model folders do not hold" in err
            and "path: 'svd.safetensors' is not in the model folders" in err
            and "close names there: svd_xt.safetensors" in err), err


def test_validate_names_every_folder_searched_for_a_missing_model_extra_model_paths_included(tmp_path, monkeypatch,
                                                                                           capsys):
    """An artist's ComfyUI folder whose extra_model_paths.yaml adds a second drive: `kinograph validate` listed
    only the model folders' roots (not the drive, which was searched), so whether the drive was looked in could not
    be told. The message now names every folder the loader searched, the drive's vae/ among them, and the file."""
    from app.cli import main
    comfy, drive = tmp_path / "ComfyUI", tmp_path / "drive2"
    (comfy / "models" / "vae").mkdir(parents=True)
    (drive / "vae").mkdir(parents=True)
    (comfy / "extra_model_paths.yaml").write_text(f"second:\n  base_path: {drive}\n  vae: vae\n")
    wf, err = _validate_vae(tmp_path, monkeypatch, capsys, comfy, "wan_2.1_vae.safetensors")
    assert (f"{wf}:3: node vae: name: 'wan_2.1_vae.safetensors' is not in the model folders (looked in "
            f"{comfy / 'models' / 'vae'}, {tmp_path / 'data' / 'models' / 'vae'} (missing), {drive / 'vae'}) nor beside the "
            f"workflow; put wan_2.1_vae.safetensors into {comfy / 'models' / 'vae'}, ") in err, err
    stub(drive / "vae" / "wan_2.1_vae.safetensors")
    assert main(["validate", str(wf)]) == 0, capsys.readouterr().err


def test_info_shows_the_extra_model_paths_folders_and_no_export_line_for_a_folder_already_searched(tmp_path,
                                                                                                 monkeypatch, capsys):
    """`kinograph info ~/ComfyUI/models` listed the model folders without the second drive its
    extra_model_paths.yaml adds (searched all the same), told someone whose KINOGRAPH_MODELS already named that
    folder to export it, and, finding nothing, to put files into the default folder or to name a folder: the one
    just named. Now the drive's folders are listed under the file adding them, and the export line comes only for
    a folder not yet searched."""
    from app.cli import main
    comfy, drive = tmp_path / "ComfyUI", tmp_path / "drive2"
    (comfy / "models" / "vae").mkdir(parents=True)
    (drive / "vae").mkdir(parents=True)
    (comfy / "extra_model_paths.yaml").write_text(f"second:\n  base_path: {drive}\n  vae: vae\n  loras: loras\n")
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    assert main(["info", str(comfy / "models")]) == 0
    out = capsys.readouterr().out
    assert (f"  and, from {comfy / 'extra_model_paths.yaml'}:\n    {drive / 'vae'}\n    {drive / 'loras'}  (missing)\n"
            in out), out
    assert "export KINOGRAPH_MODELS" not in out
    assert ("models found: none. Model files go in the sub-folder of their kind (checkpoints/, diffusion_models/, "
            "text_encoders/, vae/, loras/ ...) of a folder above") in out
    monkeypatch.delenv("KINOGRAPH_MODELS")
    assert main(["info", str(comfy)]) == 0
    assert f"export KINOGRAPH_MODELS={comfy} " in capsys.readouterr().out


def test_validate_passes_a_family_model_only_where_its_loader_looks(tmp_path, monkeypatch, capsys):
    """A Wan folder in checkpoints/: `kinograph validate` said ok (load.wan's name was looked up in checkpoints/ and
    diffusion_models/), and the run stopped at load.wan, which looks in diffusion_models/ only. validate now
    refuses it, naming the folder the loader searches, and passes it once it is there."""
    from app.cli import main
    models = tmp_path / "models"
    model = models / "checkpoints" / "wan"
    model.mkdir(parents=True)
    (model / "model_index.json").write_text('{"_class_name": "WanPipeline"}')
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = ROOT / "examples" / "tiny" / "wan.yaml"
    assert main(["validate", str(wf), "--set", "load.path=wan"]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(wf.read_text().splitlines(), 1) if text.startswith("  load:"))
    assert f"{wf}:{line}: node load: path: 'wan' is not in the model folders" in err
    assert f"put wan into {models / 'diffusion_models'}," in err
    model.rename(models / "checkpoints" / "elsewhere")
    (models / "diffusion_models").mkdir()
    (models / "checkpoints" / "elsewhere").rename(models / "diffusion_models" / "wan")
    assert main(["validate", str(wf), "--set", "load.path=wan"]) == 0, capsys.readouterr().err


def test_weights_replaced_under_the_same_name_are_the_ones_a_rerun_samples_with(tmp_path, monkeypatch):
    """A trainer's new checkpoint written beside and renamed over the old one: the run's keys changed and the
    nodes ran again, but the model manager handed back the pipeline loaded from the old files, and the render
    was the old model's."""
    import shutil
    import tiny_models
    from graph_engine.api import Session, load_workflow
    from nodes.generate.model_manager import ModelManager
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = tiny_models.build_all(tmp_path / "a", ("wan",)) / "wan"
        monkeypatch.setattr(tiny_models, "_seed", lambda n=0: torch.manual_seed(n + 99))
        retrained = tiny_models.build_all(tmp_path / "b", ("wan",)) / "wan"
        text = textwrap.dedent(f"""\
            kinograph: 1
            nodes:
              load: {{type: load.wan, params: {{path: {model}}}}}
              prompt: {{type: encode.text, inputs: {{text_encoder: load.text_encoder}}, params: {{text: a fox}}}}
              latent: {{type: latent.empty, inputs: {{vae: load.vae}}, params: {{frames: 5, width: 32, height: 32}}}}
              sample:
                type: generate.sample
                inputs: {{model: load.model, positive: prompt.positive, negative: prompt.negative, latent: latent.latent}}
                params: {{steps: 2, sampler: flow_euler, seed: 42}}
              decode: {{type: vae.decode, inputs: {{vae: load.vae, latent: sample.latent}}}}
            """)

        def frames(session):
            res = session.run(load_workflow(text=text))
            assert res.ok, res.failed
            return res.outputs["decode"]["video"].to_array()

        session = Session(device="cpu", use_disk=False, models=ModelManager())
        before = frames(session)
        weights = "transformer/diffusion_pytorch_model.safetensors"
        shutil.copyfile(retrained / weights, model / (weights + ".new"))
        os.replace(model / (weights + ".new"), model / weights)
        after = frames(session)
        assert not (after == before).all()
        assert (after == frames(Session(device="cpu", use_disk=False, models=ModelManager()))).all()
        assert len(session.executor.models._cache) == 1       # the old pipeline went with its files
    finally:
        torch.set_num_threads(threads)


def test_a_comment_inside_an_extra_model_paths_block_is_part_of_the_folder_name_as_comfyui_reads_it(tmp_path,
                                                                                                    monkeypatch, capsys):
    """ComfyUI's own example extra_model_paths.yaml has `models/clip/  # legacy location still supported` inside a
    `|` block, where YAML keeps the # as text; ComfyUI (utils/extra_config.py: each line of the block joined to
    base_path as it is) then looks in a folder of that name, not in models/clip/. Kinograph searches the same
    folders, and `kinograph info` says why that one is missing rather than a bare (missing)."""
    import yaml
    from app.cli import main
    from nodes.common.models_dirs import extra_model_paths
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "text_encoders").mkdir(parents=True)
    (comfy / "models" / "clip").mkdir()
    yaml_file = comfy / "extra_model_paths.yaml"
    yaml_file.write_text(f"comfyui:\n     base_path: {comfy}/\n     text_encoders: |\n          models/text_encoders/\n"
                         "          models/clip/  # legacy location still supported\n")
    # ComfyUI's reading, written out: yaml's block text split on newlines, each non-empty line joined to base_path.
    block = yaml.safe_load(yaml_file.read_text())["comfyui"]["text_encoders"]
    comfyui = [os.path.normpath(os.path.join(f"{comfy}/", line)) for line in block.split("\n") if line]
    assert [str(d) for d in extra_model_paths(yaml_file)["text_encoders"]] == comfyui
    assert comfyui[1] == str(comfy / "models" / "clip" / "  # legacy location still supported")
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    assert main(["info", str(comfy)]) == 0
    assert (f"    {comfyui[1]}  (missing: a # inside a | block is part of the folder name, for ComfyUI too; take the "
            "comment out of the block)\n") in capsys.readouterr().out


def _validate_vae(tmp_path, monkeypatch, capsys, models, name: str):
    """(the workflow, what `kinograph validate` printed) for one load.vae naming `name` (as YAML writes it) that is
    in no model folder, with `models` as KINOGRAPH_MODELS and an empty data folder."""
    from app.cli import main
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    wf = tmp_path / "w.yaml"
    wf.write_text(f"kinograph: 1\nnodes:\n  vae: {{type: load.vae, params: {{name: {name}}}}}\n")
    assert main(["validate", str(wf)]) == 2
    return wf, capsys.readouterr().err


def test_validate_says_to_put_a_model_a_workflow_names_in_a_sub_folder_into_that_sub_folder(tmp_path, monkeypatch,
                                                                                            capsys):
    """A ComfyUI workflow names models by their sub-folder (wan\\wan_2.1_vae.safetensors, written on Windows), and
    the loader looks for that sub-folder: `kinograph validate` said to put wan_2.1_vae.safetensors into vae/, where
    the run still did not find it (the run's own message too)."""
    from app.cli import main
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    wf, err = _validate_vae(tmp_path, monkeypatch, capsys, models, "'wan\\wan_2.1_vae.safetensors'")
    assert f"put wan_2.1_vae.safetensors into {models / 'vae' / 'wan'}, or add" in err, err
    from nodes.common.models_dirs import find_model      # the run's own message, the same
    with pytest.raises(NodeError, match=f"put wan_2.1_vae.safetensors into {re.escape(str(models / 'vae' / 'wan'))},"):
        find_model("wan\\wan_2.1_vae.safetensors", "vae")
    (models / "vae" / "wan").mkdir()
    stub(models / "vae" / "wan" / "wan_2.1_vae.safetensors")
    assert main(["validate", str(wf)]) == 0, capsys.readouterr().err


def test_a_changed_tokenizer_folder_reruns_the_sound_nodes(tmp_path, monkeypatch):
    """generate.stable_audio and generate.ace_step read their text encoder's tokenizer from the folder beside it
    (t5-base/ beside t5-base.safetensors), which was not in their cache keys: a tokenizer replaced there was not
    read again (the run and the loaded model served the old one's sound)."""
    import time
    from graph_engine.api import load_workflow
    from graph_engine.plan import plan_run
    from graph_engine.registry import default_registry
    from nodes.common.models_dirs import tokenizer_beside
    from nodes.generate.model_manager import on_disk
    models = tmp_path / "models"
    for rel in ("checkpoints/sa.safetensors", "text_encoders/t5-base.safetensors", "text_encoders/t5-base/tokenizer.json",
                "text_encoders/qwen.safetensors", "text_encoders/qwen/tokenizer.json",
                "diffusion_models/ace.safetensors", "vae/ace_vae.safetensors"):
        (models / rel).parent.mkdir(parents=True, exist_ok=True)
        (models / rel).write_bytes(b"old")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf_file = tmp_path / "w.yaml"
    wf_file.write_text(textwrap.dedent("""\
        kinograph: 1
        nodes:
          sa: {type: generate.stable_audio, params: {checkpoint: sa.safetensors, text_encoder: t5-base.safetensors}}
          ace: {type: generate.ace_step, params: {diffusion_model: ace.safetensors, text_encoder: qwen.safetensors,
                                                  lm: "", vae: ace_vae.safetensors}}
          s1: {type: io.save_audio, inputs: {audio: sa.audio}, params: {path: a.flac}}
          s2: {type: io.save_audio, inputs: {audio: ace.audio}, params: {path: b.flac}}
        """))

    def keys():
        return plan_run(load_workflow(str(wf_file)), default_registry()).keys
    t5 = models / "text_encoders" / "t5-base.safetensors"
    before, loaded = keys(), on_disk(t5, *tokenizer_beside(t5))
    time.sleep(0.01)
    (models / "text_encoders" / "t5-base" / "tokenizer.json").write_bytes(b"a new tokenizer")
    after = keys()
    assert after["sa"] != before["sa"] and after["ace"] == before["ace"]
    assert on_disk(t5, *tokenizer_beside(t5)) != loaded        # the loaded model's key too
    (models / "text_encoders" / "qwen" / "tokenizer.json").write_bytes(b"a new tokenizer")
    assert keys()["ace"] != after["ace"]


def test_a_missing_file_goes_into_the_folder_of_its_kind_the_models_folder_has(tmp_path, monkeypatch, capsys):
    """A ComfyUI folder keeps Depth Anything 3 in geometry_estimation/ (one of the depth kind's folders): validate and
    the run said to put depth_anything_3_small there into depth/, a folder it does not have. Now the kind's folder the
    models folder holds is named; without one, the kind's own name as before."""
    from app.cli import main
    from nodes.common.models_dirs import find_model
    models = tmp_path / "models"
    (models / "geometry_estimation").mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    nodes = ["p: {type: generate.test_pattern}", "v: {type: load.vae, params: {name: wan_2.1_vae.safetensors}}",
             "d: {type: depth.da3, inputs: {video: p.video}, params: {model: depth_anything_3_small.safetensors}}"]
    (tmp_path / "w.yaml").write_text("kinograph: 1\nnodes:\n" + "".join(f"  {n}\n" for n in nodes))
    assert main(["validate", str(tmp_path / "w.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"put depth_anything_3_small.safetensors into {models / 'geometry_estimation'}," in err
    assert f"put wan_2.1_vae.safetensors into {models / 'vae'}," in err
    with pytest.raises(NodeError, match=re.escape(f"put depth_anything_3_small.safetensors into "
                                                  f"{models / 'geometry_estimation'},")):
        find_model("depth_anything_3_small.safetensors", "depth")
