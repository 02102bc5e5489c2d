"""Mage-Flow's files (ComfyUI's mage_flow_*_int8_convrot transformer and mage_flow_vae), which Kinograph does not run
yet, are named as Mage-Flow's: its transformer has Qwen-Image's tensor names and was taken for a Qwen-Image with 128
input channels, which would have loaded and sampled nonsense."""
import pytest

from graph_engine import NodeError


def test_mage_flow_files_are_named_not_loaded(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file
    from nodes.generate.detect import detect_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    p = "model.diffusion_model."
    transformer = {p + "img_in.weight": (8, 128), p + "txt_in.weight": (8, 2560), p + "txt_norm.weight": (2560,),
                   p + "transformer_blocks.0.img_mod.1.weight": (48, 8), p + "proj_out.weight": (128, 8)}
    vae = {"dconv_encoder.patch_cond_embed.weight": (4, 3, 16, 16),
           "decoder_model.y_embedder.decoder.conv_in.weight": (4, 128, 3, 3)}
    (tmp_path / "diffusion_models").mkdir()
    for name, shapes in (("diffusion_models/mage_flow_tiny.safetensors", transformer),
                         ("mage_flow_vae_tiny.safetensors", vae)):
        save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(tmp_path / name))
    assert "Mage-Flow transformer" in detect_file(tmp_path / "diffusion_models" / "mage_flow_tiny.safetensors").why
    assert "Mage-VAE" in detect_file(tmp_path / "mage_flow_vae_tiny.safetensors").why
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    with pytest.raises(NodeError, match="Mage-Flow transformer .*does not run yet"):
        load_diffusion_model(ModelManager(), "mage_flow_tiny.safetensors", "default", "cpu")
