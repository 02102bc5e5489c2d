"""Review of attacker17's hostile-input pass: what a Kinograph YAML holding half of a UTF-16 pair is told."""
import pytest

from graph_engine.workflow import parse_workflow


def _said(text: str) -> str:
    wf, problems = parse_workflow(text)
    assert len(problems) == 1
    return problems[0].message


@pytest.mark.parametrize("escape, said", [
    # JSON's way of writing 😀 (two halves, as json.dumps writes it), which YAML reads as two lone halves
    ("\\uD83D\\uDE00", "\\uD83D\\uDE00 is the two halves of one character, which YAML cannot join: write "
                       "\\U0001F600 (or the character itself, \U0001F600)"),
    ("\\uD800", "\\uD800 is half of a UTF-16 pair (a surrogate), which no text holds"),
    ("\\U0000DC00", "\\U0000DC00 is half of a UTF-16 pair (a surrogate), which no text holds"),
    ("\\U00110000", "\\U00110000 is past the last Unicode character (\\U0010FFFF)"),
])
def test_a_yaml_holding_half_a_utf16_pair_is_told_so_not_about_windows_paths(escape, said):
    message = _said(f'kinograph: 1\nnodes:\n  p:\n    type: text.prompt\n    params:\n      text: "a cat {escape}"\n')
    assert said in message
    assert "Windows" not in message and "footage" not in message


def test_a_windows_path_in_double_quotes_still_gets_its_advice():
    message = _said('kinograph: 1\nnodes:\n  v:\n    type: io.load_video\n    params:\n      path: "C:\\Users\\me.mp4"\n')
    assert "single quotes" in message
