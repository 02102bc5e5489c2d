"""Jina CLIP v2's text tower (NewBie-image's second text encoder; ComfyUI's text_encoders/jina_clip_v2_bf16.safetensors)
in that file's names under model.: Jina's XLM-RoBERTa (token and token-type embeddings, a LayerNorm, then post-norm
blocks of fused q/k/v attention turned by rotary positions (base 20000, halves rotated) and a GELU MLP). NewBie reads
only its pooled output: the mean of the last states over the prompt's tokens, <s> and </s> included.

Its sentencepiece model is in the file too (spiece_model); the prompt is read as ComfyUI's JinaClip2Tokenizer reads
it: the model's own <s> first, the pieces of each part of the prompt ComfyUI's weight parser splits it into
(prompts.comfy_parts: brackets and weights are markup, each part tokenized on its own; the weights do not reach the
pooled output), then token 2 (</s>)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

END = 2                 # </s>, ComfyUI's end token for it
ROPE_BASE = 20000.0
HEAD = 64               # the released tower's head width (1024 wide, 16 heads); the file does not state it
EPS = 1e-5


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mixer = nn.Module()
        self.mixer.Wqkv = nn.Linear(dim, 3 * dim)
        self.mixer.out_proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)

    def forward(self, x, cos, sin):
        b, n, d = x.shape
        q, k, v = self.mixer.Wqkv(x).view(b, n, 3, d // HEAD, HEAD).unbind(2)

        def turned(t):
            half = torch.cat([-t[..., HEAD // 2:], t[..., :HEAD // 2]], -1)
            return (t * cos + half * sin).transpose(1, 2)
        a = F.scaled_dot_product_attention(turned(q), turned(k), v.transpose(1, 2))
        x = self.norm1(self.mixer.out_proj(a.transpose(1, 2).reshape(b, n, d)) + x)
        return self.norm2(self.mlp.fc2(F.gelu(self.mlp.fc1(x))) + x)


class JinaClip2Text(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, vocab_size: int = 250002, hidden_size: int = 1024, intermediate_size: int = 4096,
                 num_hidden_layers: int = 24):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.embeddings.token_type_embeddings = nn.Embedding(1, hidden_size)
        self.emb_ln = nn.LayerNorm(hidden_size, eps=EPS)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(Block(hidden_size, intermediate_size) for _ in range(num_hidden_layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, S] (no padding) -> the pooled prompt [B, hidden]: the mean of the last states."""
        x = self.embeddings.word_embeddings(ids) + self.embeddings.token_type_embeddings.weight[0]
        x = self.emb_ln(x)
        inv = 1.0 / ROPE_BASE ** (torch.arange(0, HEAD, 2, dtype=torch.float32, device=ids.device) / HEAD)
        ang = torch.arange(ids.shape[1], dtype=torch.float32, device=ids.device)[:, None] * inv
        ang = torch.cat([ang, ang], -1)[None, :, None]
        cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
        for blk in self.encoder.layers:
            x = blk(x, cos, sin)
        return x.mean(1)


class JinaTokenizer:
    """ComfyUI's JinaClip2Tokenizer on the sentencepiece model stored in the file: sentencepiece's <s>, the prompt's
    pieces, token 2."""
    def __init__(self, data: bytes):
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_proto=data)

    def ids(self, text: str) -> list:
        from nodes.generate.prompts import comfy_parts
        return [self.sp.bos_id()] + [i for part, _ in comfy_parts(text) for i in self.sp.encode(part)] + [END]


def pooled(encoder: JinaClip2Text, tokenizer: JinaTokenizer, prompt: str, device) -> torch.Tensor:
    """[hidden]: the pooled output of one prompt."""
    ids = torch.tensor([tokenizer.ids(prompt)], device=device)
    return encoder(ids)[0]
