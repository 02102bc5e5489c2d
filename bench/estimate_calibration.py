"""How close nodes/generate/estimate.py's seconds are to real denoiser passes on this CPU.

Builds random-weight denoisers shaped like the released ones but narrower (Wan 2.1's transformer at width 512,
SD 1.5's UNet at a quarter of its channels, SVD's at a quarter), times forward passes at video sizes, and prints
the estimate's FLOPs over the measured matmul speed against the time measured: the ratio measured/estimated
(at CPU_EFFICIENCY 1) is the efficiency the estimate takes. Nothing is downloaded.

    PYTHONPATH=$PWD .venv/bin/python bench/estimate_calibration.py"""
from __future__ import annotations

import time

import torch

from nodes.generate.estimate import CPU_EFFICIENCY, UNET, matmul_speed, pass_flops


def _timed(fn, repeats: int = 2) -> float:
    fn()                                    # warm-up: allocator, thread pool
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cases():
    from diffusers import UNet2DConditionModel, UNetSpatioTemporalConditionModel, WanTransformer3DModel
    torch.manual_seed(0)
    wan = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=128, in_channels=16,
                                out_channels=16, text_dim=512, freq_dim=256, ffn_dim=2048, num_layers=4,
                                cross_attn_norm=True, qk_norm="rms_norm_across_heads").eval()
    for frames, h, w in ((5, 30, 52), (9, 30, 52)):       # 17 and 33 frames at 416x240
        x, t, e = torch.randn(1, 16, frames, h, w), torch.tensor([500.0]), torch.randn(1, 64, 512)
        yield (f"Wan-shaped {frames} latent frames {w * 8}x{h * 8}", wan, "wan", (frames, h, w, 2),
               lambda m=wan, x=x, t=t, e=e: m(x, t, e, return_dict=False))
    sd = UNet2DConditionModel(block_out_channels=(96, 192, 384, 384), cross_attention_dim=192, norm_num_groups=32,
                              attention_head_dim=2).eval()
    x, t, e = torch.randn(8, 4, 32, 32), torch.tensor([500.0]), torch.randn(8, 77, 192)
    yield "SD1.5-shaped UNet, 8 frames 256x256", sd, "sd", (8, 32, 32, 1), \
        lambda: sd(x, t, e, return_dict=False)
    svd = UNetSpatioTemporalConditionModel(block_out_channels=(96, 192, 384, 384), cross_attention_dim=256,
                                           num_attention_heads=(2, 4, 8, 8),
                                           projection_class_embeddings_input_dim=768).eval()
    xs, es, ids = torch.randn(1, 6, 8, 32, 48), torch.randn(1, 1, 256), torch.randn(1, 3)
    yield "SVD-shaped UNet, 6 frames 384x256", svd, "svd", (6, 32, 48, 1), \
        lambda: svd(xs, t, es, ids, return_dict=False)


def main() -> None:
    speed = matmul_speed("cpu")
    print(f"matmul {speed / 1e9:.1f} GFLOP/s; CPU_EFFICIENCY (transformer, UNet) {CPU_EFFICIENCY}")
    with torch.no_grad():
        for name, model, fam, (f, h, w, patch), run in cases():
            shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            flops, _ = pass_flops(shapes, fam, f, h, w, patch)
            measured = _timed(run)
            estimated = flops / (speed * CPU_EFFICIENCY[fam in UNET])
            print(f"{name}: {flops / 1e9:.1f} GFLOP; measured {measured:.2f} s, estimated {estimated:.2f} s "
                  f"(estimate/measured {estimated / measured:.2f}; efficiency reached {flops / measured / speed:.2f})")


if __name__ == "__main__":
    main()
