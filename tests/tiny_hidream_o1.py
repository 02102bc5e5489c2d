"""A tiny random-weight HiDream-O1-Image in the files ComfyUI's image_hidream_o1 templates ask for
(Comfy-Org/HiDream-O1-Image's checkpoints/):

  root/models/checkpoints/hidream_o1_tiny_bf16.safetensors      the transformer under model.diffusion_model. in
                      ComfyUI's names (visual.* with its deepstack mergers, language_model.*, t_embedder1.*,
                      x_embedder.*, final_layer2.*), bf16; the byte-level Qwen2 tokenizer in hidream_o1_tiny_bf16/
  root/models/checkpoints/hidream_o1_tiny_fp8_scaled.safetensors  the same weights as ComfyUI's fp8_scaled (each
                      matrix float8_e4m3fn with its scale_weight, the scaled_fp8 marker), its tokenizer beside it
  root/models/checkpoints/hidream_o1_tiny_int8_convrot.safetensors  the same weights as ComfyUI's int8_convrot (the
                      token embedding kept), its tokenizer beside it

Widths are tiny; the structure is the release's: 32 x 32 RGB patches through the 1/4-width bottleneck, Qwen3-VL's
decoder (q/k norms, grouped K/V, interleaved 3-D rotary) with a vocabulary holding HiDream-O1's token ids (151643 on),
the vision tower's 16-pixel patches merged 2 x 2 into the decoder's width. The modules are transformers' own, built
here independently of Kinograph's loader."""
from __future__ import annotations

from pathlib import Path

import torch

from tiny_models import _seed
from tiny_qwen import qwen_tokenizer

BF16 = "hidream_o1_tiny_bf16"
FP8 = "hidream_o1_tiny_fp8_scaled"
INT8 = "hidream_o1_tiny_int8_convrot"
WIDTH, HEAD, VOCAB = 32, 16, 151680
SECTIONS = [4, 2, 2]        # the head's 8 rotary frequencies: time, rows, columns (the release: 24, 20, 20 of 64)


def text_config():
    from transformers import Qwen3VLTextConfig
    return Qwen3VLTextConfig(vocab_size=VOCAB, hidden_size=WIDTH, head_dim=HEAD, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=1, intermediate_size=48, rms_norm_eps=1e-6,
                             rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                                              "mrope_section": SECTIONS, "mrope_interleaved": True})


def vision_config():
    from transformers import Qwen3VLVisionConfig
    return Qwen3VLVisionConfig(depth=2, hidden_size=72, num_heads=1, intermediate_size=40, out_hidden_size=WIDTH,
                               num_position_embeddings=16, deepstack_visual_indexes=[0])


def modules():
    """(language model, vision tower, the three HiDream-O1 heads' tensors) with random weights."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextModel, Qwen3VLVisionModel
    _seed(70)
    lm = Qwen3VLTextModel(text_config()).eval()
    visual = Qwen3VLVisionModel(vision_config()).eval()
    with torch.no_grad():
        for p in list(lm.parameters()) + list(visual.parameters()):
            p.add_(torch.randn_like(p) * 0.05)
    heads = {"t_embedder1.mlp.0.weight": torch.randn(WIDTH, 256) * 0.1, "t_embedder1.mlp.0.bias": torch.randn(WIDTH) * 0.1,
             "t_embedder1.mlp.2.weight": torch.randn(WIDTH, WIDTH) * 0.2, "t_embedder1.mlp.2.bias": torch.randn(WIDTH) * 0.1,
             "x_embedder.proj1.weight": torch.randn(WIDTH // 4, 3072) * 0.02,
             "x_embedder.proj2.weight": torch.randn(WIDTH, WIDTH // 4) * 0.3, "x_embedder.proj2.bias": torch.randn(WIDTH) * 0.1,
             "final_layer2.linear.weight": torch.randn(3072, WIDTH) * 0.2, "final_layer2.linear.bias": torch.randn(3072) * 0.1}
    return lm, visual, heads


def comfy_state(lm, visual, heads) -> dict:
    """The transformer as ComfyUI's checkpoint holds it, bf16 values."""
    state = {f"language_model.{k}": v for k, v in lm.state_dict().items()}
    state.update({f"visual.{k}": v for k, v in visual.state_dict().items()})
    state.update(heads)
    return {f"model.diffusion_model.{k}": v.detach().bfloat16().contiguous() for k, v in state.items()}


def fp8_scaled(state: dict) -> dict:
    """ComfyUI's fp8_scaled: each 2-D weight float8_e4m3fn divided by its scale_weight, the rest as it is."""
    out = {"scaled_fp8": torch.zeros(2, dtype=torch.float8_e4m3fn)}
    for k, v in state.items():
        if k.endswith(".weight") and v.ndim == 2 and "embed_tokens" not in k:
            scale = v.float().abs().max() / 448.0
            out[k] = (v.float() / scale).to(torch.float8_e4m3fn)
            out[k[:-len("weight")] + "scale_weight"] = scale.reshape(1)
        else:
            out[k] = v
    return out


def reference_modules(lm, visual, heads):
    """The modules with the bf16 file's values (what the file reads back as), float32."""
    with torch.no_grad():
        for m in (lm, visual):
            for p in m.parameters():
                p.copy_(p.bfloat16().float())
    return lm, visual, {k: v.bfloat16().float() for k, v in heads.items()}


def build_hidream_o1(root: Path) -> Path:
    from safetensors.torch import save_file
    from comfy_convrot import quantise_file_state
    folder = root / "models" / "checkpoints"
    folder.mkdir(parents=True)
    lm, visual, heads = modules()
    state = comfy_state(lm, visual, heads)
    save_file(state, str(folder / f"{BF16}.safetensors"))
    save_file(fp8_scaled(state), str(folder / f"{FP8}.safetensors"))
    embed = "model.diffusion_model.language_model.embed_tokens.weight"
    int8 = quantise_file_state({k: v for k, v in state.items() if k != embed}, group_size=16)
    save_file({**int8, embed: state[embed]}, str(folder / f"{INT8}.safetensors"))
    for name in (BF16, FP8, INT8):
        qwen_tokenizer(folder / name)
    torch.save({"lm": lm.state_dict(), "visual": visual.state_dict(), "heads": heads}, root / "reference.pt")
    return root
