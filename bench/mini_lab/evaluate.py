"""Prompt adherence and temporal consistency of kinograph-mini on the 40 held-out captions.

    python -m bench.mini_lab.evaluate [--model resources/models/kinograph-mini] [--steps 20] [--guidance 2.5]
                                      [--consensus 0.5]

Generates every held-out caption with `sample_flow_euler`, reads the clips back with the classical
detector, and prints the share of clips whose colour, shape and motion direction match the caption
(each alone and all three), the temporal checks (object area within 10% of its clip median in every
frame, measured by the caption's named colour (colour_area.py), which shares nothing with the subject
consensus's definition of a subject, and for reference by the detector, which does; the same named
colour in every frame) and the warping error: for the model alone, for the
model with guide.subject_consensus at the example graphs' strength (what they draw), and for
ground-truth shapes-world clips of the same captions as an anchor.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.mini_lab.colour_area import area_variation, colour_areas
from bench.mini_lab.detector import detect
from nodes.mini.generate import DEFAULT_CONSENSUS, DEFAULT_GUIDANCE, DEFAULT_STEPS, generate
from nodes.mini.shapes_world import load_heldout, parse_caption, render

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "kinograph-mini"
MAX_AREA_VARIATION = 0.10


def judge(clip: np.ndarray, caption: str) -> dict:
    """Detector verdicts for one single-object clip against its caption."""
    obj = parse_caption(caption).objects[0]
    d = detect(clip)
    direction = obj.motion.split(" ", 1)[1] if obj.motion.startswith("moving") else None
    row = {"caption": caption, "colour": d.colour, "shape": d.shape, "direction": d.direction,
           "colour_ok": d.colour == obj.colour, "shape_ok": d.shape == obj.shape,
           "direction_ok": d.direction == direction,
           "area_variation": round(area_variation(colour_areas(clip, obj.colour)), 4),
           "detector_area_variation": round(d.area_variation(), 4), "colour_stable": d.colour_stable()}
    row["all_ok"] = row["colour_ok"] and row["shape_ok"] and row["direction_ok"]
    sized = obj.motion in ("growing", "shrinking")
    row["area_ok"] = sized or row["area_variation"] <= MAX_AREA_VARIATION
    row["detector_area_ok"] = sized or row["detector_area_variation"] <= MAX_AREA_VARIATION
    return row


def clip_warp_error(clip: np.ndarray) -> float:
    from nodes.metrics.measures import warp_error

    return float(np.mean([warp_error(a, b, a, b) for a, b in zip(clip[:-1], clip[1:])]))


def summarise(rows: list[dict], clips) -> dict:
    share = {k: float(np.mean([r[k] for r in rows])) for k in
             ("colour_ok", "shape_ok", "direction_ok", "all_ok", "area_ok", "detector_area_ok", "colour_stable")}
    share["warp_error"] = float(np.mean([clip_warp_error(c) for c in clips]))
    return share


def evaluate(model, text_encoder, captions=None, seed: int = 0, steps: int = DEFAULT_STEPS,
             guidance: float = DEFAULT_GUIDANCE, batch: int = 20,
             consensus: float = 0.0) -> tuple[dict, list[dict], np.ndarray]:
    """(summary, per-caption rows, clips uint8 [N,T,H,W,3]) for generated clips of `captions`."""
    captions = captions or load_heldout()
    clips = np.concatenate([generate(model, text_encoder, captions[i:i + batch], seed=seed + i, steps=steps,
                                     guidance=guidance, consensus=consensus)
                            for i in range(0, len(captions), batch)])
    rows = [judge(c, cap) for c, cap in zip(clips, captions)]
    return summarise(rows, clips), rows, clips


def ground_truth(captions, seed: int = 0) -> tuple[dict, list[dict]]:
    clips = [render(parse_caption(c), seed + i) for i, c in enumerate(captions)]
    rows = [judge(c, cap) for c, cap in zip(clips, captions)]
    return summarise(rows, clips), rows


def contact_sheet(clips: np.ndarray, every: int = 3) -> np.ndarray:
    """One row per clip of every `every`-th frame, uint8 RGB."""
    return np.concatenate([np.concatenate(list(c[::every]), axis=1) for c in clips], axis=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--consensus", type=float, default=DEFAULT_CONSENSUS,
                    help="guide.subject_consensus strength of the second column")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sheet", type=Path, help="also write a PNG contact sheet of the clips with consensus")
    ap.add_argument("--json", action="store_true", help="print per-caption rows (with consensus) as JSON too")
    args = ap.parse_args(argv)
    import torch

    from nodes.mini.model import load_mini

    torch.set_num_threads(args.threads)
    model, text_encoder = load_mini(args.model)
    captions = load_heldout()
    alone, _, _ = evaluate(model, text_encoder, captions, args.seed, args.steps, args.guidance)
    summary, rows, clips = evaluate(model, text_encoder, captions, args.seed, args.steps, args.guidance,
                                    consensus=args.consensus)
    anchor, _ = ground_truth(captions, args.seed)
    print(f"{len(captions)} held-out captions, {args.steps} steps, guidance {args.guidance}, seed {args.seed}")
    with_label = f"consensus {args.consensus:g}"
    print(f"{'':24}{'model alone':>12}{with_label:>16}{'ground truth':>14}")
    for key, label in (("colour_ok", "colour"), ("shape_ok", "shape"), ("direction_ok", "direction"),
                       ("all_ok", "colour+shape+direction"), ("area_ok", "area within 10%"),
                       ("detector_area_ok", "  by the detector's area"),
                       ("colour_stable", "colour stable"), ("warp_error", "warp error (MSE)")):
        fmt = "{:>12.4f}{:>16.4f}{:>14.4f}" if key == "warp_error" else "{:>12.1%}{:>16.1%}{:>14.1%}"
        print(f"{label:24}" + fmt.format(alone[key], summary[key], anchor[key]))
    for r in rows:
        if not (r["all_ok"] and r["area_ok"] and r["colour_stable"]):
            print(f"  miss with {with_label}: {r['caption']!r} -> {r['colour']} {r['shape']} {r['direction']}, "
                  f"area variation {r['area_variation']:.1%}, colour stable {r['colour_stable']}")
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.sheet:
        import cv2

        cv2.imwrite(str(args.sheet), contact_sheet(clips)[..., ::-1])


if __name__ == "__main__":
    main()
