"""What the attention cache of the ar_video sampler (autoregressive Wan, nodes/generate/causal_wan.py) saves.

    python bench/ar_video.py [--frames 8] [--size 16] [--steps 4] [--threads 1]

On a random Wan transformer (2 heads of 128, 4 blocks) it samples `frames` latent frames of size x size, framewise,
`steps` levels each, twice, and prints the seconds of each and the largest difference of their latents:
  cached:    ar_video as sample runs it, each block attending to the cached keys and values of the frames before;
  recompute: the same loop without a cache (the anchor): every model call runs the frames before again (clean, at
             timestep 0) with the block, under the block-causal mask, as a model without a cache must."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=16, help="latent height and width")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import WanTransformer3DModel
    from nodes.generate.causal_wan import kv_cached, sample_ar_video
    from nodes.generate.samplers import flow_sigmas
    torch.manual_seed(0)
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=128, in_channels=16,
                                  out_channels=16, text_dim=32, freq_dim=256, ffn_dim=512, num_layers=4,
                                  cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=64).eval()
    text = torch.randn(1, 8, 32)
    noise = torch.randn(1, 16, args.frames, args.size, args.size)
    sigmas = flow_sigmas(args.steps, 5.0)
    hw = (args.size // 2) ** 2

    def velocity(x, sigma):
        t = torch.full((1,), float(sigma) * 1000)
        return model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False)[0]

    def cached():
        with kv_cached(model) as cache:
            return sample_ar_video(lambda x, s, frames=None: x - s * velocity(x, s), noise, sigmas, cache=cache)

    done = {}

    def recompute_fn(x, s, frames):
        fs = frames[0]
        if float(s) == 0:               # the finished block: what the cache would hold, kept as clean frames
            done[fs] = x
            return x
        whole = torch.cat([done[f] for f in range(fs)] + [x], 2)
        frame = torch.arange(fs + 1).repeat_interleave(hw)
        mask = frame[None, :] <= frame[:, None]
        per_token = torch.cat([torch.zeros(fs * hw), torch.full((hw,), float(s) * 1000)])[None]
        own = [b.attn1.processor for b in model.blocks]
        for b, p in zip(model.blocks, own):
            b.attn1.processor = (lambda p: lambda attn, hs, ehs=None, am=None, rot=None: p(attn, hs, ehs, mask, rot))(p)
        try:
            v = model(hidden_states=whole, timestep=per_token, encoder_hidden_states=text, return_dict=False)[0]
        finally:
            for b, p in zip(model.blocks, own):
                b.attn1.processor = p
        return x - s * v[:, :, fs:]

    class NoCache:
        def at(self, start, write=False):
            return self

    def recompute():
        done.clear()
        return sample_ar_video(recompute_fn, noise, sigmas, cache=NoCache())

    with torch.inference_mode():
        t0 = time.perf_counter()
        a = cached()
        t1 = time.perf_counter()
        b = recompute()
        t2 = time.perf_counter()
    print(f"ar_video, {args.frames} latent frames of {args.size}x{args.size}, {args.steps} steps, framewise: "
          f"cached {t1 - t0:.2f} s, recompute (anchor) {t2 - t1:.2f} s, {(t2 - t1) / (t1 - t0):.2f}x; "
          f"largest latent difference {float((a - b).abs().max()):.1e}")


if __name__ == "__main__":
    main()
