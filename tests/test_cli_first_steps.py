"""A newcomer's first steps through the README, each a place where what Kinograph said did not match what it did or
left the next step unsaid: the command line's help and messages, validate before a run, and where the README's
newest families (TRELLIS.2, GGUF text encoders, SCAIL-2's SAM 3) send someone with ComfyUI's files."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "examples" / "mini_text_to_video.yaml"


def test_the_top_level_help_names_the_exit_code_import_gives():
    """README: `kinograph import` exits 3 when it wrote the workflow with approximate nodes; `kinograph --help`'s
    list of exit codes stopped at 0, 1, 2 and 130, so a script reading it took 3 for a crash."""
    from app.cli import EPILOG
    assert re.search(r"\b3 \(import\)", EPILOG), EPILOG


def test_a_set_without_node_param_says_it_once(capsys):
    """`--set foo` printed '--set: --set expects NODE.PARAM=VALUE', the option named twice, without an example."""
    from app.cli import main
    assert main(["validate", str(MINI), "--set", "foo"]) == 2
    err = capsys.readouterr().err
    assert "--set: --set" not in err
    assert "--set: expects NODE.PARAM=VALUE" in err and "sample.seed=7" in err and "'foo'" in err


@pytest.mark.parametrize("text, word", [("a pink circle moving right", "'pink'"),
                                        ("0: a red circle moving left, 8: a red hexagon moving left", "'hexagon'"),
                                        ("a (blue:1.3) squares moving up", "'squares'")])
def test_validate_names_a_word_kinograph_mini_does_not_know(capsys, text, word):
    """README: 'an unknown word is an error that lists what it knows'. validate said ok and the run failed on it
    after loading the model; validate (and so the run's check before anything runs) now names it, exit 2, as
    encode.text itself words it, with the prompt's schedule and emphasis read as encode.text reads them."""
    from app.cli import main
    assert main(["validate", str(MINI), "--set", f"prompt.text={text}"]) == 2
    err = capsys.readouterr().err
    assert f"node prompt: text: kinograph-mini does not know the word(s) {word}" in err, err
    assert "It knows only: a, and, background, blue" in err


def test_validate_passes_what_kinograph_mini_reads(capsys):
    from app.cli import main
    ok = "0: (a red circle:1.2) moving left, 8: [a blue square] moving up on a blue gradient background"
    assert main(["validate", str(MINI), "--set", f"prompt.text={ok}", "--set", "prompt.negative=a green triangle"]) == 0
    # the negative prompt is read by the same encoder
    assert main(["validate", str(MINI), "--set", "prompt.negative=blurry"]) == 2
    assert "negative: kinograph-mini does not know the word(s) 'blurry'" in capsys.readouterr().err


def test_the_word_check_is_the_tokenizers_own():
    """The check validate makes and the one the encoder makes are one function: the same words refused, worded
    the same."""
    from graph_engine import NodeError
    from nodes.mini.prompt_words import bundled_vocabulary, prompt_problem
    from nodes.mini.text import tokenize
    vocabulary = bundled_vocabulary()
    for prompt in ("a pink circle", "a red circle " + "moving " * 40):
        with pytest.raises(NodeError) as e:
            tokenize([prompt], vocabulary)
        assert str(e.value) == prompt_problem(prompt, vocabulary)
    assert prompt_problem("a red circle moving left", vocabulary) is None
