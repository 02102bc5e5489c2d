"""`kinograph import`'s exit status is said where a newcomer looks: its --help and the README. It was written only in
a module's docstring, and `kinograph import x.json -o x.yaml && kinograph run x.yaml` stopped after the workflow
was written."""
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]
BIREFNET = ROOT / "tests" / "data" / "comfyui" / "templates" / "utility_birefnet_remove_background.json"


def test_an_approximate_import_writes_the_workflow_and_exits_3_as_help_and_readme_say(tmp_path, capsys):
    out = tmp_path / "bg.yaml"
    assert main(["import", str(BIREFNET), "-o", str(out)]) == 3
    assert "type: mask.remove_background" in out.read_text()
    assert "1 mapped approximately" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["import", "--help"])
    assert e.value.code == 0
    said = " ".join(capsys.readouterr().out.split())
    assert ("exit status: 0 every node mapped exactly; 3 written, with nodes mapped approximately (the report says "
            "how); 2 not written") in said
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "exit 0, exit 3 with the workflow written, exit 2 with nothing written" in readme
