"""Train kinograph-mini from scratch on the CPU with shapes-world clips generated on the fly.

    python -m nodes.mini.train --out resources/models/kinograph-mini [--minutes 85] [--resume]

Rectified-flow loss ||model(x_t, t) - (noise - x0)||^2 with logit-normal t (mean 0.8, std 0.8, as in
Li & He 2025 for clean-clip-predicting models), 10% caption dropout (for classifier-free guidance),
AdamW with warm-up and cosine decay over whichever budget ends first (--steps or --minutes), an
exponential moving average of the weights (exported), bf16 autocast on CPUs that have it.
Checkpoints go to OUT/.checkpoints/ (git-ignored) every few minutes and on Ctrl-C or SIGTERM;
--resume continues from the last one, including the elapsed time, so the schedule is unchanged by a
restart with the same budget.
The held-out captions (heldout.txt) are never drawn.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch

from nodes.mini.model import KinographMini, from_uint8
from nodes.mini.shapes_world import load_heldout, training_example
from nodes.mini.text import MiniTextEncoder

CAPTION_DROPOUT = 0.1


def make_batch(first_seed: int, batch: int, exclude: frozenset[str], rng: np.random.Generator):
    clips, captions = zip(*(training_example(first_seed + i, exclude) for i in range(batch)))
    captions = ["" if rng.random() < CAPTION_DROPOUT else c for c in captions]
    return from_uint8(np.stack(clips)), captions


def flow_loss(model, text_encoder, x0, captions, generator=None):
    """Mean squared error of the predicted velocity at logit-normal times leaning to high noise,
    where the layout and motion of a clip are decided."""
    b = x0.shape[0]
    t = torch.sigmoid(0.8 + 0.8 * torch.randn(b, generator=generator))
    noise = torch.randn(x0.shape, generator=generator)
    tt = t[:, None, None, None, None]
    emb, mask = text_encoder.encode(captions)
    v = model((1 - tt) * x0 + tt * noise, t, emb, mask)
    return (v.float() - (noise - x0)).pow(2).mean()


class Trainer:
    """Holds the networks, optimiser and EMA; `step()` does one update, `state()`/`load()` checkpoint."""

    def __init__(self, channels=(48, 96, 160), text_dim=128, lr=5e-4, batch=12, steps=6000,
                 minutes=0.0, ema=0.998, bf16=True, seed=0, warmup=200):
        torch.manual_seed(seed)
        self.model = KinographMini(channels=tuple(channels), text_dim=text_dim)
        self.text_encoder = MiniTextEncoder(dim=text_dim)
        self.params = list(self.model.parameters()) + list(self.text_encoder.parameters())
        self.ema = [p.detach().clone() for p in self.params]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
        self.lr, self.batch, self.steps, self.minutes, self.ema_decay = lr, batch, steps, minutes, ema
        self.bf16, self.seed, self.warmup = bf16, seed, warmup
        self.exclude = frozenset(load_heldout())
        self.step_count, self.elapsed, self.losses = 0, 0.0, []
        self.generator = torch.Generator().manual_seed(seed)

    def progress(self) -> float:
        by_steps = self.step_count / self.steps
        by_time = self.elapsed / (self.minutes * 60) if self.minutes > 0 else 0.0
        return min(1.0, max(by_steps, by_time))

    def learning_rate(self) -> float:
        warm = min(1.0, (self.step_count + 1) / self.warmup)
        return self.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * self.progress())))

    def step(self) -> float:
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.step_count])
        x0, captions = make_batch(self.seed * 10**9 + self.step_count * self.batch, self.batch, self.exclude, rng)
        for g in self.opt.param_groups:
            g["lr"] = self.learning_rate()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = flow_loss(self.model, self.text_encoder, x0, captions, self.generator)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        decay = min(self.ema_decay, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.params], 1 - decay)
        self.step_count += 1
        self.elapsed += time.perf_counter() - start
        self.losses.append(float(loss.detach()))
        return self.losses[-1]

    def done(self) -> bool:
        return self.progress() >= 1.0

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "text_encoder": self.text_encoder.state_dict(),
                "ema": self.ema, "opt": self.opt.state_dict(), "step": self.step_count,
                "elapsed": self.elapsed, "losses": self.losses, "generator": self.generator.get_state()}

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.text_encoder.load_state_dict(state["text_encoder"])
        for e, s in zip(self.ema, state["ema"]):
            e.copy_(s)
        self.opt.load_state_dict(state["opt"])
        self.step_count, self.elapsed, self.losses = state["step"], state["elapsed"], list(state["losses"])
        self.generator.set_state(state["generator"])

    def export(self, out: Path, metrics: dict) -> None:
        """Save the EMA weights as a diffusers-style folder: transformer/, text_encoder/, model_index.json."""
        model = KinographMini.from_config(self.model.config)
        text_encoder = MiniTextEncoder.from_config(self.text_encoder.config)
        with torch.no_grad():
            for p, e in zip(list(model.parameters()) + list(text_encoder.parameters()), self.ema):
                p.copy_(e)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out / "transformer", safe_serialization=True)
        text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
        import diffusers
        (out / "model_index.json").write_text(json.dumps({
            "_class_name": "KinographMiniPipeline", "_diffusers_version": diffusers.__version__,
            "family": "mini", "transformer": ["nodes.mini.model", "KinographMini"],
            "text_encoder": ["nodes.mini.text", "MiniTextEncoder"]}, indent=2) + "\n")
        (out / "training.json").write_text(json.dumps(metrics, indent=2) + "\n")


def save_checkpoint(trainer: Trainer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "last.pt.tmp"
    torch.save(trainer.state(), tmp)
    tmp.replace(folder / "last.pt")


def metrics_of(trainer: Trainer, args) -> dict:
    tail = trainer.losses[-200:]
    return {"steps": trainer.step_count, "batch": trainer.batch, "clips_seen": trainer.step_count * trainer.batch,
            "train_seconds": round(trainer.elapsed, 1), "threads": args.threads,
            "final_loss_mean_last_200_steps": round(float(np.mean(tail)), 5) if tail else None,
            "channels": list(trainer.model.config.channels), "bf16": trainer.bf16, "lr": trainer.lr,
            "parameters": sum(p.numel() for p in trainer.params)}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def train_loop(trainer: Trainer, steps: int, ckpt_dir: Path, checkpoint_minutes: float) -> None:
    from tqdm import tqdm

    last_save = time.monotonic()
    with tqdm(total=steps, initial=trainer.step_count, unit="step", mininterval=5.0) as bar:
        while not trainer.done():
            trainer.step()
            bar.update(1)
            if trainer.step_count % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(trainer.losses[-100:]):.4f}", lr=f"{trainer.learning_rate():.1e}",
                                min=f"{trainer.elapsed / 60:.1f}", refresh=False)
            if time.monotonic() - last_save > checkpoint_minutes * 60:
                save_checkpoint(trainer, ckpt_dir)
                last_save = time.monotonic()
    save_checkpoint(trainer, ckpt_dir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="model folder to export into")
    ap.add_argument("--minutes", type=float, default=85.0, help="training-time budget (0 = steps only)")
    ap.add_argument("--steps", type=int, default=20000, help="step budget")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--channels", type=int, nargs=3, default=(48, 96, 160))
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in float32")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/.checkpoints/last.pt")
    ap.add_argument("--export-only", action="store_true", help="export the last checkpoint's EMA weights and stop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    ckpt_dir = args.out / ".checkpoints"
    trainer = Trainer(args.channels, lr=args.lr, batch=args.batch, steps=args.steps, minutes=args.minutes,
                      bf16=args.bf16, seed=args.seed)
    if args.resume or args.export_only:
        trainer.load(torch.load(ckpt_dir / "last.pt", weights_only=True))
    if not args.export_only:
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            train_loop(trainer, args.steps, ckpt_dir, args.checkpoint_minutes)
        except KeyboardInterrupt:
            save_checkpoint(trainer, ckpt_dir)
            print(f"stopped at step {trainer.step_count}; continue with --resume")
            return
    trainer.export(args.out, metrics_of(trainer, args))
    print(json.dumps(metrics_of(trainer, args)))


if __name__ == "__main__":
    main()
