"""CogVideoX transformers in ComfyUI's own names (comfy/ldm/cogvideo/model.py, the layout of Comfy-Org's VOID
void_pass1 / void_pass2.safetensors) load into diffusers' CogVideoXTransformer3DModel: a tiny random model saved under
ComfyUI's names gives what the same weights give in diffusers' layout. ComfyUI's names are written out here from its
module (CogVideoXBlock's q, k, v, norm_q, norm_k, attn_out, norm1, norm2, ff_proj, ff_out; the model's flattened
time_embedding_linear_N / ofs_embedding_linear_N), not taken from Kinograph's converter."""
import pytest
import torch

# diffusers' name inside a block -> ComfyUI's (CogVideoXBlock's attributes)
COMFY_BLOCK = {"attn1.to_q.": "q.", "attn1.to_k.": "k.", "attn1.to_v.": "v.", "attn1.norm_q.": "norm_q.",
               "attn1.norm_k.": "norm_k.", "attn1.to_out.0.": "attn_out.", "ff.net.0.proj.": "ff_proj.",
               "ff.net.2.": "ff_out.", "norm1.": "norm1.", "norm2.": "norm2."}
# ComfyUI's CogVideoXTransformer3DModel attributes outside its blocks
COMFY_TOP = {"time_embedding.linear_": "time_embedding_linear_", "ofs_embedding.linear_": "ofs_embedding_linear_",
             "patch_embed.": "patch_embed.", "norm_final.": "norm_final.", "norm_out.": "norm_out.",
             "proj_out.": "proj_out."}


def comfy_name(name: str) -> str:
    if name.startswith("transformer_blocks."):
        _, index, rest = name.split(".", 2)
        old = next(o for o in COMFY_BLOCK if rest.startswith(o))
        return f"blocks.{index}.{COMFY_BLOCK[old]}{rest[len(old):]}"
    old = next(o for o in COMFY_TOP if name.startswith(o))
    return COMFY_TOP[old] + name[len(old):]


# (V1.5 inpainting as VOID: two-frame Linear patches, 48 channels, rotary) and (V1.0's Conv2d patches, with OFS)
CASES = {
    "void": dict(in_channels=48, patch_size_t=2, use_rotary_positional_embeddings=True, frames=4),
    "v1": dict(in_channels=16, patch_size_t=None, ofs_embed_dim=8, use_rotary_positional_embeddings=True, frames=3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_comfyui_names_load_as_diffusers(case, tmp_path):
    from diffusers import CogVideoXTransformer3DModel
    from safetensors.torch import save_file

    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    opts = dict(CASES[case])
    frames = opts.pop("frames")
    torch.manual_seed(0)
    ref = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, out_channels=16, time_embed_dim=8,
                                      text_embed_dim=12, num_layers=2, sample_width=8, sample_height=8, patch_size=2,
                                      max_text_seq_length=5, **opts).eval()
    with torch.no_grad():                  # diffusers zero-inits nothing here, but make every tensor count
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    # Comfy-Org's files carry ComfyUI's checkpoint prefix
    state = {"model.diffusion_model." + comfy_name(k): v.contiguous() for k, v in ref.state_dict().items()}
    assert "model.diffusion_model.blocks.1.attn_out.weight" in state
    path = tmp_path / "void_pass1.safetensors"
    save_file(state, str(path))

    det = detect_file(path)
    assert (det.family, det.role, det.layout) == ("cogvideox", "diffusion_model", "comfyui")
    assert det.variant.startswith("inpaint" if case == "void" else "t2v")
    got = converters.build(det, load_weights(path, torch.float32), torch.float32, str(path)).eval()
    assert got.config.patch_size_t == ref.config.patch_size_t and got.config.in_channels == ref.config.in_channels

    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, frames, ref.config.in_channels, 8, 8, generator=g)
    text = torch.randn(1, 5, 12, generator=g)
    t = torch.tensor([500])
    extra = {"ofs": torch.tensor([2.0])} if case == "v1" else {}
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    rotary = get_3d_rotary_pos_embed(16, None, (4, 4), frames // (ref.config.patch_size_t or 1), grid_type="slice",
                                     max_size=(4, 4))
    with torch.no_grad():
        want = ref(x, text, t, image_rotary_emb=rotary, return_dict=False, **extra)[0]
        out = got(x, text, t, image_rotary_emb=rotary, return_dict=False, **extra)[0]
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-4)
    assert want.abs().mean() > 1e-3       # the output is not trivially zero


def test_describe_says_it_loads(tmp_path):
    from diffusers import CogVideoXTransformer3DModel
    from safetensors.torch import save_file

    from nodes.generate.model_manager import describe_model
    ref = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=48, out_channels=16,
                                      time_embed_dim=8, text_embed_dim=12, num_layers=1, patch_size_t=2,
                                      use_rotary_positional_embeddings=True)
    path = tmp_path / "void_pass2.safetensors"
    save_file({comfy_name(k): v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    found = describe_model(path)
    assert found["family"] == "cogvideox" and found["loads"] == "yes", found


def test_sat_layout_is_refused_by_name():
    from nodes.generate.detect import detect_keys
    from nodes.generate.model_manager import will_load
    found = detect_keys({"model.diffusion_model.mixins.patch_embed.proj.weight": (1920, 16, 2, 2)})
    ok, why = will_load(found)
    assert not ok and "SAT layout" in why


def test_comfyuis_vae_file_decodes_as_diffusers(tmp_path):
    """Comfy-Org's cogvideox_vae.safetensors: comfy/ldm/cogvideo/vae.py's AutoencoderKLCogVideoX names its modules as
    diffusers' does (encoder / decoder, down_blocks.N.resnets.M.conv1.conv, norm1.norm_layer, conv_y.conv, conv_b.conv,
    downsamplers.0.conv, mid_block.resnets.0/1, norm_out, conv_out.conv), so the file is diffusers' state dict; it
    loads and decodes (and encodes) what the diffusers VAE does."""
    from diffusers import AutoencoderKLCogVideoX
    from safetensors.torch import save_file

    from nodes.generate import converters
    from nodes.generate.detect import detect_file
    from nodes.generate.weights import load_weights
    torch.manual_seed(0)
    ref = AutoencoderKLCogVideoX(down_block_types=("CogVideoXDownBlock3D",) * 3,
                                 up_block_types=("CogVideoXUpBlock3D",) * 3, block_out_channels=(32, 32, 64),
                                 latent_channels=4, layers_per_block=1, norm_num_groups=32).eval()
    comfy_names = ["encoder.conv_in.conv.weight", "encoder.down_blocks.0.downsamplers.0.conv.weight",
                   "encoder.down_blocks.2.resnets.0.conv_shortcut.weight", "encoder.mid_block.resnets.1.conv2.conv.bias",
                   "encoder.norm_out.weight", "decoder.mid_block.resnets.0.norm1.norm_layer.weight",
                   "decoder.up_blocks.0.resnets.1.norm2.conv_b.conv.weight", "decoder.up_blocks.1.upsamplers.0.conv.weight",
                   "decoder.norm_out.conv_y.conv.weight", "decoder.conv_out.conv.weight"]
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    assert all(n in state for n in comfy_names)
    path = tmp_path / "cogvideox_vae.safetensors"
    save_file(state, str(path))
    det = detect_file(path)
    assert (det.family, det.role) == ("cogvideox", "vae")
    got = converters.build(det, load_weights(path, torch.float32), torch.float32, str(path)).eval()
    assert list(got.config.block_out_channels) == [32, 32, 64] and got.config.latent_channels == 4
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 4, 2, 4, 4, generator=g)
    video = torch.rand(1, 3, 5, 16, 16, generator=g) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(got.decode(z).sample, ref.decode(z).sample, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(got.encode(video).latent_dist.mode(), ref.encode(video).latent_dist.mode(),
                                   atol=1e-5, rtol=1e-4)
