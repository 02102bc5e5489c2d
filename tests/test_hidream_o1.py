"""HiDream-O1-Image: ComfyUI's all-in-one checkpoint (bf16 and fp8_scaled) is recognised and loads, and Kinograph's
model predicts what ComfyUI's HiDreamO1Transformer predicts, with and without a reference picture; the seam smoothing
blends as ComfyUI's HiDreamO1PatchSeamSmoothing does; both image_hidream_o1 templates import with every node mapped
and run on the tiny files.

The references share no code with Kinograph's: ComfyUI's comfy/ldm/hidream_o1 (model.py's _forward, attention.py's
two-pass attention, utils.py's get_rope_index_fix_point and calculate_dimensions, conditioning.py's build_extra_conds
and prepare_ref_images' patch path), its tokenizer's chat turn (comfy/text_encoders/hidream_o1.py) and
comfy_extras/nodes_hidream_o1.py's smoothing wrapper, written out below; the decoder's and vision tower's layers are
transformers' Qwen3-VL modules holding the file's values, its picture processor Qwen2VLImageProcessor."""
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATES = ROOT / "tests" / "data" / "comfyui" / "templates"

IMAGE_TOKEN_ID, VISION_START_ID, VISION_END_ID, TMS_TOKEN_ID = 151655, 151652, 151653, 151673


@pytest.fixture(scope="module")
def o1(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_hidream_o1 import build_hidream_o1
    yield from models_dir(tmp_path_factory, build_hidream_o1, "hidream_o1")


# -- ComfyUI's code, written out --------------------------------------------------------------------------------
def comfy_tokens(tokenizer, text):
    """HiDreamO1Tokenizer.tokenize_with_weights' ids: the chat turn ending in <|boi|><|tms|>."""
    ids = [t for t in tokenizer(text, add_special_tokens=False)["input_ids"] if t != 151643]
    return [151644, 872, 198] + ids + [151645, 198, 151644, 77091, 198, 151669, 151673]


def get_rope_index_fix_point(spatial_merge_size, image_token_id, vision_start_token_id, input_ids, image_grid_thw,
                             skip_vision_start_token, fix_point=4096):
    position_ids = torch.ones(3, input_ids.shape[0], input_ids.shape[1], dtype=input_ids.dtype)
    image_index = 0
    for i, input_ids_b in enumerate(input_ids):
        fp = fix_point
        vision_start_indices = torch.argwhere(input_ids_b == vision_start_token_id).squeeze(1)
        vision_tokens = input_ids_b[vision_start_indices + 1]
        image_nums = (vision_tokens == image_token_id).sum()
        input_tokens = input_ids_b.tolist()
        llm_pos_ids_list = []
        st = 0
        remain_images = image_nums
        for _ in range(image_nums):
            if image_token_id in input_tokens and remain_images > 0:
                ed = input_tokens.index(image_token_id, st)
            else:
                ed = len(input_tokens) + 1
            t, h, w = image_grid_thw[image_index]
            image_index += 1
            remain_images -= 1
            llm_grid_t, llm_grid_h, llm_grid_w = t.item(), h.item() // spatial_merge_size, w.item() // spatial_merge_size
            text_len = ed - st
            text_len -= skip_vision_start_token[image_index - 1]
            text_len = max(0, text_len)
            st_idx = llm_pos_ids_list[-1].max() + 1 if len(llm_pos_ids_list) > 0 else 0
            llm_pos_ids_list.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
            t_index = torch.arange(llm_grid_t).view(-1, 1).expand(-1, llm_grid_h * llm_grid_w).flatten()
            h_index = torch.arange(llm_grid_h).view(1, -1, 1).expand(llm_grid_t, -1, llm_grid_w).flatten()
            w_index = torch.arange(llm_grid_w).view(1, 1, -1).expand(llm_grid_t, llm_grid_h, -1).flatten()
            if skip_vision_start_token[image_index - 1]:
                if fp > 0:
                    fp = fp - st_idx
                llm_pos_ids_list.append(torch.stack([t_index, h_index, w_index]) + fp + st_idx)
                fp = 0
            else:
                llm_pos_ids_list.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
            st = ed + llm_grid_t * llm_grid_h * llm_grid_w
        if st < len(input_tokens):
            st_idx = llm_pos_ids_list[-1].max() + 1 if len(llm_pos_ids_list) > 0 else 0
            text_len = len(input_tokens) - st
            llm_pos_ids_list.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
        llm_positions = torch.cat(llm_pos_ids_list, dim=1).reshape(3, -1)
        position_ids[..., i, :] = llm_positions
    return position_ids


def calculate_dimensions(max_size, ratio):
    width = math.sqrt(max_size * max_size * ratio)
    height = width / ratio
    return int(width / 32) * 32, int(height / 32) * 32


def comfy_refs(picture):
    """prepare_ref_images for one reference already at its fitted size ([H, W, 3] in 0..1): the 32-patch path, and
    the ViT path (lanczos to calculate_dimensions(384, ratio), Qwen3-VL's processor at 16-pixel patches merged 2x2)."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessor
    t = torch.from_numpy(picture).permute(2, 0, 1)
    t_norm = (t - 0.5) / 0.5
    h_p, w_p = t_norm.shape[-2] // 32, t_norm.shape[-1] // 32
    patches = t_norm.reshape(3, h_p, 32, w_p, 32).permute(1, 3, 0, 2, 4).reshape(h_p * w_p, 3 * 32 * 32)
    cond_w, cond_h = calculate_dimensions(384, t.shape[2] / t.shape[1])
    seen = Image.fromarray((picture * 255).round().astype(np.uint8)).resize((max(cond_w, 32), max(cond_h, 32)),
                                                                           Image.LANCZOS)
    proc = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                                 image_std=[0.5] * 3, do_resize=False)
    out = proc(images=[seen], return_tensors="pt")
    grid = out["image_grid_thw"][0]
    return {"ref_patches": patches[None], "ref_pixel_values": out["pixel_values"], "ref_image_grid_thw": grid[None],
            "per_ref_vit_tokens": [int(grid[1] // 2) * int(grid[2] // 2)], "per_ref_patch_grids": [(h_p, w_p)]}


def comfy_many(pictures):
    """prepare_ref_images' result for several references, each at its fitted size: the patch streams side by side,
    the ViT inputs, grids and token counts in order."""
    parts = [comfy_refs(p) for p in pictures]
    return {"ref_patches": torch.cat([p["ref_patches"] for p in parts], 1),
            "ref_pixel_values": torch.cat([p["ref_pixel_values"] for p in parts]),
            "ref_image_grid_thw": torch.cat([p["ref_image_grid_thw"] for p in parts]),
            "per_ref_vit_tokens": sum((p["per_ref_vit_tokens"] for p in parts), []),
            "per_ref_patch_grids": sum((p["per_ref_patch_grids"] for p in parts), [])}


def build_extra_conds(text_input_ids, noise, ref=None):
    H, W = noise.shape[-2], noise.shape[-1]
    h_p, w_p = H // 32, W // 32
    image_len = h_p * w_p
    image_grid_thw_tgt = torch.tensor([[1, h_p, w_p]], dtype=torch.long)
    if ref is not None:
        ids = text_input_ids[0].tolist()
        inserted = []
        for n_pad in ref["per_ref_vit_tokens"]:
            inserted.extend([VISION_START_ID] + [IMAGE_TOKEN_ID] * n_pad + [VISION_END_ID])
        text_input_ids = torch.tensor([ids[:3] + inserted + ids[3:]])
        new_txt_len = text_input_ids.shape[1]
        ref_grid_lengths = [hp * wp for (hp, wp) in ref["per_ref_patch_grids"]]
        tgt_vision = torch.full((1, image_len), IMAGE_TOKEN_ID, dtype=torch.long)
        tgt_vision[:, 0] = VISION_START_ID
        blocks = []
        for rl in ref_grid_lengths:
            blk = torch.full((1, rl), IMAGE_TOKEN_ID, dtype=torch.long)
            blk[:, 0] = VISION_START_ID
            blocks.append(blk)
        input_ids_pad = torch.cat([text_input_ids, torch.cat([tgt_vision] + blocks, dim=1)], dim=-1)
        K = len(ref["per_ref_vit_tokens"])
        igthw_cond = ref["ref_image_grid_thw"].clone()
        igthw_cond[:, 1] //= 2
        igthw_cond[:, 2] //= 2
        image_grid_thw_ref = torch.tensor([[1, hp, wp] for (hp, wp) in ref["per_ref_patch_grids"]], dtype=torch.long)
        igthw_all = torch.cat([igthw_cond, image_grid_thw_tgt, image_grid_thw_ref], dim=0)
        position_ids = get_rope_index_fix_point(1, IMAGE_TOKEN_ID, VISION_START_ID, input_ids_pad, igthw_all,
                                                [0] * K + [1] + [1] * K, fix_point=4096)
        ar_len = new_txt_len - 1
    else:
        txt_len = text_input_ids.shape[1]
        vision_tokens = torch.full((1, image_len), IMAGE_TOKEN_ID, dtype=torch.long)
        vision_tokens[:, 0] = VISION_START_ID
        input_ids_pad = torch.cat([text_input_ids, vision_tokens], dim=-1)
        position_ids = get_rope_index_fix_point(1, IMAGE_TOKEN_ID, VISION_START_ID, input_ids_pad,
                                                image_grid_thw_tgt, [1])
        ar_len = txt_len - 1
    return {"input_ids": text_input_ids, "position_ids": position_ids[:, 0], "ar_len": ar_len}


def timestep_embedding(t, dim=256, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def two_pass_attention(q, k, v, ar_len):
    """attention.py's: [0, ar_len) causal among themselves, the rest over every key (q, k, v [B, H, T, D])."""
    out_ar = F.scaled_dot_product_attention(q[:, :, :ar_len], k[:, :, :ar_len], v[:, :, :ar_len], is_causal=True)
    out_gen = F.scaled_dot_product_attention(q[:, :, ar_len:], k, v)
    return torch.cat([out_ar, out_gen], dim=2)


def comfy_forward(lm, visual, heads, x, sigma, conds, ref=None):
    """HiDreamO1Transformer._forward (the cold path: no K/V cache, no vinput_mask), its decoder layers run as
    Llama2_'s blocks with the two-pass attention."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb
    B, _, H, W = x.shape
    h_p, w_p = H // 32, W // 32
    z = x.reshape(B, 3, h_p, 32, w_p, 32).permute(0, 2, 4, 1, 3, 5).reshape(B, h_p * w_p, 3 * 32 * 32)
    vinputs = torch.cat([z, ref["ref_patches"].expand(B, -1, -1)], dim=1) if ref is not None else z
    input_ids = conds["input_ids"].expand(B, -1)
    inputs_embeds = lm.embed_tokens(input_ids).clone()
    if ref is not None:
        image_embeds = visual(ref["ref_pixel_values"], grid_thw=ref["ref_image_grid_thw"]).pooler_output
        image_idx = (input_ids[0] == IMAGE_TOKEN_ID).nonzero(as_tuple=True)[0]
        inputs_embeds[:, image_idx] = image_embeds.unsqueeze(0).expand(B, -1, -1)
    t_emb = timestep_embedding((1.0 - sigma) * 1000)
    t_emb = F.linear(F.silu(F.linear(t_emb, heads["t_embedder1.mlp.0.weight"], heads["t_embedder1.mlp.0.bias"])),
                     heads["t_embedder1.mlp.2.weight"], heads["t_embedder1.mlp.2.bias"])
    tms = (input_ids == TMS_TOKEN_ID).unsqueeze(-1).expand_as(inputs_embeds)
    inputs_embeds = torch.where(tms, t_emb.unsqueeze(1).expand_as(inputs_embeds), inputs_embeds)
    emb = F.linear(F.linear(vinputs, heads["x_embedder.proj1.weight"]), heads["x_embedder.proj2.weight"],
                   heads["x_embedder.proj2.bias"])
    hidden = torch.cat([inputs_embeds, emb], dim=1)
    cos, sin = lm.rotary_emb(hidden, conds["position_ids"][:, None].expand(3, B, -1))
    for layer in lm.layers:
        a = layer.self_attn
        y = layer.input_layernorm(hidden)
        T = y.shape[1]
        q = a.q_norm(a.q_proj(y).view(B, T, -1, a.head_dim)).transpose(1, 2)
        k = a.k_norm(a.k_proj(y).view(B, T, -1, a.head_dim)).transpose(1, 2)
        v = a.v_proj(y).view(B, T, -1, a.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        out = two_pass_attention(q, k, v, conds["ar_len"]).transpose(1, 2).reshape(B, T, -1)
        hidden = hidden + a.o_proj(out)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    hidden = lm.norm(hidden)
    start = input_ids.shape[1]
    x_pred_tgt = F.linear(hidden[:, start:start + h_p * w_p], heads["final_layer2.linear.weight"],
                          heads["final_layer2.linear.bias"])
    x_pred = x_pred_tgt.reshape(B, h_p, w_p, 3, 32, 32).permute(0, 3, 1, 4, 2, 5).reshape(B, 3, H, W)
    return (x.float() - x_pred.float()) / sigma.view(B, 1, 1, 1).clamp_min(1e-3)


def reference(root):
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel, Qwen3VLVisionModel
    from tiny_hidream_o1 import reference_modules, text_config, vision_config
    saved = torch.load(root / "reference.pt", weights_only=True)
    lm, visual = Qwen3VLTextModel(text_config()).eval(), Qwen3VLVisionModel(vision_config()).eval()
    lm.load_state_dict(saved["lm"])
    visual.load_state_dict(saved["visual"])
    return reference_modules(lm, visual, saved["heads"])


def _err(want, got):
    return float((want - got).abs().max() / want.abs().max())


# -- tests ------------------------------------------------------------------------------------------------------
def test_checkpoint_is_told_and_predicts_what_comfyui_predicts(o1):
    """The three files are told HiDream-O1's whole model and load (the deepstack mergers dropped, the tokenizer found
    beside the file); the bf16 file's model gives ComfyUI's velocity for a prompt at two noise levels, without a
    reference picture and with one and two (their tokens, 3-D positions, patches and vision-tower tokens as ComfyUI
    builds them), the fp8_scaled and int8_convrot files' within their precision's error."""
    from nodes.generate.adapters.hidream_o1 import HiDreamO1Adapter
    from nodes.generate.detect import detect_file
    from nodes.generate.hidream_o1_model import references, sequence
    from tiny_hidream_o1 import BF16, FP8, INT8
    for name in (BF16, FP8, INT8):
        det = detect_file(o1 / "models" / "checkpoints" / f"{name}.safetensors")
        assert (det.family, det.role, det.prefix) == ("hidream_o1", "checkpoint", "model.diffusion_model.")
    pipes = {n: HiDreamO1Adapter().load(o1 / "models" / "checkpoints" / f"{n}.safetensors", torch.float32, "cpu")
             for n in (BF16, FP8, INT8)}
    lm, visual, heads = reference(o1)
    tok = pipes[BF16].tokenizer
    text = "a red boat at dawn"
    ids = comfy_tokens(tok, text)
    rng = torch.Generator().manual_seed(3)
    x, sigma = torch.randn(2, 3, 64, 96, generator=rng) * 4, torch.tensor([0.9, 0.35])
    # at their fitted sizes for a 96 x 64 result: one reference fills 96 x 96 at most, each of two 72 x 72
    one = [(torch.rand(64, 96, 3, generator=rng) * 255).round().to(torch.uint8).numpy()]
    two = [(torch.rand(64, 64, 3, generator=rng) * 255).round().to(torch.uint8).numpy(),
           (torch.rand(32, 96, 3, generator=rng) * 255).round().to(torch.uint8).numpy()]
    with torch.no_grad():
        for pixels in ([], one, two):
            ref = comfy_many([p.astype(np.float32) / 255 for p in pixels]) if pixels else None
            conds = build_extra_conds(torch.tensor([ids]), x, ref)
            want = comfy_forward(lm, visual, heads, x, sigma, conds, ref)
            refs = references(pixels, 64, 96)
            seq = sequence(HiDreamO1Adapter().encode_text(pipes[BF16], [text], "cpu")[0][0, :, 0].long().tolist(),
                           64, 96, refs)
            assert seq["ids"].tolist() == conds["input_ids"][0].tolist() and seq["ar"] == conds["ar_len"]
            assert torch.equal(seq["positions"], conds["position_ids"])
            assert _err(want, pipes[BF16].transformer(x, sigma, seq, refs)) < 1e-4
            # fresh references per model: the vision tower's tokens are kept in them
            for name in (FP8, INT8):
                refs = references(pixels, 64, 96)
                assert 0 < _err(want, pipes[name].transformer(x, sigma, seq, refs)) < 0.1, name


def comfy_smoothing(executor, x, t, start_t, end_t, pattern, passes, blend, strength):
    """HiDreamO1PatchSeamSmoothing's smoothing_wrapper at timestep t (sigma x 1000) for an executor(x) -> pred."""
    P, half = 32, 16
    shifts_by = {("single_shift", 2): [(0, 0), (16, 16)], ("single_shift", 4): [(0, 0), (16, 0), (0, 16), (16, 16)],
                 ("single_shift", 8): [(0, 0), (16, 0), (0, 16), (16, 16), (8, 8), (24, 8), (8, 24), (24, 24)],
                 ("symmetric", 2): [(-8, -8), (8, 8)], ("symmetric", 4): [(-8, -8), (8, -8), (-8, 8), (8, 8)],
                 ("symmetric", 8): [(-12, -12), (4, -12), (-12, 4), (4, 4), (-4, -4), (12, -4), (-4, 12), (12, 12)]}
    ramp = {"2": [2], "4": [4], "ramp_2_4": [2, 4], "ramp_2_4_8": [2, 4, 8]}
    shift_levels = [shifts_by[(pattern, n)] for n in ramp[passes]]

    def hann(cy, cx, size=32):
        yy, xx = torch.arange(size).view(size, 1), torch.arange(size).view(1, size)
        dy, dx = ((yy - cy + half) % size) - half, ((xx - cx + half) % size) - half
        return 0.25 * (1 + torch.cos(torch.pi * dy / half)) * (1 + torch.cos(torch.pi * dx / half))
    pred = executor(x)
    if not (end_t <= t <= start_t):
        return pred
    if len(shift_levels) == 1:
        level_idx = 0
    else:
        phase = (start_t - t) / max(start_t - end_t, 1e-8)
        level_idx = min(int(phase * len(shift_levels)), len(shift_levels) - 1)
    shifts = shift_levels[level_idx]
    preds = []
    for sy, sx in shifts:
        if sy == 0 and sx == 0:
            preds.append(pred)
            continue
        preds.append(torch.roll(executor(torch.roll(x, shifts=(sy, sx), dims=(-2, -1))), shifts=(-sy, -sx),
                                dims=(-2, -1)))
    stacked = torch.stack(preds, dim=0)
    _, _, _, H, W = stacked.shape
    if blend == "window":
        N = stacked.shape[0]
        tiles = torch.stack([hann((half - sy) % P, (half - sx) % P) for sy, sx in shifts], dim=0)
        w = tiles.repeat(1, H // P, W // P)[:, :H, :W]
        sum_w = w.sum(dim=0, keepdim=True)
        w = torch.where(sum_w < 1e-3, torch.full_like(w, 1.0 / N), w / sum_w.clamp(min=1e-8))
        avg = (stacked * w[:, None, None, :, :]).sum(dim=0)
    elif blend == "median":
        avg = torch.median(stacked, dim=0).values
    else:
        avg = stacked.mean(dim=0)
    ys = torch.minimum(torch.arange(H, dtype=torch.float32), (H - 1) - torch.arange(H, dtype=torch.float32))
    xs = torch.minimum(torch.arange(W, dtype=torch.float32), (W - 1) - torch.arange(W, dtype=torch.float32))
    mask = ((ys - P) / 4).clamp(0, 1)[:, None] * ((xs - P) / 4).clamp(0, 1)[None, :]
    return pred * (1.0 - mask * strength) + avg * (mask * strength)


@pytest.mark.parametrize("pattern, passes, blend", [("single_shift", "ramp_2_4", "median"),
                                                    ("symmetric", "4", "window"),
                                                    ("single_shift", "ramp_2_4_8", "average")])
def test_seam_smoothing_blends_as_comfyui(pattern, passes, blend):
    """Inside the gated levels (early and late in it, where the ramps pick other pass counts) and outside it, the
    prediction is ComfyUI's smoothing wrapper's for a model that is not shift-invariant."""
    from nodes.generate.hidream_o1_seams import smoothed
    rng = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 128, 160, generator=rng)
    weight = torch.randn(3, 3, 5, 5, generator=rng)
    grid = torch.randn(1, 3, 128, 160, generator=rng)

    def model(v, s=None):
        return F.conv2d(v, weight, padding=2) + grid + v ** 2
    top, bottom = 0.6, 0.0
    for s in (0.55, 0.31, 0.05, 0.8):
        want = comfy_smoothing(model, x, s * 1000, top * 1000, bottom * 1000, pattern, passes, blend, 0.7)
        got = smoothed(model, x, torch.tensor([s]), {"top": top, "bottom": bottom, "pattern": pattern,
                                                      "passes": passes, "blend": blend, "strength": 0.7})
        assert torch.allclose(want, got, atol=1e-5), (s, float((want - got).abs().max()))


@pytest.mark.parametrize("template, checkpoint", [("image_hidream_o1.json", "hidream_o1_image_bf16.safetensors"),
                                                  ("image_hidream_o1_dev.json",
                                                   "hidream_o1_image_dev_fp8_scaled.safetensors")])
def test_comfyui_hidream_o1_templates_import_and_run(o1, tmp_path, monkeypatch, template, checkpoint):
    """ComfyUI's HiDream-O1 templates (CheckpointLoaderSimple, ModelNoiseScale 8 / 7.6, the prompt through the
    checkpoint's text encoder, EmptyHiDreamO1LatentImage; full: HiDreamO1PatchSeamSmoothing and dpmpp_2m_sde_gpu over
    40 steps at cfg 5; dev: the picture edit, HiDreamO1ReferenceImages with the picture sized by its own size, LCM
    over 28 steps at cfg 1). Every node maps; they run on the tiny fp8_scaled file under the template's name (96 x 64,
    2 steps) and save a picture, the first within fp8 error of the bf16 file's."""
    from PIL import Image
    from comfy_layouts import imported_template, sampled_latent
    from tiny_hidream_o1 import BF16, FP8
    models = o1 / "models"
    picture = (torch.rand(70, 100, 3, generator=torch.Generator().manual_seed(5)) * 255).to(torch.uint8).numpy()
    Image.fromarray(picture).save(tmp_path / "picture.png")
    monkeypatch.chdir(tmp_path)
    links = ((f"checkpoints/{checkpoint}", f"checkpoints/{FP8}.safetensors"),
             (f"checkpoints/{checkpoint[:-len('.safetensors')]}", f"checkpoints/{FP8}"))
    data, yaml = imported_template(models, links, TEMPLATES / template, (96, 64), (40, 2))
    yaml = re.sub(r"steps: \d+", "steps: 2", yaml).replace("width: 2048", "width: 96").replace("height: 2048",
                                                                                                "height: 64")
    yaml = re.sub(r"path: \S+\.png", f"path: {tmp_path / 'picture.png'}", yaml)
    assert "type: model.noise_scale" in yaml and "type: latent.empty_hidream_o1" in yaml
    if "dev" in template:
        assert "condition.hidream_o1_references" in yaml and "sampler: lcm" in yaml
    else:
        assert "type: model.hidream_o1_seams" in yaml and "blend: median" in yaml
    got = sampled_latent(tmp_path / "o1.kino.yaml", yaml, "sampler_custom")
    assert got.shape == (1, 3, 64, 96) and bool(torch.isfinite(got).all())
    assert list((tmp_path / "out").rglob("*.png"))
    bf16 = sampled_latent(tmp_path / "o1.kino.yaml", yaml.replace(checkpoint, f"{BF16}.safetensors"),
                          "sampler_custom")
    assert 0 < _err(bf16, got) < 0.2


def test_noise_scale_sets_the_noise_sampling_starts_from(o1, monkeypatch):
    """The model's first input is ComfyUI's CONST noise_scaling with ModelNoiseScale's scale, sigma x noise x scale
    over the empty picture, for the noise ComfyUI draws for the seed (8 without model.noise_scale)."""
    from nodes.generate.hidream_o1_model import HiDreamO1
    from nodes.generate.hidream_o1_nodes import empty_hidream_o1, noise_scale
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from tiny_hidream_o1 import BF16
    mm = ModelManager()
    model = mm.load("hidream_o1", f"{BF16}.safetensors", device="cpu")
    te = mm.components(model)["text_encoder"]
    seen = []
    forward = HiDreamO1.forward
    monkeypatch.setattr(HiDreamO1, "forward", lambda self, x, sigma, *a: seen.append((x, sigma)) or
                        forward(self, x, sigma, *a))
    latent = empty_hidream_o1(None, 96, 64, 1)
    for scale in (7.6, None):
        seen.clear()
        patched = model if scale is None else noise_scale(None, model, scale)
        run_sampling(patched, encode_prompt(te, "a lighthouse"), None, latent, steps=3, cfg=1.0, sampler="euler",
                     seed=11)
        noise = torch.randn((1, 3, 64, 96), generator=torch.manual_seed(11))
        sigma = float(seen[0][1][0])
        assert torch.allclose(seen[0][0], sigma * noise * (scale or 8.0), atol=1e-5)


def test_refusals_name_what_to_do(o1):
    """A side off the 32-pixel patch grid, model.noise_scale and the seam smoothing on another family's model and
    reference pictures on another family's prompt are refused, saying what to use instead."""
    from types import SimpleNamespace
    from graph_engine import NodeError
    from nodes.generate.hidream_o1_nodes import empty_hidream_o1, hidream_o1_references, hidream_o1_seams, noise_scale
    with pytest.raises(NodeError, match="use 96 x 64"):
        empty_hidream_o1(None, 100, 70, 1)
    flux = SimpleNamespace(family="flux")
    with pytest.raises(NodeError, match="HiDream-O1's noise scale"):
        noise_scale(None, flux, 8.0)
    with pytest.raises(NodeError, match="patch seams"):
        hidream_o1_seams(None, flux, 0.8, 1.0, "single_shift", "2", "average", 1.0)
    other = SimpleNamespace(family="qwenimage")
    with pytest.raises(NodeError, match="HiDream-O1 checkpoint's text_encoder"):
        hidream_o1_references(None, other, other, np.zeros((64, 64, 3), np.uint8))


def resize_pilimage(pil_image, image_size, patch_size=16):
    """utils.py's resize_pilimage (the authors' reference fitting, which ComfyUI's resize_tensor is taken to follow)."""
    from PIL import Image
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    m = patch_size
    width, height = pil_image.width, pil_image.height
    s_max = image_size * image_size
    scale = math.sqrt(s_max / (width * height))
    candidates = [(round(width * scale) // m * m, round(height * scale) // m * m),
                  (round(width * scale) // m * m, math.floor(height * scale) // m * m),
                  (math.floor(width * scale) // m * m, round(height * scale) // m * m),
                  (math.floor(width * scale) // m * m, math.floor(height * scale) // m * m)]
    candidates = sorted(candidates, key=lambda x: x[0] * x[1], reverse=True)
    new_size = candidates[-1]
    for c in candidates:
        if c[0] * c[1] <= s_max:
            new_size = c
            break
    s1, s2 = width / new_size[0], height / new_size[1]
    if s1 < s2:
        pil_image = pil_image.resize([new_size[0], round(height / s1)], resample=Image.BICUBIC)
        top = (round(height / s1) - new_size[1]) // 2
        return pil_image.crop((0, top, new_size[0], top + new_size[1]))
    pil_image = pil_image.resize([round(width / s2), new_size[1]], resample=Image.BICUBIC)
    left = (round(width / s2) - new_size[0]) // 2
    return pil_image.crop((left, 0, left + new_size[0], new_size[1]))


@pytest.mark.parametrize("size, side", [((100, 70), 96), ((333, 1000), 72), ((2000, 900), 256), ((64, 64), 48)])
def test_references_are_fitted_as_the_authors_fit_them(size, side):
    """A reference is fitted as the authors' resize_pilimage fits it on the 32-pixel grid: the largest size within
    side^2 pixels, box-halved first while twice too big, bicubic, centre-cropped."""
    from PIL import Image
    from nodes.generate.hidream_o1_model import fit_area
    rng = np.random.default_rng(2)
    picture = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    want = np.asarray(resize_pilimage(picture, side, 32))
    assert np.array_equal(np.asarray(fit_area(picture, side, 32)), want)
