"""ACE-Step 1.5 (text and lyrics to a song: 48 kHz stereo, up to 10 minutes) from the files ComfyUI users have: the
diffusion model (diffusion_models/acestep_v1.5_*.safetensors, ComfyUI's names: decoder., encoder., tokenizer.,
detokenizer., null_condition_emb), Qwen3-0.6B (text_encoders/qwen_0.6b_ace15.safetensors) that reads the caption
and lyrics, the 5 Hz language model (qwen_1.7b_ace15 / qwen_4b_ace15) that writes the song's audio codes, and the
Oobleck VAE (vae/ace_1.5_vae.safetensors, stable-audio-tools' names). The weights run in diffusers'
AceStepTransformer1DModel, AceStepConditionEncoder, AceStepAudioTokenizer / AceStepAudioTokenDetokenizer and
AutoencoderOobleck, and transformers' Qwen3.

Made as ComfyUI makes it (comfy/text_encoders/ace15.py, comfy/ldm/ace/ace_step15.py, model_base.ACEStep15):
EmptyAceStep1.5LatentAudio's length (25 latent frames a second), the caption and metas in its prompt template, the
lyrics' token embeddings, the codes drawn by its seeded loop, the silence latent as timbre and as the source when no
codes are drawn, ConditioningZeroOut's negative as the model's null embedding, plain CFG (KSampler's), flow matching
with ModelSamplingAuraFlow's shift, then VAEDecodeAudio's loudness rule."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from graph_engine import NodeError
from nodes.generate.audio_nodes import ACE_SCHEDULERS as SCHEDULERS
from nodes.generate.converters import check_claim, count
from nodes.generate.stable_audio import loudness
from nodes.generate.textgen import context_of
from nodes.generate.weights import misfit, sizes_of

RATE = 48000                # the VAE's sample rate
HOP = 1920                  # samples per latent frame (strides 2 x 4 x 4 x 6 x 10)
POOL = 5                    # latent frames per audio code (5 codes a second)
PAD_CODE = 35847            # ComfyUI pads codes shorter than the latent with this one
NOT_ACE = ("{name} is not an ACE-Step 1.5 {what} ({why}): give {want}")
# ComfyUI's get_silence_latent (comfy/ldm/ace/ace_step15.py): the VAE latent of silence, 64 channels; its first
# four frames differ (the decoder's warm-up), every later frame is the last row
SILENCE_HEAD = (
    (0.5707, 0.0982, 0.6909, -0.5658, 0.6266, 0.6996, -0.1365, -0.1291, -0.0776, -0.1171, -0.2743, -0.8422, -0.1168,
     1.5539, -4.6936, 0.7436, -1.1846, -0.2637, 0.6933, -6.7266, 0.0966, -0.1187, -0.3501, -1.1736, 0.0587, -2.0517,
     -1.3651, 0.7508, -0.2490, -1.3548, -0.1290, -0.7261, 1.1132, -0.3249, 0.2337, 0.3004, 0.6605, -0.0298, -0.1989,
     -0.4041, 0.2843, -1.0963, -0.5519, 0.2639, -1.0436, -0.1183, 0.0640, 0.4460, -1.1001, -0.6172, -1.3241, 1.1379,
     0.5623, -0.1507, -0.1963, -0.4742, -2.4697, 0.5302, 0.5381, 0.4636, -0.1782, -0.0687, 1.0333, 0.4202),
    (0.3040, -0.1367, 0.6200, 0.0665, -0.0642, 0.4655, -0.1187, -0.0440, 0.2941, -0.2753, 0.0173, -0.2421, -0.0147,
     1.5603, -2.7025, 0.7907, -0.9736, -0.0682, 0.1294, -5.0707, -0.2167, 0.3302, -0.1513, -0.8100, -0.3894, -0.2884,
     -0.3149, 0.8660, -0.3817, -1.7061, 0.5824, -0.4840, 0.6938, 0.1859, 0.1753, 0.3081, 0.0195, 0.1403, -0.0754,
     -0.2091, 0.1251, -0.1578, -0.4968, -0.1052, -0.4554, -0.0320, 0.1284, 0.4974, -1.1889, -0.0344, -0.8313, 0.2953,
     0.5445, -0.6249, -0.1595, -0.0682, -3.1412, 0.0484, 0.4153, 0.8260, -0.1526, -0.0625, 0.5366, 0.8473),
    (5.3524e-02, -1.7534e-01, 5.4443e-01, -4.3501e-01, -2.1317e-03, 3.7200e-01, -4.0143e-03, -1.5516e-01, -1.2968e-01,
     -1.5375e-01, -7.7107e-02, -2.0593e-01, -3.2780e-01, 1.5142e+00, -2.6101e+00, 5.8698e-01, -1.2716e+00, -2.4773e-01,
     -2.7933e-02, -5.0799e+00, 1.1601e-01, 4.0987e-01, -2.2030e-02, -6.6495e-01, -2.0995e-01, -6.3474e-01, -1.5893e-01,
     8.2745e-01, -2.2992e-01, -1.6816e+00, 5.4440e-01, -4.9579e-01, 5.5128e-01, 3.0477e-01, 8.3052e-02, -6.1782e-02,
     5.9036e-03, 2.9553e-01, -8.0645e-02, -1.0060e-01, 1.9144e-01, -3.8124e-01, -7.2949e-01, 2.4520e-02, -5.0814e-01,
     2.3977e-01, 9.2943e-02, 3.9256e-01, -1.1993e+00, -3.2752e-01, -7.2707e-01, 2.9476e-01, 4.3542e-01, -8.8597e-01,
     -4.1686e-01, -8.5390e-02, -2.9018e+00, 6.4988e-02, 5.3945e-01, 9.1988e-01, 5.8762e-02, -7.0098e-02, 6.4772e-01,
     8.9118e-01),
    (-3.2225e-02, -1.3195e-01, 5.6411e-01, -5.4766e-01, -5.2170e-03, 3.1425e-01, -5.4367e-02, -1.9419e-01, -1.3059e-01,
     -1.3660e-01, -9.0984e-02, -1.9540e-01, -2.5590e-01, 1.5440e+00, -2.6349e+00, 6.8273e-01, -1.2532e+00, -1.9810e-01,
     -2.2793e-02, -5.0506e+00, 1.8818e-01, 5.0109e-01, 7.3546e-03, -6.8771e-01, -3.0676e-01, -7.3257e-01, -1.6687e-01,
     9.2232e-01, -1.8987e-01, -1.7267e+00, 5.3355e-01, -5.3179e-01, 4.4953e-01, 2.8820e-01, 1.3012e-01, -2.0943e-01,
     -1.1348e-01, 3.3929e-01, -1.5069e-01, -1.2919e-01, 1.8929e-01, -3.6166e-01, -8.0756e-01, 6.6387e-02, -5.8867e-01,
     1.6978e-01, 1.0134e-01, 3.3877e-01, -1.2133e+00, -3.2492e-01, -8.1237e-01, 3.8101e-01, 4.3765e-01, -8.0596e-01,
     -4.4531e-01, -4.7513e-02, -2.9266e+00, 1.1741e-03, 4.5123e-01, 9.3075e-01, 5.3688e-02, -1.9621e-01, 6.4530e-01,
     9.3870e-01))
SILENCE_FRAME = (
    -1.3672e-01, -1.5820e-01, 5.8594e-01, -5.7422e-01, 3.0273e-02, 2.7930e-01, -2.5940e-03, -2.0703e-01, -1.6113e-01,
    -1.4746e-01, -2.7710e-02, -1.8066e-01, -2.9688e-01, 1.6016e+00, -2.6719e+00, 7.7734e-01, -1.3516e+00, -1.9434e-01,
    -7.1289e-02, -5.0938e+00, 2.4316e-01, 4.7266e-01, 4.6387e-02, -6.6406e-01, -2.1973e-01, -6.7578e-01, -1.5723e-01,
    9.5312e-01, -2.0020e-01, -1.7109e+00, 5.8984e-01, -5.7422e-01, 5.1562e-01, 2.8320e-01, 1.4551e-01, -1.8750e-01,
    -5.9814e-02, 3.6719e-01, -1.0059e-01, -1.5723e-01, 2.0605e-01, -4.3359e-01, -8.2812e-01, 4.5654e-02, -6.6016e-01,
    1.4844e-01, 9.4727e-02, 3.8477e-01, -1.2578e+00, -3.3203e-01, -8.5547e-01, 4.3359e-01, 4.2383e-01, -8.9453e-01,
    -5.0391e-01, -5.6152e-02, -2.9219e+00, -2.4658e-02, 5.0391e-01, 9.8438e-01, 7.2754e-02, -2.1582e-01, 6.3672e-01,
    1.0000e+00)


def latent_frames(seconds: float) -> int:
    """ComfyUI's EmptyAceStep1.5LatentAudio: round(seconds * 48000 / 1920) frames."""
    return int(round(seconds * RATE / HOP))


def silence(frames: int) -> torch.Tensor:
    """ComfyUI's silence latent [1, frames, 64]."""
    out = torch.tensor(SILENCE_FRAME).repeat(frames, 1)
    head = torch.tensor(SILENCE_HEAD)[:frames]
    out[:len(head)] = head
    return out[None]


# -- ComfyUI's names -> diffusers' ------------------------------------------------------------------------------------
_ATTN = (("self_attn.q_proj.", "self_attn.to_q."), ("self_attn.k_proj.", "self_attn.to_k."),
         ("self_attn.v_proj.", "self_attn.to_v."), ("self_attn.o_proj.", "self_attn.to_out.0."),
         ("self_attn.q_norm.", "self_attn.norm_q."), ("self_attn.k_norm.", "self_attn.norm_k."),
         ("cross_attn.q_proj.", "cross_attn.to_q."), ("cross_attn.k_proj.", "cross_attn.to_k."),
         ("cross_attn.v_proj.", "cross_attn.to_v."), ("cross_attn.o_proj.", "cross_attn.to_out.0."),
         ("cross_attn.q_norm.", "cross_attn.norm_q."), ("cross_attn.k_norm.", "cross_attn.norm_k."),
         ("proj_in.1.", "proj_in_conv."), ("proj_out.1.", "proj_out_conv."))


def _prefix(state: dict) -> str:
    """The diffusion model's prefix in its file: none in the split file, model.diffusion_model. in a checkpoint."""
    for key in state:
        if key.endswith("decoder.condition_embedder.weight"):
            return key[:-len("decoder.condition_embedder.weight")]
    return ""


def model_parts(state: dict, name: str) -> dict:
    """{part: (config, state dict)} for diffusers' transformer, condition_encoder, audio_tokenizer and
    audio_token_detokenizer from ComfyUI's tensors; sizes read from the tensors (ComfyUI's pooler and detokenizer
    have 16 heads, 8 of them for keys and values, and MLPs three times as wide)."""
    pre = _prefix(state)
    if pre + "decoder.condition_embedder.weight" not in state:
        raise NodeError(NOT_ACE.format(name=name, what="diffusion model", why="no decoder.condition_embedder",
                                       want="acestep_v1.5_turbo.safetensors (or an xl one) from diffusion_models/"))
    parts = {"transformer": {}, "condition_encoder": {}, "audio_tokenizer": {}, "audio_token_detokenizer": {}}
    where = {"decoder.": "transformer", "encoder.": "condition_encoder", "tokenizer.": "audio_tokenizer",
             "detokenizer.": "audio_token_detokenizer"}
    for key, v in state.items():
        if not key.startswith(pre):
            continue
        key = key[len(pre):]
        if key == "null_condition_emb":
            parts["condition_encoder"][key] = v
            continue
        head = next((h for h in where if key.startswith(h)), None)
        if head is None:
            continue
        key = key[len(head):]
        for a, b in _ATTN:
            key = key.replace(a, b)
        parts[where[head]][key] = v
    dit, enc = parts["transformer"], parts["condition_encoder"]
    head_dim = int(dit["layers.0.self_attn.norm_q.weight"].shape[0])
    hidden = int(dit["condition_embedder.weight"].shape[0])

    def attn(sd, pre):
        return dict(num_attention_heads=int(sd[pre + "self_attn.to_q.weight"].shape[0]) // head_dim,
                    num_key_value_heads=int(sd[pre + "self_attn.to_k.weight"].shape[0]) // head_dim,
                    intermediate_size=int(sd[pre + "mlp.gate_proj.weight"].shape[0]), head_dim=head_dim)

    layers = count(dit, "layers.{}.")
    cfg = {"transformer": dict(hidden_size=hidden, num_hidden_layers=layers, in_channels=int(
        dit["proj_in_conv.weight"].shape[1]), audio_acoustic_hidden_dim=int(dit["proj_out_conv.weight"].shape[1]),
        patch_size=int(dit["proj_in_conv.weight"].shape[2]), **attn(dit, "layers.0.")),
        "condition_encoder": dict(hidden_size=int(enc["text_projector.weight"].shape[0]),
                                  text_hidden_dim=int(enc["text_projector.weight"].shape[1]),
                                  timbre_hidden_dim=int(enc["timbre_encoder.embed_tokens.weight"].shape[1]),
                                  num_lyric_encoder_hidden_layers=count(enc, "lyric_encoder.layers.{}."),
                                  num_timbre_encoder_hidden_layers=count(enc, "timbre_encoder.layers.{}."),
                                  **attn(enc, "lyric_encoder.layers.0."))}
    # ComfyUI's lyric and timbre encoders attend to every token (no sliding window)
    cfg["condition_encoder"]["layer_types"] = ["full_attention"] * max(
        cfg["condition_encoder"]["num_lyric_encoder_hidden_layers"],
        cfg["condition_encoder"]["num_timbre_encoder_hidden_layers"])
    if cfg["condition_encoder"]["hidden_size"] != hidden:
        cfg["transformer"]["encoder_hidden_size"] = cfg["condition_encoder"]["hidden_size"]
    tok, detok = parts["audio_tokenizer"], parts["audio_token_detokenizer"]
    pooler = dict(hidden_size=int(detok["embed_tokens.weight"].shape[0]), **attn(detok, "layers.0."))
    cfg["audio_tokenizer"] = dict(audio_acoustic_hidden_dim=int(tok["audio_acoustic_proj.weight"].shape[1]),
                                  pool_window_size=POOL, fsq_dim=int(tok["quantizer.project_in.weight"].shape[1]),
                                  num_attention_pooler_hidden_layers=count(tok, "attention_pooler.layers.{}."), **pooler)
    cfg["audio_token_detokenizer"] = dict(audio_acoustic_hidden_dim=int(detok["proj_out.weight"].shape[0]),
                                          pool_window_size=int(detok["special_tokens"].shape[1]),
                                          num_attention_pooler_hidden_layers=count(detok, "layers.{}."), **pooler)
    return {k: (cfg[k], parts[k]) for k in parts}


def vae_part(state: dict, name: str):
    """(AutoencoderOobleck's config, its state dict) from ace_1.5_vae.safetensors (stable-audio-tools' names at the
    top level, or under vae. in a checkpoint), at 48 kHz."""
    from nodes.generate.stable_audio import vae_weights
    for pre in ("", "vae.", "first_stage_model."):
        if {pre + "decoder.layers.0.weight_v", pre + "decoder.layers.0.parametrizations.weight.original1"} & set(state):
            return vae_weights(state, name, prefix=pre, rate=RATE)
    raise NodeError(NOT_ACE.format(name=name, what="VAE", why="no Oobleck decoder.layers",
                                   want="ace_1.5_vae.safetensors from vae/"))


def qwen3(state: dict, name: str, head: bool):
    """transformers' Qwen3 (the encoder, or with `head` the language model) from ComfyUI's model.* tensors; sizes
    from the tensors, the head tied to the embeddings where the file has none."""
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model
    if "model.embed_tokens.weight" not in state or "model.layers.0.self_attn.q_norm.weight" not in state:
        raise NodeError(NOT_ACE.format(name=name, what="Qwen3 text encoder", why="no model.layers.*.q_norm",
                                       want="qwen_0.6b_ace15.safetensors and qwen_1.7b_ace15 (or qwen_4b_ace15) from "
                                            "text_encoders/"))
    vocab, hidden = state["model.embed_tokens.weight"].shape
    head_dim = int(state["model.layers.0.self_attn.q_norm.weight"].shape[0])
    tied = "lm_head.weight" not in state
    cfg = Qwen3Config(vocab_size=int(vocab), hidden_size=int(hidden), head_dim=head_dim,
                      num_hidden_layers=count(state, "model.layers.{}."),
                      num_attention_heads=int(state["model.layers.0.self_attn.q_proj.weight"].shape[0]) // head_dim,
                      num_key_value_heads=int(state["model.layers.0.self_attn.k_proj.weight"].shape[0]) // head_dim,
                      intermediate_size=int(state["model.layers.0.mlp.gate_proj.weight"].shape[0]),
                      rms_norm_eps=1e-6, rope_theta=1000000.0, max_position_embeddings=40960,
                      tie_word_embeddings=tied)
    cls, sd = (Qwen3ForCausalLM, state) if head else \
        (Qwen3Model, {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    check_claim(lambda: cls(cfg), sd, name)
    module = cls(cfg)
    why = misfit(module, sd, ("lm_head.weight",) if tied else ())
    if why:
        raise NodeError(f"{name}: its tensors do not match Qwen3's ({why})")
    return module.eval()


@dataclass(frozen=True, eq=False)
class AceStep:
    transformer: object
    condition_encoder: object
    audio_tokenizer: object
    detokenizer: object
    vae: object
    text_encoder: object
    lm: Optional[object]
    tokenizer: object
    device: str


# ComfyUI's all-in-one checkpoint (ace_step_1.5_*_aio; comfy/supported_models.py ACEStep15): the diffusion model
# under model.diffusion_model., the VAE under vae., Qwen3-0.6B and the language model (1.7B or 4B) under these
AIO_ENCODER = "text_encoders.qwen3_06b.transformer."
AIO_LMS = ("text_encoders.qwen3_2b.transformer.", "text_encoders.qwen3_4b.transformer.")


def aio_encoders(state: dict, name: str, lm: bool):
    """(Qwen3-0.6B's, the language model's or None) tensors from an all-in-one checkpoint, in the split files' names;
    the language model only where `lm`."""
    def under(pre):
        return {k[len(pre):]: v for k, v in state.items() if k.startswith(pre)}
    encoder = under(AIO_ENCODER)
    if not encoder:
        raise NodeError(NOT_ACE.format(name=name, what="all-in-one checkpoint", why=f"no {AIO_ENCODER}*",
                                       want="ace_step_1.5_turbo_aio.safetensors from checkpoints/, or the split "
                                            "files as diffusion_model, text_encoder, lm and vae"))
    writer = next((sd for sd in map(under, AIO_LMS) if sd), None) if lm else None
    if lm and writer is None:
        raise NodeError(f"{name} holds no language model ({' or '.join(p + '*' for p in AIO_LMS)}): turn "
                        "generate_audio_codes off, or give the split files")
    return encoder, writer


def load(mm, diffusion_model: str, text_encoder: str, lm: str, vae: str, device: str,
         checkpoint: str = "", codes: bool = True) -> AceStep:
    """The model from ComfyUI's files (cached by the model manager), in float32; `lm` may be "" (no codes).
    `checkpoint` (ComfyUI's all-in-one file) is read in place of the four, its language model where `codes`."""
    from nodes.common.models_dirs import tokenizer_beside
    from nodes.generate.model_manager import resolve_model_path
    from nodes.generate.split import _detect, tokenizer
    if not checkpoint and not (diffusion_model and text_encoder and vae):
        raise NodeError("generate.ace_step needs its files: diffusion_model, text_encoder and vae (ComfyUI's split "
                        "files), or checkpoint (the all-in-one ace_step_1.5_*_aio.safetensors)")
    if checkpoint:
        aio = resolve_model_path(checkpoint, "checkpoints", "ACE-Step 1.5 all-in-one checkpoint")
        dm = te = vae_path = aio
        lm_path = aio if codes else None
    else:
        aio = None
        dm = resolve_model_path(diffusion_model, "diffusion_models", "ACE-Step 1.5 diffusion model")
        te = resolve_model_path(text_encoder, "text_encoders", "Qwen3-0.6B text encoder")
        lm_path = resolve_model_path(lm, "text_encoders", "ACE-Step 1.5 language model") if lm else None
        vae_path = resolve_model_path(vae, "vae", "ACE-Step 1.5 VAE")
    files = list(dict.fromkeys(p for p in (dm, te, lm_path, vae_path) if p is not None))

    def build():
        from diffusers import AceStepTransformer1DModel, AutoencoderOobleck
        from diffusers.pipelines.ace_step.modeling_ace_step import (AceStepAudioTokenDetokenizer,
                                                                     AceStepAudioTokenizer, AceStepConditionEncoder)
        from nodes.generate.detect import Detection
        from nodes.generate.weights import load_weights
        state = load_weights(dm, torch.float32)
        if aio:     # named as a checkpoint before its parts are looked for
            te_sd, lm_sd = aio_encoders(state, aio.name, codes)
        else:
            te_sd, lm_sd = load_weights(te, torch.float32), load_weights(lm_path, torch.float32) if lm_path else None
        classes = {"transformer": AceStepTransformer1DModel, "condition_encoder": AceStepConditionEncoder,
                   "audio_tokenizer": AceStepAudioTokenizer, "audio_token_detokenizer": AceStepAudioTokenDetokenizer}
        mods = {}
        with sizes_of(dm.name, "an ACE-Step 1.5 diffusion model"):
            parts = model_parts(state, dm.name)
        for part, (cfg, sd) in parts.items():
            # widths read from tensors of no values (a (2e9, 0) feed-forward) asked the allocator for a terabyte
            check_claim(lambda: classes[part](**cfg), sd, dm.name)
            mods[part] = _loaded(classes[part](**cfg), sd, dm.name, part)
        with torch.no_grad():
            mods["condition_encoder"].silence_latent.copy_(silence(mods["condition_encoder"].silence_latent.shape[1]))
        with sizes_of(vae_path.name, "ACE-Step 1.5's VAE"):
            vcfg, vsd = vae_part(state if aio else load_weights(vae_path, torch.float32), vae_path.name)
        check_claim(lambda: AutoencoderOobleck(**vcfg), vsd, vae_path.name)
        decoder = _loaded(AutoencoderOobleck(**vcfg), vsd, vae_path.name, "VAE")
        te_file, lm_file = te, lm_path
        want = mods["condition_encoder"].config.text_hidden_dim
        # ComfyUI's DualCLIPLoader (ace) takes the two Qwen files in either order, told apart by their width
        if _width(te_sd) != want and lm_sd is not None and _width(lm_sd) == want:
            te_file, lm_file, te_sd, lm_sd = lm_path, te, lm_sd, te_sd
        if _width(te_sd) not in (want, None):
            raise NodeError(f"{te_file.name} is {_width(te_sd)} wide, the text encoder ACE-Step reads is {want}: "
                            "give qwen_0.6b_ace15.safetensors as text_encoder (qwen_1.7b_ace15 / qwen_4b_ace15 "
                            "are the lm)")
        with sizes_of(te_file.name, "a Qwen3 text encoder"):
            encoder = qwen3(te_sd, te_file.name, head=False)
        with sizes_of(lm_file.name if lm_file else "", "a Qwen3 language model"):
            writer = qwen3(lm_sd, lm_file.name, head=True) if lm_sd is not None else None
        # the all-in-one file's Qwen3-0.6B tokenizer: beside it (ace_step_1.5_turbo_aio/), as a split file's
        tok = tokenizer(te_file, Detection("text_encoder", "qwen3") if aio else
                        _detect(te_file, ("text_encoder",), "a text encoder"))
        return AceStep(*(m.to(device) for m in (*mods.values(), decoder, encoder)),
                       writer.to(device) if writer is not None else None, tok, device)
    return mm.cached(("ace_step", *map(str, files), bool(lm_path), device), build,
                     files=[*files, *tokenizer_beside(te)])


def _width(state: dict) -> Optional[int]:
    """A Qwen3 file's hidden width (None where it holds no Qwen3 embeddings: qwen3 names the file)."""
    emb = state.get("model.embed_tokens.weight")
    return int(emb.shape[-1]) if emb is not None else None


def _loaded(module, sd: dict, name: str, part: str):
    why = misfit(module, sd, ("silence_latent",))
    if why:
        raise NodeError(f"{name}: its {part} tensors do not match ACE-Step 1.5's ({why}): the file is damaged or "
                        "another model's")
    return module.eval()


# -- ComfyUI's prompts (comfy/text_encoders/ace15.py) ---------------------------------------------------------------
@dataclass(frozen=True)
class Song:
    """TextEncodeAceStepAudio1.5's widgets."""
    tags: str
    lyrics: str = ""
    bpm: int = 120
    duration: float = 120.0
    timesignature: str = "4"
    language: str = "en"
    keyscale: str = "C major"


def _metas(song: Song) -> dict:
    ts = song.timesignature[:-2] if song.timesignature.endswith("/4") else song.timesignature
    return {"bpm": song.bpm, "timesignature": int(ts) if ts.isdecimal() else ts, "keyscale": song.keyscale,
            "duration": math.ceil(song.duration)}


def prompts(song: Song) -> dict:
    """The texts ComfyUI's ACE15Tokenizer writes: the caption with its metas (read by Qwen3-0.6B), the lyrics (its
    token embeddings), and the language model's chat prompt and its negative (no metas)."""
    import yaml
    m = _metas(song)
    caption = song.tags.strip()
    cap = "\n".join(f"- {k}: {m[k]}" + (" seconds" if k == "duration" else "") for k in
                    ("bpm", "timesignature", "keyscale", "duration"))
    cot = "<think>\n" + yaml.dump(m, allow_unicode=True, sort_keys=True).strip() + "\n</think>"
    lm = ("<|im_start|>system\n# Instruction\nGenerate audio semantic tokens based on the given conditions:\n\n"
          "<|im_end|>\n<|im_start|>user\n# Caption\n{}\n\n# Lyric\n{}\n<|im_end|>\n<|im_start|>assistant\n{}\n\n"
          "<|im_end|>\n")
    return {"caption": "# Instruction\nGenerate audio semantic tokens based on the given conditions:\n\n# Caption\n"
                       f"{caption}\n\n# Metas\n{cap}\n<|endoftext|>\n<|endoftext|>",
            "lyrics": f"# Languages\n{song.language}\n\n# Lyric\n{song.lyrics}<|endoftext|><|endoftext|>",
            "lm": lm.format(caption, song.lyrics.strip(), cot),
            "lm_negative": lm.format(caption, song.lyrics.strip(), "<think>\n\n</think>")}


def _ids(model: AceStep, text: str, what: str) -> torch.Tensor:
    """`text`'s tokens, refused past what the text encoder reads: a stranger's file with a megabyte of lyrics was
    read whole, the lyric encoder's attention growing with the square of its length."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    context = context_of(model.text_encoder)
    if context is not None and len(ids) > context:
        raise NodeError(f"generate.ace_step: {what} make {len(ids):,} tokens, and ACE-Step's text encoder reads at "
                        f"most {context:,}: shorten them")
    return torch.tensor([ids], device=model.device)


@torch.no_grad()
def text_states(model: AceStep, song: Song):
    """(the caption's last hidden states [1, N, 1024], the lyrics' token embeddings [1, M, 1024])."""
    p = prompts(song)
    caption = model.text_encoder(input_ids=_ids(model, p["caption"], "the tags")).last_hidden_state.float()
    lyrics = model.text_encoder.get_input_embeddings()(_ids(model, p["lyrics"], "the lyrics")).float()
    return caption, lyrics


@dataclass(frozen=True)
class Drawing:
    """How TextEncodeAceStepAudio1.5's language model draws the codes (its widgets)."""
    seed: int = 0
    cfg: float = 2.0
    temperature: float = 0.85
    top_p: float = 0.9
    top_k: int = 0


def _token(model: AceStep, text: str, comfy: int) -> int:
    """The token's id in the tokenizer beside the encoder; ComfyUI's fixed id where it has none (ComfyUI's bundled
    Qwen tokenizer has no audio-code tokens: the codes sit after its vocabulary, from 151669)."""
    tid = model.tokenizer.convert_tokens_to_ids(text)
    return comfy if tid is None or tid == model.tokenizer.unk_token_id else int(tid)


@torch.no_grad()
def audio_codes(model: AceStep, song: Song, drawing: Drawing, progress=None) -> list:
    """The song's audio codes (5 a second, ceil(duration) x 5 of them) as ComfyUI's loop draws them: the language
    model reads the chat prompt (with the metas in its thinking) and, for cfg != 1, the same without them, left-padded
    to one length; logits mixed uncond + cfg x (cond - uncond), every token but the codes removed, then top-k, top-p
    and temperature, one draw a step from a torch.Generator on the model's device seeded with `seed`."""
    if model.lm is None:
        raise NodeError("drawing audio codes needs the language model: give qwen_1.7b_ace15.safetensors (or "
                        "qwen_4b_ace15) from text_encoders/, or turn generate_audio_codes off")
    p = prompts(song)
    n = math.ceil(song.duration) * POOL
    first = _token(model, "<|audio_code_0|>", 151669)
    last = first + model.audio_tokenizer.quantizer.codebook_size
    if model.lm.config.vocab_size < last:
        raise NodeError(f"the language model has {model.lm.config.vocab_size} tokens, not the audio codes (up to "
                        f"{last}): give ACE-Step's qwen_1.7b_ace15.safetensors or qwen_4b_ace15 from text_encoders/")
    pos = model.tokenizer(p["lm"], add_special_tokens=False)["input_ids"]
    rows, pads = [pos], [0]
    if drawing.cfg != 1.0:
        neg = model.tokenizer(p["lm_negative"], add_special_tokens=False)["input_ids"]
        width = max(len(pos), len(neg))
        pad = _token(model, "<|endoftext|>", 151643)
        rows = [[pad] * (width - len(r)) + r for r in (pos, neg)]
        pads = [width - len(pos), width - len(neg)]
    context = context_of(model.lm)
    if context is not None and len(rows[0]) + n > context:
        raise NodeError(f"generate.ace_step: the language model's prompt (the tags and lyrics, {len(rows[0]):,} "
                        f"tokens) and the {n:,} audio codes of {math.ceil(song.duration)} s make "
                        f"{len(rows[0]) + n:,}, and it reads at most {context:,}: shorten the lyrics or the duration, "
                        "or turn generate_audio_codes off")
    ids = torch.tensor(rows, device=model.device)
    mask = torch.ones_like(ids)
    for i, k in enumerate(pads):
        mask[i, :k] = 0
    gen = torch.Generator(device=model.device).manual_seed(int(drawing.seed))
    out = model.lm(input_ids=ids, attention_mask=mask, use_cache=True)
    codes = []
    for step in range(n):
        logits = out.logits[:, -1].float()
        logits = logits[1:2] + drawing.cfg * (logits[0:1] - logits[1:2]) if drawing.cfg != 1.0 else logits[0:1]
        token = _draw(logits, first, last, drawing, gen)
        codes.append(token - first)
        if progress:
            progress(step + 1, n)
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], 1)
        out = model.lm(input_ids=torch.full((len(rows), 1), token, device=model.device), attention_mask=mask,
                       cache=out.cache, use_cache=True)
    return codes


def _draw(logits: torch.Tensor, first: int, last: int, drawing: Drawing, gen) -> int:
    """One code from one row of logits (ComfyUI's end-of-text is never allowed: it draws exactly the codes asked)."""
    low = torch.finfo(logits.dtype).min
    logits[:, :first] = low
    logits[:, last:] = low
    if drawing.top_k > 0:
        kth = torch.topk(logits, drawing.top_k).values[..., -1, None]
        logits[logits < kth] = low
    if drawing.top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        drop = torch.cumsum(torch.softmax(ordered, -1), -1) > drawing.top_p
        drop[..., 1:] = drop[..., :-1].clone()
        drop[..., 0] = False
        logits[drop.scatter(1, order, drop)] = low
    if torch.isnan(logits).any():
        # torch.multinomial's RuntimeError 'probability tensor contains either inf, nan' was the node's traceback
        raise NodeError("ACE-Step's language model (lm) gives scores that are not numbers (NaN): its file holds "
                        "damaged tensors; download it again, or turn generate_audio_codes off")
    if drawing.temperature > 0:
        return int(torch.multinomial(torch.softmax(logits / drawing.temperature, -1), 1, generator=gen))
    return int(logits.argmax(-1))


def sigmas(steps: int, scheduler: str, shift: float) -> torch.Tensor:
    """`steps` flow levels from ModelSamplingAuraFlow's table (shift, 1000 levels), then 0."""
    from nodes.generate.samplers import SigmaTable, beta_sigmas, sgm_uniform_sigmas, simple_sigmas
    pick = {"simple": simple_sigmas, "sgm_uniform": sgm_uniform_sigmas, "beta": beta_sigmas}.get(scheduler)
    if pick is None:
        raise NodeError(f"scheduler={scheduler!r}: ACE-Step takes {', '.join(SCHEDULERS)}")
    return pick(SigmaTable.flow(shift), steps)


@torch.no_grad()
def context(model: AceStep, codes: Optional[list], frames: int) -> torch.Tensor:
    """The DiT's context latents [1, frames, 128]: the codes' 25 Hz hints (padded with ComfyUI's code to cover the
    latent, cut to it), or silence when there are none; then the all-ones chunk mask."""
    if codes:
        idx = torch.tensor(codes, device=model.device)
        need = math.ceil(frames / POOL)
        if len(codes) * POOL < frames:
            idx = torch.cat([idx, idx.new_full((need - len(codes),), PAD_CODE)])
        q = model.audio_tokenizer.quantizer.get_output_from_indices(idx[None, :, None])
        src = model.detokenizer(q)[:, :frames].float()
    else:
        src = silence(frames).to(model.device)
    return torch.cat([src, torch.ones_like(src)], -1)


@torch.no_grad()
def generate(model: AceStep, song: Song, seconds: float, steps: int, cfg: float, sampler: str, scheduler: str,
             shift: float, seed: int, codes: Optional[list] = None, progress=None) -> torch.Tensor:
    """The song's waveform [2, samples] at 48 kHz, as loud as VAEDecodeAudio leaves it. `codes`: the language
    model's (audio_codes), or None for none."""
    from nodes.generate.samplers import SNR_FRAME, comfy_step_noise, flow_top_level, ksampler_schedule, latent_sampler
    sample = latent_sampler(sampler)
    frames = latent_frames(seconds)
    if frames < 1:
        raise NodeError(f"seconds={seconds:g} gives no sound: give at least 0.04 s (ComfyUI's minimum is 1)")
    caption, lyrics = text_states(model, song)
    # ComfyUI's timbre reference: silence as long as the latent, whether or not codes are drawn
    enc, _ = model.condition_encoder(
        text_hidden_states=caption, text_attention_mask=torch.ones(caption.shape[:2], dtype=torch.bool,
                                                                   device=model.device),
        lyric_hidden_states=lyrics, lyric_attention_mask=torch.ones(lyrics.shape[:2], dtype=torch.bool,
                                                                    device=model.device),
        refer_audio_acoustic_hidden_states_packed=silence(frames).to(model.device),
        refer_audio_order_mask=torch.zeros(1, dtype=torch.long, device=model.device))
    guided = cfg != 1.0
    if guided:      # ConditioningZeroOut's negative: the model's null embedding in every place
        enc = torch.cat([enc, model.condition_encoder.null_condition_emb.to(enc).expand_as(enc)])
    ctx = context(model, codes, frames)
    ctx = ctx.expand(len(enc), -1, -1)
    dit = model.transformer

    def denoised(x, sigma):
        xt = torch.cat([x] * len(enc)).transpose(1, 2)
        t = torch.full((len(enc),), float(sigma), device=x.device)
        v = dit(hidden_states=xt, timestep=t, timestep_r=t, encoder_hidden_states=enc, context_latents=ctx,
                return_dict=False)[0].float().transpose(1, 2)
        if guided:
            cond, uncond = v.chunk(2)
            v = uncond + cfg * (cond - uncond)
        return x - float(sigma) * v

    gen = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    noise = torch.randn((1, dit.config.audio_acoustic_hidden_dim, frames), generator=gen)   # KSampler's noise
    levels = ksampler_schedule(lambda n: sigmas(n, scheduler, shift), steps, sampler)
    kw = {"noise_sampler": comfy_step_noise(sampler, noise.shape, seed, model.device, levels)}  # KSampler's step noise
    if sampler in SNR_FRAME:
        kw["top_level"] = flow_top_level(shift)
    callback = (lambda i, n, _: progress(i + 1, n)) if progress else None
    latent = sample(denoised, noise.to(model.device) * float(levels[0]), levels, callback, flow=True, **kw)
    return loudness(model.vae.decode(latent).sample.float()[0].cpu())

