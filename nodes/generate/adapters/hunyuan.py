"""HunyuanVideo: Llama text (a prompt template, cropped) plus a CLIP pooled vector, a 3-D VAE,
a flow-matching transformer with guidance distilled in (cfg is an input, no negative pass).

Image-to-video comes in ComfyUI's two kinds (diffusers' image_condition_type):
- v1 "concat" (latent_concat, 33 input channels): the image latent on the first frame and a mask of it
  are concatenated to the noise (conditioning extra "concat", as Wan's);
- v2 "replace" (token_replace, the 16-channel layout): the first latent frame is the clean image latent
  (kept by the latent's noise mask) and the conditioning names it the guiding frame, whose tokens are
  modulated at time 0. The file cannot say which it is, so a 16-channel transformer gets a token-replace
  twin sharing its weights when a run asks for it.
Both read a prompt encoded together with the image (llava-llama-3 with the image's tokens in its
template: encode_text_image)."""
from __future__ import annotations

import weakref

import numpy as np
import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter, stack_global

_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class HunyuanAdapter(Adapter):
    family = "hunyuan"
    single_file = True
    space = "flow"
    prediction = "flow"
    max_tokens = 256

    def encode_text(self, pipe, prompts, device):
        if _is_i2v_pipe(pipe):
            raise NodeError("this HunyuanVideo text encoder is llava's image-to-video one: encode the prompt with "
                            "encode.text_image and the start image")
        embeds, pooled, mask = pipe.encode_prompt(list(prompts), list(prompts), device=device,
                                                  max_sequence_length=self.max_tokens)
        return embeds, mask.bool(), pooled

    def token_offsets(self, pipe, text):
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE
        template, crop = DEFAULT_PROMPT_TEMPLATE["template"], DEFAULT_PROMPT_TEMPLATE["crop_start"]
        prefix = template.index("{}")
        offsets = self._offsets(pipe.tokenizer, template.format(text), self.max_tokens + crop)[crop:]
        return [None if o is None else (o[0] - prefix, o[1] - prefix) for o in offsets]

    def image_encoder_pipe(self, pipe):
        """A diffusers HunyuanVideo-I2V folder's image side is inside its LlavaForConditionalGeneration."""
        if _is_i2v_pipe(pipe) and pipe.text_encoder is not None:
            from nodes.generate.llava import LlavaVision, VisionPipe
            return VisionPipe(LlavaVision.of(pipe.text_encoder), pipe.image_processor)
        return None

    def encode_image(self, pipe, image, device):
        if not hasattr(pipe, "encode"):
            raise NodeError("HunyuanVideo image-to-video reads llava-llama-3's image tokens: load "
                            "clip_vision/llava_llama3_vision.safetensors with load.clip_vision")
        return pipe.encode(image, device)

    def encode_text_image(self, pipe, image_tokens, prompts, interleave, device):
        """(embeds, mask, pooled) of prompts encoded with an image, as diffusers' HunyuanVideoImageToVideoPipeline
        encodes them: llava-llama-3 reads the i2v prompt template with the image's tokens in place of <image>;
        the template is cropped off, every `interleave`-th image token is kept and put before the prompt's."""
        from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE
        embeds, mask = llama_with_image(pipe.tokenizer, pipe.text_encoder, DEFAULT_PROMPT_TEMPLATE["template"],
                                        image_tokens, list(prompts), interleave, self.max_tokens, device)
        pooled = pipe._get_clip_prompt_embeds(list(prompts), device=device, max_sequence_length=77)
        return embeds, mask, pooled

    def default_sigmas(self, pipe, steps, latent_shape):
        sch = self.scheduler(pipe)
        sch.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1])
        return torch.as_tensor(sch.sigmas, dtype=torch.float64).flatten()

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, m, p = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        inputs = {"encoder_hidden_states": e, "encoder_attention_mask": m, "pooled_projections": p}
        extra = conds[-1].extra
        if "concat" in extra:
            idx = torch.as_tensor(list(frames))
            inputs["concat"] = torch.cat([c.extra.get("concat", extra["concat"])[:, :, idx]
                                          for c in conds for _ in range(batch)]).to(device, dtype)
        if conds[-1].meta.get("guiding_frame") == 0 and int(frames[0]) == 0:
            inputs["token_replace"] = True
        return inputs

    def keeps_clean(self, handle) -> bool:
        """A latent keeping frames (v2 "replace": the start image's): the kept frame reaches the model clean and
        the token-replace reading comes from the conditioning."""
        return True

    def forward(self, handle, x_in, t, inputs):
        model = handle.pipe.transformer
        inputs.pop("noise_mask", None)
        concat = inputs.pop("concat", None)
        kind = getattr(model.config, "image_condition_type", None)
        if concat is not None:
            if kind != "latent_concat":
                raise NodeError("guidance v1 (concat) needs the HunyuanVideo image-to-video model with 33 input "
                                "channels (hunyuan_video_image_to_video_720p_bf16.safetensors); this one has "
                                f"{model.config.in_channels}. Use guidance v2 (replace) with the v2 model")
            x_in = torch.cat([x_in, concat.to(x_in.device)], dim=1)
        elif kind == "latent_concat":
            raise NodeError("this is the HunyuanVideo v1 image-to-video model: it needs the start image through "
                            "condition.hunyuan_i2v with guidance v1 (concat)")
        if inputs.pop("token_replace", False) and kind != "token_replace":
            if handle.loras:
                raise NodeError("guidance v2 (replace) on this model takes no LoRA yet (LoRAs act on the model "
                                "as loaded, not on its token-replace form): remove the LoRA")
            model = token_replace_twin(model)
            weights = next(model.parameters())
            if weights.device.type == "meta":
                raise NodeError("guidance v2 (replace) cannot run with sequential offload: load the model with "
                                "offload none or model")
            if weights.device != x_in.device:      # model offload moves the transformer only when it is called
                handle.pipe.transformer.to(x_in.device)
        n = x_in.shape[0]
        guidance = torch.full((n,), float(inputs.pop("guidance", 6.0)) * 1000.0, dtype=model.dtype,
                              device=x_in.device)
        return model(hidden_states=x_in.to(model.dtype), timestep=t.to(x_in.device).expand(n).to(x_in.dtype),
                     guidance=guidance, return_dict=False, **inputs)[0]


def _is_i2v_pipe(pipe) -> bool:
    return type(pipe).__name__ == "HunyuanVideoImageToVideoPipeline"


def token_replace_twin(model):
    """The same transformer built with image_condition_type "token_replace" (identical parameter names; its
    blocks modulate the first frame's tokens at time 0), holding the model's own Parameter objects, so it
    costs no memory and follows the model's moves between devices; made once per model."""
    twin = _TWINS.get(model)
    if twin is None:
        from accelerate import init_empty_weights
        cfg = dict(model.config)
        cfg["image_condition_type"] = "token_replace"
        with init_empty_weights():
            twin = type(model).from_config(cfg)
        owners = dict(twin.named_modules())
        names = {n for n, _ in twin.named_parameters()}
        for name, param in model.named_parameters():
            if name not in names:
                raise NodeError(f"the HunyuanVideo transformer has a weight {name} that its token-replace form "
                                "lacks; this variant cannot run guidance v2 (replace)")
            owner, _, leaf = name.rpartition(".")
            owners[owner]._parameters[leaf] = param
        twin = twin.eval()
        _TWINS[model] = twin
    return twin


def llama_with_image(tokenizer, llama, template: str, image_tokens: torch.Tensor, prompts, interleave: int,
                     max_tokens: int, device):
    """Hidden states (third from last layer) of `template` filled with each prompt, the image's tokens
    standing in for the template's <image>: the image tokens (every `interleave`-th) then the prompt's,
    with the template around them cropped away, and their mask.

    Follows diffusers' HunyuanVideoImageToVideoPipeline._get_llama_prompt_embeds, with the template's
    positions counted by the tokenizer rather than fixed (so any llama-3 tokenizer lines up): the prompt
    starts after the template's head; of the tail, <|eot_id|> and the assistant header are dropped, what
    follows the header ("\\n\\n") and the padding kept."""
    llama = getattr(getattr(llama, "model", None), "language_model", llama)     # a whole llava: its language model
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    head, tail = template.split("{}")
    crop = len(tokenizer(head)["input_ids"])
    cut = tail.rindex("<|end_header_id|>") + len("<|end_header_id|>")
    tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    after = len(tokenizer(tail[cut:], add_special_tokens=False)["input_ids"])
    enc = tokenizer([template.format(p) for p in prompts], max_length=max_tokens + crop, padding="max_length",
                    truncation=True, return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    where = (ids[0] == image_id).nonzero().flatten()
    if image_id is None or image_id == tokenizer.unk_token_id or len(where) != 1:
        raise NodeError("the llava-llama-3 tokenizer has no <image> token, so the image cannot be placed in the "
                        "prompt; use the tokenizer that comes with llava_llama3 (ComfyUI's llama_tokenizer)")
    at, n = int(where[0]), image_tokens.shape[1]
    emb = llama.get_input_embeddings()
    text = emb(ids.to(device))
    image = image_tokens.to(device, text.dtype).expand(len(prompts), -1, -1)
    x = torch.cat([text[:, :at], image, text[:, at + 1:]], dim=1)
    m = torch.cat([mask[:, :at], mask.new_ones(len(prompts), n), mask[:, at + 1:]], dim=1).to(device)
    positions = (m.cumsum(-1) - 1).masked_fill(m == 0, 1)
    hidden = llama(inputs_embeds=x, attention_mask=m, position_ids=positions,
                   output_hidden_states=True).hidden_states[-3]
    shift = n - 1                                   # the one <image> token became n
    rows, masks = [], []
    for i in range(len(prompts)):
        real = int(mask[i].sum())
        tail_at = real - len(tail_ids)
        whole = tail_at >= crop and ids[i, tail_at:real].tolist() == tail_ids
        keep = list(range(crop, tail_at)) + list(range(real - after, ids.shape[1])) if whole else \
            list(range(crop, ids.shape[1] - len(tail_ids) + after))     # truncated: the tail was cut off
        keep_t = torch.as_tensor(keep)
        rows.append(torch.cat([hidden[i, at:at + n:interleave], hidden[i, keep_t + shift]]))
        masks.append(torch.cat([m.new_ones(len(range(0, n, interleave))), m[i, keep_t + shift]]))
    return torch.stack(rows), torch.stack(masks).bool()


ADAPTERS = {"hunyuan": HunyuanAdapter()}
