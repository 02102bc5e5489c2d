"""Hostile inputs, pass 17: llama.cpp vision projector files (mmproj-*.gguf) beside a Qwen2.5-VL text encoder,
pictures, and what Kinograph says of them. Each case failed (a traceback, a hang) before the change its commit
names."""
from pathlib import Path

import numpy as np
import pytest

from graph_engine import NodeError


def _mmproj(folder: Path, changed: dict, meta: dict = None) -> Path:
    """A small Qwen2.5-VL projector file as llama.cpp's converter names its tensors, with `changed` tensors put in
    (None: left out) and `meta` metadata (the writer's kind, value) over the valid ones; returns the text encoder's
    path it pairs with."""
    import gguf
    tensors = {"v.patch_embd.weight": np.zeros((8, 3, 2, 2)), "v.patch_embd.weight.1": np.zeros((8, 3, 2, 2)),
               **{f"v.blk.0.attn_{x}.weight": np.zeros((8, 8)) for x in "qkv"},
               "v.post_ln.weight": np.zeros(8), "mm.0.weight": np.zeros((8, 8)), "mm.2.weight": np.zeros((16, 8))}
    tensors.update(changed)
    w = gguf.GGUFWriter(str(folder / "qwen-mmproj-f16.gguf"), "clip")
    w.add_clip_projector_type("qwen2.5vl_merger")
    settings = {"clip.vision.n_wa_pattern": ("uint32", 1), "clip.vision.attention.head_count": ("uint32", 2),
                "clip.vision.patch_size": ("uint32", 2), **(meta or {})}
    for k, (kind, value) in settings.items():
        getattr(w, "add_" + kind)(k, value)
    for k, a in tensors.items():
        if a is not None:
            w.add_tensor(k, a.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return folder / "qwen-Q8_0.gguf"


@pytest.mark.parametrize("changed, meta, said", [
    ({"v.blk.².attn_q.weight": np.zeros((8, 8))}, None, r"its tensor 'v.blk.².attn_q.weight' is not one of"),
    ({f"v.blk.{'9' * 5000}.attn_q.weight": np.zeros((8, 8))}, None, r"its tensor 'v.blk.9999"),
    ({}, {"clip.vision.attention.head_count": ("string", "²")}, r"its metadata clip.vision.attention.head_count is '²', where llama.cpp writes a positive"),
    ({}, {"clip.vision.patch_size": ("string", "9" * 5000)}, r"its metadata clip.vision.patch_size is '9{40}'... \(5,000 characters\)"),
])
def test_a_projector_s_numbers_that_are_no_numbers_are_named(tmp_path, changed, meta, said):
    """A block numbered '²' (str.isdigit holds, int() refuses) or by 5,000 digits (past int()'s 4,300), and settings
    written so, were ValueError tracebacks out of load.text_encoder for a Qwen2.5-VL GGUF: the projector beside it is
    read whenever one with a matching name is there."""
    from nodes.generate.gguf_mmproj import vision_tower
    with pytest.raises(NodeError, match="qwen-mmproj-f16.gguf: " + said):
        vision_tower(_mmproj(tmp_path, changed, meta), 16, None)


def test_a_projector_block_numbered_past_its_blocks_is_refused_before_its_layout_is_listed(tmp_path):
    """The tower's depth was its highest block number plus one, and the window layout listed block by block up to
    it: v.blk.99999999 (three tensors of 256 bytes) held the loader 10 s and took 4 GB, a number of 20 digits for
    ever. llama.cpp numbers blocks from 0; a number past them is named."""
    from nodes.generate.gguf_mmproj import vision_tower
    far = {f"v.blk.999999.attn_{x}.weight": np.zeros((8, 8)) for x in "qkv"}
    with pytest.raises(NodeError, match=r"its blocks are numbered up to v.blk.999999 but it holds 2 of them"):
        vision_tower(_mmproj(tmp_path, far), 16, None)
    tensors, settings = vision_tower(_mmproj(tmp_path, {}), 16, None)
    assert settings == {"num_heads": 2, "patch_size": 2, "fullatt_block_indexes": [0]}
    assert tuple(tensors["visual.blocks.0.attn.qkv.weight"].shape) == (24, 8)


@pytest.mark.parametrize("changed, said", [
    ({"v.patch_embd.weight.1": np.zeros((8, 3, 2, 3))}, r"its patch convolution's two frames differ in shape "
                                                         r"\(v.patch_embd.weight \[8, 3, 2, 2\], v.patch_embd.weight.1"),
    ({"v.blk.0.attn_k.weight": np.zeros((8, 4))}, r"block 0's attn_q, attn_k and attn_v have shapes \[8, 8\], \[8, 4\]"),
])
def test_projector_pieces_that_do_not_fit_together_are_named(tmp_path, changed, said):
    """llama.cpp splits the patch convolution in two frames and each block's qkv in three; pieces of other shapes
    stopped torch.stack / torch.cat in a RuntimeError traceback out of load.text_encoder."""
    from nodes.generate.gguf_mmproj import vision_tower
    with pytest.raises(NodeError, match="qwen-mmproj-f16.gguf: " + said):
        vision_tower(_mmproj(tmp_path, changed), 16, None)


def _tiff_of_width_in_bytes(path: Path) -> Path:
    """A 4x4 TIFF whose ImageWidth entry says its value is of type BYTE, not SHORT (one byte changed)."""
    import io
    import struct
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(b, "TIFF")
    data = bytearray(b.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    assert struct.unpack_from("<H", data, ifd + 2)[0] == 256            # the first entry: ImageWidth
    struct.pack_into("<H", data, ifd + 4, 1)
    path.write_bytes(bytes(data))
    return path


def test_a_tiff_pillow_calls_of_invalid_dimensions_is_named(tmp_path):
    """Pillow refuses such a TIFF with a ValueError ('Invalid dimensions'), which io.load_image and io.load_frames
    let through as a traceback (they caught its OSError and SyntaxError only)."""
    from nodes.io.images import load_frames, read_image_alpha
    bad = _tiff_of_width_in_bytes(tmp_path / "shot_0001.tif")
    with pytest.raises(NodeError, match=r"cannot read .*shot_0001.tif as an image \(corrupt or unsupported format\): "
                                        r"Invalid dimensions"):
        read_image_alpha(str(bad))
    with pytest.raises(NodeError, match=r"shot_0001.tif as an image"):
        load_frames(str(tmp_path), 0)


def _slow_mkv(path: Path, rate, grey_step: int = 0) -> Path:
    """An MKV of 50 16x16 frames stating `rate` frames a second, frame i grey at grey_step x i (black by default)."""
    import av
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        for i in range(50):
            f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), grey_step * i, np.uint8), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_a_video_stating_a_frame_a_million_seconds_is_refused_before_it_is_resampled(tmp_path):
    """io.load_video's fps resamples the file's frames to that rate (ComfyUI's Load Video force_rate likewise): a
    6 KB MKV stating one frame a million seconds made 1.2 billion frames at fps 24, their index 9 GB before any
    frame was read (the machine's memory, or minutes). Its frames are held in time up to MAX_HELD, as its
    timestamps' gaps are."""
    from fractions import Fraction
    from nodes.io.video_read import load_video
    bomb = _slow_mkv(tmp_path / "slow.mkv", Fraction(1, 10 ** 6))
    assert bomb.stat().st_size < 8000 and load_video(str(bomb)).length == 50
    with pytest.raises(NodeError, match=r"slow.mkv: its 50 frames play at 1e-06 fps, 13,611 hours; at fps 24 "
                                        r"that is 1,176,000,000 frames: the file states a rate no video has"):
        load_video(str(bomb), fps=24)
    assert load_video(str(_slow_mkv(tmp_path / "one.mkv", 1)), fps=24).length == 49 * 24 + 1


@pytest.mark.parametrize("upsamples, said", [(0, "upsamples the latent 0 times, to a grid of 16\\^3"),
                                             (5, "upsamples the latent 5 times, to a grid of 512\\^3")])
def test_a_trellis2_structure_decoder_of_another_grid_is_named_before_it_decodes(upsamples, said):
    """The structure decoder's upsamples were counted from the file's tensors, each doubling the 16^3 grid: five
    (one-channel layers, a few KB) asked the allocator for 8.6 GB at decode.trellis2_structure (seven, 550 GB),
    none stopped max pooling to 32^3 in a RuntimeError traceback ('stride should not be zero'). TRELLIS.2's makes
    64^3; another grid is named as the file is read."""
    from nodes.generate.trellis2 import StructureDecoder, build_structure_decoder
    state = StructureDecoder(8, [1] * (upsamples + 1), 0, 0, 1).state_dict()
    with pytest.raises(NodeError, match=r"shape_vae.safetensors: its structure decoder " + said +
                                        r"; TRELLIS.2's doubles it twice, to 64\^3"):
        build_structure_decoder(state, "shape_vae.safetensors")
    assert build_structure_decoder(StructureDecoder(8, [1] * 3, 0, 0, 1).state_dict(), "two").blocks[1].conv.out_channels == 8


def test_a_comfyui_prefix_naming_a_windows_console_or_superscript_port_is_no_device():
    """ComfyUI's filename_prefix becomes the output's folders and name, each made a name Windows holds: CON, NUL.mp4
    and COM1 were given a leading _, but CONIN$ / CONOUT$ (the console) and COM¹, LPT³ (ports Windows numbers by a
    superscript) went through, so a shared workflow wrote a render to the console or a serial port on Windows.
    Reference: CPython 3.13's ntpath._reserved_names, written out."""
    from graph_engine.portable import portable_name
    from app.comfyui.mapping import out_path
    reserved = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | \
        {f"{p}{c}" for p in ("COM", "LPT") for c in "123456789\xb9\xb2\xb3"}
    for name in reserved:
        for shown in (name, name.lower(), name + ".png", name + " .mp4"):
            assert portable_name(shown) == "_" + shown, shown
    assert out_path(".mp4")("CONOUT$/COM\xb2") == "out/_CONOUT$/_COM\xb2.mp4"
    assert portable_name("COM10") == "COM10" and portable_name("CONOUT") == "CONOUT"


def test_an_exr_of_many_channels_unpacking_far_beyond_its_size_is_refused_from_its_header(tmp_path):
    """Each part's windows were held under Pillow's pixel limit, but reading holds every channel of every part: an
    EXR of 200 half-float channels of 2048x2048 zeros (1.7 MB, ZIP) took 38 s and 1.7 GB to be read, to say it
    had no colour channels; 1,000 channels of 13000x13000 would ask 338 GB. What the parts unpack to is judged
    against the file's size from the header. The file here states 16 channels of 8192x8192 (2.1 GB as halves) in
    a few hundred bytes: its windows written over a 1x1 picture's."""
    import struct
    import OpenEXR
    from nodes.io.images import read_image_alpha
    path = tmp_path / "passes.exr"
    one = np.zeros((1, 1), np.float16)
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                      {f"pass{i:02d}": one for i in range(16)}) as f:
        f.write(str(path))
    data = path.read_bytes()
    for window in (b"dataWindow\0box2i\0", b"displayWindow\0box2i\0"):
        at = data.index(window) + len(window) + 4
        data = data[:at] + struct.pack("<4i", 0, 0, 8191, 8191) + data[at + 16:]
    path.write_bytes(data)
    with pytest.raises(NodeError, match=r"passes.exr is refused: its 1 part\(s\) state 16 channels that unpack to at "
                                        r"least 2,147,483,648 bytes from a file of \d{3,4}, all held in memory"):
        read_image_alpha(str(path))


def test_a_tokenizer_without_a_chat_template_is_named():
    """A tokenizer folder whose tokenizer_config.json holds no chat template (Kinograph takes one from beside the
    model, a stranger's download) stopped Ideogram 4's prompt encoding in transformers' ValueError traceback
    ('tokenizer.chat_template is not set')."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from nodes.generate.chat_template import apply_chat_template
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "?": 1}, unk_token="?")))
    with pytest.raises(NodeError, match=r"Ideogram 4's Qwen3-VL text encoder: its tokenizer has no chat template"):
        apply_chat_template(tokenizer, [{"role": "user", "content": "a"}], "Ideogram 4's Qwen3-VL text encoder")


def test_an_animated_webp_is_opened_without_decoding_its_frames(tmp_path, monkeypatch):
    """Pillow sets a WebP frame's duration only as it decodes it, and io.load_video decoded every frame at open to
    sum them: each frame decodes onto the whole canvas, so a 1 KB file of 20 one-pixel frames on a 10000x10000
    canvas took 30 s and 1.5 GB to open (2,000 such frames, 80 KB, most of an hour) before any was asked for. The
    durations are read from the frames' headers; the rate is still the one Pillow's decoded durations give."""
    from PIL import Image, WebPImagePlugin
    from nodes.io.video_read import load_video
    durations = [40, 33, 100, 7, 20]
    frames = [Image.fromarray(np.full((8, 8, 3), 50 * i, np.uint8)) for i in range(5)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations)
    with Image.open(path) as im:                # the reference: what Pillow says as it decodes each frame
        decoded = []
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            decoded.append(im.info["duration"])
    assert decoded == durations
    loads = []
    real = WebPImagePlugin.WebPImageFile.load
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "load", lambda im: loads.append(1) or real(im))
    clip = load_video(str(path))
    assert len(loads) <= 1 and (clip.length, clip.fps) == (5, 1000.0 * 5 / sum(decoded))
    assert abs(int(clip.frame(4)[0, 0, 0]) - 200) <= 8        # lossy WebP: the last frame, read as asked


def test_a_dpx_frame_cut_short_is_named_when_read_at_depth(tmp_path):
    """A 10-bit DPX sequence is read at its depth for a grade into an EXR or 16-bit TIFF (Clip.linear): a frame cut
    short was named when read as 8 bits, but at depth FFmpeg's InvalidDataError came out as a traceback."""
    from nodes.io.film import write_film
    from nodes.io.images import load_frames
    for i in (1, 2):
        write_film(np.full((16, 16, 3), 0.5, np.float32), str(tmp_path / f"s_{i:04d}.dpx"))
    cut = tmp_path / "s_0002.dpx"
    cut.write_bytes(cut.read_bytes()[:2100])
    clip = load_frames(str(tmp_path), 0)
    assert clip.linear(0, 1).shape == (1, 16, 16, 3)
    for read in (clip.frames, clip.linear):
        with pytest.raises(NodeError, match=r"cannot read .*s_0002.dpx as a DPX picture \(.*\): the file is damaged"):
            read(0, 2)


def test_half_a_utf16_pair_in_a_comfyui_prompt_imports_as_a_readable_workflow(tmp_path):
    """JSON may write "\\ud800", half of a UTF-16 pair no text holds; json reads it as such, and the imported YAML
    wrote it as an escape YAML refuses to read back: `kinograph import` said its own new file was not valid YAML
    (with advice on Windows paths), and a tokenizer refuses such a text at run time (a TypeError traceback). Each
    is the replacement character, and the report says so."""
    import json
    from app.comfyui import import_workflow
    from graph_engine.workflow import parse_workflow
    api = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat \ud800 and \udfff\U0001F600", "clip": ["2", 1]}},
           "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}}}
    (tmp_path / "w.json").write_text(json.dumps(api))
    assert "\\ud800" in (tmp_path / "w.json").read_text()
    result = import_workflow(tmp_path / "w.json")
    workflow, problems = parse_workflow(result.yaml)
    assert not problems
    assert [n.params["text"] for n in workflow.graph.nodes.values() if "text" in n.params] == \
        ["a cat \ufffd and \ufffd\U0001F600"]
    assert "2 character(s) of its texts were half of a UTF-16 pair" in result.report.text()


def test_a_chat_template_writing_half_a_utf16_pair_gives_a_text_the_tokenizer_reads():
    """A template's '\\ud800' is half a UTF-16 pair: the rendered prompt held it, and the fast tokenizer that
    reads the prompt next refused it in a TypeError traceback (textgen, Ideogram 4)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from nodes.generate.chat_template import apply_chat_template
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "?": 1}, unk_token="?")))
    tokenizer.chat_template = "{{ '\\ud800' }}{% for m in messages %}{{ m.content }}{% endfor %}"
    text = apply_chat_template(tokenizer, [{"role": "user", "content": "a"}], "the model")
    assert text == "?a" and tokenizer(text)["input_ids"] == [1]


def _gif(path: Path, pictures: int, side: int) -> Path:
    """An opaque GIF (a black-and-white global palette, no transparent colour) of `pictures` one-pixel pictures on a
    side x side canvas, each shown 4 hundredths: about 17 bytes a picture, whatever the canvas."""
    import struct
    data = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    for i in range(pictures):
        data += b"\x21\xf9\x04\x00" + struct.pack("<H", 4) + b"\0\0"                 # its delay
        data += b"\x2c" + struct.pack("<HHHHB", i % side, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"   # 1x1, colour 0
    path.write_bytes(data + b"\x3b")
    return path


def test_a_gif_of_many_pictures_on_a_huge_canvas_is_opened_without_decoding_them_all(tmp_path, monkeypatch):
    """io.load_video decoded every picture of an opaque GIF at open to find whether any is transparent, each drawn
    onto the whole canvas: a 250-byte GIF of ten one-pixel pictures on a 10000x10000 canvas took 9 s to open, 2,000
    (34 KB) half an hour. The look stops past OPAQUE_LOOK_PIXELS (5 canvases here; 500 million pixels in use) and
    such a GIF keeps its matte, as a damaged one does; a shorter one is still found opaque."""
    from nodes.io import video_read
    monkeypatch.setattr(video_read, "OPAQUE_LOOK_PIXELS", 5 * 64 * 64, raising=False)
    assert not video_read.VideoSource(str(_gif(tmp_path / "short.gif", 4, 64)))._alpha
    long = video_read.VideoSource(str(_gif(tmp_path / "long.gif", 200, 64)))
    assert long._alpha and long.length == 200
