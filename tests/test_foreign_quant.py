"""Quantised files Kinograph cannot run: bitsandbytes NF4 / FP4 / LLM.int8 (lllyasviel's flux1-dev-bnb-nf4, Forge's
files) and nunchaku's SVDQuant int4 / fp4 (svdq-int4_r32-flux.1-dev). Their tensors are packed bytes plus the
quantiser's own state (bitsandbytes' Params4bit keys: weight.absmax, weight.quant_map, weight.quant_state.
bitsandbytes__nf4; its Int8Params: weight.SCB; nunchaku's SVDQW4A4Linear: qweight, wscales, smooth_factor, proj_down,
proj_up), which only their CUDA kernels read. They loaded silently (an NF4 FLUX.1 was detected as FLUX.1 schnell)
and failed later on shapes; now the loader and `kinograph info` name the format, the file and what to get."""
import json

import pytest
import torch
from safetensors.torch import save_file

from graph_engine import NodeError

P = "model.diffusion_model.double_blocks.0.img_attn.qkv.weight"
Q = "transformer_blocks.0.attn.to_qkv"


def _nf4(kind="nf4"):
    return {P: torch.zeros(64, 1, dtype=torch.uint8), P + ".absmax": torch.ones(4), P + ".quant_map": torch.ones(16),
            P + f".quant_state.bitsandbytes__{kind}": torch.zeros(100, dtype=torch.uint8),
            "model.diffusion_model.img_in.weight": torch.zeros(8, 64)}


CASES = {
    "flux1-dev-bnb-nf4.safetensors": (_nf4(), "bitsandbytes NF4"),
    "flux1-dev-bnb-fp4.safetensors": (_nf4("fp4"), "bitsandbytes FP4"),
    "t5xxl-bnb-int8.safetensors": ({"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(8, 8, dtype=torch.int8),
                                    "encoder.block.0.layer.0.SelfAttention.q.SCB": torch.ones(8)}, "bitsandbytes LLM.int8"),
    "svdq-int4_r32-flux.1-dev.safetensors": ({Q + ".qweight": torch.zeros(96, 16, dtype=torch.int8),
                                              Q + ".wscales": torch.ones(1, 96), Q + ".smooth_factor": torch.ones(32),
                                              Q + ".proj_down": torch.zeros(32, 4), Q + ".proj_up": torch.zeros(96, 4)},
                                             "nunchaku SVDQuant"),
}


@pytest.mark.parametrize("name", CASES)
def test_the_loader_and_info_name_the_format_and_what_to_get(tmp_path, name):
    from nodes.generate.detect import detect_state_dict
    from nodes.generate.weights import load_weights
    state, what = CASES[name]
    path = tmp_path / name
    meta = {"quantization_config": json.dumps({"method": "svdquant"})} if "svdq" in name else None
    save_file(state, str(path), metadata=meta)
    want = rf"{name} is .*{what}.* GGUF"
    with pytest.raises(NodeError, match=want):
        load_weights(path)
    found = detect_state_dict(state)
    assert found.role is None and what in found.why and "GGUF" in found.why, found


def test_the_4bit_file_named_instead_is_one_published():
    """The 4-bit GGUF the message names is one city96 publishes: his FLUX.1 repositories (FLUX.1-dev-gguf, the
    bnb-nf4 file's model) hold Q4_K_S, Q4_0 and Q4_1, no Q4_K_M."""
    from nodes.generate.foreign_quant import foreign_quant
    why = foreign_quant(_nf4())
    assert "Q4_K_S" in why and "Q4_K_M" not in why, why
