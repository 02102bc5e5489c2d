"""attacker18: hostile input against what integ41 merged (config.yaml re-read, ...). Each case is a file an
artist is sent; it gets a clear message naming the thing and the fix, never a hang or a traceback."""
import pytest

from graph_engine import config
import test_config

cfg = test_config.cfg       # config.yaml written in a config folder of the test's own


def _laughs(levels: int) -> str:
    """Billion laughs: each level an alias list of ten of the one before (10**levels values written out)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nmemory_cache_mb: *a{levels - 1}\n"


def test_an_alias_bomb_in_config_yaml_is_named_not_written_out(cfg, caplog):
    # 10**6 values here (3 MB of warning); nine levels hung the command writing 10**9 into the log line.
    cfg(_laughs(6))
    assert config.settings() == {}
    warning = [r.getMessage() for r in caplog.records if "memory_cache_mb must be" in r.getMessage()]
    assert len(warning) == 1 and "config.yaml:7: memory_cache_mb must be a number of MB" in warning[0]
    assert len(warning[0]) < 1000, len(warning[0])


def test_config_yaml_nested_past_the_yaml_reader_is_named(cfg, caplog):
    cfg("memory_cache_mb: " + "[" * 3000 + "]" * 3000 + "\n")
    assert config.settings() == {}         # was RecursionError out of PyYAML's composer
    # (LibYAML's nesting limit where it is installed, else MAX_DEPTH's)
    assert "config.yaml:1: not valid YAML (" in caplog.text and "nest" in caplog.text and "defaults" in caplog.text


def test_a_chat_template_that_multiplies_the_prompt_is_refused_in_its_child():
    # A stranger's tokenizer_config.json: {{ m.content * 100000000 }} sent 200 MB of prompt back (950 MB held here,
    # then given to the tokenizer); a bigger factor was the child's memory cap, said as an exit code.
    from nodes.generate.chat_template import TemplateRefused, rendered_in_child
    template = "{% for m in messages %}{{ m.content * 2000000 }}{% endfor %}"
    with pytest.raises(TemplateRefused, match=r"writes 4,000,000 characters .* given [0-9,]+ .* loops or repeats"):
        rendered_in_child([[{"role": "user", "content": "hi"}]], chat_template=template)


def test_a_splat_camera_past_float32s_reach_is_refused_before_the_run(tmp_path):
    # A workflow (or a ComfyUI CreateCameraInfo) with the eye at 1e38 stopped the render in 'cannot convert float NaN
    # to integer'; at 1e18 it drew NaN pictures (black once written). eye_x ... target_z had no bounds.
    from graph_engine.api import load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.validate import validate
    wf = tmp_path / "far.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  view:\n    type: splat.render\n    inputs: {splat: none.splat}\n"
                  "    params: {camera: look_at, eye_x: 1.0e+38, target_z: -1.0e+20}\n")
    problems = [p.message for p in validate(load_workflow(wf, check=False), default_registry())]
    assert any("eye_x" in m and "1e+38" in m for m in problems), problems
    assert any("target_z" in m and "1e+20" in m for m in problems), problems
    assert not any("expects a number" in m for m in problems), problems


def test_gguf_tensors_laid_over_the_same_bytes_are_refused(tmp_path):
    # Each tensor is copied out of the file as it is read (weights._read_gguf): 99,999 tensors (the count cap) laid
    # over one 1 MB run of bytes in a 5 MB file asked for 100 GB. Writers lay tensors one after another.
    import struct

    from graph_engine import NodeError
    from nodes.generate.detect import read_header
    from test_hostile_pass15 import _gguf
    path = _gguf(tmp_path / "m.gguf")
    data = bytearray(path.read_bytes())
    info = data.index(b"head.bias") + len(b"head.bias")        # dimensions (1), shape, type, offset
    struct.pack_into("<Q", data, info + 4 + 8 + 4, 0)           # on blocks.0.weight's first bytes
    path.write_bytes(bytes(data))
    with pytest.raises(NodeError, match=r"m.gguf is not a readable GGUF file \(tensor \S+ lies over "
                                        r"(head.bias|blocks.0.weight)'s bytes .*re-download"):
        read_header(path)


def test_a_triposplat_decoder_of_no_heads_is_named():
    # heads are read from a norm's first size: a stranger's file with it 0 stopped in a ZeroDivisionError traceback
    # (the meta-device check lets a build that fails there through to the real one, which says)
    import sys
    from pathlib import Path

    import torch

    from graph_engine import NodeError
    from nodes.generate.triposplat_vae import build_vae
    sys.path.insert(0, str(Path(__file__).parent))
    import triposplat_reference as ref
    octree = ref.OctreeProbabilityFixedlenDecoder(model_channels=16, num_blocks=1, num_heads=2, mlp_ratio=1.0)
    gs = ref.ElasticGaussianFixedlenDecoder(model_channels=16, num_blocks=1, num_heads=2, mlp_ratio=1.0)
    state = {f"octree.{k}": v for k, v in octree.state_dict().items()}
    state.update({f"gs.{k}": v for k, v in gs.state_dict().items()})
    state["octree.blocks.0.cross_attn.q_rms_norm.gamma"] = torch.zeros(0, 8)
    with pytest.raises(NodeError, match=r"vae.safetensors does not fit its own layout .*0.*get it again"):
        build_vae(state, "vae.safetensors")


def test_the_editor_looks_at_a_workflow_file_swapped_for_a_pipe_without_waiting(tmp_path):
    # Each return to the window reads the open file again (digest_on_disk, read_again): the whole of it, unbounded,
    # so a workflow swapped for a named pipe froze the editor for ever and a link to /dev/zero filled the memory (the
    # first read, read_text, stops at MAX_YAML_BYTES and refuses both).
    import os
    import threading

    from app.editor.document import Document
    from graph_engine.errors import WorkflowError
    path = tmp_path / "shot.yaml"
    path.write_text("kinograph: 1\nnodes:\n  pattern:\n    type: generate.test_pattern\n")
    doc = Document.load(path)
    path.unlink()
    os.mkfifo(path)
    said = []

    def look():
        said.append(doc.digest_on_disk())
        try:
            doc.read_again()
        except (WorkflowError, OSError) as e:      # what the window logs ('cannot be read now (...)')
            said.append(str(e))
    looking = threading.Thread(target=look, daemon=True)
    looking.start()
    looking.join(3)
    waited = looking.is_alive()
    while looking.is_alive():       # a writer's open and close lets a reader that waits on the pipe go on
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        looking.join(0.5)
    assert not waited and said[0] is None and "named pipe" in said[1], said


def test_an_extra_model_paths_file_nested_deep_is_left_out_before_pyyaml_builds_it(tmp_path, monkeypatch):
    # config.yaml's extra_model_paths named a 6 KB file of 3,000 nested brackets: PyYAML's composer, one call a level,
    # took 0.9 s to reach Python's recursion limit, and the model folders read it 74 times for `kinograph info`
    # (67 s). It is left out once its nesting passes what a folder list needs, before anything is built.
    import yaml

    from nodes.common import models_dirs
    path = tmp_path / "extra_model_paths.yaml"
    path.write_text("comfyui:\n  base_path: " + "[" * 3000 + "]" * 3000 + "\n")
    built = []
    real = yaml.composer.Composer.compose_node
    monkeypatch.setattr(yaml.composer.Composer, "compose_node",
                        lambda self, *a: built.append(1) or real(self, *a))
    assert models_dirs.extra_model_paths(path) == {}
    assert built == []
    good = tmp_path / "good.yaml"
    good.write_text(f"comfyui:\n  base_path: {tmp_path}\n  loras: |\n    models/loras\n")
    assert models_dirs.extra_model_paths(good) == {"loras": [tmp_path / "models" / "loras"]}
