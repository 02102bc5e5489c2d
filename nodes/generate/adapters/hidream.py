"""HiDream-I1 (full, dev, fast; images): a sparse DiT (mixture-of-experts feed-forwards) over 2x2 patches of FLUX.1's
latent (its ae.safetensors scales and shifts it). It reads T5-XXL's states on the prompt and, in each block, one layer
of Llama 3.1 8B's (every layer's hidden states are kept); CLIP-L's and CLIP-G's projected end tokens, side by side, are
its pooled embedding. T5 and Llama read 128 tokens each, padded, as HiDreamImagePipeline encodes them.

The conditioning holds T5's 128 positions followed by Llama's layers' 128 each (one sequence, so batching and CFG treat
it as any prompt); forward takes it apart. Sampled as HiDreamImagePipeline samples: the transformer is told the
timestep (sigma x 1000) and predicts the flow velocity's negative; the schedule is shifted (full 3, dev 6: ComfyUI's
ModelSamplingSD3 in its templates), true CFG with a negative for full, cfg 1 for dev and fast."""
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
    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        n = x_in.shape[0]
        flat = self.in_patches(x_in).to(model.dtype)
        ehs = inputs["encoder_hidden_states"]
        length = MAX_TOKENS
        if ehs.shape[1] % length or ehs.shape[1] // length - 1 <= max(model.config.llama_layers):
            raise NodeError(f"this prompt's encoding ({ehs.shape[1]} positions) is not HiDream-I1's (T5's 128, then "
                            f"128 for each of Llama's layers): encode it with HiDream's four text encoders")
        llama = ehs[:, length:].unflatten(1, (-1, length)).permute(1, 0, 2, 3)
        out = model(hidden_states=flat, timesteps=t.float().to(flat.device).expand(flat.shape[0]),
                    encoder_hidden_states_t5=ehs[:, :length], encoder_hidden_states_llama3=llama,
                    pooled_embeds=inputs["pooled_projections"], return_dict=False)[0]
        return frames_from_batch(-out, n)


ADAPTERS = {"hidream": HiDreamAdapter()}
