"""LTX-2's all-in-one checkpoint as ComfyUI users hold it (checkpoints/ltx-2-19b-dev.safetensors, -distilled):
Lightricks' names, five parts under their own prefixes:
  model.diffusion_model.*                      the audio-video transformer, and its text connectors
                                               (video_embeddings_connector / audio_embeddings_connector)
  text_embedding_projection.aggregate_embed.*  Gemma 3's stacked layer features to the connectors' width
  vae.*  audio_vae.*  vocoder.*                video VAE, audio (mel) VAE, mel-to-sound vocoder
The transformer and VAEs take diffusers' own single-file renaming (convert_ltx2_*_to_diffusers); the connectors
and vocoder that of diffusers' scripts/convert_ltx2_to_diffusers.py. Widths and depths are read from the tensors;
what no shape shows is the release's (the classes' defaults, and the conversion script's for the VAE's decoder).
LTX-2.3 (ltx-2.3-22b-dev / -distilled) is told by its tensors: gated attention (to_gate_logits), cross-attention
modulated by the prompt (prompt_adaln_single, nine rows per block's table), Gemma's features projected separately for
video and audio (text_embedding_projection.video_ / audio_aggregate_embed) instead of the transformer's caption
projection, a four-level video decoder (up_blocks.7 / .8) and a vocoder with bandwidth extension to 48 kHz
(vocoder.bwe_generator, vocoder.mel_stft)."""
from __future__ import annotations

from collections.abc import Mapping

from graph_engine import NodeError
from nodes.generate.converters import Built, count, decoder_sizes, model_config, register

FAMILY = "ltx2"
DIT = "model.diffusion_model."
_CONNECTOR_NAMES = (("video_embeddings_connector", "video_connector"), ("audio_embeddings_connector", "audio_connector"),
                    ("transformer_1d_blocks", "transformer_blocks"), ("q_norm", "norm_q"), ("k_norm", "norm_k"))
_VOCODER_NAMES = (("ups", "upsamplers"), ("resblocks", "resnets"), ("conv_pre", "conv_in"), ("conv_post", "conv_out"))
_CONNECTORS = ("video_embeddings_connector.", "audio_embeddings_connector.")
# Vocoder upsampling strides by kernel sizes: LTX-2.0's (240 samples per mel frame at 24 kHz), LTX-2.3's vocoder (160
# at 16 kHz) and its bandwidth extender's (from a 16 kHz waveform's mel frames, 80 samples apart, to 48 kHz).
RELEASE_UPSAMPLING = {(16, 15, 8, 4, 4): [6, 5, 2, 2, 2], (11, 4, 4, 4, 4, 4): [5, 2, 2, 2, 2, 2],
                      (12, 11, 4, 4, 4): [6, 5, 2, 2, 2]}
# LTX-2.3's video decoder, which no shape tells apart: per level (from the latent up) what its upsampler doubles and
# by how much it narrows the channels, no residual path, zero padding (the conversion script's).
DECODER_23 = dict(upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"), upsample_factor=(2, 2, 1, 2),
                  upsample_residual=(False,) * 4, decoder_spatio_temporal_scaling=(True,) * 4,
                  decoder_inject_noise=(False,) * 5, decoder_spatial_padding_mode="zeros")
GEMMA_WIDTH = 3840                  # Gemma 3 12B's hidden size: LTX-2.3's connectors take its 49 layers side by side


# What `kinograph info` and the loaders say of LTX-2's files.
LOADS = ("load.model: text-to-video with its sound (prompts: load.text_encoder with "
         "text_encoders/gemma_3_12B_it.safetensors and this checkpoint as name2)")
UPSCALES = "latent.ltx_upsample on LTX-2 latents (ComfyUI's LTXVLatentUpsampler; not for LTX-Video's)"
LORA = "lora.image on an LTX-2 model (diffusers' LTX-2 LoRA loader reads ComfyUI's names; not for LTX-Video)"
LTX25 = ("LTX-2.5 does not run in Kinograph yet: its transformer comes alone (diffusion_models/), with its own VAE files "
         "and Gemma 4 12B as its text encoder, which Kinograph does not read. LTX-2.3's all-in-one checkpoint "
         "(checkpoints/ltx-2.3-22b-dev.safetensors or -distilled) runs, with ComfyUI's LTX-2.3 templates")


def split(state: Mapping) -> dict:
    """The checkpoint's five parts, each in its own names without the part's prefix."""
    parts = {"transformer": {}, "connectors": {}, "vae": {}, "audio_vae": {}, "vocoder": {}}
    for k, v in state.items():
        if k.startswith(DIT):
            body = k[len(DIT):]
            parts["connectors" if body.startswith(_CONNECTORS) else "transformer"][body] = v
        elif k.startswith("text_embedding_projection."):
            parts["connectors"][k] = v
        else:
            head, _, body = k.partition(".")
            if head in parts:
                parts[head][body] = v
    missing = [p for p, s in parts.items() if not s]
    if "vae" in missing and "audio_vae" in missing:
        raise NodeError("an LTX-2 transformer alone (diffusion_models/): Kinograph loads LTX-2 from its all-in-one "
                        "checkpoint, which also holds the text connectors, both VAEs and the vocoder "
                        "(checkpoints/ltx-2-19b-dev.safetensors or ltx-2-19b-distilled.safetensors)")
    if missing:
        raise NodeError(f"this LTX-2 checkpoint has no {', '.join(missing)} tensors: it is incomplete or not the "
                        "all-in-one file (ltx-2-19b-dev.safetensors). Copy the file again")
    return parts


CONNECTOR_KEYS = tuple(DIT + c for c in _CONNECTORS) + ("text_embedding_projection.",)


def connector_state(state: Mapping) -> dict:
    """The text connectors' tensors as split() gives them; the text encoder loader reads only these from the file."""
    return {k[len(DIT):] if k.startswith(DIT) else k: v for k, v in state.items() if k.startswith(CONNECTOR_KEYS)}


def _renamed(state: Mapping, names) -> dict:
    out = {}
    for k, v in state.items():
        for old, new in names:
            k = k.replace(old, new)
        out[k] = v
    return out


def transformer(state: Mapping, **rope) -> Built:
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers
    # diffusers' single-file table predates LTX-2.3's prompt modulation (its conversion script renames it so)
    conv = _prefixed(convert_ltx2_transformer_to_diffusers(dict(state)),
                     {"prompt_adaln_single.": "prompt_adaln.", "audio_prompt_adaln_single.": "audio_prompt_adaln."})
    inner, cin = conv["proj_in.weight"].shape
    a_inner, a_cin = conv["audio_proj_in.weight"].shape
    q = conv["transformer_blocks.0.attn1.norm_q.weight"].shape[0]
    if q != inner:
        raise NodeError(f"LTX-2 transformer: query norm of width {q} for a width of {inner}")
    block = "transformer_blocks.0."
    cfg = dict(in_channels=int(cin), out_channels=int(conv["proj_out.weight"].shape[0]),
               cross_attention_dim=int(conv[block + "attn2.to_k.weight"].shape[1]),
               audio_in_channels=int(a_cin), audio_out_channels=int(conv["audio_proj_out.weight"].shape[0]),
               audio_cross_attention_dim=int(conv[block + "audio_attn2.to_k.weight"].shape[1]),
               num_layers=count(conv, "transformer_blocks.{}."),
               # LTX-2.3: three more rows per table modulate the prompt's cross-attention
               cross_attn_mod=int(conv["time_embed.linear.weight"].shape[0]) == 9 * int(inner),
               audio_cross_attn_mod=int(conv["audio_time_embed.linear.weight"].shape[0]) == 9 * int(a_inner),
               use_prompt_adaln_single="prompt_adaln.linear.weight" in conv,
               use_prompt_embeddings="caption_projection.linear_1.weight" in conv,
               ff_bias=block + "ff.net.0.proj.bias" in conv, audio_ff_bias=block + "audio_ff.net.0.proj.bias" in conv)
    for side, attn, width, release in (("", "attn1", inner, 128), ("audio_", "audio_attn1", a_inner, 64)):
        gate = conv.get(f"{block}{attn}.to_gate_logits.weight")        # one gate a head: the heads' count
        heads = int(gate.shape[0]) if gate is not None else int(width) // _head(int(width), release)
        cfg.update({f"{side}gated_attn": gate is not None, f"{side}num_attention_heads": heads,
                    f"{side}attention_head_dim": int(width) // heads})
    if cfg["use_prompt_embeddings"]:
        cfg["caption_channels"] = int(conv["caption_projection.linear_1.weight"].shape[1])
    cfg.update(rope)
    return Built(lambda: LTX2VideoTransformer3DModel.from_config(cfg), conv, cfg)


def _prefixed(state: Mapping, names: Mapping) -> dict:
    """The tensors with each key's leading name in `names` replaced."""
    out = {}
    for k, v in state.items():
        old = next((o for o in names if k.startswith(o)), None)
        out[names[old] + k[len(old):] if old else k] = v
    return out


def _head(width: int, release: int) -> int:
    """Attention head width, which no tensor shows: the release's (video and connectors 128, audio 64), or half the
    width for a model narrower than two release heads."""
    return min(release, max(width // 2, 1))


def connectors(state: Mapping, **rope) -> Built:
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    conv = _renamed({k: v for k, v in state.items() if not k.startswith("text_embedding_projection.")},
                    _CONNECTOR_NAMES)
    proj = state.get("text_embedding_projection.aggregate_embed.weight")
    video = state.get("text_embedding_projection.video_aggregate_embed.weight")
    if proj is not None:
        conv["text_proj_in.weight"] = proj
        cfg = {"caption_channels": int(proj.shape[0]), "text_proj_in_factor": int(proj.shape[1]) // int(proj.shape[0])}
    elif video is not None:         # LTX-2.3: Gemma's stacked features projected to each stream's width
        conv.update(_prefixed({k: v for k, v in state.items() if k.startswith("text_embedding_projection.")},
                              {"text_embedding_projection.video_aggregate_embed.": "video_text_proj_in.",
                               "text_embedding_projection.audio_aggregate_embed.": "audio_text_proj_in."}))
        stacked = int(video.shape[1])
        if stacked % GEMMA_WIDTH:
            raise NodeError(f"this LTX-2.3 checkpoint's text projection takes {stacked} features, not a stack of "
                            f"Gemma 3 12B's {GEMMA_WIDTH}-wide layers: it was made for another text encoder")
        cfg = {"caption_channels": GEMMA_WIDTH, "text_proj_in_factor": stacked // GEMMA_WIDTH,
               "per_modality_projections": True, "video_hidden_dim": int(video.shape[0]),
               "audio_hidden_dim": int(conv["audio_text_proj_in.weight"].shape[0]),
               "proj_bias": "video_text_proj_in.bias" in conv}
    else:
        raise NodeError("this LTX-2 checkpoint has no text_embedding_projection (aggregate_embed, or LTX-2.3's "
                        "video_aggregate_embed): it is incomplete; copy the file again")
    for side, release in (("video", 128), ("audio", 128 if proj is not None else 64)):
        regs = conv[f"{side}_connector.learnable_registers"]
        width = int(regs.shape[1])
        gate = conv.get(f"{side}_connector.transformer_blocks.0.attn1.to_gate_logits.weight")
        heads = int(gate.shape[0]) if gate is not None else width // _head(width, release)
        cfg.update({f"{side}_connector_num_attention_heads": heads,
                    f"{side}_connector_attention_head_dim": width // heads, f"{side}_gated_attn": gate is not None,
                    f"{side}_connector_num_layers": count(conv, f"{side}_connector.transformer_blocks.{{}}."),
                    f"{side}_connector_num_learnable_registers": int(regs.shape[0])})
    cfg.update(rope)
    return Built(lambda: LTX2TextConnectors.from_config(cfg), conv, cfg)


def video_vae(state: Mapping) -> Built:
    from diffusers import AutoencoderKLLTX2Video
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers
    # LTX-2.3's decoder has a fourth level, which diffusers' single-file table does not know: held under names
    # its renaming leaves alone, then given diffusers' own
    fourth = {"decoder.up_blocks.7.": "decoder.fourth_up.", "decoder.up_blocks.8.": "decoder.fourth."}
    conv = _prefixed(convert_ltx2_vae_to_diffusers(_prefixed(state, fourth)),
                     {"decoder.fourth_up.": "decoder.up_blocks.3.upsamplers.0.", "decoder.fourth.": "decoder.up_blocks.3."})
    width = lambda p: int(conv[f"{p}.resnets.0.conv1.conv.weight"].shape[0])
    depth = lambda p: count(conv, p + ".resnets.{}.")
    downs, ups = range(count(conv, "encoder.down_blocks.{}.")), range(count(conv, "decoder.up_blocks.{}."))
    cfg = dict(latent_channels=int(conv["latents_mean"].shape[0]),
               # Each level's resnets work at the width the level before it left (the first at conv_in's).
               block_out_channels=[width(f"encoder.down_blocks.{i}") for i in downs[1:]] + [width("encoder.mid_block")],
               layers_per_block=[depth(f"encoder.down_blocks.{i}") for i in downs] + [depth("encoder.mid_block")],
               # The decoder's list runs from its last level to the mid block; each level's resnets work at the width
               # its upsampler left, which is the next entry's.
               decoder_block_out_channels=[width(f"decoder.up_blocks.{i}") for i in reversed(ups[:-1])] +
               [width("decoder.mid_block")],
               decoder_layers_per_block=[depth(f"decoder.up_blocks.{i}") for i in reversed(ups)] +
               [depth("decoder.mid_block")],
               timestep_conditioning="decoder.timestep_scale_multiplier" in conv,
               # The conversion script's: the class would count the encoder's four downsamplers (64x), but one of them
               # compresses time only.
               decoder_causal=False, decoder_spatial_padding_mode="reflect", spatial_compression_ratio=32,
               temporal_compression_ratio=8)
    if len(ups) == 4:
        cfg.update(DECODER_23)
    return Built(lambda: AutoencoderKLLTX2Video.from_config(cfg), conv, cfg)


def audio_vae(state: Mapping) -> Built:
    from diffusers import AutoencoderKLLTX2Audio
    from diffusers.loaders.single_file_utils import convert_ltx2_audio_vae_to_diffusers
    conv = convert_ltx2_audio_vae_to_diffusers(dict(state))
    base = int(conv["encoder.conv_in.conv.weight"].shape[0])
    levels = range(count(conv, "encoder.down.{}."))
    latent = int(conv["decoder.conv_in.conv.weight"].shape[1])
    cfg = dict(base_channels=base, in_channels=int(conv["encoder.conv_in.conv.weight"].shape[1]),
               output_channels=int(conv["decoder.conv_out.conv.weight"].shape[0]),
               ch_mult=[int(conv[f"encoder.down.{i}.block.0.conv1.conv.weight"].shape[0]) // base for i in levels],
               num_res_blocks=count(conv, "encoder.down.0.block.{}."), latent_channels=latent,
               double_z=int(conv["encoder.conv_out.conv.weight"].shape[0]) == 2 * latent,
               mid_block_add_attention=any(k.startswith("encoder.mid.attn_1.") for k in conv))
    return Built(lambda: AutoencoderKLLTX2Audio.from_config(cfg), conv, cfg)


def _vocoder_config(conv: Mapping, at: str = "") -> dict:
    """One HiFi-GAN generator's sizes (LTX-2.0's vocoder, or LTX-2.3's and its bandwidth extender) from its tensors."""
    kernels = [int(conv[f"{at}upsamplers.{i}.weight"].shape[2]) for i in range(count(conv, at + "upsamplers.{}."))]
    per = count(conv, at + "resnets.{}.") // max(len(kernels), 1)
    cfg = dict(in_channels=int(conv[at + "conv_in.weight"].shape[1]),
               hidden_channels=int(conv[at + "conv_in.weight"].shape[0]),
               out_channels=int(conv[at + "conv_out.weight"].shape[0]), upsample_kernel_sizes=kernels,
               upsample_factors=RELEASE_UPSAMPLING.get(tuple(kernels), [k // 2 for k in kernels]),
               resnet_kernel_sizes=[int(conv[f"{at}resnets.{j}.convs1.0.weight"].shape[2]) for j in range(per)],
               resnet_dilations=[[1, 3, 5][:count(conv, f"{at}resnets.{j}.convs1.{{}}.")] for j in range(per)])
    act = conv.get(at + "act_out.upsample.filter")
    if act is not None:             # LTX-2.3: anti-aliased SnakeBeta activations, no final tanh or bias
        cfg.update(act_fn="snakebeta", antialias=True, antialias_kernel_size=int(act.shape[-1]), final_act_fn=None,
                   final_bias=at + "conv_out.bias" in conv)
    return cfg


def vocoder(state: Mapping) -> Built:
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
    if not any(k.startswith("bwe_generator.") for k in state):
        conv = _renamed(state, _VOCODER_NAMES)
        cfg = _vocoder_config(conv)
        return Built(lambda: LTX2Vocoder.from_config(cfg), conv, cfg)
    # LTX-2.3: the vocoder (16 kHz) then its bandwidth extender (to 48 kHz) on the waveform's own mel spectrogram.
    # Only whole names are renamed: "ups" is inside other names here.
    conv = {}
    for k, v in state.items():
        for old, new in (("resblocks", "resnets"), ("conv_pre", "conv_in"), ("conv_post", "conv_out"),
                         ("act_post", "act_out"), ("downsample.lowpass", "downsample"), (".ups.", ".upsamplers.")):
            k = k.replace(old, new)
        conv[k] = v
    cfg = _vocoder_config(conv, "vocoder.")
    cfg.update({"bwe_" + k: v for k, v in _vocoder_config(conv, "bwe_generator.").items()})
    mel = conv["mel_stft.mel_basis"]
    cfg.update(num_mel_channels=int(mel.shape[0]), filter_length=2 * (int(mel.shape[1]) - 1),
               window_length=int(conv["mel_stft.stft_fn.forward_basis"].shape[-1]))
    return Built(lambda: LTX2VocoderWithBWE.from_config(cfg), conv, cfg)


def _part(role: str, part: str, make) -> None:
    """Register the converter of one part of the checkpoint (the loader builds each from the whole file's tensors)."""
    def convert(state, det) -> Built:
        if det.extra.get("version") == "2.5":
            raise NodeError(LTX25)
        # the rotary embeddings' layout and precision, from the file's own config where it has one (the classes'
        # interleaved, float64 otherwise)
        rope = {k: det.extra[k] for k in ("rope_type", "rope_double_precision") if k in det.extra} \
            if part in ("transformer", "connectors") else {}
        return make(connector_state(state) if part == "connectors" else split(state)[part], **rope)
    register(FAMILY, role)(convert)


@register("gemma3", "text_encoder")
def gemma3(state, det) -> Built:
    """Gemma 3 (ComfyUI's text_encoders/gemma_3_12B_it.safetensors): the language model alone (the vision tower and
    the sentencepiece tensor are not read), its sizes from the file, the rest Gemma 3 12B's."""
    from transformers import Gemma3TextConfig, Gemma3TextModel
    from nodes.generate.converters.qwenimage import language_model
    state = language_model(state)
    cfg = model_config(FAMILY, "text_encoder")
    head = int(state["layers.0.self_attn.q_norm.weight"].shape[0])
    cfg.update(decoder_sizes(state, head), head_dim=head, query_pre_attn_scalar=head)
    config = Gemma3TextConfig(**cfg)
    return Built(lambda: Gemma3TextModel(config), state, cfg)


_part("diffusion_model", "transformer", transformer)
for _name, _make in (("connectors", connectors), ("vae", video_vae), ("audio_vae", audio_vae), ("vocoder", vocoder)):
    _part(_name, _name, _make)
