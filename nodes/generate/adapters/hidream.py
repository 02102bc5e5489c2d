"""HiDream-I1 (full, dev, fast; images): a sparse DiT (mixture-of-experts feed-forwards) over 2x2 patches of FLUX.1's
latent (its ae.safetensors scales and shifts it). It reads T5-XXL's states on the prompt and, in each block, one layer
of Llama 3.1 8B's (every layer's hidden states are kept); CLIP-L's and CLIP-G's projected end tokens, side by side, are
its pooled embedding. T5 and Llama read 128 tokens each, padded, as HiDreamImagePipeline encodes them.

The conditioning holds T5's 128 positions followed by Llama's layers' 128 each (one sequence, so batching and CFG treat
it as any prompt); forward takes it apart. Sampled as HiDreamImagePipeline samples: the transformer is told the
timestep (sigma x 1000) and predicts the flow velocity's negative; the schedule is shifted (full 3, dev 6: ComfyUI's
ModelSamplingSD3 in its templates), true CFG with a negative for full, cfg 1 for dev and fast.

HiDream-E1 (full, 1.1; the same transformer and files as I1's) edits a picture: condition.control_image (ComfyUI's
InstructPixToPixConditioning) puts its latent on the prompt, and the transformer reads it to the right of the noise,
one picture twice as wide, the output cut back to the noise's width (ComfyUI's HiDream model, image_cond). That wide
picture runs as it is, no padding to the model's largest size as diffusers' non-square path pads, as ComfyUI runs it;
a prompt without the picture (the templates' DualCFGGuider's negative) runs the plain way in its own call."""
from __future__ import annotations

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import frames_from_batch
from nodes.generate.adapters.mmdit import MMDiTAdapter, flux_ae_factors

MAX_TOKENS = 128                # HiDreamImagePipeline's max_sequence_length, for T5 and Llama alike
NO_ENCODERS = ("HiDream-I1 reads four text encoders, CLIP-L and CLIP-G (clip_l_hidream, clip_g_hidream), T5-XXL "
               "(t5xxl_fp8_e4m3fn_scaled) and Llama 3.1 8B (llama_3.1_8b_instruct_fp8_scaled); this text encoder {lacks}. "
               "Give load.text_encoder the four files (name .. name4, type hidream), as ComfyUI's QuadrupleCLIPLoader does")
PARTS = (("CLIP-L", "text_encoder"), ("CLIP-G", "text_encoder_2"), ("T5-XXL", "text_encoder_3"),
         ("Llama 3.1 8B", "text_encoder_4"))


class HiDreamAdapter(MMDiTAdapter):
    family = "hidream"
    name = "HiDream-I1"
    encoders = "CLIP-L, CLIP-G, T5-XXL and Llama 3.1 8B"
    max_tokens = MAX_TOKENS

    def factors(self, pipe):
        return flux_ae_factors(pipe)

    # -- text ----------------------------------------------------------------------------
    def encode_text(self, pipe, prompts, device):
        """(T5's [K, 128, D] then Llama's layers [K, layers x 128, D]; None; CLIP-L | CLIP-G pooled [K, 2048]), each
        part as HiDreamImagePipeline.encode_prompt makes it."""
        lacks = [name for name, part in PARTS if getattr(pipe, part, None) is None]
        if lacks:
            raise NodeError(NO_ENCODERS.format(lacks="has no " + " and no ".join(lacks)))
        prompts = list(prompts)
        pooled = torch.cat([pipe._get_clip_prompt_embeds(tok, te, prompts, self.max_tokens, device)
                            for tok, te in ((pipe.tokenizer, pipe.text_encoder),
                                            (pipe.tokenizer_2, pipe.text_encoder_2))], dim=-1)
        t5 = pipe._get_t5_prompt_embeds(prompts, self.max_tokens, device)
        llama = pipe._get_llama3_prompt_embeds(prompts, self.max_tokens, device)      # [layers, K, L, D]
        if t5.shape[-1] != llama.shape[-1] or t5.shape[1] != llama.shape[2]:
            raise NodeError(f"T5's states ({tuple(t5.shape[1:])}) and Llama's ({tuple(llama.shape[2:])}) differ in "
                            "width or length; HiDream-I1 reads T5-XXL and Llama 3.1 8B (both 4096 wide): give "
                            "load.text_encoder HiDream's encoders")
        llama = llama.permute(1, 0, 2, 3).flatten(1, 2).to(t5.dtype)
        return torch.cat([t5, llama], dim=1), None, pooled

    def token_offsets(self, pipe, text):
        return None             # Llama's layers repeat the prompt's tokens: no one span of positions maps onto them

    # -- sampling ------------------------------------------------------------------------
    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """The prompts' inputs, and each batch item's picture to edit (None where its prompt has none)."""
        inputs = super().conditioning_inputs(handle, conds, frames, batch, device, dtype)
        pictures = [c.extra.get("concat") for c in conds]
        if any(p is not None for p in pictures):
            inputs["image_cond"] = [None if p is None else p[:, :, [min(int(f), p.shape[2] - 1) for f in frames]]
                                    for p in pictures for _ in range(batch)]
        return inputs

    def forward(self, handle, x_in, t, inputs):
        pictures = inputs.get("image_cond")
        if pictures is None:
            return self._forward(handle, x_in, t, inputs)
        out = torch.empty_like(x_in)
        for edit in (False, True):
            rows = [i for i, p in enumerate(pictures) if (p is not None) == edit]
            if rows:
                part = {k: v[rows] if torch.is_tensor(v) and len(v) == len(pictures) else v
                        for k, v in inputs.items() if k != "image_cond"}
                picture = torch.cat([pictures[i] for i in rows]).to(x_in.device) if edit else None
                out[rows] = self._forward(handle, x_in[rows], t, part, picture).to(out.dtype)
        return out

    def _forward(self, handle, x_in, t, inputs, picture=None):
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = self.in_patches(x_in).to(model.dtype)
        ehs = inputs["encoder_hidden_states"]
        length = MAX_TOKENS
        if ehs.shape[1] % length or ehs.shape[1] // length - 1 <= max(model.config.llama_layers):
            raise NodeError(f"this prompt's encoding ({ehs.shape[1]} positions) is not HiDream-I1's (T5's 128, then "
                            f"128 for each of Llama's layers): encode it with HiDream's four text encoders")
        llama = ehs[:, length:].unflatten(1, (-1, length)).permute(1, 0, 2, 3)
        wide = {} if picture is None else _beside(flat, self.in_patches(picture).to(flat.device, model.dtype))
        out = model(hidden_states=wide.get("hidden_states", flat),
                    timesteps=t.float().to(flat.device).expand(flat.shape[0]), encoder_hidden_states_t5=ehs[:, :length],
                    encoder_hidden_states_llama3=llama, pooled_embeds=inputs["pooled_projections"],
                    return_dict=False, **{k: v for k, v in wide.items() if k != "hidden_states"})[0]
        return frames_from_batch(-out[..., :flat.shape[-1]], n)


def _beside(flat: torch.Tensor, picture: torch.Tensor) -> dict:
    """The transformer's inputs for the noise [B, C, h, w] with the picture to edit to its right, as 2x2-patch tokens
    row by row (the transformer's own order) with their rows and columns as positions, all of them attended."""
    if picture.shape[-2] != flat.shape[-2]:
        raise NodeError(f"the picture to edit is {picture.shape[-2] * 8} pixels high, the latent sampled "
                        f"{flat.shape[-2] * 8}: sample the latent condition.control_image gives with it")
    x = torch.cat([flat, picture.expand(flat.shape[0], -1, -1, -1)], dim=-1)
    b, c, h, w = x.shape
    rows, cols = h // 2, w // 2
    tokens = x.reshape(b, c, rows, 2, cols, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, rows * cols, 4 * c)
    ids = torch.zeros(rows, cols, 3, device=x.device)
    ids[..., 1] += torch.arange(rows, device=x.device)[:, None]
    ids[..., 2] += torch.arange(cols, device=x.device)[None, :]
    return {"hidden_states": tokens, "hidden_states_masks": torch.ones(b, rows * cols, device=x.device, dtype=x.dtype),
            "img_sizes": [(rows, cols)] * b, "img_ids": ids.reshape(1, rows * cols, 3).expand(b, -1, -1)}


ADAPTERS = {"hidream": HiDreamAdapter()}
