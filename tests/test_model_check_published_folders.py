"""Review of the up-front model file check (`kinograph validate`, the check before a run) from a studio's side:
folders as Hugging Face publishes them, and text-encoder GGUFs that carry their tokenizer. Each case failed before
the change its commit names; the libraries that load the files (diffusers, the gguf package) are the reference."""
import json
from pathlib import Path

import gguf
import numpy as np
import torch

from nodes.generate.damaged import damaged


def _sdxl_like_folder(root: Path) -> Path:
    """A diffusers pipeline folder laid out as stabilityai/stable-diffusion-xl-base-1.0 is: Optimum's OpenVINO
    weights (raw bytes, no pickle) beside each part's safetensors, and the single-file checkpoint at the root left
    as a Git LFS pointer by a clone that pulled only the diffusers parts."""
    from diffusers import AutoencoderKL
    folder = root / "stable-diffusion-xl-base-1.0"
    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8,), layers_per_block=1, norm_num_groups=8, latent_channels=4,
                  sample_size=16).save_pretrained(folder / "vae")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline",
                                                         "vae": ["diffusers", "AutoencoderKL"]}))
    (folder / "vae" / "openvino_model.bin").write_bytes(np.ones(64, np.float16).tobytes())
    (folder / "vae" / "openvino_model.xml").write_text("<net name='vae'/>")
    (folder / "sd_xl_base_1.0.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 6938078334\n")
    return folder


def test_a_diffusers_folder_is_judged_by_the_files_its_loader_reads(tmp_path):
    """Every .bin/.safetensors in a folder and one down was checked: SDXL's folder as published (OpenVINO's
    openvino_model.bin beside each part) was refused as "not a torch checkpoint", and a root single-file checkpoint
    left as an LFS pointer refused the folder, though diffusers reads neither. Kinograph's load, which holds a
    folder's config to the weights its headers list (config_bound), refused the OpenVINO file the same way."""
    from diffusers import AutoencoderKL
    from nodes.generate.offline import quiet_libraries
    folder = _sdxl_like_folder(tmp_path)
    quiet_libraries(("diffusers",))             # as a run loads: diffusers' from_pretrained held to the headers
    AutoencoderKL.from_pretrained(folder, subfolder="vae")
    assert damaged(folder) is None
    # A part's own weights cut short are still named.
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    said = damaged(folder)
    assert said and str(weights) in said and "the file is cut short" in said, said


def test_a_pickle_beside_no_safetensors_is_still_checked(tmp_path):
    """Only pickles beside a safetensors file are skipped (the loaders read the safetensors): an older part saved
    as .bin alone is what its loader reads, so it is checked."""
    folder = tmp_path / "old-pipeline"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"PK\x03\x04cut")
    said = damaged(folder)
    assert said and "diffusion_pytorch_model.bin" in said, said


def _text_encoder_gguf(path: Path, tokens: int = 20000) -> Path:
    """A text encoder GGUF as llama.cpp converts one: its tokenizer (tokens, types, merges) in the metadata."""
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_token_list([f"t{i}" for i in range(tokens)])
    w.add_token_types([1] * tokens)
    w.add_token_merges([f"a{i} b{i}" for i in range(tokens)])
    w.add_tensor("blk.0.attn_q.weight", np.ones((8, 8), np.float16))
    w.add_tensor("output_norm.weight", np.ones(8, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_the_check_of_a_gguf_walks_its_header_without_the_packages_reader(tmp_path, monkeypatch):
    """The check built the gguf package's reader, which parses the tokenizer arrays element by element: 25 s for a
    150,000-token text encoder on the review box, for `kinograph validate` alone. The header walk (gguf_fields) checks
    the same structure and every tensor against the file's size; the package still reads the file as whole."""
    path = _text_encoder_gguf(tmp_path / "qwen_2.5_vl_7b-Q8_0.gguf")
    reader = gguf.GGUFReader(str(path))
    assert [t.name for t in reader.tensors] == ["blk.0.attn_q.weight", "output_norm.weight"]
    built = []
    monkeypatch.setattr(gguf, "GGUFReader", lambda *a, **k: built.append(a) or reader)
    assert damaged(path) is None
    assert built == []
    cut = tmp_path / "cut-Q8_0.gguf"
    cut.write_bytes(path.read_bytes()[:-40])
    said = damaged(cut)
    assert said and "tensor blk.0.attn_q.weight ends at byte" in said and "the file is cut short" in said, said
    assert built == []


def test_a_workflow_piped_to_validate_keeps_its_line_numbers(monkeypatch, capsys):
    """editor39 dropped the file and line of a workflow read from no file (an import's YAML exists only in memory),
    and so of one piped in (`make_shot.py | kinograph validate -`), whose lines are the script's own: a slip said
    'not valid YAML: …' with no line. It says '<stdin>:LINE:' again."""
    import io
    from app.cli import main
    for text, said in [("kinograph: 1\nnodes:\n  a: {type: x\n", "<stdin>:4: not valid YAML: "),
                       ("kinograph: 1\nnodes:\n  a: {type: generate.test_pattern}\n"
                        "  b: {type: video.resize, inputs: {video: a.nope}}\n", "<stdin>:4: node b: input 'video'")]:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))
        assert main(["validate", "-"]) == 2
        err = capsys.readouterr().err
        assert said in err, err
