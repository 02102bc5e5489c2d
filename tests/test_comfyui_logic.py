"""ComfyUI's own value nodes (Resolution Selector, the utils/string nodes, Custom Combo, Number Convert, Seed, Math
Expression) over constants: the settings they feed get the values ComfyUI's code computes. Each expected value is
worked out here from ComfyUI's published source (comfy_extras/nodes_resolution.py, nodes_string.py, nodes_math.py,
nodes_logic.py), not from the module judged."""
import json

import pytest

from app.comfyui import import_data


def _by_type(graph, type_name):
    return [n for n in graph.nodes.values() if n.type == type_name]


def _latent(size_node):
    """ResolutionSelector #1 (widgets by name) feeding an empty latent's width and height."""
    api = {"1": {"class_type": "ResolutionSelector", "inputs": size_node},
           "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": ["1", 0], "height": ["1", 1],
                                                                     "length": 1, "batch_size": 1}}}
    res = import_data(api)
    latent, = _by_type(res.graph, "latent.empty")
    return latent.params["width"], latent.params["height"], res.report


@pytest.mark.parametrize("inputs, size", [
    # scale = sqrt(MP * 1024 * 1024 / (w * h)); each side round(ratio * scale / multiple) * multiple
    # 16:9 at 0.4 MP: scale 53.969, 863.5 / 32 -> 27 * 32, 485.7 / 32 -> 15 * 32
    ({"aspect_ratio": "16:9 (Widescreen)", "megapixels": 0.4, "multiple": 32}, (864, 480)),
    # its first version (no multiple: 8): 1:1 at 2 MP, 1448.15 / 8 -> 181 * 8
    ({"aspect_ratio": "1:1 (Square)", "megapixels": 2.0}, (1448, 1448)),
    # 9:16 at 1 MP: scale 85.333, 768 / 8 = 96, 1365.3 / 8 -> 171
    ({"aspect_ratio": "9:16 (Portrait Widescreen)", "megapixels": 1.0, "multiple": 8}, (768, 1368)),
    # the newest one's minimum: 21:9 at 0.1 MP by 64 is 512 x 192, under 256, so the size is k * (21, 9) with k
    # the multiple of lcm(64 / gcd(21, 64), 64 / gcd(9, 64)) = 64 at or above ceil(256 / 9) = 29: 64
    ({"aspect_ratio": "21:9 (Ultrawide)", "megapixels": 0.1, "multiple": 64, "minimum": 256}, (1344, 576))])
def test_resolution_selector_gives_comfyuis_size(inputs, size):
    width, height, report = _latent(inputs)
    assert (width, height) == size
    assert not report.blocking


def test_resolution_selector_with_an_unknown_ratio_says_which_it_takes():
    report = import_data({"1": {"class_type": "ResolutionSelector",
                                "inputs": {"aspect_ratio": "5:4", "megapixels": 1.0}}}).report
    entry, = report.blocking
    assert "aspect_ratio '5:4' is not one of ComfyUI's" in " ".join(entry.notes)


PRESETS = {"Quality": {"num_steps": 48, "mu": 0.0}, "Default": {"num_steps": 20, "mu": 0.0},
           "Turbo": {"num_steps": 12, "mu": 0.5}}


def _strings_api():
    """A prompt built from constants through the string nodes, and steps read from a JSON preset the way
    ComfyUI's Ideogram template reads them (Custom Combo -> JsonExtractString -> StringReplace -> JsonExtractString
    -> Number Convert)."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "2": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "A Cat in {place}, {place}."}},
        "3": {"class_type": "StringReplace", "inputs": {"string": ["2", 0], "find": "{place}", "replace": "Rome"}},
        "4": {"class_type": "StringConcatenate", "inputs": {"string_a": ["3", 0], "string_b": "oil painting",
                                                            "delimiter": " | "}},
        # case-insensitive by default: 'a cat' matches 'A Cat'; the group's text is kept
        "5": {"class_type": "RegexExtract", "inputs": {"string": ["4", 0], "regex_pattern": r"a (\w+) in",
                                                       "mode": "First Group", "case_insensitive": True,
                                                       "multiline": False, "dotall": False, "group_index": 1}},
        # count 1: only the first 'rome' (any case) goes
        "6": {"class_type": "RegexReplace", "inputs": {"string": ["4", 0], "regex_pattern": "rome", "replace": "Paris",
                                                       "case_insensitive": True, "multiline": False, "dotall": False,
                                                       "count": 1}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["6", 0]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["19", 0]}},
        "9": {"class_type": "CustomCombo", "inputs": {"choice": "Turbo", "index": 2}},
        "10": {"class_type": "JsonExtractString", "inputs": {"json_string": json.dumps(PRESETS), "key": ["9", 0]}},
        # the preset comes out as str() of a dict: its quotes turned, as the Ideogram template does, to read it again
        "23": {"class_type": "StringReplace", "inputs": {"string": ["10", 0], "find": "'", "replace": '"'}},
        "11": {"class_type": "JsonExtractString", "inputs": {"json_string": ["23", 0], "key": "num_steps"}},
        "12": {"class_type": "ComfyNumberConvert", "inputs": {"value": ["11", 0]}},
        "13": {"class_type": "SeedNode", "inputs": {"seed": 1234, "control_after_generate": "fixed"}},
        "14": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "15": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["7", 0], "negative": ["8", 0],
                                                    "latent_image": ["14", 0], "seed": ["13", 0], "steps": ["12", 1],
                                                    "cfg": ["12", 0], "sampler_name": "euler", "scheduler": "simple",
                                                    "denoise": 1.0}},
        # Bernini's line picker: the combo's index shown by PreviewAny (its STRING output is str() of it) and put
        # into a pattern that skips that many lines
        "16": {"class_type": "PreviewAny", "inputs": {"source": ["9", 1]}},
        "17": {"class_type": "StringReplace", "inputs": {"string": r"^(?:[^\n]*\n){index}([^\n]*)", "find": "index",
                                                         "replace": ["16", 0]}},
        "18": {"class_type": "RegexExtract", "inputs": {"string": "first\nsecond\nthird", "regex_pattern": ["17", 0],
                                                        "mode": "First Group", "group_index": 1}},
        "19": {"class_type": "StringConcatenate", "inputs": {"string_a": ["5", 0], "string_b": ["18", 0],
                                                             "delimiter": "+"}},
        "21": {"class_type": "VAEDecode", "inputs": {"samples": ["15", 0], "vae": ["1", 2]}},
        "22": {"class_type": "SaveImage", "inputs": {"images": ["21", 0], "filename_prefix": "cat"}}}


def test_string_nodes_over_constants_become_the_prompt_comfyui_builds():
    res = import_data(_strings_api())
    assert not res.report.blocking
    prompts = {n.id: n.params["text"] for n in _by_type(res.graph, "encode.text")}
    # str.replace replaces every '{place}'; join puts the delimiter between; re.sub(count=1) the first 'Rome' only
    # and the combo's index 2 skips two lines: the third
    assert sorted(prompts.values()) == ["A Cat in Paris, Rome. | oil painting", "Cat+third"]
    sample, = _by_type(res.graph, "generate.sample")
    # Turbo's preset (the inner object as str() prints it, its quotes turned, read again): 12 steps; FLOAT 12.0
    # as cfg; the seed
    assert (sample.params["steps"], sample.params["cfg"], sample.params["seed"]) == (12, 12.0, 1234)


def _generated_into(node: str, name: str):
    """_strings_api with a TextGenerate (node 20) whose text feeds input `name` of `node`."""
    api = _strings_api()
    api["20"] = {"class_type": "TextGenerate", "inputs": {"clip": ["1", 1], "prompt": "describe a city",
                                                          "max_length": 256}}
    api[node]["inputs"][name] = ["20", 0]
    return api


def test_string_nodes_on_a_language_models_text_stay_not_mapped_and_say_why():
    """TextGenerate runs (text.generate), but its text is known only as the workflow runs: the string nodes computing
    on it are not mapped and say so; the preset's steps, from constants, still fold."""
    res = import_data(_generated_into("3", "replace"))
    blocking = {e.class_type: e for e in res.report.blocking}
    assert set(blocking) == {"StringReplace", "StringConcatenate", "RegexExtract", "RegexReplace"}
    assert _by_type(res.graph, "text.generate")[0].params["prompt"] == "describe a city"
    assert "its replace input is only known when the workflow runs" in blocking["StringReplace"].notes
    assert "its string_a input is only known when the workflow runs" in blocking["StringConcatenate"].notes
    assert _by_type(res.graph, "generate.sample")[0].params["steps"] == 12


def test_a_prompt_written_by_a_language_model_is_linked_into_its_encoder():
    """A CLIPTextEncode reading TextGenerate's text (ComfyUI's prompt enhancers) gets it through a link into
    encode.text's text, which validates; a setting that cannot take words known only as the run goes (a file name to
    load) still leaves its node not mapped, saying why, where set by hand it would miss the generated words."""
    from graph_engine.api import load_workflow
    from graph_engine.workflow import to_yaml
    res = import_data(_generated_into("7", "text"))
    assert not res.report.blocking
    gen, = _by_type(res.graph, "text.generate")
    linked = [n for n in _by_type(res.graph, "encode.text") if res.graph.inputs.get(n.id, {}).get("text")]
    assert [res.graph.inputs[n.id]["text"] for n in linked] == [(gen.id, "text")]
    load_workflow(text=to_yaml(res.graph), check=True)
    api = _generated_into("7", "text")
    api["30"] = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": ["20", 0],
                                                        "strength_model": 1.0, "strength_clip": 1.0}}
    api["15"]["inputs"]["model"] = ["30", 0]
    blocking = {e.comfy_id: e for e in import_data(api).report.blocking}
    assert set(blocking) == {"30"} and "its lora_name is the text a language model writes" in blocking["30"].notes[0]


def test_json_extract_gives_what_comfyuis_node_gives():
    """ComfyUI's JsonExtractString: str() of the value in the first JSON object the text holds, so an object value
    is Python's print of a dict (single quotes, True), which a second JsonExtractString cannot read ('')."""
    from app.comfyui.packs.logic import json_extract
    presets = json.dumps({"Turbo": {"num_steps": 12, "sharp": True}})
    assert json_extract(presets, "Turbo") == "{'num_steps': 12, 'sharp': True}"
    assert json_extract(json_extract(presets, "Turbo"), "num_steps") == ""
    # a language model's answer: words and a Markdown fence around the object
    assert json_extract('Here:\n```json\n{"prompt": "a cat", "n": null}\n```', "prompt") == "a cat"
    assert json_extract('{"n": null}', "n") == "" and json_extract("[1, 2]", "n") == ""


def _prompt_from(node):
    """The text a CLIPTextEncode gets from string node #5, and the import's report (through import_data, so that
    what is judged is what the importer hands on, wherever the regex runs)."""
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "5": node, "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["5", 0]}}}
    res = import_data(api)
    return [n.params.get("text") for n in _by_type(res.graph, "encode.text")], res.report


def test_a_string_node_missing_an_input_says_so():
    """A required input with nothing linked and no value (ComfyUI refuses to run such a node) is named as missing,
    not as 'only known when the workflow runs'."""
    _, report = _prompt_from({"class_type": "StringConcatenate", "inputs": {"string_b": "x", "delimiter": ""}})
    assert report.entries["5"].notes[-1].startswith("its string_a input is missing")


def test_regex_replace_names_the_setting_at_fault():
    """ComfyUI's RegexReplace fails on a bad pattern and on a replacement naming a group the pattern lacks; the
    note names which of the two to fix."""
    def notes(pattern, replace):
        _, report = _prompt_from({"class_type": "RegexReplace", "inputs": {
            "string": "a", "regex_pattern": pattern, "replace": replace}})
        return " ".join(report.entries["5"].notes)
    assert "regex_pattern '(a' is not a valid regular expression" in notes("(a", "b")
    assert "replace '\\\\2' is not a replacement for regex_pattern '(a)'" in notes("(a)", "\\2")


@pytest.mark.parametrize("mode, result", [
    # "(cat)|(dog)" on "a dog, a cat": the first match is 'dog', where group 1 took no part (None): ComfyUI's
    # RegexExtract gives '' for it (First Group) and skips it (All Groups), leaving the second match's 'cat'
    ("First Group", ""), ("All Groups", "cat")])
def test_regex_extract_of_a_group_outside_the_match_is_empty(mode, result):
    prompts, report = _prompt_from({"class_type": "RegexExtract", "inputs": {
        "string": "a dog, a cat", "regex_pattern": "(cat)|(dog)", "mode": mode, "group_index": 1}})
    assert prompts == [result] and report.entries["5"].status == "exact"


@pytest.mark.parametrize("text, result", [
    # ComfyNumberConvert: int(text) where the text is an integer, else int(float(text)) (truncated)
    ("7", (7.0, 7)), (" 2.9 ", (2.9, 2)), ("-1e2", (-100.0, -100))])
def test_number_convert_reads_text_as_comfyui_does(text, result):
    api = {"1": {"class_type": "ComfyNumberConvert", "inputs": {"value": text}},
           "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": ["1", 1],
                                                                     "batch_size": 1}},
           "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["4", 0], "shift": ["1", 0]}},
           "4": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan.safetensors", "weight_dtype": "default"}}}
    res = import_data(api)
    frames = _by_type(res.graph, "latent.empty")[0].params["frames"]
    shift = _by_type(res.graph, "model.flow_shift")[0].params["shift"]
    assert (shift, frames) == result


@pytest.mark.parametrize("expression, values, result", [
    # the formulas ComfyUI's templates use, with Python's (simpleeval's) semantics worked out by hand
    ("a & ~1", {"a": 13}, 12), ("a & -8", {"a": 21}, 16), ("(a % 4 == 1) and ((b - 1) % 4 == 0)", {"a": 5, "b": 9}, 1),
    ("(a % 4 == 1) and ((b - 1) % 4 == 0)", {"a": 5, "b": 8}, 0), ("sum(a, b, c)", {"a": 1, "b": 2, "c": 3.5}, 6.5),
    ("max(5, round(a * 24)) + (5 - (max(5, round(a * 24)) % 17)) % 17", {"a": 5}, 124),
    ("max(((a + 15) // 16) * 16, 256)", {"a": 500}, 512), ("ceil(1.5 * log2(max(a, b))) + 2", {"a": 8, "b": 2}, 7),
    ("a % b if b > 0 else 0", {"a": 7, "b": 0}, 0), ("0 or a", {"a": 3}, 3), ("a << 2 | 1", {"a": 3}, 13)])
def test_math_expression_matches_comfyuis_templates(expression, values, result):
    from nodes.math.expr import evaluate
    assert evaluate(expression, values) == result


@pytest.mark.parametrize("expression, message", [
    ("-" * 900 + "a", "nested more than 200 forms deep"), ("a" + " + a" * 240, "more than 200"), ("-(" * 300 + "a" + ")" * 300, "too many nested parentheses"),
    ("1 << 10 ** 9", "a shift by 1000000000 bits"), ("a >> -(10 ** 9)", "a shift by 1000000000 bits"),
    ("__import__('os').system('true')", "not arithmetic"), ("values.__class__", "not arithmetic"),
    ("values[0]", "not arithmetic"), ("'x' * 10 ** 9", "not arithmetic"), ("[a for a in values]", "not arithmetic"),
    ("(lambda: 1)()", "not arithmetic"), ("eval('1')", "not arithmetic"), ("sum(a, b=1)", "not arithmetic"),
    ("a & 1.5", "fails"), ("os", "no value named 'os'")])
def test_hostile_formulas_are_refused_with_a_reason(expression, message):
    from nodes.math.expr import ExprError, evaluate
    with pytest.raises(ExprError, match=message):
        evaluate(expression, {"a": 1})


def test_a_seed_node_hands_on_a_value_known_only_as_the_workflow_runs():
    """SeedNode returns its seed input as it is (ComfyUI's execute); fed by a running value (a picture's width),
    what it feeds is linked to that value, as PrimitiveInt's consumers are. It handed on nothing (its seed input
    was looked for under PrimitiveInt's name, value), and its consumer said it came from a node that did not
    convert."""
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 51, "height": 33, "batch_size": 1, "color": 0}},
           "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "SeedNode", "inputs": {"seed": ["2", 0], "control_after_generate": "fixed"}},
           "4": {"class_type": "EmptyImage", "inputs": {"width": ["3", 0], "height": 8, "batch_size": 1, "color": 0}},
           "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert not res.report.blocking and not res.report.entries["4"].notes
    canvas, = [n for n in _by_type(res.graph, "generate.solid") if res.graph.inputs.get(n.id)]
    assert res.graph.inputs[canvas.id] == {"width": ("get_image_size_2", "width")}


def test_a_formula_of_a_constant_switch_is_computed_on_import():
    """ComfyMathExpression takes FLOAT, INT and BOOLEAN values (its MultiType input): a constant switch is a number
    in the formula (True * 8 + 1 = 9), known on import like any constant."""
    api = {"1": {"class_type": "PrimitiveBoolean", "inputs": {"value": True}},
           "2": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a * 8 + 1", "values.a": ["1", 0]}},
           "3": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": ["2", 1],
                                                                     "batch_size": 1}}}
    res = import_data(api)
    assert res.report.entries["2"].status == "exact"
    assert _by_type(res.graph, "latent.empty")[0].params["frames"] == 9


def test_a_formula_of_a_pictures_size_runs_as_the_workflow_runs():
    """ComfyMathExpression over GetImageSize's outputs (ComfyUI's Wan Animate 2 template floors sizes to even with
    a & ~1) becomes math.expression, the sizes linked in; run, it gives what ComfyUI's formula gives: 51 & ~1 = 50,
    and max(51, 33) // 2 + 0.5 = 25.5, whose INT is 25."""
    from graph_engine.api import Session, load_workflow
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 51, "height": 33, "batch_size": 1, "color": 0}},
           "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a & ~1", "values.a": ["2", 0]}},
           "4": {"class_type": "ComfyMathExpression", "inputs": {"expression": "max(a, b) // 2 + c",
                                                                 "values.a": ["2", 0], "values.b": ["2", 1],
                                                                 "values.c": 0.5}},
           "5": {"class_type": "EmptyImage", "inputs": {"width": ["3", 1], "height": ["4", 1], "batch_size": 1,
                                                        "color": 0}},
           "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert not res.report.blocking
    g = res.graph
    floor, half = sorted((n for n in _by_type(g, "math.expression")), key=lambda n: n.params["expression"])
    assert g.inputs[floor.id] == {"a": ("get_image_size_2", "width")}
    assert half.params["c"] == 0.5
    canvas, = [n for n in _by_type(g, "generate.solid") if g.inputs.get(n.id)]
    assert g.inputs[canvas.id] == {"width": (floor.id, "int"), "height": (half.id, "int")}
    run = Session(device="cpu", use_disk=False).run(load_workflow(text=res.yaml),
                                                    targets=[canvas.id], use_cache=False)
    assert run.ok, run.failed
    assert run.outputs[floor.id] == {"float": 50.0, "int": 50, "bool": True}
    assert run.outputs[half.id] == {"float": 25.5, "int": 25, "bool": True}
    clip = run.outputs[canvas.id]["video"]
    assert (clip.width, clip.height) == (50, 25)


def test_a_running_formula_of_values_is_not_given_letters_the_file_lacks():
    """ComfyUI's `values` lists the letters the node has (here a and b); math.expression's would hold c and d too
    (0), so min(values) of two sizes would be 0: such a formula is not mapped, saying what to write instead."""
    api = {"1": {"class_type": "EmptyImage", "inputs": {"width": 51, "height": 33, "batch_size": 1, "color": 0}},
           "2": {"class_type": "GetImageSize", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "ComfyMathExpression", "inputs": {"expression": "min(values)", "values.a": ["2", 0],
                                                                 "values.b": ["2", 1]}},
           "4": {"class_type": "EmptyImage", "inputs": {"width": ["3", 1], "height": 8, "batch_size": 1,
                                                        "color": 0}},
           "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}
    entry, = import_data(api).report.blocking
    assert entry.class_type == "ComfyMathExpression" and "min(a, b)" in " ".join(entry.notes)
    api["3"]["inputs"]["expression"] = "min(a, b)"
    assert not import_data(api).report.blocking


def test_math_expression_node_refuses_a_formula_it_cannot_evaluate_before_running():
    from graph_engine.registry import default_registry
    spec = default_registry().get("math.expression")
    check = spec.params["expression"].check
    assert check("a & ~1") is None and check("a / (b - 1)") is None      # fails only for some values: tried
    assert "no value named 'e'" in check("a + e")
    assert "not arithmetic" in check("a.__class__")


def _folded_text(nodes, sink):
    """The text a CLIPTextEncode fed by ComfyUI node `sink` gets, or the notes of the nodes that did not fold."""
    api = {**nodes, "90": {"class_type": "CLIPTextEncode", "inputs": {"text": [sink, 0], "clip": ["91", 1]}},
           "91": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}}}
    res = import_data(api)
    if res.report.blocking:
        return " | ".join(n for e in res.report.blocking for n in e.notes)
    return _by_type(res.graph, "encode.text")[0].params["text"]


def _regex(kind, **inputs):
    return {"1": {"class_type": kind, "inputs": {"case_insensitive": True, "multiline": False, "dotall": False,
                                                 **inputs}}}


def test_a_backtracking_regex_in_a_strangers_file_ends_the_import_with_a_reason(monkeypatch):
    """(a|aa)+$ on forty a's and a '!' backtracks for hours in Python's re, which ComfyUI's node runs too, but the
    importer folds it before anyone chose to run the file: it runs in a child process given what is left of the
    file's REGEX_SECONDS (shortened here), and is said to backtrack; a second pattern finds no time left. A pattern
    that does match still folds, with re's semantics (a bad group reference fails even where nothing matches)."""
    from app.comfyui.packs import logic
    monkeypatch.setattr(logic, "REGEX_SECONDS", 0.3)
    hang = dict(string="a" * 40 + "!", regex_pattern="(a|aa)+$")
    nodes = {**_regex("RegexReplace", replace="x", count=0, **hang),
             "2": _regex("RegexExtract", mode="All Matches", group_index=1, **hang)["1"]}
    nodes["3"] = {"class_type": "StringConcatenate", "inputs": {"string_a": ["1", 0], "string_b": ["2", 0]}}
    notes = _folded_text(nodes, "3")
    assert "it backtracks without end" in notes
    assert "regular expressions took more than 0.3 s in all; this one ('(a|aa)+$') was not tried" in notes
    monkeypatch.setattr(logic, "REGEX_SECONDS", 5.0)
    assert _folded_text(_regex("RegexReplace", string="a cat", regex_pattern="c(a)t", replace=r"b\1t", count=0),
                        "1") == "a bat"
    assert "invalid group reference 2" in _folded_text(
        _regex("RegexReplace", string="dog", regex_pattern="c(a)t", replace=r"\2", count=0), "1")


def _doubling(levels):
    """StringConcatenate fed by the one before it twice: 1000 * 2 ** levels characters."""
    api = {"1": {"class_type": "StringConcatenate", "inputs": {"string_a": "x" * 1000, "string_b": "", "delimiter": ""}}}
    for i in range(2, levels + 2):
        api[str(i)] = {"class_type": "StringConcatenate", "inputs": {"string_a": [str(i - 1), 0],
                                                                     "string_b": [str(i - 1), 0], "delimiter": ""}}
    return api, str(levels + 1)


@pytest.mark.parametrize("nodes, sink, message", [
    # sixty levels asked for 2 ** 60 characters (a MemoryError traceback); eleven pass the million
    (*_doubling(11), "makes more than 1000000"),
    ({"1": {"class_type": "StringReplace", "inputs": {"string": "a" * 2000, "find": "a", "replace": "b" * 1000}}}, "1",
     "makes a text of 2000000 characters"),
    (_regex("RegexReplace", string="a" * 2000, regex_pattern="", replace="b" * 1000, count=0), "1",
     "makes a text of more than 1000000 characters"),
    # json.loads and re's parser recurse: a RecursionError traceback
    ({"1": {"class_type": "JsonExtractString", "inputs": {"json_string": '{"a": ' + "[" * 100000, "key": "a"}}}, "1",
     "nests deeper than Python's JSON reader goes"),
    (_regex("RegexExtract", string="ab", regex_pattern="(" * 5000 + ")" * 5000, mode="First Match", group_index=1),
     "1", "nests too deep for Python's re"),
    # JSON's Infinity as an index: int() raised OverflowError, reported as a damaged file
    ({"1": {"class_type": "CustomCombo", "inputs": {"choice": "x", "index": float("inf")}}}, "1",
     "cannot convert float infinity to integer")])
def test_string_nodes_that_would_exhaust_memory_or_the_stack_say_why(nodes, sink, message):
    assert message in _folded_text(nodes, sink)


def test_the_texts_a_file_folds_are_bounded_together(monkeypatch):
    """Ten thousand nodes of a million characters each stay under MAX_TEXT one by one: all of them count."""
    from app.comfyui.packs import logic
    monkeypatch.setattr(logic, "MAX_FOLDED", 5000)
    api = {str(i): {"class_type": "StringConcatenate", "inputs": {"string_a": "x" * 1000, "string_b": "",
                                                                  "delimiter": ""}} for i in range(1, 7)}
    assert "more than 5000 characters in all" in _folded_text(api, "6")


def test_a_formula_multiplying_the_values_list_is_refused_before_it_runs():
    """values * 10 ** 9 built a list of billions of items (a MemoryError traceback); the list goes in sum, min, max."""
    from nodes.math.expr import FormError, check, evaluate
    assert "computes with the list `values`" in check("sum(values * 1000)", "ab")
    with pytest.raises(FormError, match="list `values`"):
        evaluate("values + values", {"a": 1})
    assert evaluate("sum(values) + max(values)", {"a": 1, "b": 2}) == 5


def test_a_files_regex_nodes_share_one_child_process_which_is_reaped(monkeypatch):
    """A process a pattern cost 45 ms each before matching, counted against the file's REGEX_SECONDS: thirty regex
    nodes took 1.3 s to import. One child serves them all and is killed and waited for when the import ends; one
    killed for its time is replaced for the next pattern."""
    import subprocess
    started = []
    real = subprocess.Popen

    def counting(*a, **k):
        started.append(real(*a, **k))
        return started[-1]
    monkeypatch.setattr(subprocess, "Popen", counting)
    api = {"1": {"class_type": "StringConcatenate", "inputs": {"string_a": "a cat", "string_b": "", "delimiter": ""}}}
    for i in range(2, 8):
        api[str(i)] = _regex("RegexReplace", string=[str(i - 1), 0], regex_pattern="a", replace="aa", count=1)["1"]
    assert _folded_text(api, "7") == "a" * 7 + " cat"
    assert len(started) == 1 and started[0].returncode is not None
    from app.comfyui.packs.logic import RegexChild
    child = RegexChild()
    with pytest.raises(ValueError, match="backtracks without end"):
        child.call("regex_extract", ("a" * 40 + "!", "(a|aa)+$", "First Match"), 0.3)
    assert child.call("regex_extract", ("a dog", "d(o)g", "First Group", True, False, False, 1), 5.0) == "o"
    child.close()
    assert len(started) == 3 and all(p.returncode is not None for p in started)


def test_a_json_text_of_objects_that_never_close_is_refused_before_it_is_read_for_minutes(monkeypatch):
    """Each '{' was decoded to the text's end: a megabyte of 450 nested, unclosed objects took 8 s to import, a
    64 MB file minutes. The reading is bounded in all (MAX_JSON_READ, shortened here); a '{' of prose before the
    object still passes over to it."""
    from app.comfyui.packs import logic
    monkeypatch.setattr(logic, "MAX_JSON_READ", 200_000, raising=False)
    nested = ('{"a":[' + "1," * 1000) * 50
    with pytest.raises(ValueError, match="open and never close"):
        logic.json_extract(nested, "a")
    assert logic.json_extract('say {"a": 1, then ```{"a": {"b": 2}}```', "a") == "{'b': 2}"


def test_a_system_prompt_given_to_textgenerate_becomes_text_generates():
    """Newer TextGenerate has a system_prompt (MOSS-Image's, FLUX.3 [klein]'s upsamplers): text.generate writes it in
    the chat's system turn (it was refused, and before that called a picture to read); a video or sound to read is
    now read too (Gemma 4 hears it), linked to text.generate's audio input."""
    api = _generated_into("7", "text")
    api["20"]["inputs"]["system_prompt"] = "Expand the request into one detailed paragraph."
    res = import_data(api)
    assert "20" not in {e.comfy_id for e in res.report.blocking}
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    assert gen.params["system_prompt"] == "Expand the request into one detailed paragraph."
    api["1000"] = {"class_type": "LoadAudio", "inputs": {"audio": "a.wav"}}
    api["20"]["inputs"]["audio"] = ["1000", 0]
    res = import_data(api)
    assert "20" not in {e.comfy_id for e in res.report.blocking}
    gen, = [n for n in res.graph.nodes.values() if n.type == "text.generate"]
    sound = res.graph.inputs[gen.id]["audio"][0]
    assert res.graph.nodes[sound].type == "io.load_audio"


def test_a_batch_of_pictures_given_to_textgenerate_is_said_to_be_read_first_only():
    """TextGenerate given a clip's frames (ComfyUI's IMAGE batch) became text.generate reading the first picture
    through a video.frame, with no word in the report nor in the run's log that the others were not read."""
    from graph_engine.api import Session, load_workflow
    api = _generated_into("7", "text")
    api["40"] = {"class_type": "LoadVideo", "inputs": {"file": "shot.mp4"}}
    api["41"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["40", 0]}}
    api["20"]["inputs"]["image"] = ["41", 0]
    res = import_data(api)
    gen, = _by_type(res.graph, "text.generate")
    still = res.graph.inputs[gen.id]["image"][0]
    assert res.graph.nodes[still].type == "video.frame"
    assert f"its image is a batch of pictures: text.generate reads one picture, the batch's first ({still}" in \
        res.report.entries["20"].why(), res.report.text()
    logs = []
    wf = load_workflow(text="""
kinograph: 1
nodes:
  p: {type: generate.test_pattern, params: {frames: 3, width: 16, height: 16}}
  f: {type: video.frame, inputs: {video: p.video}}
""")
    assert Session(device="cpu").run(wf, on_event=logs.append, use_cache=False).ok
    assert "frame 0 of 3: the other 2 are not passed on" in [e.get("message") for e in logs if e.get("node") == "f"]


@pytest.mark.parametrize("angles, prompt", [
    # comfy_extras/nodes_camera_angle.py: sector int(((h % 360) + 22.5) // 45) % 8 of its eight views; elevation the
    # first of -15 / 15 / 45 it is under (else high-angle); zoom the first of 2 / 6 it is under (else close-up).
    # The multi-angle template's (333, 17, 5): sector 355.5 // 45 = 7, 17 < 45, 5 < 6
    ((333, 17, 5), "front-left quarter view elevated shot medium shot"),
    # int() first: 337.9 -> 337, 359.5 // 45 = 7; 338 + 22.5 -> sector 8 % 8 = 0; -15 is not under -15; 6 not under 6
    ((337.9, 0, 0), "front-left quarter view eye-level shot wide shot"),
    ((338, -15, 6), "front view eye-level shot close-up"),
    # clamped to its ranges first: 400 -> 360 (sector 8 % 8), -90 -> -30, zoom -3 -> 0
    ((400, -90, -3), "front view low-angle shot wide shot"),
    ((180, 60, 1.9), "back view high-angle shot wide shot")])
def test_camera_angle_becomes_the_shot_comfyui_words(angles, prompt):
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "2": {"class_type": "CameraAngle", "inputs": dict(zip(("horizontal_angle", "vertical_angle", "zoom"),
                                                                 angles))},
           "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["2", 1]}}}
    res = import_data(api)
    assert not res.report.blocking
    encode, = _by_type(res.graph, "encode.text")
    assert encode.params["text"] == prompt
