"""Hostile inputs, pass 13: files and workflows from strangers aimed at the newest loaders and commands. Each case
failed (a traceback, a hang, a lost file) before the change its commit names."""
import pytest
import torch
from safetensors.torch import save_file

from app.cli import main
from graph_engine import NodeError
from nodes.generate.detect import detect_file


# Tensors under the names a family's rule reads, one of them of no values or too few dimensions.
DAMAGED = {
    "text_encoders/qwen_3_06b.safetensors": {"model.layers.0.self_attn.q_norm.weight": torch.ones(4),
                                             "model.embed_tokens.weight": torch.zeros(0)},
    "diffusion_models/seedvr2_3b.safetensors": {"vid_in.proj.weight": torch.ones(()),
                                                "emb_in.proj_in.weight": torch.ones(4, 4)},
    "vae/qwen_image_vae.safetensors": {"decoder.middle.0.residual.0.gamma": torch.ones(4, 1, 1),
                                       "encoder.conv1.weight": torch.zeros(0)},
}


def test_a_damaged_header_is_named_not_a_traceback_from_info_or_a_loader(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KINOGRAPH_MODELS", raising=False)
    for name, state in DAMAGED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(tmp_path / name))
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name, state in DAMAGED.items():
        row = next(line for line in out.splitlines() if line.rstrip().endswith(name))
        assert row.split()[0] == "unreadable" and row.split()[-2] == "no"
        with pytest.raises(NodeError) as e:
            detect_file(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name} is not a model file Kinograph can read: its tensor ")
        assert "the file is damaged" in str(e.value)
    assert "its tensor model.embed_tokens.weight has shape [0]" in out
