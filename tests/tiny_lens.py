"""A tiny random-weight Lens in the layout ComfyUI users hold it (Comfy-Org/Lens), every file under a name of its own
that the tests link to the names ComfyUI's Lens templates ask for:

  root/models/diffusion_models/lens_tiny_bf16.safetensors        the transformer in ComfyUI's names
                      (tests/lens_reference.py's) under model.diffusion_model., bf16; lens_turbo_tiny_bf16 another one
  root/models/text_encoders/gpt_oss_tiny_bf16.safetensors        GPT-OSS as ComfyUI's gpt_oss.py reads it: the decoder
                      under model., the experts as banks ([experts, out, in]), its tokenizer.json's bytes as
                      tokenizer_json (a byte-level tokenizer with Harmony's special tokens), bf16. The released file is
                      NVFP4 (gpt_oss_20b_nvfp4); test_lens quantises this one so (tests/comfy_blockquant.py).
  root/models/vae/flux2-vae.safetensors                          FLUX.2's VAE (tests/tiny_flux2.py's)

Widths are tiny; the structure is the released models': 128 latent channels, heads split 8 + rows + columns for the
rotary angles, GPT-OSS's 24 layers (Lens reads 5, 11, 17, 23) of alternating sliding and full attention with sinks,
routed experts (4 of 6 per token)."""
from __future__ import annotations

from pathlib import Path

import torch

from lens_reference import ComfyLens
from tiny_flux2 import parts as flux2_parts, save_vae
from tiny_models import _bytes_to_unicode, _seed

BASE, TURBO = "lens_tiny_bf16.safetensors", "lens_turbo_tiny_bf16.safetensors"
TE = "gpt_oss_tiny_bf16.safetensors"
PREFIX = "model.diffusion_model."
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, EXPERTS = 32, 4, 2, 8, 6
SPECIAL = ("<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|endoftext|>")


def transformer(seed: int) -> ComfyLens:
    _seed(seed)
    model = ComfyLens(in_channels=128, out_channels=32, layers=2, head=16, heads=2, enc=HIDDEN, text_layers=4,
                      axes=(8, 4, 4))
    with torch.no_grad():       # norms start at one: random ones show whether each is read, and from where
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def tokenizer_json() -> bytes:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(_bytes_to_unicode())}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    return tok.to_str().encode("utf-8")


def gpt_oss_file() -> dict:
    """GPT-OSS's tensors in the file's names (model.layers.N..., expert banks [experts, out, in]), bf16-rounded."""
    _seed(40)
    vocab = 256 + len(SPECIAL)
    sd = {"model.embed_tokens.weight": torch.randn(vocab, HIDDEN), "model.norm.weight": 1 + 0.1 * torch.randn(HIDDEN)}
    inner = 24
    for n in range(24):
        p = f"model.layers.{n}."
        r = lambda *s, scale=0.2: torch.randn(*s) * scale  # noqa: E731
        sd.update({p + "input_layernorm.weight": 1 + r(HIDDEN, scale=0.1),
                   p + "post_attention_layernorm.weight": 1 + r(HIDDEN, scale=0.1),
                   p + "self_attn.q_proj.weight": r(HEADS * HEAD_DIM, HIDDEN), p + "self_attn.q_proj.bias": r(HEADS * HEAD_DIM),
                   p + "self_attn.k_proj.weight": r(KV_HEADS * HEAD_DIM, HIDDEN),
                   p + "self_attn.k_proj.bias": r(KV_HEADS * HEAD_DIM),
                   p + "self_attn.v_proj.weight": r(KV_HEADS * HEAD_DIM, HIDDEN),
                   p + "self_attn.v_proj.bias": r(KV_HEADS * HEAD_DIM),
                   p + "self_attn.o_proj.weight": r(HIDDEN, HEADS * HEAD_DIM), p + "self_attn.o_proj.bias": r(HIDDEN),
                   p + "self_attn.sinks": r(HEADS, scale=1.0),
                   p + "mlp.router.weight": r(EXPERTS, HIDDEN, scale=1.0), p + "mlp.router.bias": r(EXPERTS),
                   p + "mlp.experts.gate_up_proj.weight": r(EXPERTS, 2 * inner, HIDDEN),
                   p + "mlp.experts.gate_up_proj.bias": r(EXPERTS, 2 * inner),
                   p + "mlp.experts.down_proj.weight": r(EXPERTS, HIDDEN, inner),
                   p + "mlp.experts.down_proj.bias": r(EXPERTS, HIDDEN)})
    return {k: v.bfloat16() for k, v in sd.items()}


def build_lens(root: Path) -> Path:
    from safetensors.torch import save_file
    models = root / "models"
    for sub in ("diffusion_models", "vae", "text_encoders"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    for name, seed in ((BASE, 50), (TURBO, 51)):
        sd = {PREFIX + k: v.bfloat16().contiguous() for k, v in transformer(seed).state_dict().items()}
        save_file(sd, str(models / "diffusion_models" / name))
    _, vae, _ = flux2_parts()
    save_vae(vae, models / "vae" / "flux2-vae.safetensors")
    vae.save_pretrained(str(root / "reference" / "vae"))
    te = gpt_oss_file()
    te["tokenizer_json"] = torch.frombuffer(bytearray(tokenizer_json()), dtype=torch.uint8)
    save_file(te, str(models / "text_encoders" / TE))
    return root


def reference(root: Path, name: str) -> ComfyLens:
    """The reference transformer holding what the file `name` reads back as."""
    from safetensors.torch import load_file
    model = transformer(50 if name == BASE else 51)
    state = load_file(str(root / "models" / "diffusion_models" / name))
    model.load_state_dict({k[len(PREFIX):]: v.float() for k, v in state.items()})
    return model


def reference_states(root: Path, prompt: str) -> torch.Tensor:
    """ComfyUI's Lens conditioning of `prompt` on the tiny GPT-OSS (tests/lens_reference.py): [1, S, 4 * width]."""
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from lens_reference import gpt_oss_layers, lens_render_chat
    if not prompt.strip():
        return torch.zeros(1, 0, 4 * HIDDEN)
    state = load_file(str(root / "models" / "text_encoders" / TE))
    tok = Tokenizer.from_str(bytes(state.pop("tokenizer_json").tolist()).decode("utf-8"))
    sd = {k[len("model."):]: v.float() for k, v in state.items()}
    ids = tok.encode(lens_render_chat(prompt), add_special_tokens=False).ids[:512]
    with torch.no_grad():
        layers = gpt_oss_layers(sd, torch.tensor(ids), (5, 11, 17, 23), HEADS, KV_HEADS, HEAD_DIM)
    return torch.stack(layers, dim=1)[97:].reshape(1, -1, 4 * HIDDEN)
