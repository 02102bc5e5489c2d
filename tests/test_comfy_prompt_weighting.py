"""ComfyUI's prompt weighting (encode.text weighting comfy, what every imported CLIPTextEncode gets): the prompt read
by ComfyUI's rules and each weighted token moved away from the empty prompt's encoding. The reference is ComfyUI's
comfy/sd1_clip.py (GPL-3.0) written out (its parse_parentheses and token_weights in test_anima; tokenize_with_weights'
word-wise tokenization and ClipTokenWeightEncoder.encode_token_weights below) over the tiny SD 1.5's tokenizer and text encoder, run
directly; Kinograph's own rule (weighting kinograph) is left as it was."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_anima import comfy_token_weights as token_weights  # noqa: E402  (sd1_clip's, written out there)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def escape_important(text):
    return text.replace("\\)", "\0\1").replace("\\(", "\0\2")


def unescape_important(text):
    return text.replace("\0\1", ")").replace("\0\2", "(")


def tokenize_with_weights(tokenizer, text, max_length=77):
    """SDTokenizer.tokenize_with_weights for a prompt of one window (no embeddings): each part's words tokenized on
    their own, start and end tokens, padded with the end token (SD 1.5's pad_with_end)."""
    empty = tokenizer("")["input_ids"]
    start_token, end_token = empty[0], empty[1]
    vocab = tokenizer.get_vocab()
    tokens = []
    for weighted_segment, weight in token_weights(escape_important(text), 1.0):
        to_tokenize = unescape_important(weighted_segment).replace("\n", " ").split(' ')
        for word in [x for x in to_tokenize if x != ""]:
            exact_word = f"{word}</w>"
            if exact_word in vocab:
                tokenizer_result = [vocab[exact_word]]
            else:
                tokenizer_result = tokenizer(word)["input_ids"][1:-1]
            tokens += [(t, weight) for t in tokenizer_result]
    batch = [(start_token, 1.0)] + tokens + [(end_token, 1.0)]
    assert len(batch) <= max_length, "one window only"
    return batch + [(end_token, 1.0)] * (max_length - len(batch)), (start_token, end_token)


def comfy_encode(pipe, text):
    """ClipTokenWeightEncoder.encode_token_weights over SDClipModel's last layer."""
    pairs, (start, end) = tokenize_with_weights(pipe.tokenizer, text)
    to_encode = [[t for t, _ in pairs]]
    has_weights = not all(w == 1.0 for _, w in pairs)
    if has_weights:
        to_encode.append([start, end] + [end] * (len(pairs) - 2))          # gen_empty_tokens
    with torch.no_grad():
        out = pipe.text_encoder(torch.LongTensor(to_encode))[0].float()
    z = out[0:1].clone()
    if has_weights:
        z_empty = out[-1]
        for i in range(len(z)):
            for j in range(len(z[i])):
                weight = pairs[j][1]
                if weight != 1.0:
                    z[i][j] = (z[i][j] - z_empty[j]) * weight + z_empty[j]
    return z[0]


# -- the runs ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def handle(tmp_path_factory):
    from diffusers import StableDiffusionPipeline
    from nodes.generate.handles import ComponentHandle
    from tiny_models import build_sd15_single_file
    folder = build_sd15_single_file(tmp_path_factory.mktemp("sd15")) / "diffusers"
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    return ComponentHandle("sd", str(folder), pipe, "text_encoder")


PROMPTS = ["a (red:1.3) fox in the snow",
           "a ((red)) fox, [blurry] (snow:0.7)",            # [x] is text; (( )) is 1.21
           "((castle:1.5)), (misty (hills:1.4):1.2)",        # an inner weight sets, not multiplies
           "a(red)fox",                                      # three words there, one when the brackets go
           "a \\(literal\\) bracket, (cat:0.5)",
           "an open (bracket and a stray) one)",
           "(x:1.0) plain (y:0)"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_comfy_weighting_is_comfyuis(handle, prompt):
    from nodes.generate.text import encode_prompt
    got = encode_prompt(handle, prompt, weighting="comfy").embeds[0]
    want = comfy_encode(handle.pipe, prompt)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_kinograph_weighting_keeps_its_own_rules(handle):
    """Kinograph's rule is not ComfyUI's where the two read a prompt apart; an unbalanced bracket is its error (ComfyUI
    reads it as text)."""
    from nodes.generate.text import encode_prompt
    prompt = "a ((red)) fox, [blurry] (snow:0.7)"
    kin = encode_prompt(handle, prompt).embeds[0]
    assert not torch.allclose(kin, comfy_encode(handle.pipe, prompt), atol=1e-3)
    with pytest.raises(NodeError, match="unclosed"):
        encode_prompt(handle, "an open (bracket")
    encode_prompt(handle, "an open (bracket", weighting="comfy")


def test_encoders_bumped_their_version_and_keep_their_params():
    """weighting comfy gives another conditioning for the same params than before: each encoder's version moved on
    (the cache keys with it), and a workflow saved before loads with its params as they were."""
    from graph_engine.api import default_registry, load_workflow
    reg = default_registry()
    assert {t: reg.get(t).version for t in ("encode.text", "encode.sdxl", "encode.flux", "encode.sd3")} == \
        {"encode.text": 8, "encode.sdxl": 3, "encode.flux": 3, "encode.sd3": 6}
    wf = load_workflow(text="kinograph: 1\nnodes:\n  enc:\n    type: encode.text\n    version: 2\n"
                            "    params: {text: 'a (red) fox', weighting: comfy}\n"
                            "  xl:\n    type: encode.sdxl\n    version: 1\n    params: {text: a fox, weighting: comfy}\n",
                       check=False)
    assert wf.graph.nodes["enc"].params == {"text": "a (red) fox", "weighting": "comfy"}
    assert wf.graph.nodes["xl"].params == {"text": "a fox", "weighting": "comfy"}
    assert wf.graph.nodes["enc"].version == 8 and wf.graph.nodes["xl"].version == 3
