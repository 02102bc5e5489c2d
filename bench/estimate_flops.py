"""nodes/generate/estimate.py's FLOPs per denoiser pass, read from weight shapes, against torch's FLOP counter on the
released models' configs (Wan 2.1 1.3B, SVD, SD 1.5 in both key layouts), the Wan 2.1 VAE's decode at 81 frames
(nodes/generate/vae_work.py) and UMT5-XXL's pass over a 512-token prompt (nodes/generate/encoder_work.py), built without memory (meta / fake
tensors). Attention runs through diffusers' plain AttnProcessor: the counter misses fused SDPA under fake tensors.

    PYTHONPATH=$PWD .venv/bin/python bench/estimate_flops.py"""
from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from nodes.generate.estimate import pass_flops


def _counted(model, *args, plain: bool = True) -> float:
    from diffusers.models.attention_processor import AttnProcessor
    if plain:
        model.set_attn_processor(AttnProcessor())
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(*args, return_dict=False)
    return fc.get_total_flops()


def _shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def main() -> None:
    from diffusers import AutoencoderKLWan, UNet2DConditionModel, UNetSpatioTemporalConditionModel, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel
    from nodes.generate.encoder_work import t5_encoder_flops
    from nodes.generate.vae_work import wan_vae_decode_flops
    from tests.tiny_models import sd_ldm_unet
    with torch.device("meta"):        # Wan's own attention processor: its SDPA is counted on the meta device
        wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128,
                                    in_channels=16, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960,
                                    num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads")
        real = _counted(wan, torch.empty(1, 16, 9, 60, 104), torch.empty(1), torch.empty(1, 512, 4096), plain=False)
    est = pass_flops(_shapes(wan), "wan", 9, 60, 104, 2)[0]
    print(f"Wan 2.1 1.3B, 33 frames 832x480: counted {real:.4g}, estimated {est:.4g} ({est / real:.3f})")
    with torch.device("meta"):
        vae = AutoencoderKLWan(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                               temperal_downsample=[False, True, True])
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            vae.decode(torch.empty(1, 16, 21, 60, 104))
    est = wan_vae_decode_flops(_shapes(vae), 21, 60, 104)
    real = fc.get_total_flops()
    print(f"Wan 2.1 VAE decode, 81 frames 832x480: counted {real:.4g}, estimated {est:.4g} ({est / real:.3f})")
    with FakeTensorMode(allow_non_fake_inputs=True):        # T5's relative positions call .item(): not on meta
        t5 = UMT5EncoderModel(UMT5Config(vocab_size=256384, d_model=4096, d_ff=10240, d_kv=64, num_layers=24,
                                         num_heads=64, feed_forward_proj="gated-gelu"))
        ids = torch.ones(1, 512, dtype=torch.long)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            t5(input_ids=ids, attention_mask=torch.ones_like(ids))
        real, est = fc.get_total_flops(), t5_encoder_flops(_shapes(t5), 512)
        print(f"UMT5-XXL, a 512-token prompt: counted {real:.4g}, estimated {est:.4g} ({est / real:.3f})")
    with FakeTensorMode(allow_non_fake_inputs=True):        # SVD's own code makes CPU tensors: fake, not meta
        svd = UNetSpatioTemporalConditionModel()
        real = _counted(svd, torch.empty(1, 14, 8, 72, 128), torch.ones(1), torch.empty(1, 1, 1024), torch.ones(1, 3))
        est = pass_flops(_shapes(svd), "svd", 14, 72, 128, 1)[0]
        print(f"SVD, 14 frames 1024x576: counted {real:.4g}, estimated {est:.4g} ({est / real:.3f})")
        sd = UNet2DConditionModel(cross_attention_dim=768)
        real = _counted(sd, torch.empty(1, 4, 64, 64), torch.ones(1), torch.empty(1, 77, 768))
        for layout, shapes in (("diffusers", _shapes(sd)),
                               ("ldm", {k: tuple(v.shape) for k, v in
                                        sd_ldm_unet(dict(sd.state_dict()), 4, [True, True, True, False]).items()})):
            est = pass_flops(shapes, "sd", 1, 64, 64, 1)[0]
            print(f"SD 1.5, 512x512, {layout} keys: counted {real:.4g}, estimated {est:.4g} ({est / real:.3f})")


if __name__ == "__main__":
    main()
