"""ComfyUI's Format Text (StringFormat), Color Picker (ColorToRGBInt) and Image Histogram as Kinograph imports them:
the first two folded over constants into the settings they feed, the histogram (drawn by ComfyUI's Curve Editor
only) left to the editor. Each expectation is ComfyUI's published code (comfy_extras/nodes_string.py,
nodes_color.py with color_util.py, nodes_curve.py) written out here."""
import pytest

from app.comfyui import import_data
from app.comfyui.packs.logic import color_int


# -- ComfyUI's code, written out -----------------------------------------------------------------------------------
def _comfy_string_format(values, f_string):                 # StringFormat.execute
    return f_string.format(**values)


def _comfy_hex_to_rgb(value):                              # comfy_extras/color_util.py
    h = value.lstrip("#")
    if len(h) != 6:
        return (255, 255, 255)
    try:
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    except ValueError:
        return (255, 255, 255)


def _comfy_color_to_rgb_int(color):                        # ColorToRGBInt.execute
    transparency = 1.0
    if len(color) > 7:
        transparency = int(color[7:9], 16) / 255.0
        color = color[:7]
    if len(color) != 7 or color[0] != "#":
        raise ValueError("Color must be in format #RRGGBB")
    try:
        int(color[1:], 16)
    except ValueError:
        raise ValueError("Color must be in format #RRGGBB") from None
    r, g, b = _comfy_hex_to_rgb(color)
    return r * 256 * 256 + g * 256 + b, color, transparency


def _by_type(graph, type_name):
    return [n for n in graph.nodes.values() if n.type == type_name]


def _prompt_from(node, **more):
    """The text a CLIPTextEncode gets from node #5's output 0, and the import's report."""
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
           "5": node, "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["5", 0]}}, **more}
    res = import_data(api)
    return [n.params.get("text") for n in _by_type(res.graph, "encode.text")], res.report


# -- StringFormat --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("f_string, values", [
    # ComfyUI's Ming design template's own: a size line, a box's coordinates, a JSON layer with doubled braces
    ("{a}:{b}, {c} \u00d7 {d} px", {"a": 16, "b": 9, "c": 1024, "d": 576}),
    ("cx: {a:.3f}, cy: {b:.3f}, w: {c:.3f}, h: {d:.3f}", {"a": 0.5, "b": 0.25, "c": 1.0, "d": 0.125}),
    ('  {{"description": "{a}", "color_specs": {b}}}', {"a": "a red kite", "b": '["#ff0000"]'}),
    ("{a!r} {b:>6} {a:^9}", {"a": "kite", "b": 7}), ("no letters", {})])
def test_string_format_gives_comfyuis_text(f_string, values):
    node = {"class_type": "StringFormat", "inputs": {"f_string": f_string, **{f"values.{k}": v for k, v in
                                                                              values.items()}}}
    prompts, report = _prompt_from(node)
    assert prompts == [_comfy_string_format(values, f_string)]
    assert report.entries["5"].status == "exact" and not report.blocking


def test_string_format_reads_letters_linked_from_other_value_nodes():
    node = {"class_type": "StringFormat", "inputs": {"f_string": "{a}, {b}", "values.a": ["8", 0],
                                                     "values.b": ["9", 0], "values.c": None}}
    prompts, _ = _prompt_from(node, **{
        "8": {"class_type": "StringConcatenate", "inputs": {"string_a": "red", "string_b": "kite", "delimiter": " "}},
        "9": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a * 2", "values.a": 21}}})
    assert prompts == [_comfy_string_format({"a": "red kite", "b": 42.0}, "{a}, {b}")]


@pytest.mark.parametrize("f_string, said", [
    ("{a} {c}", "f_string names {c}, and no value is linked to c"),
    ("{a:.3f}", "Unknown format code 'f' for object of type 'str'"),
    ("{a:>999999999}", "asks for a field 999999999 characters wide"),
    ("{a:{b}}", "takes its format from another value"),
    ("{a", "expected '}' before end of string")])
def test_string_format_comfyui_would_refuse_says_why(f_string, said):
    _, report = _prompt_from({"class_type": "StringFormat", "inputs": {"f_string": f_string, "values.a": "kite",
                                                                       "values.b": "x"}})
    assert report.entries["5"].status != "exact" and said in " ".join(report.entries["5"].notes)


# -- ColorToRGBInt -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("color", ["#0a9299", "#ffffff", "#000140", "#0A9299CC", "#12345600"])
def test_color_to_rgb_int_gives_comfyuis_values(color):
    """rgb_int into an empty latent's width (an INT), hex into a prompt (a text), transparency into a formula's
    letter (a FLOAT), each as ComfyUI's node computes them."""
    rgb_int, hex_, transparency = _comfy_color_to_rgb_int(color)
    prompts, report = _prompt_from(
        {"class_type": "ColorToRGBInt", "inputs": {"color": color}}, **{
            "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["5", 1]}},
            "8": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": ["5", 0], "height": ["9", 1],
                                                                      "length": 1, "batch_size": 1}},
            "9": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a * 1000",
                                                                  "values.a": ["5", 2]}}})
    assert prompts == [hex_]
    assert report.entries["5"].status == "exact"
    res = import_data({"5": {"class_type": "ColorToRGBInt", "inputs": {"color": color}},
                       "8": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
                           "width": ["5", 0], "height": ["9", 1], "length": 1, "batch_size": 1}},
                       "9": {"class_type": "ComfyMathExpression", "inputs": {"expression": "a * 1000",
                                                                             "values.a": ["5", 2]}}})
    latent, = _by_type(res.graph, "latent.empty")
    assert (latent.params["width"], latent.params["height"]) == (rgb_int, int(transparency * 1000))


@pytest.mark.parametrize("color", ["0a9299", "#0a92", "#0a929g", "#0a9299zz"])
def test_a_color_comfyui_refuses_is_named(color):
    with pytest.raises(ValueError):
        _comfy_color_to_rgb_int(color)
    _, report = _prompt_from({"class_type": "ColorToRGBInt", "inputs": {"color": color}})
    notes = " ".join(report.entries["5"].notes)
    assert report.entries["5"].status != "exact" and f"color {color!r} is not #RRGGBB or #RRGGBBAA" in notes



def test_a_colour_of_100000_characters_is_comfyuis_or_named_in_a_line():
    """ComfyUI reads '#' + 100,000 f's as #ffffff (past 7 characters it takes [7:9] as the transparency and cuts the
    rest): Kinograph gives the same. One both refuse ('#' + 100,000 g's) was named in a note of all its 100,000
    characters (rev41d)."""
    assert color_int("#" + "f" * 100_000) == _comfy_color_to_rgb_int("#" + "f" * 100_000) == (0xFFFFFF, "#ffffff", 1.0)
    with pytest.raises(ValueError):
        _comfy_color_to_rgb_int("#" + "g" * 100_000)
    with pytest.raises(ValueError) as refused:
        color_int("#" + "g" * 100_000)
    assert "(100,001 characters)" in str(refused.value) and len(str(refused.value)) < 300

# -- ImageHistogram ------------------------------------------------------------------------------------------------
def test_an_image_histogram_is_the_editor_s_and_blocks_nothing():
    """Its histograms are lists of counts that only ComfyUI's Curve Editor (or a preview) shows."""
    res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
                       "2": {"class_type": "ImageHistogram", "inputs": {"image": ["1", 0]}},
                       "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
                       "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}})
    entry = res.report.entries["2"]
    assert entry.status == "ui" and "Curve Editor" in " ".join(entry.notes)
    assert not res.report.blocking
