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


def test_cache_help_names_the_folder_the_cache_is_in(tmp_path, monkeypatch, capsys):
    """`kinograph cache --help` said the cache is ~/.cache/kinograph; with KINOGRAPH_CACHE_DIR or XDG_CACHE_HOME set
    (as the top-level help tells a farm to) it is elsewhere, and `cache clear` cleared the one the help did not name."""
    from app.cli import main
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "KINOGRAPH_CACHE_DIR" in out and "XDG_CACHE_HOME" in out


def test_load_text_encoder_help_names_the_files_it_takes():
    """The name field's help listed six safetensors families; a ComfyUI user holding a GGUF text encoder (Qwen3,
    Gemma 3, T5 / umT5, read with its own tokenizer) could not tell from it that .gguf files load."""
    from graph_engine.registry import default_registry
    help_text = default_registry().get("load.text_encoder").params["name"].help
    assert ".gguf" in help_text and "tokenizer" in help_text and "qwen3" in help_text.lower()


def test_the_readme_links_every_family_it_lists_to_its_files():
    """README's 'What runs' list links each family to docs/models.md's section on its files and nodes; TRELLIS.2's
    line had no link and docs/models.md no section, so nothing said where trellis_2_shape_vae_bf16 goes (vae/)
    or which template's part runs."""
    readme = (ROOT / "README.md").read_text()
    models = (ROOT / "docs" / "models.md").read_text()
    line = next(ln for ln in readme.splitlines() if "TRELLIS.2" in ln and ln.startswith("- **"))
    assert "](docs/models.md#trellis2-and-pixal3d)" in line, line
    section = models[models.index("### TRELLIS.2 and Pixal3D"):]
    section = section[:section.index("\n### ", 1)]
    for said in ("vae/trellis_2_shape_vae_bf16.safetensors", "decode.trellis2_structure",
                 "latent.empty_trellis2_structure", "3d_pixal3d_trellis2_image_to_model", "--partial"):
        assert said in section, said
    assert "vae/trellis_2_shape_vae_bf16.safetensors" in models[:models.index("## What loads")]


def test_a_missing_model_folder_is_named_as_a_folder(tmp_path, monkeypatch, capsys):
    """ComfyUI's SCAIL-2 template imports its SAM 3 tracking as mask.segment_objects, whose model (as
    mask.segment's, used here) is SAM 3's Hugging Face folder: validate said "put sam3 into .../sam2", which reads as a file named sam3; it now says a folder, and
    what it holds."""
    from app.cli import main
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    wf = tmp_path / "seg.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  clip: {type: io.load_video, params: {path: clip.mp4}}\n"
                  "  seg: {type: mask.segment, inputs: {video: clip.video}, params: {prompt: person}}\n")
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert "put the folder sam3/ (a Hugging Face model's folder: its config.json and weights) into" in err, err


def test_import_help_says_what_partial_exits_with(tmp_path, capsys):
    """`kinograph import --help`: '2 not written'. With --partial the workflow is written and the exit is still 2
    (its placeholders do not run), so a script taking 2 for 'nothing written' left the file behind unread."""
    from app.cli import main
    src = tmp_path / "wf.json"
    src.write_text('{"1": {"class_type": "NoSuchComfyNodeAnywhere", "inputs": {}}}')
    assert main(["import", str(src), "-o", str(tmp_path / "wf.yaml"), "--partial"]) == 2
    assert (tmp_path / "wf.yaml").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "with --partial, 2 is written with placeholders" in out, out


def test_info_names_the_sub_folder_a_loose_file_belongs_in(tmp_path, capsys):
    """A file dropped into the models folder itself: `kinograph info` said to move it 'into the sub-folder of its
    kind (diffusion_models/, checkpoints/, text_encoders/, vae/, loras/ ...)', leaving a newcomer to guess which,
    though it reads the file's header for every other line. It now names the one (TRELLIS.2's shape VAE: vae/)."""
    import sys
    from app.cli import main
    sys.path.insert(0, str(ROOT / "tests"))
    from test_trellis2_structure import _tiny_vae
    shape = _tiny_vae(tmp_path / "models")
    loose = shape.parents[1] / shape.name
    shape.rename(loose)
    assert main(["info", str(tmp_path / "models")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"{loose} is in the model folder itself, where no model is looked for: move it into "
            f"{tmp_path / 'models' / 'vae'}/ (it reads as trellis2 shape vae bf16)") in out, out


def test_docs_say_what_to_do_after_importing_scail2():
    """docs/comfyui.md's 'Newer templates, and what to do after importing them' left out SCAIL-2's, whose one step
    after the import is not ComfyUI's: its SAM 3.1 checkpoint (sam3.1_multiplex_fp16) is not read, SAM 3's Hugging
    Face folder is (the import's report says so; the page did not)."""
    page = " ".join((ROOT / "docs" / "comfyui.md").read_text().split())
    newer = page[page.index("Newer templates, and what to do after importing them"):]
    assert "video_wan21_scail2_character_replacement" in newer
    at = newer.index("video_wan21_scail2_character_replacement")
    scail = newer[at:at + 900]
    for said in ("sam3.1_multiplex_fp16", "facebook/sam3", "models/sam2/sam3/", "condition.wan_scail",
                 "mask.scail_colors", "models.md#wan-21-and-22"):
        assert said in scail, said
