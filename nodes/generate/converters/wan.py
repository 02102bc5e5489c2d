"""Wan 2.1/2.2 from ComfyUI's split files: the transformer (diffusion_models/) and the VAE (vae/).

Keys are renamed with diffusers' own Wan converters; sizes come from the tensors (Wan's heads are
always 128 wide, as in the released models), the rest from the shipped config of the variant.
Wan VACE files (wan2.1_vace_*.safetensors) are a Wan text-to-video transformer plus `vace_blocks.*`
and `vace_patch_embedding`; they become diffusers' WanVACETransformer3DModel. Wan 2.2 Animate files
(wan2.2_animate_14B_*) are the Wan 2.1 i2v transformer plus a pose patch embedding, a face motion encoder
and face adapters; they become diffusers' WanAnimateTransformer3DModel. Wan 2.2 S2V files (wan2.2_s2v_14B_*) are
the text-to-video transformer plus the sound, reference-motion and control parts nodes/generate/wan_s2v.py attaches;
HuMo files (humo_17B_*, 1.7B) likewise, with the voice layers nodes/generate/wan_humo.py attaches. Wan Animate 2
files (wan_animate_2_*) are the Wan 2.1 i2v transformer, marked so (nodes/generate/wan_animate2.py runs them); SCAIL
files (wan2.1_14B_SCAIL*) the i2v transformer plus the pose and mask patch embeddings nodes/generate/wan_scail.py
attaches."""
from __future__ import annotations

import re

from nodes.generate.converters import Built, count, model_config, register


@register("wan", "diffusion_model")
def transformer(state, det) -> Built:
    from diffusers import WanTransformer3DModel
    kind = det.variant.split("-")[0]
    # Wan 2.2 S2V's sound, reference, motion and control parts keep their names too (nodes/generate/wan_s2v.py)
    from nodes.generate.wan_s2v import parts
    s2v = parts(state) if kind == "s2v" else {}
    from nodes.generate import wan_humo
    humo = wan_humo.parts(state) if kind == "humo" else {}
    from nodes.generate import wan_dancer
    dancer = wan_dancer.parts(state) if kind == "dancer" else {}
    from nodes.generate import wan_scail
    scail = wan_scail.parts(state) if kind in ("scail", "scail2") else {}
    # Wan Fun camera models: the camera encoder's tensors keep their own names (diffusers knows no such model).
    camera = {k: state.pop(k) for k in [k for k in state if k.startswith("control_adapter.")]}
    # Wan 2.2 Fun Control's reference-image convolution, likewise
    reference = {k: state.pop(k) for k in [k for k in state if k.startswith("ref_conv.")]}
    if det.layout == "original":
        from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
        if kind == "animate":
            state = _motion_encoder_out(state)
        state = convert_wan_transformer_to_diffusers(dict(state))
        if "img_emb.emb_pos" in state:         # FLF2V's image position table; diffusers' renames miss it
            state["condition_embedder.image_embedder.pos_embed"] = state.pop("img_emb.emb_pos")
    if kind == "camera":
        _check_camera(state)
    cfg = model_config("wan", {"i2v": "transformer_i2v", "flf2v": "transformer_i2v", "camera": "transformer_i2v",
                               "control": "transformer_i2v", "animate": "transformer_i2v", "dancer": "transformer_i2v",
                               "animate2": "transformer_i2v", "scail": "transformer_i2v", "scail2": "transformer_i2v",
                               "vace": "transformer_vace", "ti2v": "transformer_ti2v"}.get(kind, "transformer_t2v"))
    pe = state["patch_embedding.weight"]
    dim = int(pe.shape[0])
    patch = [int(x) for x in pe.shape[2:]]
    image = state.get("condition_embedder.image_embedder.norm1.weight")
    pos = state.get("condition_embedder.image_embedder.pos_embed")
    cfg.update(
        patch_size=patch, in_channels=int(pe.shape[1]), num_attention_heads=dim // 128, attention_head_dim=128,
        out_channels=int(state["proj_out.weight"].shape[0]) // (patch[0] * patch[1] * patch[2]),
        text_dim=int(state["condition_embedder.text_embedder.linear_1.weight"].shape[1]),
        freq_dim=int(state["condition_embedder.time_embedder.linear_1.weight"].shape[1]),
        ffn_dim=int(state["blocks.0.ffn.net.0.proj.weight"].shape[0]), num_layers=count(state, "blocks.{}."),
        cross_attn_norm="blocks.0.norm2.weight" in state,
        qk_norm="rms_norm_across_heads" if "blocks.0.attn1.norm_q.weight" in state else None,
        image_dim=int(image.shape[0]) if image is not None else None,
        added_kv_proj_dim=dim if image is not None else None,
        pos_embed_seq_len=int(pos.shape[1]) if pos is not None else None)
    if dim % 128:
        from graph_engine import NodeError
        raise NodeError(f"Wan transformer width {dim} is not a multiple of 128 (its attention head size); "
                        "this is not a Wan model Kinograph knows")
    if s2v:
        from nodes.generate.wan_s2v import attach
        return Built(lambda: attach(WanTransformer3DModel.from_config(cfg), s2v), {**state, **s2v}, cfg)
    if humo:
        return Built(lambda: wan_humo.attach(WanTransformer3DModel.from_config(cfg), humo), {**state, **humo}, cfg)
    if dancer:
        # a ref_conv in the file (ComfyUI's model has one) is left out: the published pipeline never feeds it
        return Built(lambda: wan_dancer.attach(WanTransformer3DModel.from_config(cfg), dancer), {**state, **dancer},
                     cfg)
    if scail:
        return Built(lambda: wan_scail.attach(WanTransformer3DModel.from_config(cfg), scail), {**state, **scail}, cfg)
    if camera:
        from nodes.generate.wan_camera import attach
        return Built(lambda: attach(WanTransformer3DModel.from_config(cfg), camera), {**state, **camera}, cfg)
    if reference:
        from nodes.generate.wan_reference import attach
        return Built(lambda: attach(WanTransformer3DModel.from_config(cfg), reference), {**state, **reference}, cfg)
    if kind == "animate":
        from diffusers import WanAnimateTransformer3DModel
        cfg.update(animate_settings(state, cfg["num_layers"]))
        return Built(lambda: WanAnimateTransformer3DModel.from_config(cfg), state, cfg)
    if kind == "vace":
        from diffusers import WanVACETransformer3DModel
        cfg.update(vace_settings(state, cfg["num_layers"]))
        return Built(lambda: WanVACETransformer3DModel.from_config(cfg), state, cfg)
    if kind == "animate2":
        # Wan Animate 2: the i2v transformer's tensors, run by nodes/generate/wan_animate2.py's forward
        return Built(lambda: _marked(WanTransformer3DModel.from_config(cfg), "animate2"), state, cfg)
    if det.extra.get("causal_ar"):
        # the autoregressive Wan (Causal Forcing): Wan 2.1's tensors, made block by block (nodes/generate/causal_wan.py)
        return Built(lambda: _marked(WanTransformer3DModel.from_config(cfg), "causal_ar"), state, cfg)
    return Built(lambda: WanTransformer3DModel.from_config(cfg), state, cfg)


def _marked(model, what: str):
    """The model told (in its config) what only the file's metadata said: causal_ar, animate2."""
    model.register_to_config(**{what: True})
    return model


def _check_camera(state) -> None:
    """A Wan Fun camera model: Wan 2.1's is the i2v transformer reading 16 noise + 16 start-frame channels (no
    mask), Wan 2.2's the t2v one reading 16 noise + 4 mask + 16 start-frame channels."""
    from graph_engine import NodeError
    in_ch = int(state["patch_embedding.weight"].shape[1])
    image = "condition_embedder.image_embedder.norm1.weight" in state
    if (in_ch, image) not in ((32, True), (36, False)):
        raise NodeError(f"this Wan Fun camera model reads {in_ch} input channels"
                        f"{' and CLIP image tokens' if image else ''}; Kinograph runs the Wan 2.1 (32: noise + start "
                        "frame, with CLIP image tokens) and Wan 2.2 (36: noise, start-frame mask, start frame) Fun "
                        "camera models")


def _motion_encoder_out(state: dict) -> dict:
    """The face motion encoder's last convolution comes after its residual blocks (convs.8 after 7 in the released
    model, the index diffusers' converter knows); named here for an encoder of any depth."""
    last = f"motion_encoder.enc.net_app.convs.{count(state, 'motion_encoder.enc.net_app.convs.{}.conv1.0.weight') + 1}."
    return {("motion_encoder.conv_out." + k[len(last):] if k.startswith(last) else k): v for k, v in state.items()}


def animate_settings(state, num_layers: int) -> dict:
    """The Animate parts' sizes, read from the tensors: the face motion encoder takes square face crops of 2^(n+2)
    pixels for its n residual blocks (512 in the released model), and a face adapter follows every k-th block."""
    from graph_engine import NodeError
    blocks = count(state, "motion_encoder.res_blocks.{}.")
    adapters = count(state, "face_adapter.{}.")
    if not blocks or not adapters or "pose_patch_embedding.weight" not in state:
        raise NodeError("this Wan 2.2 Animate file lacks part of its face or pose encoders (motion_encoder, "
                        "face_adapter, pose_patch_embedding): it is incomplete or damaged. Copy the file again")
    size = 2 ** (blocks + 2)
    channels = {str(size): int(state["motion_encoder.conv_in.weight"].shape[0])}
    for i in range(blocks):
        channels[str(size >> (i + 1))] = int(state[f"motion_encoder.res_blocks.{i}.conv2.weight"].shape[0])
    hidden = int(state["face_encoder.conv2.weight"].shape[0])
    return {"latent_channels": int(state["pose_patch_embedding.weight"].shape[1]), "motion_encoder_size": size,
            "motion_encoder_channel_sizes": channels,
            "motion_style_dim": int(state["motion_encoder.conv_out.weight"].shape[0]),
            "motion_dim": int(state["motion_encoder.motion_synthesis_weight"].shape[1]),
            "motion_encoder_dim": int(state["motion_encoder.motion_synthesis_weight"].shape[0]),
            "face_encoder_hidden_dim": hidden,
            "face_encoder_num_heads": int(state["face_encoder.conv1_local.weight"].shape[0]) // hidden,
            "inject_face_latents_blocks": -(-num_layers // adapters)}


def vace_settings(state, num_layers: int) -> dict:
    """vace_layers and vace_in_channels of a VACE file. The files do not name the layers the hints join;
    like ComfyUI, they are spread evenly from layer 0 (every 2nd of 30 for 1.3B, every 5th of 40 for 14B)."""
    from graph_engine import NodeError
    pe = state.get("vace_patch_embedding.weight")
    n = count(state, "vace_blocks.{}.")
    if pe is None or n == 0 or "vace_blocks.0.proj_in.weight" not in state:
        raise NodeError("this Wan VACE file lacks its VACE part (vace_patch_embedding, vace_blocks.0.before_proj): "
                        "it is incomplete or damaged. Copy the file again")
    if n > num_layers:
        raise NodeError(f"this Wan VACE file has {n} VACE blocks for {num_layers} transformer blocks; "
                        "it is not a VACE model Kinograph knows")
    return {"vace_layers": list(range(0, num_layers, num_layers // n))[:n], "vace_in_channels": int(pe.shape[1])}


@register("wan", "vae")
def vae(state, det) -> Built:
    from diffusers import AutoencoderKLWan
    if det.variant == "2.2":
        return _vae_22(state, det)
    if det.layout == "original":
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
        state = convert_wan_vae_to_diffusers(dict(state))
    cfg = model_config("wan", "vae_2.1")
    cfg.update(base_dim=int(state["encoder.conv_in.weight"].shape[0]),
               z_dim=int(state["quant_conv.weight"].shape[0]) // 2)
    return Built(lambda: AutoencoderKLWan.from_config(cfg), state, cfg)


# The Wan 2.2 VAE (TI2V-5B, wan2.2_vae.safetensors) nests its blocks one level deeper than 2.1:
# encoder.downsamples.<level>.downsamples.<i>.* (residual blocks, then the resampler at i = num_res_blocks),
# decoder.upsamples.<level>.upsamples.<i>.*. diffusers 0.42 can load this VAE only from its own folder
# (its single-file converter knows the 2.1 nesting), so the nested names are renamed here; the names the
# two versions share (middle, head, conv1/conv2) still go through diffusers' converter.
_NESTED = re.compile(r"^(encoder|decoder)\.(?:down|up)samples\.(\d+)\.(?:down|up)samples\.(\d+)\.(.*)$")
_RESIDUAL = (("residual.0.", "norm1."), ("residual.2.", "conv1."), ("residual.3.", "norm2."),
             ("residual.6.", "conv2."), ("shortcut.", "conv_shortcut."))


def _vae_22(state, det) -> Built:
    from diffusers import AutoencoderKLWan
    if det.layout == "original":
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
        nested, shared = {}, {}
        for k, v in state.items():
            m = _NESTED.match(k)
            if m is None:
                shared[k] = v
                continue
            part, level, _, tail = m.groups()
            block = "down_blocks" if part == "encoder" else "up_blocks"
            for a, b in _RESIDUAL:
                if tail.startswith(a):
                    nested[f"{part}.{block}.{level}.resnets.{m.group(3)}.{b}{tail[len(a):]}"] = v
                    break
            else:                                 # resample.* / time_conv.*: the level's resampler
                sampler = "downsampler" if part == "encoder" else "upsampler"
                nested[f"{part}.{block}.{level}.{sampler}.{tail}"] = v
        state = {**convert_wan_vae_to_diffusers(shared), **nested}
    cfg = model_config("wan", "vae_2.2")
    cfg.update(base_dim=int(state["encoder.conv_in.weight"].shape[0]),
               decoder_base_dim=int(state["decoder.conv_in.weight"].shape[0]) // cfg["dim_mult"][-1],
               z_dim=int(state["quant_conv.weight"].shape[0]) // 2,
               in_channels=int(state["encoder.conv_in.weight"].shape[1]),
               out_channels=int(state["decoder.conv_out.weight"].shape[0]))
    return Built(lambda: AutoencoderKLWan.from_config(cfg), state, cfg)
