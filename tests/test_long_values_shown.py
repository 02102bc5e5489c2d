"""A value given with --set is named in what Kinograph says of it, abbreviated: a 5,000-digit number or a pasted
megabyte was printed whole, the message lost in it."""
from pathlib import Path

import pytest

from app.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "test_pattern.yaml"


@pytest.mark.parametrize("given, said", [
    ("pattern.frames=" + "9" * 5000, "--set: node pattern: parameter 'frames' expects a whole number, got '" + "9" * 80
     + "'... (5,000 characters)"),
    ("pattern.frames=" + "x" * 3000, "--set: node pattern: parameter 'frames' expects a whole number, got '" + "x" * 80
     + "'... (3,000 characters)"),
    ("pattern" + "y" * 3000, "--set: expects NODE.PARAM=VALUE (a node id, a dot, one of its parameters: "
     "sample.seed=7), got 'pattern" + "y" * 73 + "'... (3,007 characters)"),
])
def test_a_long_set_value_is_named_abbreviated(given, said, capsys):
    assert main(["validate", str(EXAMPLE), "--set", given]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert len(err) < 1000
