"""Tiny random-weight NewBie-image files in the layouts ComfyUI users hold (Comfy-Org/NewBie-image-Exp0.1_repackaged):
  root/models/diffusion_models/newbie_tiny_bf16.safetensors  the NextDiT in its released names, model.diffusion_model.
  root/models/text_encoders/gemma3_4b_tiny_bf16.safetensors  Gemma 3 in transformers' names under model., a
                                                              sentencepiece model trained here as spiece_model
  root/models/text_encoders/jina_clip_v2_tiny_bf16.safetensors  Jina CLIP v2's text tower in ComfyUI's names under
                                                              model., its sentencepiece (XLM-R's ids: <s> 0, </s> 2)
  root/models/vae/ae.safetensors                               FLUX.1's VAE (tests/tiny_zimage.py's)

and the references: ComfyUI's NextDiT with NewBie's pooled input (comfy/ldm/lumina/model.py), its Jina CLIP v2
(comfy/text_encoders/jina_clip_2.py) and its NewBie conditioning (comfy/text_encoders/newbie.py: Gemma 3 4B's
next-to-last states, Jina's pooled output) written out here; Gemma 3 itself is transformers'. None of it is
Kinograph's code."""
from __future__ import annotations

import io
import math
from pathlib import Path

import torch
import torch.nn.functional as F

MODEL = "newbie_tiny_bf16.safetensors"
GEMMA_FILE, JINA_FILE = "gemma3_4b_tiny_bf16.safetensors", "jina_clip_v2_tiny_bf16.safetensors"
PREFIX = "model.diffusion_model."
DIT = dict(dim=48, heads=4, kv_heads=2, ffn=64, layers=2, refiners=1, channels=16, eps=1e-5)
GEMMA = dict(vocab=220, hidden=32, inter=48, layers=3, heads=2, kv_heads=1, head_dim=32)
JINA = dict(vocab=180, hidden=128, inter=96, layers=2, heads=2)
WORDS = ("You are an assistant designed to generate high-quality anime images with the highest degree of image-text "
         "alignment based on xml format textual prompts low-quality <Prompt Start> character girl blue hair witch hat "
         "a red fox in the snow")


def _r(*shape, s=0.2):
    return torch.randn(*shape) * s


# -- the transformer, ComfyUI's NextDiT (comfy/ldm/lumina/model.py) with clip_text_dim --------------------------------
def transformer_state(seed: int = 70) -> dict:
    d, h = DIT, DIT["dim"] // DIT["heads"]
    torch.manual_seed(seed)
    mod, cap, clip = min(d["dim"], 1024), GEMMA["hidden"], JINA["hidden"]
    sd = {"x_embedder.weight": _r(d["dim"], 4 * d["channels"]), "x_embedder.bias": _r(d["dim"]),
          "t_embedder.mlp.0.weight": _r(mod, 256), "t_embedder.mlp.0.bias": _r(mod),
          "t_embedder.mlp.2.weight": _r(mod, mod), "t_embedder.mlp.2.bias": _r(mod),
          "cap_embedder.0.weight": 1 + _r(cap), "cap_embedder.1.weight": _r(d["dim"], cap),
          "cap_embedder.1.bias": _r(d["dim"]),
          "clip_text_pooled_proj.0.weight": 1 + _r(clip), "clip_text_pooled_proj.1.weight": _r(clip, clip),
          "clip_text_pooled_proj.1.bias": _r(clip),
          "time_text_embed.1.weight": _r(mod, mod + clip), "time_text_embed.1.bias": _r(mod),
          "norm_final.weight": 1 + _r(d["dim"]),
          "final_layer.linear.weight": _r(4 * d["channels"], d["dim"]), "final_layer.linear.bias": _r(4 * d["channels"]),
          "final_layer.adaLN_modulation.1.weight": _r(d["dim"], mod),
          "final_layer.adaLN_modulation.1.bias": _r(d["dim"])}
    blocks = [(f"noise_refiner.{i}.", True) for i in range(d["refiners"])] + \
        [(f"context_refiner.{i}.", False) for i in range(d["refiners"])] + \
        [(f"layers.{i}.", True) for i in range(d["layers"])]
    for p, modulated in blocks:
        sd.update({p + "attention.qkv.weight": _r((d["heads"] + 2 * d["kv_heads"]) * h, d["dim"]),
                   p + "attention.out.weight": _r(d["dim"], d["dim"]),
                   p + "attention.q_norm.weight": 1 + _r(h), p + "attention.k_norm.weight": 1 + _r(h),
                   p + "feed_forward.w1.weight": _r(d["ffn"], d["dim"]),
                   p + "feed_forward.w2.weight": _r(d["dim"], d["ffn"]),
                   p + "feed_forward.w3.weight": _r(d["ffn"], d["dim"])})
        for n in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"):
            sd[p + n + ".weight"] = 1 + _r(d["dim"])
        if modulated:
            sd[p + "adaLN_modulation.1.weight"] = _r(4 * d["dim"], mod)
            sd[p + "adaLN_modulation.1.bias"] = _r(4 * d["dim"])
    return {k: v.bfloat16() for k, v in sd.items()}


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _lin(sd, name, x):
    return F.linear(x, sd[name + ".weight"], sd.get(name + ".bias"))


def _flux_rope(pos, dim, theta=10000.0):
    """comfy/ldm/flux/math.py rope: [..., L, dim/2, 2, 2]."""
    scale = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    omega = 1.0 / theta ** scale
    out = pos.double()[..., None] * omega
    out = torch.stack([out.cos(), -out.sin(), out.sin(), out.cos()], -1)
    return out.reshape(*out.shape[:-1], 2, 2).float()


def _apply_rotary(x, freqs):
    t_ = x.reshape(*x.shape[:-1], -1, 1, 2)
    return (freqs[..., 0] * t_[..., 0] + freqs[..., 1] * t_[..., 1]).reshape(*x.shape)


def _block(sd, p, x, freqs, adaln=None):
    d, h = DIT, DIT["dim"] // DIT["heads"]
    eps = d["eps"]

    def attention(y):
        b, n, _ = y.shape
        q, k, v = _lin(sd, p + "attention.qkv", y).split([d["heads"] * h, d["kv_heads"] * h, d["kv_heads"] * h], -1)
        q = _rms(q.view(b, n, d["heads"], h), sd[p + "attention.q_norm.weight"], 1e-6)
        k = _rms(k.view(b, n, d["kv_heads"], h), sd[p + "attention.k_norm.weight"], 1e-6)
        v = v.view(b, n, d["kv_heads"], h)
        q, k = _apply_rotary(q, freqs), _apply_rotary(k, freqs)
        rep = d["heads"] // d["kv_heads"]
        k = k.unsqueeze(3).repeat(1, 1, 1, rep, 1).flatten(2, 3)
        v = v.unsqueeze(3).repeat(1, 1, 1, rep, 1).flatten(2, 3)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return _lin(sd, p + "attention.out", o.transpose(1, 2).reshape(b, n, -1))

    def ff(y):
        return _lin(sd, p + "feed_forward.w2", F.silu(_lin(sd, p + "feed_forward.w1", y)) * _lin(sd, p + "feed_forward.w3", y))
    n1, n2 = sd[p + "attention_norm1.weight"], sd[p + "attention_norm2.weight"]
    f1, f2 = sd[p + "ffn_norm1.weight"], sd[p + "ffn_norm2.weight"]
    if adaln is None:
        x = x + _rms(attention(_rms(x, n1, eps)), n2, eps)
        return x + _rms(ff(_rms(x, f1, eps)), f2, eps)
    scale_msa, gate_msa, scale_mlp, gate_mlp = _lin(sd, p + "adaLN_modulation.1", F.silu(adaln)).chunk(4, 1)
    x = x + gate_msa.unsqueeze(1).tanh() * _rms(attention(_rms(x, n1, eps) * (1 + scale_msa.unsqueeze(1))), n2, eps)
    return x + gate_mlp.unsqueeze(1).tanh() * _rms(ff(_rms(x, f1, eps) * (1 + scale_mlp.unsqueeze(1))), f2, eps)


def reference(root: Path):
    """ComfyUI's NextDiT on the tiny file's weights (fp32): (x [1, C, h, w], sigma [1], context [1, L, cap],
    pooled [1, clip] or None) -> the model output ComfyUI's sampler reads (the negated prediction)."""
    from safetensors.torch import load_file
    sd = {k[len(PREFIX):]: v.float() for k, v in load_file(str(root / "models" / "diffusion_models" / MODEL)).items()}
    d, head = DIT, DIT["dim"] // DIT["heads"]
    axes = [head // 3] * 3

    def rope(pos):
        return torch.cat([_flux_rope(pos[..., i], axes[i]) for i in range(3)], -3).unsqueeze(1).movedim(1, 2)

    def model(x, sigma, context, pooled=None):
        t = 1.0 - sigma
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
        t_emb = _lin(sd, "t_embedder.mlp.2", F.silu(_lin(sd, "t_embedder.mlp.0", emb)))
        if pooled is not None:
            pooled = _lin(sd, "clip_text_pooled_proj.1", _rms(pooled, sd["clip_text_pooled_proj.0.weight"], d["eps"]))
        else:
            pooled = torch.zeros(x.shape[0], JINA["hidden"])
        adaln = _lin(sd, "time_text_embed.1", F.silu(torch.cat([t_emb, pooled], -1)))
        cap = _lin(sd, "cap_embedder.1", _rms(context, sd["cap_embedder.0.weight"], d["eps"]))
        b, c, H, W = x.shape
        cap_len, gh, gw = cap.shape[1], H // 2, W // 2
        pos = torch.zeros(b, cap_len + gh * gw, 3, dtype=torch.int32)
        pos[:, :cap_len, 0] = torch.arange(cap_len, dtype=torch.int32)
        pos[:, cap_len:, 0] = cap_len
        pos[:, cap_len:, 1] = torch.arange(gh, dtype=torch.int32).view(-1, 1).repeat(1, gw).flatten()
        pos[:, cap_len:, 2] = torch.arange(gw, dtype=torch.int32).view(1, -1).repeat(gh, 1).flatten()
        freqs_cis = rope(pos)
        for i in range(d["refiners"]):
            cap = _block(sd, f"context_refiner.{i}.", cap, freqs_cis[:, :cap_len])
        img = x.view(b, c, gh, 2, gw, 2).permute(0, 2, 4, 3, 5, 1).flatten(3).flatten(1, 2)
        img = _lin(sd, "x_embedder", img)
        for i in range(d["refiners"]):
            img = _block(sd, f"noise_refiner.{i}.", img, freqs_cis[:, cap_len:], adaln)
        seq = torch.cat([cap, img], 1)
        for i in range(d["layers"]):
            seq = _block(sd, f"layers.{i}.", seq, freqs_cis, adaln)
        scale = _lin(sd, "final_layer.adaLN_modulation.1", F.silu(adaln))
        out = F.layer_norm(seq, (d["dim"],), eps=1e-6) * (1 + scale.unsqueeze(1))
        out = _lin(sd, "final_layer.linear", out)[:, cap_len:]
        out = out.view(b, gh, gw, 2, 2, c).permute(0, 5, 1, 3, 2, 4).flatten(3, 4).flatten(1, 2)
        return -out.reshape(b, c, H, W)
    return model


# -- Gemma 3 (transformers' Gemma3TextModel) and Jina CLIP v2 (comfy/text_encoders/jina_clip_2.py) ---------------------
def gemma_config():
    from transformers import Gemma3TextConfig
    g = GEMMA
    return Gemma3TextConfig(
        vocab_size=g["vocab"], hidden_size=g["hidden"], intermediate_size=g["inter"], num_hidden_layers=g["layers"],
        num_attention_heads=g["heads"], num_key_value_heads=g["kv_heads"], head_dim=g["head_dim"],
        query_pre_attn_scalar=g["head_dim"], rms_norm_eps=1e-6, sliding_window=1024, max_position_embeddings=131072,
        hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=None, final_logit_softcapping=None,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})


def _spiece(**ids) -> bytes:
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([WORDS] * 20), model_writer=model, minloglevel=2, **ids)
    return model.getvalue()


def gemma_spiece() -> bytes:
    return _spiece(vocab_size=GEMMA["vocab"], model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                   pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", add_dummy_prefix=False,
                   normalization_rule_name="identity", remove_extra_whitespaces=False)


def jina_spiece() -> bytes:
    return _spiece(vocab_size=60, hard_vocab_limit=False, model_type="unigram", bos_id=0, pad_id=1, eos_id=2, unk_id=3)


def jina_state(seed: int = 72) -> dict:
    j = JINA
    torch.manual_seed(seed)
    sd = {"embeddings.word_embeddings.weight": _r(j["vocab"], j["hidden"], s=1.0),
          "embeddings.token_type_embeddings.weight": _r(1, j["hidden"]),
          "emb_ln.weight": 1 + _r(j["hidden"]), "emb_ln.bias": _r(j["hidden"])}
    for n in range(j["layers"]):
        p = f"encoder.layers.{n}."
        sd.update({p + "mixer.Wqkv.weight": _r(3 * j["hidden"], j["hidden"]), p + "mixer.Wqkv.bias": _r(3 * j["hidden"]),
                   p + "mixer.out_proj.weight": _r(j["hidden"], j["hidden"]), p + "mixer.out_proj.bias": _r(j["hidden"]),
                   p + "norm1.weight": 1 + _r(j["hidden"]), p + "norm1.bias": _r(j["hidden"]),
                   p + "mlp.fc1.weight": _r(j["inter"], j["hidden"]), p + "mlp.fc1.bias": _r(j["inter"]),
                   p + "mlp.fc2.weight": _r(j["hidden"], j["inter"]), p + "mlp.fc2.bias": _r(j["hidden"]),
                   p + "norm2.weight": 1 + _r(j["hidden"]), p + "norm2.bias": _r(j["hidden"])})
    return {k: v.bfloat16() for k, v in sd.items()}


def comfy_jina(sd: dict, ids: torch.Tensor) -> torch.Tensor:
    """ComfyUI's XLMRobertaModel_ on ids [1, S] (its mask all ones): the mean-pooled output [1, hidden]."""
    j = JINA
    x = F.embedding(ids, sd["embeddings.word_embeddings.weight"])
    x = x + sd["embeddings.token_type_embeddings.weight"][torch.zeros(ids.shape[1], dtype=torch.long)]
    x = F.layer_norm(x, (j["hidden"],), sd["emb_ln.weight"], sd["emb_ln.bias"], 1e-5)
    head = j["hidden"] // j["heads"]
    inv_freq = 1.0 / (20000.0 ** (torch.arange(0, head, 2, dtype=torch.float32) / head))
    S = ids.shape[1]
    freqs = torch.outer(torch.arange(S, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos().view(1, S, 1, head), emb.sin().view(1, S, 1, head)

    def rot(t):
        return torch.cat((-t[..., head // 2:], t[..., :head // 2]), -1)
    for n in range(j["layers"]):
        p = f"encoder.layers.{n}."
        q, k, v = _lin(sd, p + "mixer.Wqkv", x).view(1, S, 3, j["heads"], head).unbind(2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        a = _lin(sd, p + "mixer.out_proj", a.transpose(1, 2).reshape(1, S, -1))
        x = F.layer_norm(a + x, (j["hidden"],), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-5)
        m = _lin(sd, p + "mlp.fc2", F.gelu(_lin(sd, p + "mlp.fc1", x)))
        x = F.layer_norm(m + x, (j["hidden"],), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-5)
    return x.mean(1)


def reference_text(root: Path, text: str, jina_parts=None):
    """ComfyUI's NewBie conditioning of `text`: (Gemma 3's next-to-last states [1, L, hidden], Jina's pooled [1, 128]).
    Gemma reads the text as written (weights off); Jina each of `jina_parts`, the pieces sd1_clip's token_weights
    splits a weighted prompt into (the text itself where it has no brackets)."""
    import sentencepiece as spm
    from safetensors.torch import load_file
    from transformers import Gemma3TextModel
    te = root / "models" / "text_encoders"
    g = load_file(str(te / GEMMA_FILE))
    sp = spm.SentencePieceProcessor(model_proto=bytes(g.pop("spiece_model").tolist()))
    gemma = Gemma3TextModel(gemma_config()).eval()
    gemma.load_state_dict({k[len("model."):]: v.float() for k, v in g.items()})
    with torch.no_grad():
        states = gemma(input_ids=torch.tensor([[sp.bos_id()] + sp.encode(text)]),
                       output_hidden_states=True).hidden_states[-2]
    j = load_file(str(te / JINA_FILE))
    jsp = spm.SentencePieceProcessor(model_proto=bytes(j.pop("spiece_model").tolist()))
    ids = torch.tensor([[0] + [i for part in (jina_parts or [text]) for i in jsp.encode(part)] + [2]])
    return states, comfy_jina({k[len("model."):]: v.float() for k, v in j.items()}, ids)


def build_newbie(root: Path) -> Path:
    """The three NewBie files beside Z-Image's tiny ones (its FLUX.1 ae.safetensors is NewBie's VAE)."""
    from safetensors.torch import save_file
    from transformers import Gemma3TextModel
    from tiny_zimage import build_zimage
    build_zimage(root)
    models = root / "models"
    save_file({PREFIX + k: v.contiguous() for k, v in transformer_state().items()},
              str(models / "diffusion_models" / MODEL))
    torch.manual_seed(71)
    gemma = Gemma3TextModel(gemma_config())
    with torch.no_grad():
        for name, p in gemma.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0, 0.2)
    g = {"model." + k: v.bfloat16().contiguous() for k, v in gemma.state_dict().items()}
    g["spiece_model"] = torch.frombuffer(bytearray(gemma_spiece()), dtype=torch.uint8)
    save_file(g, str(models / "text_encoders" / GEMMA_FILE))
    j = {"model." + k: v.contiguous() for k, v in jina_state().items()}
    j["spiece_model"] = torch.frombuffer(bytearray(jina_spiece()), dtype=torch.uint8)
    save_file(j, str(models / "text_encoders" / JINA_FILE))
    return root
