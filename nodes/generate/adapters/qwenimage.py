"""Qwen-Image (images): Qwen2.5-VL's last hidden states of the prompt in a chat template (the template's own tokens
dropped), the Wan 2.1 VAE's network with its per-channel latent statistics, one frame at a time, and a flow-matching
transformer that reads the latent in 2x2 patches (FLUX.1's packing) with a text mask.

Guidance is true CFG with a negative prompt, as ComfyUI's KSampler gives it (QwenImagePipeline also rescales the
guided prediction to the positive one's norm; at cfg 1 both are the plain prediction). The default schedule is
QwenImagePipeline's: 1 down to 1/steps shifted for the image's size (exponential time shift, ending at 0.02); the
tabulated ones (simple, beta, ...) use ComfyUI's constant shift 1.15 unless model.flow_shift (ModelSamplingAuraFlow)
sets another.

Qwen-Image-Edit (every release, the same transformer) reads the pictures to edit as references
(nodes/generate/qwen_edit.py makes them): their 2x2-patch tokens follow the noise's, each picture on its own frame
plane of the rotary positions (QwenImageEditPipeline's img_shapes; ComfyUI's reference method "index"), and only the
noise's tokens come out. Edit-2511 reads them as clean (their own timestep zero, diffusers' zero_cond_t; ComfyUI's
method "index_timestep_zero", the default of its files, which carry the __index_timestep_zero__ marker); a method set
on the conditioning switches that on or off for the call, as in ComfyUI."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, frame_centres, frames_from_batch, frames_in_batch, masked_text
from nodes.generate.adapters.flux import frame_tokens, pack, size_shifted_sigmas, unpack
from nodes.generate.adapters.wan import WanAdapter
from nodes.generate.reference import reference_rows

WAN = WanAdapter()                  # the same VAE network and latent statistics
# a conditioning's reference method -> whether the references are read at timestep zero (None: as the model does)
TIMESTEP_ZERO = {"default": None, "index": False, "index_timestep_zero": True}
COMFY_SHIFT = 1.15                  # ComfyUI's Qwen-Image sampling (ModelSamplingDiscreteFlow, shift 1.15)


class QwenImageAdapter(Adapter):
    family = "qwenimage"
    space = "flow"
    prediction = "flow"
    per_frame_text = True
    single_file = True
    max_tokens = 1024
    reads_references = True           # Qwen-Image-Edit's pictures to edit

    def load(self, path, dtype, device: str, **opts):
        """A Qwen-Image-Edit folder without its processor (transformers cannot build Qwen2VLProcessor without
        torchvision, for the videos it never reads here): its image processor alone, which encode.qwen_edit uses."""
        if not (Path(path) / "processor" / "preprocessor_config.json").is_file():
            return super().load(path, dtype, device, **opts)
        from diffusers import DiffusionPipeline
        from transformers import Qwen2VLImageProcessor
        pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True, processor=None)
        pipe.qwen_image_processor = Qwen2VLImageProcessor.from_pretrained(str(Path(path) / "processor"))
        return pipe

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        if getattr(pipe, "text_encoder", None) is None:
            raise NodeError("this text encoder has no Qwen2.5-VL: give load.text_encoder qwen_2.5_vl_7b_fp8_scaled"
                            ".safetensors (type qwen_image), or load a Qwen-Image diffusers folder")
        embeds, mask = text_only(pipe).encode_prompt(list(prompts), device=device,
                                                     max_sequence_length=self.max_tokens)
        if mask is None:        # every prompt as long as the longest: kept, so prompts of other lengths pad against it
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return embeds, mask, None

    def token_offsets(self, pipe, text):
        return None             # the template's tokens are dropped from the embeddings: no span maps onto them

    # -- sampling ------------------------------------------------------------------------
    def default_sigmas(self, pipe, steps, latent_shape):
        if not layered(pipe.transformer):
            return size_shifted_sigmas(self.scheduler(pipe), steps, latent_shape)
        # QwenImageLayeredPipeline's shift: the square root of the picture's 2x2-patch count over 256's
        return size_shifted_sigmas(self.scheduler(pipe), steps, latent_shape,
                                   mu=((latent_shape[-2] // 2) * (latent_shape[-1] // 2) / 256) ** 0.5)

    def flow_shift(self, pipe) -> float:
        return COMFY_SHIFT

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """Each conditioning's embeddings per frame, padded to the longest with its mask zero there."""
        out = masked_text(conds, frames, batch, device, dtype)
        reads = handle.pipe.transformer.config.joint_attention_dim
        if out["encoder_hidden_states"].shape[-1] != reads:     # a loaded one (condition.load) can be anything
            raise NodeError(f"the conditioning is {out['encoder_hidden_states'].shape[-1]} wide, but this Qwen-Image "
                            f"transformer reads {reads}-wide prompts (Qwen2.5-VL 7B's): encode the prompt for it, or "
                            "load a conditioning made for Qwen-Image")
        refs, method = reference_rows(conds, frames, batch, default="default")
        if refs and method not in TIMESTEP_ZERO:
            raise NodeError(f"Qwen-Image-Edit places its pictures by index (each on its own plane), not {method!r}: "
                            "set condition.reference's method to index, index_timestep_zero or default")
        if refs:
            out.update(references=[r.to(device, dtype) for r in refs], timestep_zero=TIMESTEP_ZERO[method])
        controls = handle.option("controlnet")
        if controls:                        # control.apply: encoded in forward, at the latent's size
            out.update(control=list(controls), control_frames=frame_centres(frames, 1))
        return out

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        if layered(model):
            return self._layers(model, x_in, t, inputs)
        n, c, f, h, w = x_in.shape
        tokens = frame_tokens(x_in, "Qwen-Image")
        own = tokens.shape[1]
        shapes = [(1, h // 2, w // 2)]
        for ref in inputs.get("references", ()):        # Qwen-Image-Edit: the pictures to edit, read and not denoised
            tokens = torch.cat([tokens, pack(ref).to(tokens)], 1)
            shapes.append((1, ref.shape[-2] // 2, ref.shape[-1] // 2))
        mask = inputs["mask"]
        mask = None if bool(mask.all()) else mask       # QwenImagePipeline passes no mask when no token is padding
        timestep = (t.float() / 1000).to(tokens.device).expand(n * f)
        from nodes.generate.qwen_diffsynth import BlockwiseNet, steering
        control, blockwise = None, []
        if inputs.get("control"):       # DiffSynth's blockwise nets step in after each block; InstantX's add residuals
            nets = {True: [], False: []}
            for c in inputs["control"]:
                nets[isinstance(c.net, BlockwiseNet)].append(c)
            blockwise = [(c, p) for c, p in zip(nets[True], self._pictures(inputs, nets[True], h, w, n * f, model))]
            if nets[False]:
                control = self._control({**inputs, "control": nets[False]}, tokens[:, :own].to(model.dtype), h, w,
                                        model, timestep, mask, n * f, tokens.shape[1])
        with timestep_zero(model, inputs.get("timestep_zero")), steering(model.transformer_blocks, blockwise, own):
            out = model(hidden_states=tokens.to(model.dtype), timestep=timestep,
                        encoder_hidden_states=inputs["encoder_hidden_states"], encoder_hidden_states_mask=mask,
                        img_shapes=[shapes] * (n * f), controlnet_block_samples=control, return_dict=False)[0]
        return frames_from_batch(unpack(out[:, :own], h, w), n)

    def _layers(self, model, x_in, t, inputs):
        """Qwen-Image-Layered: each batch item's frames are one picture's layers (the whole picture first), read as
        one sequence with each layer on its own plane of the rotary positions, the picture to split after them on
        plane -1 (QwenImageLayeredPipeline's img_shapes; ComfyUI's ReferenceLatent on it); the additional timestep
        condition 0 (the layers are RGBA, as both give it)."""
        if inputs.get("control"):
            raise NodeError("Qwen-Image-Layered takes no ControlNet (the Qwen-Image ones steer a single picture's "
                            "tokens, not its layers): remove control.apply from its model")
        n, c, f, h, w = x_in.shape
        own = f * (h // 2) * (w // 2)
        tokens = pack(frames_in_batch(x_in)).reshape(n, own, 4 * c)
        shapes = [(1, h // 2, w // 2)] * f
        refs = [r[::f] for r in inputs.get("references", ())]      # the rows repeat each item's for every frame
        if len(refs) > 1:
            raise NodeError(f"Qwen-Image-Layered splits one picture into layers, and this prompt holds {len(refs)}: "
                            "give condition.reference one picture")
        for ref in refs:
            tokens = torch.cat([tokens, pack(ref).to(tokens)], 1)
            shapes.append((1, ref.shape[-2] // 2, ref.shape[-1] // 2))
        text, mask = inputs["encoder_hidden_states"][::f], inputs["mask"][::f]
        with no_picture(model, not refs):
            out = model(hidden_states=tokens.to(model.dtype), timestep=(t.float() / 1000).to(tokens.device).expand(n),
                        encoder_hidden_states=text, encoder_hidden_states_mask=None if bool(mask.all()) else mask,
                        img_shapes=[shapes] * n, additional_t_cond=torch.zeros(n, dtype=torch.long,
                                                                               device=tokens.device),
                        return_dict=False)[0]
        return frames_from_batch(unpack(out[:, :own].reshape(n * f, own // f, -1), h, w), n)

    def _pictures(self, inputs, controls, h, w, rows, model) -> list:
        """Each control's pictures encoded for these frames, packed, and repeated for each conditioning and batch
        item, as the frames are."""
        from nodes.generate.control import control_latents
        from nodes.generate.vae_ops import encode_pixels
        out = []
        for c in controls:
            enc = lambda px, pipe=c.vae: encode_pixels(self, pipe, px, "encoding the ControlNet's picture")  # noqa: E731
            packed = pack(control_latents(c, inputs["control_frames"], h, w, enc, self.factors(c.vae)[1]))
            out.append(packed.repeat(rows // packed.shape[0], 1, 1).to(model.device, model.dtype))
        return out

    def _control(self, inputs, own, h, w, model, timestep, mask, rows, tokens):
        """The active ControlNets' residuals (qwen_control.residuals)."""
        from nodes.generate.qwen_control import residuals
        controls = [c._replace(frames=p) for c, p in zip(inputs["control"],
                                                         self._pictures(inputs, inputs["control"], h, w, rows, model))]
        return residuals(controls, len(model.transformer_blocks), own.shape[1], tokens, hidden_states=own,
                         timestep=timestep, encoder_hidden_states=inputs["encoder_hidden_states"],
                         encoder_hidden_states_mask=mask, img_shapes=[[(1, h // 2, w // 2)]] * rows)

    # -- VAE: each frame its own one-frame clip through the video VAE ---------------------
    def vae_per_frame(self):
        return True

    def vae_encode(self, pipe, pixels, generator=None):
        """An RGBA VAE (Qwen-Image-Layered's, Qwen-Image 2.1's) reads a picture without alpha as opaque, as their
        pipelines convert every picture to RGBA and ComfyUI pads the channel with 1."""
        if pixels.shape[1] == 3 and vae_channels(pipe.vae) == 4:
            pixels = torch.cat([pixels, torch.ones_like(pixels[:, :1])], 1)
        z = WAN.vae_encode(pipe, frames_in_batch(pixels).unsqueeze(2))[:, :, 0]
        return frames_from_batch(z, pixels.shape[0])

    def vae_decode(self, pipe, latent):
        img = WAN.vae_decode(pipe, frames_in_batch(latent).unsqueeze(2))[:, :, 0]
        return frames_from_batch(img, latent.shape[0])


def text_only(pipe):
    """A pipeline that encodes a prompt alone with Qwen-Image's template: the pipeline itself, or QwenImagePipeline
    over a Qwen-Image-Edit folder's text encoder (its own template wants a picture and its processor), as ComfyUI's
    CLIPTextEncode reads a prompt for Qwen-Image-Edit."""
    from diffusers import QwenImagePipeline
    if isinstance(pipe, QwenImagePipeline):
        return pipe
    return QwenImagePipeline(scheduler=None, vae=None, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                             transformer=None)


def layered(transformer) -> bool:
    """Whether a Qwen-Image transformer is Qwen-Image-Layered's (its layers' rotary positions)."""
    return bool(getattr(getattr(transformer, "config", None), "use_layer3d_rope", False))


def vae_channels(vae, side: str = "in_channels") -> int:
    """The picture channels a VAE reads (side in_channels) or writes (out_channels): 4 for RGBA. diffusers names
    them so on most VAEs (the Wan 2.2 network Qwen-Image 2.1's is); AutoencoderKLQwenImage has input_channels for
    both."""
    return int(getattr(vae.config, side, None) or getattr(vae.config, "input_channels", 3))


class _StandIn(torch.nn.Module):
    """QwenEmbedLayer3DRope reading layers without a picture to split (ComfyUI's text-to-layers): diffusers' takes
    the last shape for the picture (plane -1), so a 2x2 stand-in is given there and its 4 positions dropped."""
    def __init__(self, rope):
        super().__init__()
        self.rope = rope

    def forward(self, video_fhw, max_txt_seq_len, device=None):
        vid, txt = self.rope([list(video_fhw[0]) + [(1, 2, 2)]], max_txt_seq_len, device=device)
        return vid[:-4], txt


@contextlib.contextmanager
def no_picture(model, on: bool):
    """The layered transformer's positions without a picture to split, for one call (`on`)."""
    if not on:
        yield
        return
    rope = model.pos_embed
    model.pos_embed = _StandIn(rope)
    try:
        yield
    finally:
        model.pos_embed = rope


@contextlib.contextmanager
def timestep_zero(model, on):
    """The transformer reading its references at timestep zero (`on`) for one call, or as it was built (None)."""
    if on is None or bool(getattr(model, "zero_cond_t", False)) == on:
        yield
        return
    switched = [m for m in model.modules() if hasattr(m, "zero_cond_t")]
    for m in switched:
        m.zero_cond_t = on
    try:
        yield
    finally:
        for m in switched:
            m.zero_cond_t = not on


ADAPTERS = {"qwenimage": QwenImageAdapter()}
