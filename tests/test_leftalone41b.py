"""Small things rev41's helpers noticed and left alone: meshes and voxel grids sized in the caches, the other
latent ops refusing a TripoSplat latent, ..."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def test_a_mesh_and_a_voxel_grid_are_counted_at_their_size_in_the_caches():
    """value_nbytes gave every MESH and VOXEL 256 bytes (its fallback), so a big mesh or grid was unseen by the
    memory cache's budget and the disk cache's cap. They count their arrays."""
    from graph_engine.cache import MemoryCache, value_nbytes
    from nodes.common.mesh import Mesh, Voxel
    v = np.random.rand(500, 3)
    f = np.random.randint(0, 500, (800, 3))
    uv = np.random.rand(500, 2)
    tex = np.zeros((16, 16, 3), np.uint8)
    mesh = Mesh(v, f, uvs=uv, texture=tex)
    assert value_nbytes(mesh) == 500 * 3 * 4 + 800 * 3 * 4 + 500 * 2 * 4 + 16 * 16 * 3
    vox = Voxel(np.zeros((20, 20, 20)))
    assert value_nbytes(vox) == 20 ** 3 * 4
    cache = MemoryCache(budget_bytes=2 * value_nbytes(vox))
    for i in range(4):
        cache.put(str(i), Voxel(np.zeros((20, 20, 20))))
    assert len(cache) == 2


def _tripo(camera=True):
    from nodes.generate.latent import Latent
    return Latent(torch.randn(1, 16, 1, 1, 8192), "triposplat", 1, 1.0, 8192, 1,
                  camera=torch.randn(1, 1, 5) if camera else None)


@pytest.mark.parametrize("op", ["adain", "adain_reference", "composite", "composite_source", "set_mask"])
def test_more_latent_ops_refuse_a_triposplat_latent(op):
    """latent.adain, latent.composite and latent.set_mask took a TripoSplat latent and made one generate.sample
    refused later (or mixed its camera token into statistics); they refuse it by name as latent.cut does."""
    from graph_engine import NodeError
    from nodes.generate.inpaint import set_mask
    from nodes.generate.latent import adain_latent
    from nodes.generate.regions import composite
    plain = _tripo(camera=False)
    run = {"adain": lambda: adain_latent(_tripo(), plain, 1.0),
           "adain_reference": lambda: adain_latent(plain, _tripo(), 1.0),
           "composite": lambda: composite(_tripo(), plain, None, 0, 0, False),
           "composite_source": lambda: composite(plain, _tripo(), None, 0, 0, False),
           "set_mask": lambda: set_mask(_tripo(), torch.ones(1, 1, 1))}[op]
    with pytest.raises(NodeError, match="camera token.*condition.triposplat"):
        run()


def test_a_short_part_of_a_long_file_at_a_high_fps_is_read(tmp_path):
    """io.load_video resampled the whole file to fps before start and count were applied: 50 frames a half hour
    apart (a timelapse's real rate) at fps 60 are 5.3 million frames, refused past MAX_HELD even when 3 of them were
    asked. Only the frames asked are worked out, and what is asked is still guarded."""
    from fractions import Fraction
    from graph_engine import NodeError
    from nodes.io.video_read import load_video
    from tests.test_hostile_pass17 import _slow_mkv
    path = _slow_mkv(tmp_path / "lapse.mkv", Fraction(1, 1800), grey_step=5)
    per_frame = 1800 * 60       # output frames each source frame lasts at fps 60
    clip = load_video(str(path), start=10 * per_frame + 5, count=3, fps=60)
    assert clip.length == 3 and clip.fps == 60
    tenth = load_video(str(path), start=10, count=1).frames(0, 1)      # the file's own frame 10, not resampled
    assert np.array_equal(clip.frames(0, 3), np.repeat(tenth, 3, 0))
    assert not np.array_equal(tenth, load_video(str(path), start=11, count=1).frames(0, 1))
    with pytest.raises(NodeError, match=r"lapse.mkv: its 50 frames play at .* fps.*lower fps"):
        load_video(str(path), fps=60)


def test_info_given_a_model_file_and_a_folder_reports_each(tmp_path, capsys):
    """`kinograph info FILE FOLDER` said 'FILE is not a folder' (a file was only read when every name was one):
    each name is taken for what it is, the file described and the folder searched."""
    from safetensors.torch import save_file
    from app.cli import main
    lora = tmp_path / "wan_lora.safetensors"
    save_file({"diffusion_model.blocks.0.cross_attn.q.lora_A.weight": torch.zeros(4, 64),
               "diffusion_model.blocks.0.cross_attn.q.lora_B.weight": torch.zeros(64, 4)}, str(lora))
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    assert main(["info", str(lora), str(models)]) == 0
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert "not a folder" not in captured.err
    assert f"{lora}: wan peft lora" in out and "it goes in the loras/ sub-folder" in out, out
    assert "model folders (the folders named, then KINOGRAPH_MODELS" in out and f"  {models}" in captured.out


def test_info_stops_counting_a_big_unsearched_folder_and_says_so(tmp_path, monkeypatch, capsys):
    """`kinograph info` counted the weight files of every sub-folder no kind is looked in by walking it whole: a
    big general folder listed among the model folders (a drive's downloads) took minutes. The walk stops after
    UNSEARCHED_WALK files and folders and the line says so."""
    from app.cli import main
    import nodes.common.models_dirs as md
    monkeypatch.setattr(md, "UNSEARCHED_WALK", 6)
    models = tmp_path / "models"
    (models / "hypernetworks").mkdir(parents=True)
    for i in range(10):
        (models / "hypernetworks" / f"h{i}.safetensors").write_bytes(b"x")
    (models / "photomaker").mkdir()
    (models / "photomaker" / "p.bin").write_bytes(b"x")
    assert main(["info", str(models)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{models / 'hypernetworks'}/ holds 6 model files in its first 6 files and folders (counting stopped " \
           f"there) and is not searched" in out, out
    assert f"{models / 'photomaker'}/ holds 1 model file and is not searched" in out, out


def test_an_installed_node_pack_that_exits_is_a_load_error(tmp_path, monkeypatch):
    """studio41 made a user node file that calls sys.exit as it loads a warned load error; an installed node pack
    (its entry point, or a module its NODE_MODULES lists) doing the same still ended every command with that exit
    code. Each is a pack that failed to load, named; the others load."""
    import importlib.metadata as metadata
    import sys
    from graph_engine.registry import GROUP, Registry
    (tmp_path / "la41b_exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "la41b_pack.py").write_text("NODE_MODULES = ['la41b_exits', 'la41b_nodes']\n")
    (tmp_path / "la41b_nodes.py").write_text("from graph_engine import node\nfrom graph_engine.types import FLOAT\n\n"
                                             "@node('la41b.one')\ndef one(ctx) -> FLOAT:\n    \"One.\"\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("la41b_pack", "la41b_nodes"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    eps = [metadata.EntryPoint("exits", "la41b_exits", GROUP), metadata.EntryPoint("pack", "la41b_pack", GROUP)]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps)
    reg = Registry()
    reg.load_entry_points()
    assert "la41b.one" in reg
    assert [e for e in reg.load_errors if "'exits'" in e and "sys.exit(3)" in e], reg.load_errors
    assert [e for e in reg.load_errors if "la41b_exits" in e and "la41b_pack" in e and "sys.exit(3)" in e], \
        reg.load_errors


def test_a_refused_command_ends_with_a_complete_finished_event(tmp_path, capsys):
    """run_finished printed for a command refused lacked `seconds`, and batch_finished lacked `not_run` and `jobs`
    (and the rest a finished batch gives): a farm wrapper reading them got a KeyError. They carry every field a
    finished run or batch does (docs/headless.md), and `error`."""
    import json
    from app.cli import main
    run_keys = {"event", "ok", "cancelled", "results", "failed", "seconds"}
    batch_keys = {"event", "ok", "jobs", "succeeded", "failed_cases", "not_run", "cancelled", "seconds", "retry",
                  "change_first", "retry_after_change"}
    for argv, keys in ((["run", str(tmp_path / "none.yaml"), "--json", "--frobnicate"], run_keys),
                       (["batch", "--json"], batch_keys),
                       (["run", str(tmp_path / "none.yaml"), "--json"], run_keys),
                       (["batch", str(tmp_path / "none.yaml"), "--json"], batch_keys)):
        main(argv)
        end = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert keys <= set(end) and end["ok"] is False and end["error"], (argv, end)
        assert end["seconds"] >= 0
        if "jobs" in keys:
            assert end["jobs"] == end["succeeded"] == 0 and end["not_run"] == end["failed_cases"] == []
