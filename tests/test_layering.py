"""The layering rules are enforced by `make lint` (ruff, see graph_engine/ruff.toml and
nodes/ruff.toml); these tests prove the rules bite, and that built-in nodes are registered
through the entry point like any pack."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff(source: str, as_file: str) -> subprocess.CompletedProcess:
    """Lint `source` as if it were the file `as_file` of this repository (so its folder's rules apply)."""
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                           "--stdin-filename", str(ROOT / as_file), "-"],
                          input=source, capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("as_file, source, rule", [
    ("graph_engine/_probe.py", "from nodes.generate.model_manager import default_manager\n\n"
                               "print(default_manager)\n", "TID251"),
    ("graph_engine/_probe.py", "def f():\n    import app.cli\n    return app.cli\n", "TID251"),
    ("graph_engine/_probe.py", "import torch\n\nprint(torch)\n", "TID253"),
    ("graph_engine/_probe.py", "from PySide6.QtCore import Qt\n\nprint(Qt)\n", "TID253"),
    ("nodes/video/_probe.py", "from app.progress import Progress\n\nprint(Progress)\n", "TID251"),
    ("nodes/video/_probe.py", "def f():\n    from PySide6.QtGui import QImage\n    return QImage\n", "TID251"),
])
def test_import_rules_fail_a_deliberate_violation(as_file, source, rule):
    res = ruff(source, as_file)
    assert res.returncode == 1, res.stdout + res.stderr
    assert rule in res.stdout and "_probe.py:" in res.stdout


def test_allowed_imports_pass():
    # torch inside a function is how the engine defers it; nodes may import the engine and each other.
    assert ruff("def f():\n    import torch\n    return torch\n", "graph_engine/_probe.py").returncode == 0
    assert ruff("import torch\nfrom graph_engine import node\nfrom nodes.common.flow import backward_warp\n\n"
                "print(torch, node, backward_warp)\n", "nodes/video/_probe.py").returncode == 0
    # The app is the top layer: it may import anything.
    assert ruff("from PySide6.QtCore import Qt\nfrom nodes.io import nodes\n\nprint(Qt, nodes)\n",
                "app/_probe.py").returncode == 0


def test_every_module_declaring_nodes_is_listed():
    import nodes
    declaring = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                       for p in (ROOT / "nodes").rglob("*.py")
                       if re.search(r"^@node\(", p.read_text(encoding="utf-8"), re.M))
    missing = set(declaring) - set(nodes.NODE_MODULES)
    assert not missing, f"add {sorted(missing)} to NODE_MODULES in nodes/__init__.py"


def test_builtins_come_through_the_entry_point_once():
    from importlib.metadata import entry_points
    from graph_engine.registry import Registry
    assert [ep.value for ep in entry_points(group="kinograph.nodes") if ep.name == "builtin"] == ["nodes"]
    reg = Registry()
    reg.load_entry_points()
    reg.load_entry_points()          # loading twice (two hosts, a stale install) is harmless
    assert not reg.load_errors
    assert {"io.save_video", "generate.test_pattern", "generate.sample"} <= set(reg.specs)
    assert "nodes" in reg.packages


def imported_modules(path: Path) -> set:
    """Every module a file imports, anywhere in it, relative imports resolved against app/."""
    import ast
    out = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            out.add(("app." if n.level else "") + (n.module or ""))
    return out


def test_app_modules_import_one_way():
    # jobs -> (nothing of app but the engine, precheck, the file check it shares with run and validate, and
    # signal_catch, the signal rule it shares with the CLI and the editor); precheck, signal_catch -> nothing of app; shard -> jobs; distributed -> jobs, shard; batch -> all three.
    jobs, dist, shard, pre, sig = (imported_modules(ROOT / "app" / f)
                                   for f in ("jobs.py", "distributed.py", "shard.py", "precheck.py", "signal_catch.py"))
    leaves = {"app.precheck", "app.signal_catch"}
    assert not {m for m in jobs if (m.startswith("app.") and m not in leaves) or m.startswith("ray")}, jobs
    assert not {m for m in pre | sig if m.startswith("app.") or m.startswith("ray")}, pre | sig
    assert "app.batch" not in dist and "app.batch" not in shard and "app.distributed" not in shard
    assert not {m for m in shard if m.startswith("nodes")}, "shard.py runs the registered writer/reader nodes"
