"""A tiny random-weight Qwen-Image 2.1 in the layouts its users hold it:

  root/Qwen-Image-2.1/     QwenImage21Pipeline folder (diffusers): Qwen3-VL's processor/ (its tokenizer, image
      processor and chat template; no video processor, which transformers cannot make without torchvision),
      text_encoder/ (Qwen3VLForConditionalGeneration), transformer/ (QwenImage21Transformer2DModel), vae/
      (AutoencoderKLQwenImage21, 64 latent channels at 16x), scheduler/ (Qwen-Image's size-shifted flow schedule)
  root/models/diffusion_models/qwen_image_2.1_tiny_bf16.safetensors
      the transformer as ComfyUI's file holds it (diffusers' names under model.diffusion_model., the SwiGLU's gate and
      up projections fused into one img_mlp.gate_up, gate rows first: the layout diffusers' single-file converter
      splits), stored in bf16
  root/models/text_encoders/qwen3vl_tiny_bf16.safetensors (+ its tokenizer in qwen3vl_tiny_bf16/)
      Qwen3-VL as ComfyUI's qwen3vl_8b holds it: the language model as model.*, the vision tower as visual.*, no head

Widths are tiny; the structure is the released model's: 64 unpatched latent channels, single-stream blocks with one
shared modulation, 32-wide heads whose rotary split keeps the released (16, 56, 56) proportions, Qwen3-VL's language
model reading the prompt (its rotary sections the released [24, 20, 20] of 128 in proportion)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tiny_models import _seed
from tiny_qwen import TEMPLATE_TOKENS, qwen_tokenizer

HEAD = 32
AXES = (4, 14, 14)
# enough of Qwen3-VL's chat template for the pipeline to count the system turn's tokens it drops
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{{ c['text'] }}"
                 "{% endfor %}<|im_end|>\n{% endfor %}")


def text_encoder(layers: int = 2, tower_width: int = 32, tower_heads: int = 1):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    ids = {k: 256 + TEMPLATE_TOKENS.index(t) for k, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    cfg = Qwen3VLConfig(
        text_config=dict(hidden_size=64, intermediate_size=48, num_hidden_layers=layers, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=32, vocab_size=300, rms_norm_eps=1e-6,
                         rope_scaling={"mrope_section": [6, 5, 5], "rope_type": "default", "mrope_interleaved": True},
                         rope_theta=5000000.0),
        vision_config=dict(depth=1, hidden_size=tower_width, intermediate_size=16, num_heads=tower_heads, out_hidden_size=64,
                           deepstack_visual_indexes=[0]),
        **ids)
    return Qwen3VLForConditionalGeneration(cfg).eval()


def processor(folder: Path):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.processing_utils import ProcessorMixin
    tok = qwen_tokenizer(folder)
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None
    try:
        return Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(patch_size=16, merge_size=2), tokenizer=tok,
                                chat_template=CHAT_TEMPLATE)
    finally:
        ProcessorMixin.check_argument_for_proper_class = check


def parts():
    from diffusers import AutoencoderKLQwenImage21, QwenImage21Transformer2DModel
    _seed(0)
    transformer = QwenImage21Transformer2DModel(in_channels=64, out_channels=64, num_layers=2,
                                                attention_head_dim=HEAD, num_attention_heads=2, context_in_dim=64,
                                                axes_dims_rope=AXES)
    vae = AutoencoderKLQwenImage21(base_dim=4, decoder_base_dim=4, z_dim=64, dim_mult=[1, 2, 2, 2, 2],
                                   num_res_blocks=1, temperal_downsample=[False, True, True, True])
    te = text_encoder()
    for m in (transformer, vae, te):        # bf16 values, as the bf16 files users have
        m.bfloat16().float()
    return transformer.eval(), vae.eval(), te


def comfy_transformer(state: dict) -> dict:
    """diffusers' names -> ComfyUI's file's: model.diffusion_model., the SwiGLU's gate and up rows fused."""
    out = {}
    for k, v in state.items():
        if k.endswith("img_mlp.gate_layer.weight"):
            k, v = k.replace("gate_layer", "gate_up"), torch.cat([v, state[k.replace("gate_layer", "proj")]])
        elif k.endswith("img_mlp.proj.weight"):
            continue
        out["model.diffusion_model." + k] = v
    return out


def comfy_text_encoder(state: dict) -> dict:
    """transformers 5's Qwen3-VL names -> ComfyUI's file's (transformers 4's: model.layers.*, visual.*), no head."""
    return {k.replace("model.language_model.", "model.", 1).replace("model.visual.", "visual.", 1): v
            for k, v in state.items() if not k.startswith("lm_head.")}


def build_qwen21(root: Path) -> Path:
    from diffusers import QwenImage21Pipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    folder = root / "Qwen-Image-2.1"
    transformer, vae, te = parts()
    proc = processor(folder / "processor")
    pipe = QwenImage21Pipeline(scheduler=scheduler("qwenimage"), vae=vae, text_encoder=te, processor=proc,
                               transformer=transformer)
    pipe.register_modules(processor=None)       # saved below: transformers cannot save it without a video processor
    pipe.save_pretrained(str(folder), safe_serialization=True)
    proc.tokenizer.save_pretrained(str(folder / "processor"))
    proc.image_processor.save_pretrained(str(folder / "processor"))
    (folder / "processor" / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    index = json.loads((folder / "model_index.json").read_text())
    index["processor"] = ["transformers", "Qwen3VLProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    dm = root / "models" / "diffusion_models"
    dm.mkdir(parents=True, exist_ok=True)
    save_file({k: v.bfloat16().contiguous() for k, v in comfy_transformer(transformer.state_dict()).items()},
              str(dm / "qwen_image_2.1_tiny_bf16.safetensors"))
    te_file = root / "models" / "text_encoders" / "qwen3vl_tiny_bf16.safetensors"
    te_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.bfloat16().contiguous() for k, v in comfy_text_encoder(te.state_dict()).items()}, str(te_file))
    proc.tokenizer.save_pretrained(str(te_file.with_suffix("")))
    return root
