"""LTX-2's all-in-one checkpoint as ComfyUI users hold it (checkpoints/ltx-2-19b-dev.safetensors, -distilled):
Lightricks' names, five parts under their own prefixes:
  model.diffusion_model.*                      the audio-video transformer, and its text connectors
                                               (video_embeddings_connector / audio_embeddings_connector)
  text_embedding_projection.aggregate_embed.*  Gemma 3's stacked layer features to the connectors' width
  vae.*  audio_vae.*  vocoder.*                video VAE, audio (mel) VAE, mel-to-sound vocoder
The transformer and VAEs take diffusers' own single-file renaming (convert_ltx2_*_to_diffusers); the connectors
and vocoder that of diffusers' scripts/convert_ltx2_to_diffusers.py. Widths and depths are read from the tensors;
what no shape shows is LTX-2.0's (the classes' defaults, and the conversion script's for the VAE's decoder)."""
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
RELEASE_UPSAMPLING = {(16, 15, 8, 4, 4): [6, 5, 2, 2, 2]}      # LTX-2.0's vocoder: 240 samples per mel frame


# What `kinograph info` and the loaders say of LTX-2's files.
LOADS = ("load.model: text-to-video with its sound (prompts: load.text_encoder with "
         "text_encoders/gemma_3_12B_it.safetensors and this checkpoint as name2)")
UPSCALES = "latent.ltx_upsample on LTX-2 latents (ComfyUI's LTXVLatentUpsampler; not for LTX-Video's)"
LORA = "lora.image on an LTX-2 model (diffusers' LTX-2 LoRA loader reads ComfyUI's names; not for LTX-Video)"


def unsupported(det) -> str:
    """Why Kinograph cannot load this LTX-2 file, or "" when it can."""
    if det.extra.get("version") == "2.3":
        return ("LTX-2.3 (22B): its per-modality text projections and prompt-modulated cross-attention are not in "
                "the converter yet. Use ltx-2-19b-dev or ltx-2-19b-distilled")
    return ""


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


def transformer(state: Mapping) -> Built:
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers
    conv = convert_ltx2_transformer_to_diffusers(dict(state))
    inner, cin = conv["proj_in.weight"].shape
    a_inner, a_cin = conv["audio_proj_in.weight"].shape
    head, a_head = _head(int(inner), 128), _head(int(a_inner), 64)
    q = conv["transformer_blocks.0.attn1.norm_q.weight"].shape[0]
    if q != inner:
        raise NodeError(f"LTX-2 transformer: query norm of width {q} for a width of {inner}")
    cfg = dict(in_channels=int(cin), out_channels=int(conv["proj_out.weight"].shape[0]),
               num_attention_heads=int(inner) // head, attention_head_dim=head,
               cross_attention_dim=int(conv["transformer_blocks.0.attn2.to_k.weight"].shape[1]),
               audio_in_channels=int(a_cin), audio_out_channels=int(conv["audio_proj_out.weight"].shape[0]),
               audio_num_attention_heads=int(a_inner) // a_head, audio_attention_head_dim=a_head,
               audio_cross_attention_dim=int(conv["transformer_blocks.0.audio_attn2.to_k.weight"].shape[1]),
               caption_channels=int(conv["caption_projection.linear_1.weight"].shape[1]),
               num_layers=count(conv, "transformer_blocks.{}."))
    return Built(lambda: LTX2VideoTransformer3DModel.from_config(cfg), conv, cfg)


def _head(width: int, release: int) -> int:
    """Attention head width, which no tensor shows: the release's (video and connectors 128, audio 64), or half the
    width for a model narrower than two release heads."""
    return min(release, max(width // 2, 1))


def connectors(state: Mapping) -> Built:
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    conv = _renamed({k: v for k, v in state.items() if not k.startswith("text_embedding_projection.")},
                    _CONNECTOR_NAMES)
    proj = state.get("text_embedding_projection.aggregate_embed.weight")
    if proj is None:
        raise NodeError("this LTX-2 checkpoint has no text_embedding_projection.aggregate_embed.weight")
    conv["text_proj_in.weight"] = proj
    cfg = {"caption_channels": int(proj.shape[0])}
    for side in ("video", "audio"):
        regs = conv[f"{side}_connector.learnable_registers"]
        width = int(regs.shape[1])
        head_dim = _head(width, 128)
        cfg.update({f"{side}_connector_num_attention_heads": width // head_dim,
                    f"{side}_connector_attention_head_dim": head_dim,
                    f"{side}_connector_num_layers": count(conv, f"{side}_connector.transformer_blocks.{{}}."),
                    f"{side}_connector_num_learnable_registers": int(regs.shape[0])})
    cfg["text_proj_in_factor"] = int(proj.shape[1]) // int(proj.shape[0])
    return Built(lambda: LTX2TextConnectors.from_config(cfg), conv, cfg)


def video_vae(state: Mapping) -> Built:
    from diffusers import AutoencoderKLLTX2Video
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers
    conv = convert_ltx2_vae_to_diffusers(dict(state))
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


def vocoder(state: Mapping) -> Built:
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    conv = _renamed(state, _VOCODER_NAMES)
    if any(k.startswith(("bwe", "mel_stft")) for k in conv):
        raise NodeError("LTX-2.3's bandwidth-extending vocoder is not in the converter yet; use ltx-2-19b-dev")
    kernels = [int(conv[f"upsamplers.{i}.weight"].shape[2]) for i in range(count(conv, "upsamplers.{}."))]
    per = count(conv, "resnets.{}.") // max(len(kernels), 1)
    cfg = dict(in_channels=int(conv["conv_in.weight"].shape[1]), hidden_channels=int(conv["conv_in.weight"].shape[0]),
               out_channels=int(conv["conv_out.weight"].shape[0]), upsample_kernel_sizes=kernels,
               upsample_factors=RELEASE_UPSAMPLING.get(tuple(kernels), [k // 2 for k in kernels]),
               resnet_kernel_sizes=[int(conv[f"resnets.{j}.convs1.0.weight"].shape[2]) for j in range(per)],
               resnet_dilations=[[1, 3, 5][:count(conv, f"resnets.{j}.convs1.{{}}.")] for j in range(per)])
    return Built(lambda: LTX2Vocoder.from_config(cfg), conv, cfg)


def _part(role: str, part: str, make) -> None:
    """Register the converter of one part of the checkpoint (the loader builds each from the whole file's tensors)."""
    def convert(state, det) -> Built:
        why = unsupported(det)
        if why:
            raise NodeError(why)
        return make(connector_state(state) if part == "connectors" else split(state)[part])
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
