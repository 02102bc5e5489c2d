"""Text generation with a text encoder's own language model, as ComfyUI's TextGenerate does it (a prompt written or
enhanced by Qwen3, Gemma 3, Gemma 4, Qwen3-VL or Qwen3.5, the very file that encodes prompts; Qwen3-VL, Qwen3.5 and
Gemma 4 reading a picture too, Gemma 4 E2B / E4B hearing a sound).

The encoder Kinograph already loads (load.text_encoder: Qwen3Model, Gemma3TextModel) is wrapped in transformers'
causal-LM class of the same family, its output head the file's own `lm_head` or, where the model ties it, the token
embeddings (Qwen3-4B, Gemma 3); Qwen3-VL, Qwen3.5 and Gemma 4 load as Qwen3VLForConditionalGeneration,
Qwen3_5ForCausalLM and Gemma4ForCausalLM (Gemma4ForConditionalGeneration where the file holds its towers), which
generate as they are.
transformers' `generate` samples: no sampler is written here. A file whose model has an untied head that the file left
out (ComfyUI's conditioning-only cuts) cannot generate and says so."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from graph_engine import NodeError

# Encoder module -> (its causal-LM class in transformers, the family's name in messages)
CAUSAL_LM = {"Qwen3Model": ("Qwen3ForCausalLM", "Qwen3"), "Gemma3TextModel": ("Gemma3ForCausalLM", "Gemma 3")}
# Encoders that only encode (CLIP, T5, UMT5): no language model head was ever trained on them
NO_LM = ("CLIP", "T5", "UMT5")
# The turn ends that stop generation, by name (ComfyUI's stop_tokens: Qwen3 151643/151645, Gemma 3 1/106, Gemma 4 1/106)
STOP_TOKENS = ("<|endoftext|>", "<|im_end|>", "<eos>", "<end_of_turn>", "<turn|>")
# Gemma 3's published chat turn, for its sentencepiece tokenizer (ComfyUI keeps no chat template in the file)
GEMMA_TURN = "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
# Gemma 4's turn as ComfyUI writes it (its file keeps no chat template): <bos> first, thinking asked for in a system
# turn that also holds the system prompt where one is given
GEMMA4_TURN = "<bos>{system}<|turn>user\n{prompt}<turn|>\n<|turn>model\n"
GEMMA4_SYSTEM = "<|turn>system\n{think}{system}<turn|>\n"
# Qwen's user turn with the picture's placeholder first, which the processor widens to the picture's patch count, and
# what each model's turn adds for thinking off and on, as ComfyUI writes them: Qwen3-VL's published turn (a model that
# does not think unless told), Qwen3.5's with an empty reasoning block when it is not to think
QWEN_TURN = "<|im_start|>user\n{image}{prompt}<|im_end|>\n<|im_start|>assistant\n"
QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
QWEN_THINK = {"Qwen3-VL": ("", "<think>\n"), "Qwen3.5": ("<think>\n</think>\n", "")}
# Models that generate as loaded (no causal-LM wrapper), by class, with their family's name
GENERATES = {"Qwen3VLForConditionalGeneration": "Qwen3-VL", "Qwen3_5ForCausalLM": "Qwen3.5",
             "Qwen3_5ForConditionalGeneration": "Qwen3.5", "Gemma4ForCausalLM": "Gemma 4",
             "Gemma4ForConditionalGeneration": "Gemma 4"}
# Models that read pictures and hear sounds through their own towers, prepared as ComfyUI prepares them
TOWERS = ("Gemma4ForConditionalGeneration",)
# Hidden sizes whose released models keep an untied output head: without lm_head in the file they cannot generate
UNTIED = {"Qwen3Model": {4096: "Qwen3-8B"}, "Qwen3VLForConditionalGeneration": {4096: "Qwen3-VL-8B"},
          "Qwen3_5ForCausalLM": {4096: "Qwen3.5-9B", 5120: "Qwen3.5-27B"},
          "Qwen3_5ForConditionalGeneration": {4096: "Qwen3.5-9B", 5120: "Qwen3.5-27B"}}
CAN_GENERATE = ("Qwen3 (qwen_3_4b, qwen_3_8b with its lm_head), Gemma 3 (gemma_3_12B_it), Gemma 4 (gemma4_e4b_it, "
                "gemma4_e2b_it: a picture and a sound too; gemma4_31b: a picture), Qwen3-VL (qwen3vl_4b, qwen3vl_8b with its lm_head; it reads a picture too) and Qwen3.5 "
                "(qwen3.5_4b, qwen3.5_9b)")


def causal_lm(handle):
    """The handle's text encoder as a transformers causal LM sharing its weights (nothing is copied)."""
    import torch
    import transformers
    from accelerate import init_empty_weights
    pipe = handle.pipe
    module = getattr(pipe, "text_encoder", None)
    name = type(module).__name__
    if name in GENERATES:
        text = getattr(module.config, "text_config", module.config)
        _check_head(handle, name, text.hidden_size, module.config.tie_word_embeddings)
        return module
    if name not in CAUSAL_LM:
        what = "has no language model to write text with" if name.startswith(NO_LM) else \
            "is not a language model Kinograph generates text with yet"
        raise NodeError(f"{_file(handle)} is a {name} text encoder ({handle.family}), which {what}; text "
                        f"generation takes {CAN_GENERATE}")
    cls_name, title = CAUSAL_LM[name]
    head = _file_head(handle)
    if head is None:
        _check_head(handle, name, module.config.hidden_size, True)
        head = module.embed_tokens.weight          # Qwen3-4B and Gemma 3 tie the head to the embeddings
    with init_empty_weights():
        lm = getattr(transformers, cls_name)(module.config)
    lm.model = module
    lm.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False, device="meta")
    lm.lm_head.weight = torch.nn.Parameter(head.to(module.embed_tokens.weight), requires_grad=False)
    lm.eval()
    lm.title = title
    return lm


def _check_head(handle, name: str, hidden: int, tied: bool) -> None:
    """Refuse a file of a model with its own output head that the file left out (its embeddings are not the head)."""
    untied = UNTIED.get(name, {}).get(hidden)
    if tied and untied:
        raise NodeError(f"{_file(handle)} is {untied}, whose output head (lm_head) is its own, and the file "
                        "holds none: it can encode prompts but not generate text. Use a file with lm_head.weight "
                        f"or another encoder: {CAN_GENERATE}")


def title_of(lm) -> str:
    return GENERATES.get(type(lm).__name__) or lm.title


def _file(handle) -> str:
    return Path(str(handle.path).split("+")[0]).name


def _file_head(handle):
    """The file's own lm_head (fp8 scaled and int8_convrot folded), or None where it has none."""
    from nodes.generate.weights import dequantise, read_selected
    path = Path(str(handle.path).split("+")[0])
    if path.suffix.lower() not in (".safetensors", ".sft"):
        return None
    # whole names kept (lm_head.weight, its .weight_scale and .comfy_quant): the loader's rules match on them
    state = read_selected(path, lambda k: "lm_head." in k and k.split("lm_head.", 1)[0] in ("", "model."))
    head = next((k for k in ("lm_head.weight", "model.lm_head.weight") if k in state), None)
    return None if head is None else dequantise(state)[head]


def chat_prompt(tokenizer, prompt: str, title: str, thinking: bool, use_template: bool, system: str = "",
                image: bool = False) -> str:
    """The prompt as the model reads a user's turn, after the system turn where `system` gives one: Qwen3-VL's or
    Qwen3.5's turn (the picture first), the tokenizer's own chat template (Qwen3's, thinking on or off), Gemma 3's turn where its
    sentencepiece tokenizer carries none (its template puts the instructions at the head of the user's turn), or the
    text as written."""
    if not use_template:
        return prompt
    if title in QWEN_THINK:
        head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
        turn = QWEN_TURN.format(image=QWEN_IMAGE if image else "", prompt=prompt)
        return head + turn + QWEN_THINK[title][thinking]
    if getattr(tokenizer, "chat_template", None):
        turns = [{"role": "system", "content": system}] if system else []
        from nodes.generate.chat_template import apply_chat_template
        return apply_chat_template(tokenizer, turns + [{"role": "user", "content": prompt}],
                                   f"the {title} language model", ", or set use_default_template off",
                                   add_generation_prompt=True, enable_thinking=thinking)
    if title == "Gemma 4":
        head = GEMMA4_SYSTEM.format(think="<|think|>" if thinking else "", system=system) if thinking or system else ""
        return GEMMA4_TURN.format(system=head, prompt=prompt)
    if title == "Gemma 3":
        return GEMMA_TURN.format(prompt=f"{system}\n\n{prompt}" if system else prompt)
    raise NodeError(f"the {title} tokenizer has no chat template: give its tokenizer_config.json with one "
                    "(the model's own), or set use_default_template off to send the prompt as written")


def stop_ids(tokenizer) -> List[int]:
    ids = []
    for t in STOP_TOKENS:
        i = tokenizer.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != tokenizer.unk_token_id and i not in ids:
            ids.append(i)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generate_ids(handle, prompt: str, max_length: int = 512, sample: bool = True, temperature: float = 0.7,
                 top_k: int = 64, top_p: float = 0.95, min_p: float = 0.05, repetition_penalty: float = 1.05,
                 seed: int = 0, thinking: bool = False, use_template: bool = True, system: str = "",
                 image=None, audio=None, video=None) -> Tuple[List[int], object]:
    """The generated token ids (the stop token included, as ComfyUI's) and the tokenizer that reads them: at most
    max_length, and never past the model's context. Deterministic for a seed: the draw runs on its own seeded random
    stream, the global one left as it was."""
    import torch
    from nodes.generate.text import _text_loras
    lm = causal_lm(handle)
    title = title_of(lm)
    proc = getattr(handle.pipe, "processor", None)
    towers = type(lm).__name__ in TOWERS
    if video is not None and not towers:
        raise NodeError(f"{_file(handle)} is a {title} language model, which reads no video: leave `video` unlinked, "
                        "or generate with Gemma 4 (gemma4_e4b_it), which reads its frames")
    if audio is not None and not towers:
        raise NodeError(f"{_file(handle)} is a {title} language model, which hears no sound: leave `audio` unlinked, "
                        "or generate with Gemma 4 E2B or E4B (gemma4_e4b_it), which hear it")
    if image is not None and proc is None and not towers:
        what = {"Qwen3.5": "a file without its vision tower (visual.*)",
                "Gemma 4": "a file without its vision tower (vision_model.*)"}.get(title, "a model that reads no pictures")
        raise NodeError(f"{_file(handle)} is a {title} language model, {what}: leave `image` unlinked, or generate "
                        "with Qwen3-VL (qwen3vl_4b, qwen3vl_8b), Qwen3.5 or Gemma 4 with its vision tower, which read one")
    if (image is not None or audio is not None or video is not None) and not use_template:
        # the picture's or sound's place is a placeholder in the chat turn, widened to its soft tokens
        raise NodeError(f"{_file(handle)} reads a picture or sound inside its chat turn, and use_default_template off "
                        "sends the prompt as written, with no place for it: set use_default_template on, or leave "
                        "`image`, `video` and `audio` unlinked")
    media, media_inputs = "", {}
    if towers and (image is not None or audio is not None or video is not None):
        import numpy as np
        from nodes.generate.audio_encoder import samples
        from nodes.generate.gemma4_media import media as gemma4_media, video_frames
        media, media_inputs = gemma4_media(title, [] if image is None else [np.asarray(image)],
                                           None if audio is None else samples(audio), lm,
                                           () if video is None else video_frames(video))
    text = chat_prompt(getattr(handle.pipe, "tokenizer", None), media + prompt, title, thinking, use_template,
                       system, image is not None and not towers)
    if proc is not None:
        # the processor widens the picture's placeholder to its patch count and makes the patches
        tok = proc.tokenizer
        enc = proc(text=[text], images=None if image is None else [image], return_tensors="pt")
    else:
        tok = handle.pipe.tokenizer
        # Gemma's <bos> is in its turn text's tokenization already (add_bos_token); Qwen3's template adds nothing
        enc = {**tok(text, return_tensors="pt", add_special_tokens=not use_template or title == "Gemma 3"),
               **media_inputs}
    max_length = _room(enc["input_ids"].shape[1], lm, title, use_template, max_length)
    device = lm.lm_head.weight.device
    inputs = {k: v.to(device) for k, v in enc.items() if k != "token_type_ids"}
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(lm.lm_head.weight.dtype)
    stops = stop_ids(tok)
    kw = dict(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p or None,
              repetition_penalty=repetition_penalty) if sample else dict(do_sample=False, temperature=None,
                                                                          top_k=None, top_p=None)
    gpu = device.type != "cpu"
    # the encoder's LoRAs (ComfyUI's LoraLoader strength_clip: LTX-2's abliterated Gemma) act as they do in encoding
    with _text_loras(handle), torch.random.fork_rng(devices=[device] if gpu else [],
                                                   device_type=device.type if gpu else None), torch.no_grad():
        # Only the streams forked above (the CPU's, the model's device's): torch.manual_seed reseeds every GPU's and
        # MPS's, which fork_rng does not put back
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        elif gpu:
            torch.get_device_module(device.type).manual_seed(seed)
        try:
            out = lm.generate(**inputs, max_new_tokens=max_length, eos_token_id=stops,
                              pad_token_id=stops[0] if stops else None, **kw)
        except RuntimeError as e:
            # torch.multinomial on the scores of a file with damaged (NaN) tensors: a traceback before
            if "probability tensor contains" not in str(e):
                raise
            raise NodeError(f"{_file(handle)}: its language model gives scores that are not numbers (NaN or inf): "
                            "the file holds damaged tensors; download it again") from None
    return out[0, enc["input_ids"].shape[1]:].tolist(), tok


def context_of(model) -> Optional[int]:
    """The most tokens a transformers language model (or text encoder) was trained to read at once
    (max_position_embeddings; Qwen3-VL's is its language model's), or None where its config says none."""
    config = getattr(model.config, "text_config", None) or model.config
    return getattr(config, "max_position_embeddings", None)


def _room(tokens: int, lm, title: str, use_template: bool, max_length: int) -> int:
    """How many tokens the model writes after a prompt of `tokens`: max_length, up to its context
    (max_position_embeddings), past which its positions were never trained. No token to start from (an empty prompt sent as written) and a
    prompt filling the context are refused: the first failed in transformers with a reshape error and a traceback,
    the second ran on positions the model never learnt, its cache growing with the prompt."""
    if tokens == 0:
        raise NodeError("text.generate's prompt is empty and use_default_template is off, so the model has no token "
                        "to start from: write a prompt, or turn use_default_template on")
    context = context_of(lm)
    if context is None:
        return max_length
    if tokens >= context:
        how = "the prompt in the model's chat turn" if use_template else "the prompt"
        raise NodeError(f"text.generate: {how} is {tokens:,} tokens, and {title} reads at most {context:,}: "
                        "shorten the prompt")
    return min(max_length, context - tokens)


def generate_text(handle, prompt: str, **kw) -> Tuple[str, str]:
    """(answer, reasoning): the generated text split at </think> as ComfyUI splits it, the reasoning empty where the
    model did not think."""
    ids, tok = generate_ids(handle, prompt, **kw)
    text = tok.decode(ids, skip_special_tokens=True)
    reasoning, _, answer = text.partition("</think>")
    if not reasoning.lstrip().startswith("<think>") and not prompt.rstrip().endswith("<think>"):
        reasoning, answer = "", text
    return answer.strip(), reasoning.replace("<think>", "", 1).strip()

