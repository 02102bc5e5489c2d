"""Prompts past CLIP's 75 tokens, read in 77-token windows laid end to end (nodes/generate/clip_windows). The reference
for weighting comfy is ComfyUI's comfy/sd1_clip.py (GPL-3.0) written out below: SDTokenizer.tokenize_with_weights'
batching (each weighted part a token group; a group under max_word_length moves whole to the next window, a longer
one is cut) and ClipTokenWeightEncoder.encode_token_weights (each window weighed from the empty prompt, the windows
concatenated along the tokens, the pooled embedding the first window's), over the tiny SD 1.5 and SDXL encoders,
whose character vocabulary makes every letter a token."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_anima import comfy_token_weights as token_weights  # noqa: E402  (sd1_clip's, written out there)


# -- ComfyUI, written out ----------------------------------------------------------------------------------------
def escape_important(text):
    return text.replace("\\)", "\0\1").replace("\\(", "\0\2")


def unescape_important(text):
    return text.replace("\0\1", ")").replace("\0\2", "(")


def tokenize_with_weights(tokenizer, text, pad_token, max_length=77, max_word_length=8):
    """SDTokenizer.tokenize_with_weights (no embeddings: each weighted segment is one word)."""
    empty = tokenizer("")["input_ids"]
    start_token, end_token = empty[0], empty[1]
    parsed_weights = token_weights(escape_important(text), 1.0)
    tokens = []
    for weighted_segment, weight in parsed_weights:
        to_tokenize = [x for x in [unescape_important(weighted_segment)] if x != ""]
        for word in to_tokenize:
            tokens.append([(t, weight) for t in tokenizer(word)["input_ids"][1:-1]])
    batched_tokens = []
    batch = [(start_token, 1.0, 0)]
    batched_tokens.append(batch)
    for i, t_group in enumerate(tokens):
        is_large = len(t_group) >= max_word_length
        has_end_token = 1
        while len(t_group) > 0:
            if len(t_group) + len(batch) > max_length - has_end_token:
                remaining_length = max_length - len(batch) - has_end_token
                if is_large:
                    batch.extend([(t, w, i + 1) for t, w in t_group[:remaining_length]])
                    batch.append((end_token, 1.0, 0))
                    t_group = t_group[remaining_length:]
                else:
                    batch.append((end_token, 1.0, 0))
                    batch.extend([(pad_token, 1.0, 0)] * (remaining_length))
                batch = [(start_token, 1.0, 0)]
                batched_tokens.append(batch)
            else:
                batch.extend([(t, w, i + 1) for t, w in t_group])
                t_group = []
    batch.append((end_token, 1.0, 0))
    batch.extend([(pad_token, 1.0, 0)] * (max_length - len(batch)))
    return [[(t, w) for t, w, _ in x] for x in batched_tokens], (start_token, end_token)


def encode_token_weights(encode, token_weight_pairs, special):
    """ClipTokenWeightEncoder.encode_token_weights; `encode` token lists -> (hidden, pooled)."""
    start, end, pad = special
    to_encode = []
    max_token_len = 0
    has_weights = False
    for x in token_weight_pairs:
        tokens = [a[0] for a in x]
        max_token_len = max(len(tokens), max_token_len)
        has_weights = has_weights or not all(a[1] == 1.0 for a in x)
        to_encode.append(tokens)
    sections = len(to_encode)
    if has_weights or sections == 0:
        to_encode.append([start, end] + [pad] * (max_token_len - 2))      # gen_empty_tokens
    out, pooled = encode(to_encode)
    first_pooled = None if pooled is None else pooled[0:1]
    output = []
    for k in range(0, sections):
        z = out[k:k + 1]
        if has_weights:
            z_empty = out[-1]
            for i in range(len(z)):
                for j in range(len(z[i])):
                    weight = token_weight_pairs[k][j][1]
                    if weight != 1.0:
                        z[i][j] = (z[i][j] - z_empty[j]) * weight + z_empty[j]
        output.append(z)
    return torch.cat(output, dim=-2), first_pooled


def comfy_sd15(pipe, text):
    tok = pipe.tokenizer
    end = tok("")["input_ids"][1]                       # SD 1.5 pads with its end token
    pairs, (start, _) = tokenize_with_weights(tok, text, end)
    with torch.no_grad():
        return encode_token_weights(lambda t: (pipe.text_encoder(torch.LongTensor(t))[0].float(), None), pairs,
                                    (start, end, end))[0]


def comfy_clip_l_g(pipe, text, text_g=None):
    """[(hidden, pooled)] of clip_l and clip_g as SDXLClipModel and SD3ClipModel read them: the penultimate layer, no
    final norm; clip_l pads with its end token, clip_g with 0. text_g: clip_g's own prompt (CLIPTextEncodeSD3, which
    gives the shorter token list the empty prompt's windows)."""
    tokens = []
    for tok, pad, t in ((pipe.tokenizer, None, text), (pipe.tokenizer_2, 0, text if text_g is None else text_g)):
        end = tok("")["input_ids"][1]
        pad = end if pad is None else pad
        tokens.append((tokenize_with_weights(tok, t, pad)[0], tokenize_with_weights(tok, "", pad)[0], pad))
    (l_pairs, l_empty, _), (g_pairs, g_empty, _) = tokens
    while len(l_pairs) < len(g_pairs):
        l_pairs += l_empty
    while len(l_pairs) > len(g_pairs):
        g_pairs += g_empty
    outs = []
    for (tok, enc), pairs, (_, _, pad) in zip(((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)),
                                               (l_pairs, g_pairs), tokens):
        start, end = tok("")["input_ids"][:2]

        def encode(t, enc=enc):
            out = enc(torch.LongTensor(t), output_hidden_states=True)
            return out.hidden_states[-2].float(), out[0].float()
        with torch.no_grad():
            outs.append(encode_token_weights(encode, pairs, (start, end, pad)))
    return outs


def comfy_sdxl(pipe, text):
    """SDXLClipModel: clip_l and clip_g, cut to the shorter."""
    (l_out, _), (g_out, g_pooled) = comfy_clip_l_g(pipe, text)
    cut_to = min(l_out.shape[1], g_out.shape[1])
    return torch.cat([l_out[:, :cut_to], g_out[:, :cut_to]], dim=-1), g_pooled


# -- the runs ------------------------------------------------------------------------------------------------------
def _handle(builder, root, family, pipe_class):
    from nodes.generate.handles import ComponentHandle
    folder = builder(root) / "diffusers"
    kw = dict(safety_checker=None, requires_safety_checker=False) if family == "sd" else {}
    return ComponentHandle(family, str(folder), pipe_class.from_pretrained(str(folder), **kw), "text_encoder")


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from diffusers import StableDiffusionPipeline
    from tiny_models import build_sd15_single_file
    return _handle(build_sd15_single_file, tmp_path_factory.mktemp("sd15"), "sd", StableDiffusionPipeline)


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from diffusers import StableDiffusionXLPipeline
    from tiny_models import build_sdxl_single_file
    return _handle(build_sdxl_single_file, tmp_path_factory.mktemp("sdxl"), "sdxl", StableDiffusionXLPipeline)


LONG = ["a fox in the snow, " * 6,                                          # 108 letters: two windows
        "a fox (in the snow:1.3), " * 4 + "a (castle:0.6) on a (very long hill top:1.4)" * 2,   # parts moved, cut
        "(a red fox:1.2) " + "mist " * 40 + "(end)",                         # three windows, weights in two
        "x" * 70 + " (abc) (abcdefghij:1.3)"]                               # a short part moved, a long one cut


@pytest.mark.parametrize("prompt", LONG)
def test_long_prompts_read_in_windows_as_comfyui_does(sd15, prompt):
    from nodes.generate.text import encode_prompt
    got = encode_prompt(sd15, prompt, weighting="comfy").embeds[0]
    want = comfy_sd15(sd15.pipe, prompt)[0]
    assert got.shape == want.shape and got.shape[0] >= 2 * 77
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prompt", LONG[1:3])
def test_sdxl_long_prompts_and_pooled_are_comfyuis(sdxl, prompt):
    from nodes.generate.text import encode_prompt
    cond = encode_prompt(sdxl, prompt, weighting="comfy")
    embeds, pooled = comfy_sdxl(sdxl.pipe, prompt)
    assert cond.embeds.shape == embeds.shape and cond.embeds.shape[1] >= 2 * 77
    torch.testing.assert_close(cond.embeds, embeds, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cond.pooled, pooled, rtol=1e-5, atol=1e-5)


def test_sdxl_text_l_of_other_length_is_padded_with_the_empty_prompt(sdxl):
    """CLIPTextEncodeSDXL: the shorter token list (here text_l's) gets the empty prompt's windows."""
    from nodes.generate.text import encode_prompt, encode_sdxl
    long, short = LONG[0], "a fox"
    got = encode_sdxl(sdxl, long, short, (0,) * 6, weighting="comfy").embeds
    width = int(sdxl.pipe.text_encoder.config.hidden_size)
    own = encode_prompt(sdxl, long, weighting="comfy").embeds
    l_short = encode_prompt(sdxl, short, weighting="comfy").embeds[..., :width]
    empty = encode_prompt(sdxl, "", weighting="comfy").embeds[..., :width]
    torch.testing.assert_close(got[..., width:], own[..., width:])
    torch.testing.assert_close(got[..., :width], torch.cat([l_short, empty], 1))


def test_kinograph_weighting_reads_long_prompts_in_windows_broken_after_a_comma(sd15):
    """Kinograph's own weighting: a prompt within one window reads as before (the whole prompt tokenized, cut at 77);
    past it, the windows break after the last comma within 20 tokens of the end (A1111's rule), each window emphasised
    on its own."""
    from nodes.generate.clip_windows import kinograph_windows
    from nodes.generate.text import emphasise, encode_prompt
    pipe = sd15.pipe
    short = "a (red:1.3) fox, in the [snow]"
    ids = pipe.tokenizer("a red fox, in the snow", padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        plain = pipe.text_encoder(ids)[0][0]
    windows = kinograph_windows(pipe.tokenizer, short)
    want = emphasise(plain, torch.tensor([w for _, w in windows[0]]))
    torch.testing.assert_close(encode_prompt(sd15, short).embeds[0], want)

    long = "abc, " * 14 + "defghij, " * 3            # 4 tokens a "abc, ", 8 a "defghij, ": the comma at 72 ends window 1
    windows = kinograph_windows(pipe.tokenizer, long)
    assert len(windows) == 2
    comma = pipe.tokenizer(",", add_special_tokens=False)["input_ids"][0]
    body = [t for t, _ in windows[0][1:] if t >= 0][:-1]     # the first window's tokens between start and end
    assert body[-1] == comma and len(body) == 72
    assert encode_prompt(sd15, long).embeds.shape[1] == 154


def test_long_positive_and_short_negative_sample_together(sd15):
    """A conditioning of two windows beside one of one: the short one is repeated to the common length (ComfyUI's
    CONDCrossAttn.concat), which changes nothing attention computes: the UNet's output for the repeated prompt is the
    one-window prompt's own."""
    from nodes.generate.clip_windows import same_length
    from nodes.generate.text import encode_prompt
    pipe = sd15.pipe
    long = encode_prompt(sd15, LONG[0], weighting="comfy").embeds
    short = encode_prompt(sd15, "a fox", weighting="comfy").embeds
    both = same_length([long, short])
    assert both.shape[1] == 154
    unet = pipe.unet
    x = torch.randn(1, unet.config.in_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        alone = unet(x, 500, encoder_hidden_states=short).sample
        repeated = unet(x, 500, encoder_hidden_states=both[1:]).sample
    torch.testing.assert_close(repeated, alone, rtol=1e-4, atol=1e-5)


def a1111_chunks(tokens, comma_token, chunk_length=75, comma_padding_backtrack=20):
    """A1111's FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line (modules/sd_hijack_clip.py), one weighted part,
    no BREAK or embeddings: the token lists of its chunks, between start and end."""
    chunks, chunk, last_comma = [], [], -1

    def next_chunk():
        nonlocal chunk, last_comma
        last_comma = -1
        chunks.append(chunk)
        chunk = []
    for token in tokens:
        if token == comma_token:
            last_comma = len(chunk)
        elif comma_padding_backtrack != 0 and len(chunk) == chunk_length and last_comma != -1 and \
                len(chunk) - last_comma <= comma_padding_backtrack:
            break_location = last_comma + 1
            reloc = chunk[break_location:]
            chunk = chunk[:break_location]
            next_chunk()
            chunk = reloc
        if len(chunk) == chunk_length:
            next_chunk()
        chunk.append(token)
    if chunk or not chunks:
        next_chunk()
    return chunks


@pytest.mark.parametrize("commas", [[40, 50], [40, 54], [40, 55], [40, 60], [40, 74], [40, 75], [60, 75],
                                    [54, 75], [60, 76], [30, 60, 130, 149, 150]])
def test_kinograph_windows_break_at_a1111s_comma(sd15, commas):
    """Commas at these token indices: A1111 moves the text after the window's last comma when that comma is at most
    20 tokens before its 75th (index 55 on: index 54 is 21 before and stays), and cuts plainly at 75 when the 76th
    token (index 75) is a comma itself."""
    from nodes.generate.clip_windows import kinograph_windows
    tok = sd15.pipe.tokenizer
    comma = tok(",", add_special_tokens=False)["input_ids"][0]
    # the tiny vocabulary reads "x" as one token: "x " * n is n tokens
    prompt = " ".join("," if i in commas else "x" for i in range(200))
    tokens = tok(prompt, add_special_tokens=False)["input_ids"]
    assert len(tokens) == 200 and [i for i, t in enumerate(tokens) if t == comma] == commas
    want = a1111_chunks(tokens, comma)
    got = [[t for t, _ in w[1:] if t >= 0][:-1] for w in kinograph_windows(tok, prompt)]
    assert got == want


EDGES = ["", ",,,,, , , ,", "x" * 75, "x" * 76, "x" * 150, "x" * 151,
         "x" * 70 + " (abcdefgh:1.2)",              # a weighted group of exactly 8 tokens crossing the end: cut
         "x" * 70 + " (abcdefg:1.2)",               # of 7: moved whole
         "x" * 68 + " (abcdefg:1.2)",               # of 7 ending exactly at 75: stays
         "x" * 75 + " (ab:1.2)", "(" + "x" * 80 + ":0.8)"]


@pytest.mark.parametrize("prompt", EDGES)
def test_comfy_windows_edges_are_sd1_clips(sd15, prompt):
    from nodes.generate.clip_windows import comfy_windows, ids
    tok = sd15.pipe.tokenizer
    want, _ = tokenize_with_weights(tok, prompt, tok.pad_token_id)
    got = comfy_windows(tok, prompt)
    assert ids(got, tok.pad_token_id).tolist() == [[t for t, _ in w] for w in want]
    assert [[w for _, w in win] for win in got] == [[w for _, w in win] for win in want]


def clip_l_unprojected(pipe, text):
    """ComfyUI's CLIPTextModel_ pooled output, unprojected: the final-normed state at the first end token of clip_l's
    first window (its end token pads, so the first is the prompt's own)."""
    tok = pipe.tokenizer
    end = tok("")["input_ids"][1]
    first = [t for t, _ in tokenize_with_weights(tok, text, end)[0][0]]
    with torch.no_grad():
        final = pipe.text_encoder(torch.LongTensor([first])).last_hidden_state
    return final[:, first.index(end)].float()


# -- SD3: comfy/text_encoders/sd3_clip.py, written out -------------------------------------------------------------
def t5_tokenize_with_weights(tokenizer, text, min_length=77):
    """T5XXLTokenizer: SDTokenizer without a start token, never cut (max_length 99999999), not padded to its max, padded
    to min_length with T5's pad; each weighted segment tokenized on its own, its end token dropped."""
    end, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    batch = []
    for segment, weight in token_weights(escape_important(text), 1.0):
        word = unescape_important(segment)
        if word:
            batch.extend((t, weight) for t in tokenizer(word)["input_ids"][:-1])
    batch.append((end, 1.0))
    batch.extend([(pad, 1.0)] * (min_length - len(batch)))
    return [batch]


def comfy_sd3(pipe, text, text_l=None, text_g=None, min_length=77):
    """SD3ClipModel.encode_token_weights: clip_l (penultimate layer, pads with its end token) and clip_g (pads with 0)
    in windows, side by side, zero-padded to 4096 wide, T5-XXL's tokens after them; pooled: clip_l's then clip_g's,
    each the first window's, clip_l's unprojected (SD3ClipModel's clip_l: return_projected_pooled=False, the final-normed
    state at the first end token), clip_g's projected. text_l, text_g: CLIPTextEncodeSD3's clip_l and clip_g prompts."""
    text_l = text if text_l is None else text_l
    (l_out, _), (g_out, g_pooled) = comfy_clip_l_g(pipe, text_l, text if text_g is None else text_g)
    l_pooled = clip_l_unprojected(pipe, text_l)
    lg_out = torch.cat([l_out, g_out], dim=-1)
    lg_out = torch.nn.functional.pad(lg_out, (0, 4096 - lg_out.shape[-1]))
    t5_pairs = t5_tokenize_with_weights(pipe.tokenizer_3, text, min_length)
    tokens = [t for t, _ in t5_pairs[0]]
    empty = [pipe.tokenizer_3.eos_token_id] + [pipe.tokenizer_3.pad_token_id] * (len(tokens) - 1)   # gen_empty_tokens
    with torch.no_grad():
        out = pipe.text_encoder_3(torch.LongTensor([tokens, empty]))[0].float()
    z, z_empty = out[0:1].clone(), out[1]
    for j, (_, weight) in enumerate(t5_pairs[0]):
        if weight != 1.0:
            z[0][j] = (z[0][j] - z_empty[j]) * weight + z_empty[j]
    z = torch.nn.functional.pad(z, (0, 4096 - z.shape[-1]))       # the tiny T5 is narrower than T5-XXL's 4096
    return torch.cat([lg_out, z], dim=-2), torch.cat((l_pooled, g_pooled), dim=-1)


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    from diffusers import StableDiffusion3Pipeline
    from tiny_sd3 import build_sd3
    return _handle(build_sd3, tmp_path_factory.mktemp("sd3"), "sd3", StableDiffusion3Pipeline)


SD3_LONG = "(a red fox:1.2) in the snow, " * 8 + "a castle on a hill"      # 150 CLIP tokens: two windows


def test_sd3_long_prompts_and_pooled_are_comfyuis(sd3):
    """CLIPTextEncode / CLIPTextEncodeSD3 with TripleCLIPLoader: a 150-token prompt reads CLIP-L's and CLIP-G's two
    windows and T5's whole prompt, as ComfyUI's SD3ClipModel makes them."""
    from nodes.generate.text import encode_prompt
    tok = sd3.pipe.tokenizer
    assert len(tok(SD3_LONG.replace("(", "").replace(":1.2)", ""))["input_ids"]) - 2 == 150
    cond = encode_prompt(sd3, SD3_LONG, weighting="comfy")
    embeds, pooled = comfy_sd3(sd3.pipe, SD3_LONG)
    width = cond.embeds.shape[-1]
    assert cond.embeds.shape[1] == embeds.shape[1] > 2 * 77 + 150
    torch.testing.assert_close(cond.embeds, embeds[..., :width], rtol=1e-5, atol=1e-5)
    assert not embeds[..., width:].any()
    torch.testing.assert_close(cond.pooled, pooled, rtol=1e-5, atol=1e-5)


def test_sd3_long_positive_and_short_negative_sample_apart(sd3):
    """A long prompt and a short negative are of different lengths: the SD3 adapter runs each apart (as ComfyUI runs
    conditionings it cannot concatenate), each pass what it gives for that prompt alone."""
    from nodes.generate.adapters import get_adapter
    from nodes.generate.text import encode_prompt
    adapter = get_adapter("sd3")
    pos, neg = (encode_prompt(sd3, t, weighting="comfy") for t in (SD3_LONG, "blurry"))
    assert pos.embeds.shape[1] != neg.embeds.shape[1]
    from types import SimpleNamespace
    model = SimpleNamespace(pipe=sd3.pipe, option=lambda name: None)     # the MMDiT, no ControlNet
    x = torch.randn(1, 16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500.0)

    def run(conds):
        inputs = adapter.conditioning_inputs(model, conds, [0], 1, "cpu", torch.float32)
        with torch.no_grad():
            return adapter.forward(model, torch.cat([x] * len(conds)), t, inputs)
    together = run([neg, pos])
    torch.testing.assert_close(together, torch.cat([run([neg]), run([pos])]))


def test_sd3_three_prompts_of_other_lengths_are_clip_text_encode_sd3s(sd3):
    """CLIPTextEncodeSD3: T5 reads t5xxl, CLIP-L clip_l (one window), OpenCLIP-G clip_g (two windows, so CLIP-L's
    gets the empty prompt's second window)."""
    from nodes.generate.text import encode_sd3
    t5, l, g = "a cat on a table", "a (cat:1.3)", SD3_LONG
    cond = encode_sd3(sd3, t5, l, g, weighting="comfy")
    embeds, pooled = comfy_sd3(sd3.pipe, t5, l, g)
    assert cond.embeds.shape[1] == embeds.shape[1] == 2 * 77 + 77
    torch.testing.assert_close(cond.embeds, embeds[..., :cond.embeds.shape[-1]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cond.pooled, pooled, rtol=1e-5, atol=1e-5)


def test_sd3_without_t5_reads_the_clip_windows_alone(sd3):
    """SD3ClipModel without T5-XXL: the conditioning is the CLIPs' windows alone (zero-padded to the MMDiT's width
    when sampled)."""
    from diffusers import StableDiffusion3Pipeline
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.text import encode_prompt
    pipe = StableDiffusion3Pipeline(**{**sd3.pipe.components, "text_encoder_3": None, "tokenizer_3": None})
    cond = encode_prompt(ComponentHandle("sd3", sd3.path, pipe, "text_encoder"), SD3_LONG, weighting="comfy")
    embeds, pooled = comfy_sd3(sd3.pipe, SD3_LONG)
    assert cond.embeds.shape[1] == 2 * 77
    torch.testing.assert_close(cond.embeds, embeds[:, :2 * 77, :cond.embeds.shape[-1]], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cond.pooled, pooled, rtol=1e-5, atol=1e-5)


def test_sd3_t5_prompt_past_the_window_cap_is_refused_by_name(sd3):
    """encode.sd3 weighting comfy: T5-XXL reads its own prompt (text) whole, never cut. Its CLIP prompts short, nothing
    bounded it: a megabyte of T5 prompt was one sequence of 250,000 tokens, attention over it terabytes. It is held to
    the length CLIP's windows allow one prompt (clip_windows.MAX_WINDOWS), with a message naming it."""
    from graph_engine import NodeError
    from nodes.generate.clip_windows import LENGTH, MAX_WINDOWS
    from nodes.generate.text import encode_sd3
    t5_tokens = len(sd3.pipe.tokenizer_3("a " * (MAX_WINDOWS * LENGTH))["input_ids"])
    assert t5_tokens > MAX_WINDOWS * LENGTH
    with pytest.raises(NodeError, match="T5-XXL") as err:
        encode_sd3(sd3, "a " * (MAX_WINDOWS * LENGTH), "a cat", "a cat", weighting="comfy")
    assert "shorten" in str(err.value)
    cond = encode_sd3(sd3, "a " * 200, "a cat", "a cat", weighting="comfy")     # a long T5 prompt still reads whole
    assert cond.embeds.shape[1] == 77 + len(sd3.pipe.tokenizer_3("a " * 200)["input_ids"])


def test_sd3_keyframed_prompts_of_other_lengths_are_padded_not_refused(sd3):
    """Keyframed SD3 prompts under weighting comfy: a short and a long keyframe were refused ("the prompts read 2 and 5
    windows ... 456 windows"), their lengths (CLIP windows, then T5's own count) having no small common multiple; and
    a repeat would change what SD3's joint attention computes. Each keyframe is now padded as ComfyUI pads prompts:
    CLIP with the empty prompt's windows (CLIPTextEncodeSD3), T5 with its pad token (T5XXLTokenizer's min_length)."""
    from nodes.generate.text import encode_prompt
    long = "a red fox in the snow " * 14
    cond = encode_prompt(sd3, "0: a cat, 1: " + long, weighting="comfy")
    t5 = len(sd3.pipe.tokenizer_3(long.strip())["input_ids"])
    want_long, _ = comfy_sd3(sd3.pipe, long.strip())
    clip = want_long.shape[1] - t5          # the long prompt's CLIP windows
    assert t5 > 77 and clip > 77 and cond.keyframes == (0, 1) and cond.embeds.shape[1] == want_long.shape[1]
    width = cond.embeds.shape[-1]
    torch.testing.assert_close(cond.embeds[1:], want_long[..., :width], rtol=1e-5, atol=1e-5)
    (l_out, _), _ = comfy_clip_l_g(sd3.pipe, "a cat", long.strip())       # CLIP-L's "a cat" and empty windows
    _, (g_out, _) = comfy_clip_l_g(sd3.pipe, long.strip(), "a cat")       # OpenCLIP-G's likewise
    short, _ = comfy_sd3(sd3.pipe, "a cat", min_length=t5)
    torch.testing.assert_close(cond.embeds[0, :clip, :2048], torch.cat([l_out, g_out], -1)[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cond.embeds[0, clip:], short[0, 77:, :width], rtol=1e-5, atol=1e-5)


def test_sd3_native_weighting_reads_long_prompts_whole_as_imports_do(sd3):
    """encode.text / encode.sd3 under Kinograph's own weighting cut SD3's CLIP prompts at 77 tokens and T5's at 256
    (StableDiffusion3Pipeline's reading) where imported workflows read windows: a prompt of 4 windows lost its end. It now
    reads CLIP-L's and OpenCLIP-G's windows and T5's whole prompt as the import does; for an unweighted prompt without
    commas (the same windows under both rules) and past T5's 256 (no padding), exactly ComfyUI's SD3ClipModel's. A
    short prompt keeps StableDiffusion3Pipeline's reading (T5 padded to 256), as before."""
    from diffusers import StableDiffusion3Pipeline
    from nodes.generate.handles import ComponentHandle
    from nodes.generate.text import encode_prompt, encode_sd3
    long = ("a red fox in the snow near a castle on a hill " * 8).strip()
    t5 = len(sd3.pipe.tokenizer_3(long)["input_ids"])
    want, pooled = comfy_sd3(sd3.pipe, long)
    windows = (want.shape[1] - t5) // 77
    assert t5 > 256 and windows > 1
    for cond in (encode_prompt(sd3, long), encode_sd3(sd3, long, "", "")):
        assert cond.embeds.shape[1] == want.shape[1] == windows * 77 + t5
        torch.testing.assert_close(cond.embeds, want[..., :cond.embeds.shape[-1]], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cond.pooled, pooled, rtol=1e-5, atol=1e-5)
    weighted, plain = encode_prompt(sd3, "(a red fox:1.3) " + long), encode_prompt(sd3, "a red fox " + long)
    t5_words = len(sd3.pipe.tokenizer_3("a red fox " + long)["input_ids"])
    assert weighted.embeds.shape == plain.embeds.shape and (weighted.embeds.shape[1] - t5_words) % 77 == 0
    assert not torch.equal(weighted.embeds[:, -t5_words:], plain.embeds[:, -t5_words:])     # T5's part weighed too
    embeds, _, _, _ = sd3.pipe.encode_prompt("a cat", "a cat", "a cat", device="cpu", do_classifier_free_guidance=False)
    short = encode_prompt(sd3, "a cat")
    assert short.embeds.shape[1] == 77 + 256
    torch.testing.assert_close(short.embeds, embeds, rtol=1e-5, atol=1e-5)
    pipe = StableDiffusion3Pipeline(**{**sd3.pipe.components, "text_encoder_3": None, "tokenizer_3": None})
    no_t5 = encode_prompt(ComponentHandle("sd3", sd3.path, pipe, "text_encoder"), long)
    assert no_t5.embeds.shape[1] == windows * 77 + 256 and not no_t5.embeds[:, windows * 77:].any()
