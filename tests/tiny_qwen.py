"""A tiny random-weight Qwen-Image in the layouts its users hold it:

  root/Qwen-Image/                                       QwenImagePipeline folder (diffusers), Qwen-Image's scheduler
  root/models/diffusion_models/qwen_image_tiny_bf16.safetensors
      the transformer in ComfyUI's split file (diffusers' own key names, which diffusers' single-file loader maps
      one to one), stored in bf16
  root/models/text_encoders/qwen_2.5_vl_tiny_fp8_scaled.safetensors
      Qwen2.5-VL as ComfyUI keeps it: transformers 4's names (model.layers.*, model.embed_tokens, visual.*,
      lm_head), the matrices in fp8 with their scale_weight and the scaled_fp8 marker; its tokenizer where a
      ComfyUI install bundles it (root/comfy/text_encoders/qwen25_tokenizer)
  root/models/vae/qwen_image_vae.safetensors             the Wan 2.1 VAE's original names (Qwen-Image's VAE is Wan
      2.1's network, retrained)

The reference pipeline holds exactly the values the files give back (bf16-rounded, fp8 x scale), so a same-seed
run must match it. Widths are tiny; the structure is the released model's: 64 input channels (16 latent x 2x2
patches), 32-wide heads whose rotary split keeps the released (16, 56, 56) proportions, a Qwen2 language model
with biased q/k/v and the released 128-wide heads (whose rotary sections the loader takes from the 7B's config)."""
from __future__ import annotations

import json
from pathlib import Path

import torch


from nodes.generate.converters.qwenimage import VISION_TOKENS
from tiny_models import _bytes_to_unicode, _seed, to_fp8_scaled, wan_original_vae

HEAD = 32
AXES = (4, 14, 14)
TEMPLATE_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                   "<|image_pad|>", "<|video_pad|>")


def qwen_tokenizer(folder: Path):
    """A byte-level BPE tokenizer in Qwen2's format (every byte a token, no merges) with the chat template's and the
    vision tokens (ids 256 on, in TEMPLATE_TOKENS' order)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in TEMPLATE_TOKENS])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
         "model_max_length": 2048}))
    return AutoTokenizer.from_pretrained(str(folder))


def text_encoder():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=128, intermediate_size=37, num_hidden_layers=2, num_attention_heads=1,
                         num_key_value_heads=1, vocab_size=300, rms_norm_eps=1e-6,
                         rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
                         rope_theta=1000000.0, bos_token_id=None, eos_token_id=None),
        # the released tower's 80-wide heads, patches and windows; one block, one head
        vision_config=dict(depth=1, hidden_size=80, intermediate_size=16, num_heads=1, out_hidden_size=128),
        **{k: 256 + TEMPLATE_TOKENS.index(t) for k, t in VISION_TOKENS.items()})
    return Qwen2_5_VLForConditionalGeneration(cfg).eval()


def parts():
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    _seed(0)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=2,
                                              attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=128,
                                              axes_dims_rope=AXES)
    vae = AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                 temperal_downsample=[False, True, True])
    te = text_encoder()
    for m in (transformer, vae, te):        # bf16 values, as the bf16 files users have
        m.bfloat16().float()
    return transformer.eval(), vae.eval(), te


def comfy_text_encoder(te) -> dict:
    """transformers 5's Qwen2_5_VLForConditionalGeneration names -> ComfyUI's file's (transformers 4's)."""
    out = {}
    for k, v in te.state_dict().items():
        if k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model."):]
        elif k.startswith("model.visual."):
            k = k[len("model."):]
        out[k] = v
    return out


def dequantised(fp8: dict) -> dict:
    """The values a loader gets back from an fp8_scaled file: fp8 x scale_weight, in float32."""
    out = {}
    for k, v in fp8.items():
        if k == "scaled_fp8" or k.endswith(".scale_weight"):
            continue
        scale = fp8.get(k[: -len(".weight")] + ".scale_weight")
        out[k] = v.float() * scale.float() if scale is not None else v
    return out


def save_fp8_scaled(te, comfy: dict, path: Path) -> None:
    """A Qwen-VL text encoder's tensors in ComfyUI's names (`comfy`) saved as ComfyUI's fp8_scaled file, and `te`
    given the values a loader reads back from it: the reference reads what the file holds. A file without the head
    (tied to the embeddings) leaves te's."""
    from safetensors.torch import save_file
    fp8 = to_fp8_scaled(comfy)
    save_file({k: v.contiguous() for k, v in fp8.items()}, str(path))
    back = {("model.language_model." + k[len("model."):] if k.startswith("model.") else
             "model." + k if k.startswith("visual.") else k): v for k, v in dequantised(fp8).items()}
    missing, unexpected = te.load_state_dict(back, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)


def build_qwen(root: Path) -> Path:
    from diffusers import QwenImagePipeline
    from safetensors.torch import save_file
    from nodes.generate.split import scheduler
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    transformer, vae, te = parts()
    save_fp8_scaled(te, comfy_text_encoder(te), models / "text_encoders" / "qwen_2.5_vl_tiny_fp8_scaled.safetensors")
    # where ComfyUI bundles Qwen2.5-VL's tokenizer, beside its models/ folder
    tok = qwen_tokenizer(root / "comfy" / "text_encoders" / "qwen25_tokenizer")
    QwenImagePipeline(scheduler=scheduler("qwenimage"), vae=vae, text_encoder=te, tokenizer=tok,
                      transformer=transformer).save_pretrained(str(root / "Qwen-Image"), safe_serialization=True)
    bf16 = lambda sd: {k: v.bfloat16().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(bf16(transformer.state_dict()), str(models / "diffusion_models" / "qwen_image_tiny_bf16.safetensors"))
    save_file(bf16(wan_original_vae(vae.state_dict())), str(models / "vae" / "qwen_image_vae.safetensors"))
    return root


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(build_qwen(Path(sys.argv[1])))


def edit_processor(tok):
    """transformers' Qwen2VLProcessor as Qwen-Image-Edit's folders hold it (Qwen2.5-VL's image processor), built
    without the video processor, which transformers cannot make without torchvision."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin
    from nodes.generate.qwen_edit import IMAGE_PROCESSOR
    check = ProcessorMixin.check_argument_for_proper_class
    ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None
    try:
        return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**IMAGE_PROCESSOR), tokenizer=tok)
    finally:
        ProcessorMixin.check_argument_for_proper_class = check


def build_qwen_edit(root: Path) -> Path:
    """build_qwen's files, the transformer also as ComfyUI names Qwen-Image-Edit's and 2509's (and as its 2511 file,
    with the __index_timestep_zero__ marker), and the
    Qwen/Qwen-Image-Edit folder (the same weights; its processor/ as the released one's)."""
    import os
    from diffusers import DiffusionPipeline
    build_qwen(root)
    from safetensors.torch import load_file, save_file
    dm = root / "models" / "diffusion_models"
    for name in ("qwen_image_edit_fp8_e4m3fn.safetensors", "qwen_image_edit_2509_fp8_e4m3fn.safetensors"):
        os.symlink(dm / "qwen_image_tiny_bf16.safetensors", dm / name)
    # Edit-2511 as ComfyUI ships it: the same tensors and the empty marker its model registers as a buffer
    state = load_file(str(dm / "qwen_image_tiny_bf16.safetensors"))
    save_file({**state, "__index_timestep_zero__": torch.empty(0)}, str(dm / "qwen_image_edit_2511_bf16.safetensors"))
    base = DiffusionPipeline.from_pretrained(str(root / "Qwen-Image"), local_files_only=True)
    for name, cls in (("Qwen-Image-Edit", "QwenImageEditPipeline"),):
        import diffusers
        folder = root / name
        getattr(diffusers, cls)(processor=None, **base.components).save_pretrained(str(folder),
                                                                                 safe_serialization=True)
        # its processor/ as the released folder's (save_pretrained cannot write one without a video processor)
        proc = edit_processor(base.tokenizer)
        proc.image_processor.save_pretrained(str(folder / "processor"))
        proc.tokenizer.save_pretrained(str(folder / "processor"))
        index = json.loads((folder / "model_index.json").read_text())
        index["processor"] = ["transformers", "Qwen2VLProcessor"]
        (folder / "model_index.json").write_text(json.dumps(index))
    return root


def controlnet(seed: int, layers: int = 1):
    """InstantX's Qwen-Image ControlNet's shape (QwenImageControlNetModel: Qwen-Image blocks reading the latent's tokens
    plus the control picture's) as wide as parts()'s transformer, every weight random (the released zero-initialised
    outputs would steer nothing)."""
    from diffusers import QwenImageControlNetModel
    _seed(seed)
    net = QwenImageControlNetModel(patch_size=2, in_channels=64, out_channels=16, num_layers=layers,
                                   attention_head_dim=HEAD, num_attention_heads=2, joint_attention_dim=128,
                                   axes_dims_rope=AXES)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return net.bfloat16().float().eval()
