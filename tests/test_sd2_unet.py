"""A plain SD 2.x UNet file (LDM key names, as ComfyUI's diffusion_models/ holds them) loads with SD 2's attention:
heads of 64 channels (diffusers' SD 2 config: attention_head_dim [5, 10, 20, 20] at 320 channels), not SD 1.5's 8 heads
a level. Checked against diffusers' UNet2DConditionModel built with SD 2's config on the same tiny random weights."""
from __future__ import annotations

import pytest


def _sd2_unet():
    import torch
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    # SD 2's config shrunk: 64 / 128 channels with heads of 64 (1 and 2 heads), a 1024-wide prompt, linear projections
    unet = UNet2DConditionModel(block_out_channels=(64, 128), layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=1024,
                                attention_head_dim=(1, 2), use_linear_projection=True, norm_num_groups=32)
    return unet.eval()


@pytest.mark.parametrize("name", ["v2-1_512-ema-pruned_unet.safetensors", "v2-1_768-ema-pruned_unet.safetensors"])
def test_sd2_unet_file_builds_with_heads_of_64(tmp_path, name):
    import torch
    from safetensors.torch import save_file
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import will_load
    from nodes.generate.split import _module
    from tiny_models import sd_ldm_unet
    ref = _sd2_unet()
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in sd_ldm_unet(ref.state_dict(), 2, [True, True]).items()}, str(path))
    det = detect_file(path)
    assert (det.role, det.family, det.variant) == ("diffusion_model", "sd", "sd2")
    loads, how = will_load(det)         # what `kinograph info` says of the file: it loaded, so it says so
    assert loads and how.startswith("load.diffusion_model"), how
    net = _module(path, det, torch.float32, "cpu").eval()
    assert list(net.config.attention_head_dim) == [1, 2]
    gen = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 5, 1024, generator=gen)
    with torch.no_grad():
        want = ref(x, torch.tensor([500, 20]), encoder_hidden_states=ctx).sample
        got = net(x, torch.tensor([500, 20]), encoder_hidden_states=ctx).sample
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sd2_config_at_full_size_is_diffusers_sd2():
    """At SD 2's own widths the heads are diffusers' stabilityai/stable-diffusion-2-1 unet config's."""
    import torch
    from nodes.generate.converters.sd import _unet_config
    chans = [320, 640, 1280, 1280]
    state = {"input_blocks.0.0.weight": torch.empty(320, 4, 3, 3), "out.2.weight": torch.empty(4, 320, 3, 3)}
    for i, c in enumerate(chans):
        state[f"input_blocks.{3 * i + 1}.0.out_layers.3.weight"] = torch.empty(c, c, 3, 3)
        if i < 3:
            state[f"input_blocks.{3 * i + 1}.1.proj_in.weight"] = torch.empty(c, c)
            state[f"input_blocks.{3 * i + 1}.1.transformer_blocks.0.attn2.to_k.weight"] = torch.empty(c, 1024)
    cfg = _unet_config(state)
    assert cfg["attention_head_dim"] == [5, 10, 20, 20] and cfg["cross_attention_dim"] == 1024
    assert cfg["use_linear_projection"] and cfg["upcast_attention"]
    # SD 1.5 keeps its 8 heads a level
    for i, c in enumerate(chans[:3]):
        state[f"input_blocks.{3 * i + 1}.1.transformer_blocks.0.attn2.to_k.weight"] = torch.empty(c, 768)
    assert _unet_config(state)["attention_head_dim"] == 8
