"""ComfyUI's ScaleROPE on Wan (model.scale_rope) and the ChronoEdit template it serves: against diffusers'
ChronoEditTransformer3DModel (the published ChronoEdit, a Wan I2V transformer whose two latent frames sit 7 apart)
on the same tiny weights, and against ComfyUI's rope_encode written out (positions shift + i * scale)."""
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TEMPLATE = ROOT / "tests" / "data" / "comfyui" / "templates" / "image_chrono_edit_14B.json"


@pytest.fixture(scope="module")
def wan_i2v(tmp_path_factory):
    from comfy_layouts import models_dir
    from tiny_models import build_wan_comfy
    yield from models_dir(tmp_path_factory, build_wan_comfy, "wan_rope", i2v=True)


@pytest.fixture(scope="module")
def handle(wan_i2v):
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    return load_diffusion_model(ModelManager(max_loaded=2), "wan_tiny_i2v_fp16.safetensors", "default", "cpu")


def _inputs(frames):
    g = torch.Generator().manual_seed(0)
    x, concat = torch.randn(1, 16, frames, 4, 6, generator=g), torch.randn(1, 20, frames, 4, 6, generator=g)
    return x, concat, torch.randn(1, 6, 32, generator=g), torch.randn(1, 5, 32, generator=g)


def _wan(handle, x, concat, text, image):
    from nodes.generate.adapters import get_adapter
    with torch.no_grad():
        return get_adapter("wan").forward(handle, x, torch.tensor([500.0]), {
            "encoder_hidden_states": text, "encoder_hidden_states_image": image, "concat": concat})


def test_scale_t_7_on_two_frames_is_diffusers_chronoedit(wan_i2v, handle):
    from diffusers import ChronoEditTransformer3DModel
    from nodes.generate.nodes import scale_rope
    chrono = ChronoEditTransformer3DModel.from_pretrained(str(wan_i2v / "diffusers" / "transformer")).eval()
    x, concat, text, image = _inputs(2)
    with torch.no_grad():
        want = chrono(hidden_states=torch.cat([x, concat], 1), timestep=torch.tensor([500.0]),
                      encoder_hidden_states=text, encoder_hidden_states_image=image, return_dict=False)[0]
    scaled = scale_rope(None, handle, 1.0, 0.0, 1.0, 0.0, 7.0, 0.0)
    got = _wan(scaled, x, concat, text, image)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    plain = _wan(handle, x, concat, text, image)            # frames 0 and 1: another prediction
    assert (plain - want).abs().max() > 1e-3
    assert scale_rope(None, handle, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0) is handle      # the identity changes nothing


def test_positions_are_comfyuis_shift_plus_index_times_scale(handle):
    """ComfyUI's rope_encode: linspace(shift, shift + (n - 1) * scale, n) on each axis, looked up here in diffusers'
    own table of integer positions (WanRotaryPosEmbed's freqs, rows 0..max_seq_len)."""
    from nodes.generate.rope_scale import scaled_rope
    rope = handle.pipe.transformer.rope
    x = torch.zeros(1, 16, 3, 8, 12)                         # 3 frames, 4 x 6 patches
    sx, hx, sy, hy, st, ht = 2.0, 1.0, 1.0, 5.0, 3.0, 2.0
    with scaled_rope(handle.pipe.transformer, (sx, hx, sy, hy, st, ht)):
        cos, sin = rope(x)
    tables = [t.split([rope.t_dim, rope.h_dim, rope.w_dim], dim=1) for t in (rope.freqs_cos, rope.freqs_sin)]
    for got, (ft, fh, fw) in zip((cos, sin), tables):
        grid = got.reshape(3, 4, 6, -1)
        for f, r, c in ((0, 0, 0), (2, 3, 5), (1, 2, 4)):
            want = torch.cat([ft[int(ht + f * st)], fh[int(hy + r * sy)], fw[int(hx + c * sx)]])
            assert torch.allclose(grid[f, r, c].double(), want.double(), atol=1e-6)


def test_chronoedit_template_imports_and_runs_on_tiny_weights(wan_i2v, tmp_path):
    from app.comfyui import import_data
    from comfy_layouts import on_tiny_wan
    from graph_engine.api import Session, load_workflow
    from graph_engine.workflow import to_yaml
    from PIL import Image
    res = import_data(json.loads(TEMPLATE.read_text(encoding="utf-8")))
    assert not res.report.blocking
    rope, = [n for n in res.graph.nodes.values() if n.type == "model.scale_rope"]
    assert rope.params == {"scale_x": 1, "shift_x": 0, "scale_y": 1, "shift_y": 0, "scale_t": 7, "shift_t": 0}
    Image.new("RGB", (40, 32), (200, 30, 90)).save(tmp_path / "in.png")
    on_tiny_wan(res.graph, "wan_tiny_i2v_fp16.safetensors", {
        "io.load_image": {"path": str(tmp_path / "in.png")}, "latent.empty": {"width": 32, "height": 32},
        "generate.sample": {"steps": 2}, "io.save_frames": {"path": str(tmp_path / "out" / "edit")},
        "load.diffusion_model": {"weight_dtype": "default"}})
    run = Session(device="cpu").run(load_workflow(text=to_yaml(res.graph)), use_cache=False)
    assert run.ok, run.failed
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1
