"""`kinograph info` on a ComfyUI models folder names the files of ACE-Step 1.5 (split and all-in-one), Stable Audio 3's
T5Gemma, Anima's LLLite nets and MiniMax H3's Fun ControlNet by the node that reads them: they were listed as
'unknown, no known key pattern, loads no' although generate.ace_step, generate.stable_audio3, control.anima_lllite and
control.model_patch read them (a newcomer took them for broken downloads). Headers only: zero tensors under the
published names (ComfyUI's files)."""
import pytest
import torch
from safetensors.torch import save_file

ACE_DIT = {"decoder.condition_embedder.weight": (4, 4), "encoder.lyric_encoder.layers.0.mlp.up_proj.weight": (4, 4),
           "detokenizer.embed_tokens.weight": (4, 4), "null_condition_emb": (1, 1, 4)}
ACE_VAE = {"decoder.layers.0.weight_g": (4, 1, 1), "decoder.layers.0.weight_v": (4, 4, 7),
           "encoder.layers.0.weight_v": (4, 2, 7)}
ACE_AIO = {**{"model.diffusion_model." + k: s for k, s in ACE_DIT.items()}, **{"vae." + k: s for k, s in ACE_VAE.items()},
           "text_encoders.qwen3_06b.transformer.model.embed_tokens.weight": (8, 4),
           "text_encoders.qwen3_2b.transformer.model.embed_tokens.weight": (8, 4)}
T5GEMMA = {"model.encoder.embed_tokens.weight": (8, 4), "model.encoder.layers.0.pre_self_attn_layernorm.weight": (4,)}
LLLITE = {"lllite_conditioning1.conv1.weight": (4, 3, 4, 4), "lllite_dit_blocks_0_self_attn_q_proj.down.0.weight": (4, 4)}
SDXL_LLLITE = {"lllite_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.conditioning1.0.weight": (4, 3, 4, 4)}
MINIMAX_FUN = {"control_blocks.0.before_proj.weight": (4, 4), "control_blocks.0.after_proj.weight": (4, 4)}


def described(tmp_path, name, shapes):
    from nodes.generate.model_manager import describe_model
    path = tmp_path / name
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return describe_model(path)


@pytest.mark.parametrize("name, shapes, loads, reader", [
    ("acestep_v1.5_turbo.safetensors", ACE_DIT, "yes", "generate.ace_step"),
    ("ace_step_1.5_turbo_aio.safetensors", ACE_AIO, "yes", "generate.ace_step reads it as its checkpoint"),
    ("ace_1.5_vae.safetensors", ACE_VAE, "yes", "generate.ace_step"),
    ("t5gemma_b_b_ul2.safetensors", T5GEMMA, "yes", "generate.stable_audio3"),
    ("anima-lllite-depth-1.safetensors", LLLITE, "yes", "control.anima_lllite"),
    ("minimax_h3_fun_controlnet_union_pruned_int8_convrot.safetensors", MINIMAX_FUN, "yes", "control.model_patch"),
    ("controllllite_v01032064e_sdxl_canny.safetensors", SDXL_LLLITE, "no", "control.apply"),
])
def test_each_file_is_named_with_the_node_that_reads_it(tmp_path, name, shapes, loads, reader):
    d = described(tmp_path, name, shapes)
    assert d["loads"] == loads and reader in d["note"], d
    assert "no known key pattern" not in d["note"], d


def test_a_model_loader_given_an_ace_step_file_names_generate_ace_step(tmp_path):
    from graph_engine import NodeError
    from nodes.generate.model_manager import detect_family
    path = tmp_path / "acestep_v1.5_turbo.safetensors"
    save_file({k: torch.zeros(s) for k, s in ACE_DIT.items()}, str(path))
    with pytest.raises(NodeError, match="ACE-Step 1.5.*generate.ace_step"):
        detect_family(path)


@pytest.mark.parametrize("name, shapes, reader", [
    ("acestep_v1.5_turbo.safetensors", ACE_DIT, "ACE-Step 1.5's diffusion model.*generate.ace_step"),
    ("ace_step_1.5_turbo_aio.safetensors", ACE_AIO, "ACE-Step 1.5's all-in-one checkpoint.*generate.ace_step"),
    ("anima-lllite-depth-1.safetensors", LLLITE, "Anima ControlNet-LLLite.*control.anima_lllite"),
])
def test_load_diffusion_model_given_such_a_file_names_the_node_that_reads_it(tmp_path, monkeypatch, name, shapes,
                                                                            reader):
    """It said 'not a model Kinograph recognises' (or, for the all-in-one, 'a family Kinograph does not run')."""
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    (tmp_path / "diffusion_models").mkdir()
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(tmp_path / "diffusion_models" / name))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    with pytest.raises(NodeError, match=reader):
        load_diffusion_model(ModelManager(), name, "default", "cpu")


def test_kinograph_info_prints_the_reader_under_each_row(tmp_path, monkeypatch, capsys):
    """The rows said 'yes' and no more: which node reads an ACE-Step or LLLite file was not printed."""
    from app.cli import main
    for sub, name, shapes in (("checkpoints", "ace_step_1.5_turbo_aio.safetensors", ACE_AIO),
                              ("model_patches", "anima-lllite-depth-1.safetensors", LLLITE)):
        (tmp_path / sub).mkdir()
        save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(tmp_path / sub / name))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "generate.ace_step reads it as its checkpoint" in out and "control.anima_lllite on Anima's DiT" in out, out


def test_validate_names_a_diffusion_model_that_does_not_run_before_anything_runs(tmp_path, monkeypatch, capsys):
    """A Mochi 1 transformer in diffusion_models/ (a family Kinograph names but does not run): `kinograph validate`
    said 'ok' and the run failed at the loader; the file's header tells at once (as `kinograph info` tells it)."""
    from app.cli import main
    (tmp_path / "diffusion_models").mkdir()
    p = "model.diffusion_model."
    shapes = {p + "blocks.0.attn.qkv_x.weight": (24, 8), p + "t5_y_embedder.to_kv.weight": (16, 8)}
    save_file({k: torch.zeros(s) for k, s in shapes.items()},
              str(tmp_path / "diffusion_models" / "mochi_preview_bf16.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    wf = tmp_path / "mochi.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  unet: {type: load.diffusion_model, params: {name: mochi_preview_bf16.safetensors}}\n")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr()
    assert "node unet" in err.err + err.out and "Mochi" in err.err + err.out and "does not run yet" in err.err + err.out


def test_validate_names_the_other_model_folder_a_missing_file_is_in(tmp_path, monkeypatch, capsys):
    """SeedVR2's VAE put in diffusion_models/: the run's message said where it was, `kinograph validate`'s did not
    (README: 'names close names and any other model folder holding it')."""
    from app.cli import main
    (tmp_path / "diffusion_models").mkdir()
    (tmp_path / "vae").mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "diffusion_models" / "seedvr2_ema_vae_fp16.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    wf = tmp_path / "w.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  vae: {type: load.vae, params: {name: seedvr2_ema_vae_fp16.safetensors}}\n")
    assert main(["validate", str(wf)]) == 2
    said = "".join(capsys.readouterr())
    assert f"seedvr2_ema_vae_fp16.safetensors is in {tmp_path / 'diffusion_models'} (diffusion_models)" in said, said


def test_kinograph_info_says_when_a_file_is_in_a_folder_its_loader_does_not_search(tmp_path, monkeypatch, capsys):
    """An LLLite net in controlnet/ was listed as loading; load.model_patch looks in model_patches/ only."""
    from app.cli import main
    (tmp_path / "controlnet").mkdir()
    save_file({k: torch.zeros(s) for k, s in LLLITE.items()}, str(tmp_path / "controlnet" / "anima-lllite-depth-1.safetensors"))
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"move it into {tmp_path / 'model_patches'}" in out, out


def test_a_too_shallow_qwen3vl_under_ideogram_4s_name_is_told_to_be_fetched_again():
    """ComfyUI's Boogu and Ideogram 4 templates share qwen3vl_8b_fp8_scaled.safetensors: someone whose file of that name
    was too shallow was told to give ... qwen3vl_8b_fp8_scaled.safetensors, the name they had given."""
    import sys
    from pathlib import Path
    from types import SimpleNamespace
    from graph_engine import NodeError
    from nodes.generate.adapters.ideogram4 import Ideogram4Adapter
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_qwen21 import text_encoder as qwen3vl
    with pytest.raises(NodeError, match="has 2 layers.*36 layers.*download it again"):
        Ideogram4Adapter().encode_text(SimpleNamespace(text_encoder=qwen3vl(2), tokenizer=None), ["a cat"], "cpu")
