"""Text generation with a text encoder's own language model, as ComfyUI's TextGenerate does it (a prompt written or
enhanced by Qwen3 or Gemma 3, the very file that encodes prompts).

The encoder Kinograph already loads (load.text_encoder: Qwen3Model, Gemma3TextModel) is wrapped in transformers'
causal-LM class of the same family, its output head the file's own `lm_head` or, where the model ties it, the token
embeddings (Qwen3-4B, Gemma 3), and transformers' `generate` samples: no sampler is written here. A file whose model
has an untied head that the file left out (ComfyUI's conditioning-only cuts) cannot generate and says so."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

from graph_engine import NodeError

# Encoder module -> (its causal-LM class in transformers, the family's name in messages)
CAUSAL_LM = {"Qwen3Model": ("Qwen3ForCausalLM", "Qwen3"), "Gemma3TextModel": ("Gemma3ForCausalLM", "Gemma 3")}
# Encoders that only encode (CLIP, T5, UMT5): no language model head was ever trained on them
NO_LM = ("CLIP", "T5", "UMT5")
# The turn ends that stop generation, by name (ComfyUI's stop_tokens: Qwen3 151643/151645, Gemma 3 1/106)
STOP_TOKENS = ("<|endoftext|>", "<|im_end|>", "<eos>", "<end_of_turn>")
# Gemma 3's published chat turn, for its sentencepiece tokenizer (ComfyUI keeps no chat template in the file)
GEMMA_TURN = "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n"
# Hidden sizes whose released models keep an untied output head: without lm_head in the file they cannot generate
UNTIED = {"Qwen3Model": {4096: "Qwen3-8B"}}
CAN_GENERATE = "Qwen3 (qwen_3_4b, qwen_3_8b with its lm_head) and Gemma 3 (gemma_3_12B_it)"


def causal_lm(handle):
    """The handle's text encoder as a transformers causal LM sharing its weights (nothing is copied)."""
    import torch
    import transformers
    from accelerate import init_empty_weights
    pipe = handle.pipe
    module = getattr(pipe, "text_encoder", None)
    name = type(module).__name__
    if name not in CAUSAL_LM:
        what = "has no language model to write text with" if name.startswith(NO_LM) else \
            "is not a language model Kinograph generates text with yet"
        raise NodeError(f"{_file(handle)} is a {name} text encoder ({handle.family}), which {what}; text "
                        f"generation takes {CAN_GENERATE}")
    cls_name, title = CAUSAL_LM[name]
    head = _file_head(handle)
    if head is None:
        untied = UNTIED.get(name, {}).get(module.config.hidden_size)
        if untied:
            raise NodeError(f"{_file(handle)} is {untied}, whose output head (lm_head) is its own, and the file "
                            "holds none: it can encode prompts but not generate text. Use a file with lm_head.weight "
                            f"or another encoder: {CAN_GENERATE}")
        head = module.embed_tokens.weight          # Qwen3-4B and Gemma 3 tie the head to the embeddings
    with init_empty_weights():
        lm = getattr(transformers, cls_name)(module.config)
    lm.model = module
    lm.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False, device="meta")
    lm.lm_head.weight = torch.nn.Parameter(head.to(module.embed_tokens.weight), requires_grad=False)
    lm.eval()
    lm.title = title
    return lm


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


def chat_prompt(tokenizer, prompt: str, title: str, thinking: bool, use_template: bool) -> str:
    """The prompt as the model reads a user's turn: the tokenizer's own chat template (Qwen3's, thinking on or off),
    Gemma 3's turn where its sentencepiece tokenizer carries none, or the text as written."""
    if not use_template:
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=thinking)
    if title == "Gemma 3":
        return GEMMA_TURN.format(prompt=prompt)
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
                 seed: int = 0, thinking: bool = False, use_template: bool = True) -> Tuple[List[int], object]:
    """The generated token ids (the stop token included, as ComfyUI's) and the tokenizer that reads them: at most
    max_length, and never past the model's context. Deterministic for a seed: the draw runs on its own seeded random
    stream, the global one left as it was."""
    import torch
    from nodes.generate.text import _text_loras
    lm = causal_lm(handle)
    tok = handle.pipe.tokenizer
    text = chat_prompt(tok, prompt, lm.title, thinking, use_template)
    # Gemma's <bos> is in its turn text's tokenization already (add_bos_token); Qwen3's template adds nothing
    enc = tok(text, return_tensors="pt", add_special_tokens=not use_template or lm.title == "Gemma 3")
    max_length = min(max_length, _room(enc.input_ids.shape[1], lm, use_template))
    device = lm.lm_head.weight.device
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
        out = lm.generate(enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device),
                          max_new_tokens=max_length, eos_token_id=stops, pad_token_id=stops[0] if stops else None,
                          **kw)
    return out[0, enc.input_ids.shape[1]:].tolist(), tok


def _room(tokens: int, lm, use_template: bool) -> int:
    """How many tokens the model can write after a prompt of `tokens`: up to its context (max_position_embeddings),
    past which its positions were never trained. No token to start from (an empty prompt sent as written) and a
    prompt filling the context are refused: the first failed in transformers with a reshape error and a traceback,
    the second ran on positions the model never learnt, its cache growing with the prompt."""
    if tokens == 0:
        raise NodeError("text.generate's prompt is empty and use_default_template is off, so the model has no token "
                        "to start from: write a prompt, or turn use_default_template on")
    context = getattr(lm.config, "max_position_embeddings", None) or tokens + 1
    if tokens >= context:
        how = "the prompt in the model's chat turn" if use_template else "the prompt"
        raise NodeError(f"text.generate: {how} is {tokens:,} tokens, and {lm.title} reads at most {context:,}: "
                        "shorten the prompt")
    return context - tokens


def generate_text(handle, prompt: str, **kw) -> Tuple[str, str]:
    """(answer, reasoning): the generated text split at </think> as ComfyUI splits it, the reasoning empty where the
    model did not think."""
    ids, tok = generate_ids(handle, prompt, **kw)
    text = tok.decode(ids, skip_special_tokens=True)
    reasoning, _, answer = text.partition("</think>")
    if not reasoning.lstrip().startswith("<think>") and not prompt.rstrip().endswith("<think>"):
        reasoning, answer = "", text
    return answer.strip(), reasoning.replace("<think>", "", 1).strip()

