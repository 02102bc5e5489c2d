"""Workflows written on Windows and macOS, opened here; what Kinograph writes, opened there."""
import unicodedata

import numpy as np
import pytest
from PIL import Image

from graph_engine.api import Session, load_workflow
from graph_engine.errors import WorkflowError

COPY = """kinograph: 1
nodes:
  load:
    type: io.load_image
    params: {{path: '{src}'}}
  save:
    type: io.save_image
    inputs: {{image: load.image}}
    params: {{path: '{dst}'}}
"""


def _picture(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[2:5, 3:6] = (200, 40, 10)
    Image.fromarray(pixels).save(path)
    return pixels


def _copy(tmp_path, src, dst, raw=None):
    wf_file = tmp_path / "shot.yaml"
    wf_file.write_bytes(raw if raw is not None else COPY.format(src=src, dst=dst).encode("utf-8"))
    assert Session(use_disk=False).run(load_workflow(wf_file)).ok


def test_backslash_paths_from_windows_are_folders(tmp_path):
    """`footage\\\\shot01.png` read and `out\\\\shots\\\\take.png` written, in a CRLF file with a BOM (Notepad's)."""
    pixels = _picture(tmp_path / "footage" / "shot01.png")
    text = COPY.format(src="footage\\shot01.png", dst="out\\shots\\take.png").replace("\n", "\r\n")
    _copy(tmp_path, None, None, raw=b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "shots" / "take.png")), pixels)
    assert not any("\\" in p.name for p in tmp_path.rglob("*"))


def test_macos_decomposed_name_found_from_composed_text(tmp_path):
    """macOS stores é as e + combining accent (NFD); the workflow typed elsewhere holds é (NFC)."""
    pixels = _picture(tmp_path / unicodedata.normalize("NFD", "café") / unicodedata.normalize("NFD", "crème.png"))
    _copy(tmp_path, "café/crème.png", "café/out.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / unicodedata.normalize("NFD", "café") / "out.png")),
                          pixels)
    # The output went into the folder that is there, not into a second 'café' beside it.
    assert len(list(tmp_path.glob("caf*"))) == 1


def test_letter_case_a_windows_user_never_noticed(tmp_path):
    pixels = _picture(tmp_path / "footage" / "shot01.png")
    _copy(tmp_path, "Footage/Shot01.PNG", "out.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), pixels)


@pytest.mark.parametrize("value,words", [
    ("C:\\Users\\me\\ComfyUI\\input\\clip.png", "Windows path (drive C:), which this computer cannot open"),
    ("\\\\nas\\footage\\clip.png", "Windows path (the network share \\\\nas\\footage)"),
])
def test_windows_drive_path_is_named_not_joined_to_the_folder(tmp_path, value, words):
    wf_file = tmp_path / "shot.yaml"
    wf_file.write_text(COPY.format(src=value, dst="out/x.png"), encoding="utf-8")
    with pytest.raises(WorkflowError) as e:
        load_workflow(wf_file)
    assert words in str(e.value) and "footage/clip.png" in str(e.value)


def test_windows_drive_output_is_refused_before_a_folder_named_c_is_made(tmp_path):
    _picture(tmp_path / "in.png")
    wf_file = tmp_path / "shot.yaml"
    wf_file.write_text(COPY.format(src="in.png", dst="D:\\renders\\take.png"), encoding="utf-8")
    with pytest.raises(WorkflowError) as e:
        load_workflow(wf_file)
    assert "cannot write to" in str(e.value) and "out/take.png" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "shot.yaml"]


def test_powershell_utf16_workflow_reads(tmp_path):
    """Windows PowerShell's `>` and Out-File write UTF-16 with a BOM; it was 'not a text file'."""
    pixels = _picture(tmp_path / "in.png")
    _copy(tmp_path, None, None, raw=COPY.format(src="in.png", dst="out.png").replace("\n", "\r\n").encode("utf-16"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), pixels)


def test_windows_code_page_workflow_names_the_line_and_the_fix(tmp_path):
    wf_file = tmp_path / "shot.yaml"
    wf_file.write_bytes("kinograph: 1\r\nname: Plan séquence\r\nnodes: {}\r\n".encode("cp1252"))
    with pytest.raises(WorkflowError) as e:
        load_workflow(wf_file)
    assert str(e.value.problems[0]).startswith(f"{wf_file}:2: not UTF-8 text (byte 0xE9 in 'name: Plan séquence')")
    assert "save it again as UTF-8" in str(e.value)


@pytest.mark.parametrize("written", [
    "Juggernaut.SafeTensors",                                           # Windows never minded the case
    "sdxl\\JUGGERNAUT.safetensors",                                     # nor in a sub-folder
    "C:\\ComfyUI\\models\\checkpoints\\SDXL\\juggernaut.safetensors",   # a full path on the Windows machine
    "café",                                                             # NFC text, NFD name (macOS)
])
def test_model_names_as_windows_and_macos_write_them(tmp_path, monkeypatch, written):
    from nodes.common.models_dirs import find_model
    from nodes.generate.model_manager import resolve_model_path
    name = "café.safetensors" if written == "café" else "juggernaut.safetensors"
    weights = tmp_path / "checkpoints" / "SDXL" / unicodedata.normalize("NFD", name)
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    assert find_model(written, "checkpoints") == weights
    assert resolve_model_path(written, "checkpoints", "model") == weights


def test_missing_model_from_a_windows_path_says_what_was_looked_for(tmp_path, monkeypatch):
    from graph_engine import NodeError
    from nodes.common.models_dirs import find_model
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    with pytest.raises(NodeError) as e:
        find_model("D:\\ComfyUI\\models\\loras\\styles\\ink.safetensors", "loras")
    assert "is a path on a Windows computer: here the model is looked up by its name, styles/ink.safetensors" \
        in str(e.value)
    assert str(tmp_path / "loras") in str(e.value)


def test_render_of_a_windows_workflow_reruns_where_it_was_made(tmp_path):
    """Its output was 'out\\\\shots\\\\take.png': the re-run from the render looked for the footage in out/shots/ and
    would have written out/shots/out/shots/take.png."""
    _picture(tmp_path / "footage" / "in.png")
    _copy(tmp_path, "footage\\in.png", "out\\shots\\take.png")
    render = tmp_path / "out" / "shots" / "take.png"
    wf = load_workflow(render)
    assert wf.base_dir == tmp_path
    assert Session(use_disk=False).run(wf).ok
    assert not (render.parent / "out").exists()


def test_comfyui_windows_save_prefixes_become_names_every_system_holds(tmp_path):
    """%date:...% kept made a folder '%date:yyyy-MM-dd%' (':' is refused on Windows), a drive prefix a folder
    'C:', and CON a folder Windows cannot open."""
    import json

    from app.comfyui import import_workflow
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "sub\\ref.png", "upload": "image"}}}
    prefixes = {"2": "shots\\%date:yyyy-MM-dd%\\take", "3": "C:\\Users\\me\\Videos\\final", "4": "CON",
                "5": "ComfyUI_%KSampler.seed%", "6": "plain\\take."}
    for nid, prefix in prefixes.items():
        api[nid] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}
    (tmp_path / "w.json").write_text(json.dumps(api), encoding="utf-8")
    result = import_workflow(tmp_path / "w.json")
    paths = {n.params["path"] for n in result.graph.nodes.values() if n.type == "io.save_frames"}
    assert paths == {"out/shots/take", "out/Users/me/Videos/final", "out/_CON", "out/ComfyUI", "out/plain/take"}
    assert "left out %date:yyyy-MM-dd% (ComfyUI fills it in as it saves)" in result.report.text()
    assert "left out the drive C:" in result.report.text()


@pytest.mark.parametrize("name,portable", [("a:b?c*.mp4", "a_b_c_.mp4"), ("take. ", "take"), ("NUL.mp4", "_NUL.mp4"),
                                           ("com1", "_com1"), ("console.mp4", "console.mp4"), ("x" * 300, "x" * 120)])
def test_portable_name(name, portable):
    from graph_engine.portable import portable_name
    assert portable_name(name) == portable


def test_extra_model_paths_from_a_windows_comfyui(tmp_path, monkeypatch):
    """A ComfyUI folder copied from Windows: its extra_model_paths.yaml names `sub\\more_loras`; a section whose
    base_path is a drive there names nothing here, and does not hide the rest."""
    from nodes.common.models_dirs import find_model
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "loras").mkdir(parents=True)
    lora = comfy / "extra" / "sub" / "more_loras" / "ink.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(b"weights")
    (comfy / "extra_model_paths.yaml").write_text(
        "mine:\r\n  base_path: extra\r\n  loras: |\r\n    sub\\more_loras\r\n"
        "    D:\\AI\\loras\r\n"
        "other:\r\n  base_path: D:\\AI\r\n  loras: models\\loras\r\n", encoding="utf-8")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    assert find_model("ink.safetensors", "loras") == lora


@pytest.mark.parametrize("prompt,name", [("nul", "out/_nul.mp4"), ("Con", "out/_Con.mp4"),
                                         ("x" * 59 + ". y", "out/" + "x" * 59 + ".mp4")])
def test_output_names_made_from_a_prompt_open_on_windows(prompt, name):
    from app.sweep import expand
    from graph_engine.registry import default_registry
    wf = load_workflow(text="kinograph: 1\nnodes:\n  p:\n    type: encode.text\n    params: {text: ''}\n", check=False)
    wf.graph.nodes["p"].params["text"] = prompt
    assert expand("out/{p.text}.mp4", None, wf, default_registry()) == name


@pytest.mark.parametrize("quoted,words", [
    ('"footage\\shot01.mp4"', "not valid YAML: found unknown escape character; in double quotes YAML reads a"),
    ('"C:\\Users\\me\\clip.png"', "in double quotes YAML reads a backslash as the start of an escape"),
    # Valid YAML that names out, a new line, 'ew', a tab, 'ake.png': the file would be made under that name.
    ('"out\\new\\take.png"', "'out\\new\\take.png' holds control characters no file name should: in double quotes"),
])
def test_windows_path_in_double_quotes_says_how_to_write_it(tmp_path, quoted, words):
    _picture(tmp_path / "in.png")
    wf_file = tmp_path / "shot.yaml"
    wf_file.write_text(COPY.replace("'{dst}'", quoted).format(src="in.png"), encoding="utf-8")
    with pytest.raises(WorkflowError) as e:
        load_workflow(wf_file)
    assert words in str(e.value) and "single quotes ('footage\\shot01.mp4') or with / (footage/shot01.mp4)" \
        in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "shot.yaml"]


def test_missing_footage_says_a_mac_path_or_the_near_name(tmp_path):
    from graph_engine import NodeError
    from graph_engine.registry import default_registry
    from graph_engine.validate import missing_input_files
    from nodes.io.images import read_image_alpha
    from nodes.io.video_read import VideoSource
    _picture(tmp_path / "shot_01.png")
    with pytest.raises(NodeError, match=r"not found: /Volumes/Show/a\.mov \(a path on a Mac: give the file's place"):
        VideoSource("/Volumes/Show/a.mov")
    with pytest.raises(NodeError, match=r"shot_1\.png \(did you mean 'shot_01\.png'\?\)"):
        read_image_alpha(str(tmp_path / "shot_1.png"))
    wf_file = tmp_path / "shot.yaml"
    wf_file.write_text(COPY.format(src="/Users/anna/Movies/clip.png", dst="out.png"), encoding="utf-8")
    problems = missing_input_files(load_workflow(wf_file), default_registry())
    assert "'/Users/anna/Movies/clip.png' is not there (/Users/anna/Movies/clip.png) (a path on a Mac" in str(problems[0])


def test_a_missing_picture_is_not_taken_for_the_workflow_beside_it(tmp_path):
    """ComfyUI's ChronoEdit template imported as image_chrono_edit_14B.yaml: its missing picture
    image_chrono_edit_input_image.png was answered "did you mean 'image_chrono_edit_14B.yaml'?"."""
    from graph_engine import NodeError
    from nodes.io.images import read_image_alpha
    (tmp_path / "image_chrono_edit_14B.yaml").write_text("kinograph: 1\n")
    with pytest.raises(NodeError) as e:
        read_image_alpha(str(tmp_path / "image_chrono_edit_input_image.png"))
    assert "did you mean" not in str(e.value)
    _picture(tmp_path / "image_chrono_edit_input.png")
    with pytest.raises(NodeError, match=r"\(did you mean 'image_chrono_edit_input\.png'\?\)"):
        read_image_alpha(str(tmp_path / "image_chrono_edit_input_image.png"))


def test_frames_folder_from_a_mac_drive_skips_its_dot_underscore_files(tmp_path):
    """macOS writes ._NAME (AppleDouble metadata) beside every file on exFAT drives and SMB shares."""
    from nodes.io.images import load_frames
    frames = [_picture(tmp_path / "plates" / f"frame_{i:04d}.png") for i in range(2)]
    (tmp_path / "plates" / "._frame_0000.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X" + bytes(64))
    clip = load_frames(str(tmp_path / "plates"), 24.0)
    assert clip.length == 2 and np.array_equal(clip.frame(0), frames[0])


def test_macos_metadata_files_in_a_model_folder_are_no_models(tmp_path, monkeypatch):
    from nodes.common.models_dirs import list_models
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "juggernaut.safetensors").write_bytes(b"weights")
    (folder / "._juggernaut.safetensors").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    assert list_models() == {"checkpoints": [folder / "juggernaut.safetensors"]}


def test_output_over_an_input_named_in_other_case_is_refused(tmp_path):
    """The input 'A.PNG' is read as a.png (as on Windows): writing a.png wrote over what the workflow reads."""
    _picture(tmp_path / "in.png")
    _copy(tmp_path, "in.png", "a.png")
    (tmp_path / "shot.yaml").write_text(COPY.format(src="A.PNG", dst="a.png"), encoding="utf-8")
    with pytest.raises(WorkflowError, match="would write over .*a.png, which this workflow reads"):
        load_workflow(tmp_path / "shot.yaml")
