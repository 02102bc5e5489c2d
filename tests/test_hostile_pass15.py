"""Hostile inputs, pass 15: model files a stranger hands an artist (cut off, padded, typed or sized to mislead, or
no model at all: a web page or a Git LFS pointer saved under the model's name) and what `kinograph validate` says
of them. Each case failed (validate said ok, a library's error, a numpy message naming no tensor) before the change
its commit names. The safetensors library itself is the reference for what a loader refuses."""
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from app.cli import main
from graph_engine import NodeError
from nodes.generate.damaged import damaged
from nodes.generate.detect import read_header, torch_load

WF = """kinograph: 1
nodes:
  vae: {type: load.vae, params: {name: wan_2.1_vae.safetensors}}
  p: {type: generate.test_pattern, params: {frames: 2, width: 32, height: 32}}
  enc: {type: vae.encode, inputs: {vae: vae.vae, video: p.video}}
  dec: {type: vae.decode, inputs: {vae: vae.vae, latent: enc.latent}}
  save: {type: io.save_video, inputs: {video: dec.video}, params: {path: out/x.mp4}}
"""


def _raw(path: Path, header, data: bytes = b"") -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_validate_and_run_name_a_cut_off_model_file_and_its_tensor(tmp_path, monkeypatch, capsys):
    """A VAE download stopped halfway: `kinograph validate` said ok (the run stopped at the loader, after the nodes
    before it). Its header is read against its size now, no weight read, and the tensor past the end named."""
    models = tmp_path / "models" / "vae"
    models.mkdir(parents=True)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    vae = models / "wan_2.1_vae.safetensors"
    save_file({"decoder.conv_in.weight": torch.zeros(8, 4, 3, 3), "encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)},
              str(vae))
    (tmp_path / "wf.yaml").write_text(WF)
    assert main(["validate", str(tmp_path / "wf.yaml")]) == 0, capsys.readouterr().err
    capsys.readouterr()
    whole = vae.read_bytes()
    vae.write_bytes(whole[:-100])
    for command in ("validate", "run"):
        assert main([command, str(tmp_path / "wf.yaml")]) == 2
        err = capsys.readouterr().err
        assert f"wf.yaml:3: node vae: name: {vae} is not a valid safetensors file ({len(whole) - 100:,} bytes on " \
               f"disk; tensor encoder.conv_in.weight ends at byte {len(whole):,}: the file is cut short)" in err, err
        assert "Copy the file again or re-download it." in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, header, data, said", [
    # the safetensors library refuses every one of these when it loads; the header reader said each was fine
    ("trailing", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 400,
     "396 bytes follow its last tensor, which no safetensors writer leaves"),
    ("nan", b'{"__metadata__": {"a": NaN}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4,
     "its header holds NaN, which is not JSON"),
    ("type", {"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
     "w: its type 'Q9' is none the safetensors library reads"),
    ("meta", {"__metadata__": {"a": 1}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
     "its __metadata__ is not a mapping of texts"),
    ("fp4", {"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4,
     r"w: its shape \[3\] does not fill its 4 bytes"),
    ("huge", b"{" + b" " * (101 << 20) + b"}", b"", "its header length 105,906,178 is past the 100 MB"),
])
def test_safetensors_the_library_refuses_are_named_before_a_loader_reads_them(tmp_path, name, header, data, said):
    path = _raw(tmp_path / f"{name}.safetensors", header, data)
    with pytest.raises(Exception):
        load_file(str(path))
    with pytest.raises(NodeError, match=rf"{name}.safetensors is not a valid safetensors file \({said}.*re-download"):
        read_header(path)


def test_real_sized_headers_and_files_still_read(tmp_path):
    """The limits leave real files alone: 100,000 tensors in one header, and a 20 GB file (sparse here) whose header
    is read without its weights; the safetensors library opens each as well."""
    many = tmp_path / "many.safetensors"
    save_file({f"blocks.{i}.w": torch.zeros(1, dtype=torch.float16) for i in range(100_000)}, str(many))
    assert len(read_header(many).shapes) == 100_000
    big = tmp_path / "big.safetensors"
    values = 10 * 2 ** 30
    _raw(big, {"__metadata__": {"format": "pt"}, "w": {"dtype": "BF16", "shape": [values // 4096, 4096],
                                                        "data_offsets": [0, 2 * values]}})
    with open(big, "r+b") as f:
        f.truncate(big.stat().st_size + 2 * values)
    assert read_header(big).shapes == {"w": (values // 4096, 4096)}
    with safe_open(str(big), "pt") as f:
        assert f.get_slice("w").get_shape() == [values // 4096, 4096]


def _gguf(path: Path) -> Path:
    import gguf
    writer = gguf.GGUFWriter(str(path), "wan")
    writer.add_tensor("blocks.0.weight", np.zeros((64, 64), np.float32))
    writer.add_tensor("head.bias", np.zeros(64, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("edit, said", [
    ("cut", r"[\d,]+ bytes on disk; tensor blocks.0.weight ends at byte [\d,]+: the file is cut short"),
    ("type", "tensor blocks.0.weight: type 99 is no GGML type the gguf package reads"),
    ("dims", "tensor blocks.0.weight: 9 dimensions, where GGML has at most 4"),
    ("offset", r"[\d,]+ bytes on disk; tensor blocks.0.weight ends at byte 1,125,899,906,8[\d,]+: the file is cut"),
])
def test_a_damaged_gguf_names_its_tensor(tmp_path, edit, said):
    """The gguf package said numpy's 'cannot reshape array of size 4085 into shape (64,64)' for a cut-off download,
    naming no tensor, and 'array is too big' for a tensor of nine dimensions."""
    path = _gguf(tmp_path / "m.gguf")
    assert read_header(path).shapes == {"blocks.0.weight": (64, 64), "head.bias": (64,)}
    data = bytearray(path.read_bytes())
    info = data.index(b"blocks.0.weight") + len(b"blocks.0.weight")    # dimensions, shape, type, offset
    if edit == "cut":
        del data[-300:]
    elif edit == "type":
        struct.pack_into("<I", data, info + 20, 99)
    elif edit == "dims":
        struct.pack_into("<I", data, info, 9)
    else:
        struct.pack_into("<Q", data, info + 24, 2 ** 50)
    path.write_bytes(bytes(data))
    with pytest.raises(NodeError, match=rf"m.gguf is not a readable GGUF file \({said}.*re-download"):
        read_header(path)


def test_a_gguf_describing_more_tensors_than_any_model_is_refused_before_they_are_read(tmp_path):
    """200,000 tensors of one value in an 8 MB file, all on the same 4 bytes: the gguf package read them for minutes
    (a fraction of a millisecond each), and `kinograph info` reads every file of the model folders."""
    count, infos = 200_000, bytearray()
    for i in range(count):
        name = b"t%d" % i
        infos += struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 1, 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, count, 0) + infos
    path = tmp_path / "many.gguf"
    path.write_bytes(head + b"\0" * (-len(head) % 32 + 32))
    with pytest.raises(NodeError, match=r"many.gguf is not a readable GGUF file \(its header declares 200,000 "
                                        r"tensors, more than the 100,000 any model holds\)"):
        read_header(path)


PAGE = "<!DOCTYPE html>\n<html><head><title>Sign in \x1b[31m- Model Hub</title></head><body>...</body></html>\n"
LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 5000000000\n"


@pytest.mark.parametrize("suffix", [".safetensors", ".gguf", ".ckpt"])
@pytest.mark.parametrize("text, said", [
    (PAGE, r'is a web page \("Sign in \[31m- Model Hub"\), not the model: the download saved the site\'s page instead'),
    (LFS, r"is a Git LFS pointer, not the model \(the model is 5,000,000,000 bytes\): the repository was cloned "
          r"without its large files. Run `git lfs pull`"),
    ('{"error": "Repository not found"}', r'is a server\'s error message \("Repository not found"\), not the model'),
])
def test_a_download_that_saved_no_model_is_named_as_such(tmp_path, suffix, text, said):
    """A failed download's web page, a clone's LFS pointer or a server's error under a model's name was 'not a valid
    safetensors file (header length out of range): ... Copy the file again', which gave the same page again."""
    path = tmp_path / f"model{suffix}"
    path.write_text(text)
    with pytest.raises(NodeError, match=rf"model{suffix} {said}") as e:
        read_header(path)
    assert "\x1b" not in str(e.value)      # the page's own terminal escape is not printed
    if suffix == ".ckpt":       # as the loaders reading a checkpoint whole (style transfer, learned metrics) say
        with pytest.raises(NodeError, match=rf"model{suffix} {said}"):
            torch_load(path)


def test_a_diffusers_folder_with_a_cut_off_part_is_named_by_that_file(tmp_path):
    """A folder model's weights are its parts' files: the one cut short is named."""
    part = tmp_path / "Wan2.1-T2V-1.3B-Diffusers" / "transformer" / "diffusion_pytorch_model.safetensors"
    part.parent.mkdir(parents=True)
    save_file({"w": torch.zeros(64)}, str(part))
    assert damaged(part.parents[1]) is None
    part.write_bytes(part.read_bytes()[:-8])
    assert damaged(part.parents[1]).startswith(f"{part} is not a valid safetensors file (")
