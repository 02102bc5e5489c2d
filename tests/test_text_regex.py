"""text.regex_extract / text.regex_replace: ComfyUI's RegexExtract / RegexReplace (comfy_extras/nodes_string.py) run
as the workflow runs, where the text is known only then (an LLM's answer, a number shown as text). Their execute is
written out here; a pattern that backtracks without end is stopped and named, never a hung run."""
import re

import numpy as np
import pytest

from graph_engine import NodeError
from nodes.math import text_nodes


# -- ComfyUI's code, written out -----------------------------------------------------------------------------------
def _flags(case_insensitive, multiline, dotall):
    flags = 0
    if case_insensitive:
        flags |= re.IGNORECASE
    if multiline:
        flags |= re.MULTILINE
    if dotall:
        flags |= re.DOTALL
    return flags


def _comfy_extract(string, regex_pattern, mode, case_insensitive, multiline, dotall, group_index):
    flags = _flags(case_insensitive, multiline, dotall)
    try:
        if mode == "First Match":
            match = re.search(regex_pattern, string, flags)
            result = match.group(0) if match else ""
        elif mode == "All Matches":
            matches = re.findall(regex_pattern, string, flags)
            if matches:
                result = "\n".join([m[0] for m in matches]) if isinstance(matches[0], tuple) else "\n".join(matches)
            else:
                result = ""
        elif mode == "First Group":
            match = re.search(regex_pattern, string, flags)
            result = match.group(group_index) if match and len(match.groups()) >= group_index else ""
        elif mode == "All Groups":
            results = []
            for match in re.finditer(regex_pattern, string, flags):
                if match.groups() and len(match.groups()) >= group_index:
                    results.append(match.group(group_index))
            result = "\n".join(results)
        else:
            result = ""
    except re.error:
        result = ""
    return result


def _comfy_replace(string, regex_pattern, replace, case_insensitive=True, multiline=False, dotall=False, count=0):
    return re.sub(regex_pattern, replace, string, count=count, flags=_flags(case_insensitive, multiline, dotall))


TEXT = "Width: 832\nHeight: 480\nframes: 81 (5 s)\nwidth: 64"


@pytest.mark.parametrize("pattern, mode, flags, group", [
    (r"width: (\d+)", "First Match", (True, False, False), 1),
    (r"width: (\d+)", "First Group", (False, False, False), 1),
    (r"(\w+): (\d+)", "All Matches", (True, False, False), 1),
    (r"(\w+): (\d+)", "All Groups", (True, False, False), 2),
    (r"^h.*$", "All Matches", (True, True, False), 1),
    (r"Width.*64", "First Match", (False, False, True), 0),
    (r"(\d+", "First Match", (True, False, False), 1),          # invalid: '' in both
    (r"(\d+)", "First Group", (True, False, False), 3)])        # a group it lacks: ''
def test_regex_extract_is_comfyuis(pattern, mode, flags, group):
    got = text_nodes.regex_extract(None, text=TEXT, pattern=pattern, mode=mode, case_insensitive=flags[0],
                                   multiline=flags[1], dotall=flags[2], group_index=group)
    assert got == {"text": _comfy_extract(TEXT, pattern, mode, *flags, group)}


@pytest.mark.parametrize("pattern, replace, count", [(r"(\d+)", r"<\1>", 0), (r"(\d+)", r"<\1>", 2),
                                                     (r"\s+", " ", 0), (r"WIDTH", "w", 1)])
def test_regex_replace_is_comfyuis(pattern, replace, count):
    got = text_nodes.regex_replace(None, text=TEXT, pattern=pattern, replace=replace, case_insensitive=True,
                                   multiline=False, dotall=False, count=count)
    assert got == {"text": _comfy_replace(TEXT, pattern, replace, count=count)}


def test_a_bad_replacement_or_pattern_stops_the_run_by_name():
    with pytest.raises(NodeError, match="is not a valid regular expression"):
        text_nodes.regex_replace(None, text="a", pattern="(", replace="", case_insensitive=True, multiline=False,
                                 dotall=False, count=0)
    with pytest.raises(NodeError, match="is not a replacement for regex_pattern"):
        text_nodes.regex_replace(None, text="a", pattern="a", replace=r"\2", case_insensitive=True,
                                 multiline=False, dotall=False, count=0)


def test_a_pattern_that_backtracks_without_end_is_stopped_and_named(monkeypatch):
    """(a|aa)+$ on forty a's and a '!' backtracks for hours in re (ComfyUI's node hangs there): the child process
    matching it is killed when its time is up (shortened here), and the run says why."""
    monkeypatch.setattr(text_nodes, "REGEX_SECONDS", 0.5)
    for call in (lambda: text_nodes.regex_extract(None, text="a" * 40 + "!", pattern="(a|aa)+$", mode="First Match",
                                                  case_insensitive=True, multiline=False, dotall=False,
                                                  group_index=1),
                 lambda: text_nodes.regex_replace(None, text="a" * 40 + "!", pattern="(a|aa)+$", replace="",
                                                  case_insensitive=True, multiline=False, dotall=False, count=0)):
        with pytest.raises(NodeError, match=r"did not finish in the 0.5 s a pattern is given .* backtracks"):
            call()


def test_a_replacement_past_a_million_characters_is_refused():
    with pytest.raises(NodeError, match="more than 1000000 characters"):
        text_nodes.regex_replace(None, text="a" * 2000, pattern="", replace="b" * 1000, case_insensitive=True,
                                 multiline=False, dotall=False, count=0)


def test_regex_nodes_on_a_text_known_as_the_workflow_runs_import_and_run(tmp_path):
    """A picture's width shown as text (PreviewAny), its digits bracketed by RegexReplace, then read back by
    RegexExtract: both run as the workflow runs (text.regex_replace, text.regex_extract), as ComfyUI's would."""
    import imageio.v3 as iio
    from app.comfyui import import_data
    from graph_engine.api import Session
    from graph_engine.workflow import Workflow
    iio.imwrite(tmp_path / "a.png", np.zeros((8, 832, 3), np.uint8))
    flags = {"case_insensitive": True, "multiline": False, "dotall": False}
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
           "4": {"class_type": "RegexReplace", "inputs": {"string": ["3", 0], "regex_pattern": r"(\d)",
                                                          "replace": r"<\1>", "count": 2, **flags}},
           "5": {"class_type": "RegexExtract", "inputs": {"string": ["4", 0], "regex_pattern": r"<(\d)>",
                                                          "mode": "All Groups", "group_index": 1, **flags}},
           "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}}}
    res = import_data(api)
    assert all(e.status == "exact" for e in res.report.entries.values())
    g = res.graph
    assert sorted(n.type for n in g.nodes.values() if n.type.startswith("text.")) == \
        ["text.regex_extract", "text.regex_replace"]
    g.nodes["load_image_1"].params["path"] = str(tmp_path / "a.png")
    ran = Session(use_disk=False).run(Workflow(g, folder=tmp_path), use_cache=False)
    assert ran.ok, ran.failed
    replaced = _comfy_replace("832", r"(\d)", r"<\1>", count=2)
    assert ran.outputs["regex_replace_4"]["text"] == replaced == "<8><3>2"
    assert ran.outputs["regex_extract_5"]["text"] == _comfy_extract(replaced, r"<(\d)>", "All Groups", True, False,
                                                                    False, 1) == "8\n3"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads the child's limits through Linux's prlimit")
def test_a_child_left_behind_by_a_killed_kinograph_stops_on_its_own():
    """Kinograph killed (the OOM killer, a force-quit) while a pattern backtracks: its child, now an orphan, matched on
    at full CPU for hours, as nothing was left to kill it. The child caps its own CPU time, past any call's share."""
    import resource
    from nodes.math import regex_child
    from nodes.math.regex_process import RegexChild
    child = RegexChild()
    try:
        assert child.call("regex_extract", ["abc", "b", "First Match"], 10) == "b"
        soft, _ = resource.prlimit(child.proc.pid, resource.RLIMIT_CPU)
        # the call's share from where it started (the child had used under a second)
        assert regex_child.MAX_CPU_SECONDS < soft <= regex_child.MAX_CPU_SECONDS + 2
        assert regex_child.MAX_CPU_SECONDS > text_nodes.REGEX_SECONDS       # every call's own time fits
    finally:
        child.close()
