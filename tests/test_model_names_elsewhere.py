"""A shared or imported ComfyUI workflow names its files as its author keeps them: `Wan/x.safetensors` from a
`Wan/` sub-folder, or `x.safetensors` where the one downloaded here is `x.ckpt`. ComfyUI stops at the loader;
someone switching with their own models/ folder expects the file they have to be found, and `kinograph validate`
said it was missing (exit 2) with the file sitting one folder up."""
from pathlib import Path

import pytest

from app.cli import main
from nodes.common.models_dirs import find_model
from tests.model_stub import stub

WF = """kinograph: 1
nodes:
  vae: {{type: load.vae, params: {{name: {name}}}}}
  p: {{type: generate.test_pattern, params: {{frames: 2, width: 32, height: 32}}}}
  enc: {{type: vae.encode, inputs: {{vae: vae.vae, video: p.video}}}}
  dec: {{type: vae.decode, inputs: {{vae: vae.vae, latent: enc.latent}}}}
  save: {{type: io.save_video, inputs: {{video: dec.video}}, params: {{path: out/x.mp4}}}}
"""


@pytest.fixture
def models(tmp_path, monkeypatch):
    root = tmp_path / "ComfyUI" / "models"
    for kind in ("vae", "upscale_models", "diffusion_models"):
        (root / kind).mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root))
    return root


def validate(tmp_path: Path, name: str, capsys) -> tuple:
    (tmp_path / "wf.yaml").write_text(WF.format(name=name))
    code = main(["validate", str(tmp_path / "wf.yaml")])
    return code, capsys.readouterr().err


def test_a_name_in_a_sub_folder_finds_the_file_kept_elsewhere_in_the_kind_folder(models, tmp_path, capsys):
    stub(models / "vae" / "wan_2.1_vae.safetensors")
    assert find_model("Wan/wan_2.1_vae.safetensors", "vae") == models / "vae" / "wan_2.1_vae.safetensors"
    assert find_model("wan21\\Wan_2.1_VAE.safetensors", "vae") == models / "vae" / "wan_2.1_vae.safetensors"
    (models / "diffusion_models" / "video").mkdir()
    stub(models / "diffusion_models" / "video" / "wan2.1_t2v_1.3B_fp16.safetensors")
    assert find_model("Wan/wan2.1_t2v_1.3B_fp16.safetensors", "diffusion_models") == \
        models / "diffusion_models" / "video" / "wan2.1_t2v_1.3B_fp16.safetensors"
    assert validate(tmp_path, "Wan/wan_2.1_vae.safetensors", capsys)[0] == 0


def test_the_same_weights_in_another_container_are_found(models, tmp_path, capsys):
    stub(models / "upscale_models" / "4x-UltraSharp.pth")
    assert find_model("4x-UltraSharp.safetensors", "upscale_models") == models / "upscale_models" / "4x-UltraSharp.pth"
    stub(models / "vae" / "vae-ft-mse-840000-ema-pruned.ckpt")
    assert validate(tmp_path, "vae-ft-mse-840000-ema-pruned.safetensors", capsys)[0] == 0
    # As written wins: the .safetensors put beside it is the one read.
    stub(models / "vae" / "vae-ft-mse-840000-ema-pruned.safetensors")
    assert find_model("vae-ft-mse-840000-ema-pruned.safetensors", "vae").suffix == ".safetensors"


def test_two_files_of_that_name_in_different_sub_folders_are_not_guessed(models, tmp_path, capsys):
    for sub in ("sd15", "sdxl"):
        (models / "vae" / sub).mkdir()
        stub(models / "vae" / sub / "vae.safetensors")
    assert find_model("mine/vae.safetensors", "vae", required=False) is None
    code, err = validate(tmp_path, "mine/vae.safetensors", capsys)
    assert code == 2 and "name: 'mine/vae.safetensors' is not in the model folders" in err
    # A quantised GGUF is another file, loaded by another ComfyUI node: not taken for the safetensors.
    stub(models / "diffusion_models" / "wan2.1_t2v_14B.gguf")
    assert find_model("wan2.1_t2v_14B.safetensors", "diffusion_models", required=False) is None


def test_validate_names_the_sub_folder_of_a_file_put_in_the_model_folder_itself(models, tmp_path, capsys):
    """The README: a file put in a model folder itself is not looked for, and `kinograph validate` names the
    sub-folder it belongs in. It said only that the file was not in the model folders."""
    stub(models / "wan_2.1_vae.safetensors")
    code, err = validate(tmp_path, "wan_2.1_vae.safetensors", capsys)
    assert code == 2
    assert (f"wan_2.1_vae.safetensors is in {models} itself, where no model is looked for: move it into "
            f"{models / 'vae'}") in err


def test_a_relative_base_path_is_listed_as_the_folder_it_names(tmp_path, monkeypatch, capsys):
    """ComfyUI makes a relative base_path absolute from the yaml's folder (os.path.abspath, which also takes out
    `..`): `kinograph info` listed ComfyUI/../extra/vae."""
    comfy, extra = tmp_path / "ComfyUI", tmp_path / "extra"
    (comfy / "models" / "vae").mkdir(parents=True)
    (extra / "vae").mkdir(parents=True)
    stub(extra / "vae" / "other.safetensors")
    (comfy / "extra_model_paths.yaml").write_text("other:\n    base_path: ../extra\n    vae: vae\n")
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    assert main(["info", str(comfy)]) == 0
    out = capsys.readouterr().out
    assert f"\n    {extra / 'vae'}\n" in out and f"{comfy}/../extra" not in out
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    assert find_model("other.safetensors", "vae") == extra / "vae" / "other.safetensors"


def test_a_file_named_as_written_in_a_later_kind_wins_over_another_container_in_the_first(models):
    """Load Model looks in checkpoints/ then diffusion_models/: the workflow's x.safetensors, there as written in
    diffusion_models/, lost to an old x.ckpt of checkpoints/ (another container found first), which was loaded."""
    from nodes.common.models_dirs import locator
    (models / "checkpoints").mkdir()
    stub(models / "checkpoints" / "x.ckpt")
    stub(models / "diffusion_models" / "x.safetensors")
    assert locator("checkpoints", "diffusion_models")("x.safetensors") == models / "diffusion_models" / "x.safetensors"
    (models / "diffusion_models" / "Wan").mkdir()
    stub(models / "diffusion_models" / "Wan" / "y.safetensors")
    stub(models / "checkpoints" / "y.safetensors")
    assert locator("checkpoints", "diffusion_models")("Wan/y.safetensors") == \
        models / "diffusion_models" / "Wan" / "y.safetensors"
    # A Windows workflow's full path, looked up by the part below the kind's folder, alike.
    assert locator("checkpoints", "diffusion_models")("C:\\ComfyUI\\models\\diffusion_models\\x.safetensors") == \
        models / "diffusion_models" / "x.safetensors"
    # Nowhere as written: the one other file is still found.
    assert locator("checkpoints", "diffusion_models")("z/x.ckpt") == models / "checkpoints" / "x.ckpt"


def test_a_file_found_under_another_folder_or_container_is_said(models, caplog):
    """The user is told which file stands for the name: a VAE of sd15/ read for a workflow's sdxl/ name was silent."""
    (models / "vae" / "sd15").mkdir()
    stub(models / "vae" / "sd15" / "vae.safetensors")
    with caplog.at_level("WARNING", logger="kinograph.models"):
        for _ in range(3):
            assert find_model("sdxl/vae.safetensors", "vae") == models / "vae" / "sd15" / "vae.safetensors"
    said = [r.getMessage() for r in caplog.records if r.name == "kinograph.models"]
    assert said == [f"sdxl/vae.safetensors is not in the vae folders as written: reading "
                    f"{models / 'vae' / 'sd15' / 'vae.safetensors'}, the only file of that name there"]


def test_a_model_put_in_place_between_two_checks_of_one_process_is_found(tmp_path, monkeypatch, capsys):
    """The editor runs for hours and checks the graph again after the artist moves files: not_found works the model
    folders out once for its message (one_look), and the next check must see what was put in place since, from a
    ComfyUI folder whose models/ was made in between to the file moved out of the wrong kind's folder."""
    from graph_engine import NodeError

    def not_found() -> str:
        with pytest.raises(NodeError) as e:
            find_model("wan_2.1_vae.safetensors", "vae")
        return str(e.value)
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    assert f"\n  {comfy / 'vae'}\n" in not_found()
    misplaced = comfy / "models" / "diffusion_models" / "wan_2.1_vae.safetensors"
    misplaced.parent.mkdir(parents=True)
    stub(misplaced)
    said = not_found()
    assert f"\n  {comfy / 'models' / 'vae'}\n" in said and f"\n  {comfy / 'vae'}\n" not in said
    assert f"wan_2.1_vae.safetensors is in {misplaced.parent} (diffusion_models)" in said
    (comfy / "models" / "vae").mkdir()
    misplaced.rename(comfy / "models" / "vae" / misplaced.name)
    assert find_model("wan_2.1_vae.safetensors", "vae") == comfy / "models" / "vae" / misplaced.name
    code, err = validate(tmp_path, "wan_2.1_vae.safetensors", capsys)
    assert code == 0, err
