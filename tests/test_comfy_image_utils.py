"""ComfyUI's core picture utilities as Kinograph maps them: ResizeAndPadImage (video.resize_pad), ImageScaleToMaxDimension
and Resize Image/Mask's total-pixels and multiplier types (video.resize_side, video.resize_pixels, upscale.resize),
SaveImageAdvanced (io.save_frames). The references are ComfyUI's published code (comfy_extras/nodes_images.py,
nodes_post_processing.py, comfy/utils.py common_upscale and lanczos) written out here, on small frames."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from graph_engine import Clip, NodeError


# -- ComfyUI's code, written out -----------------------------------------------------------------------------------
def _comfy_lanczos(samples, width, height):
    images = [Image.fromarray(np.clip(255. * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8))
              for image in samples]
    images = [image.resize((width, height), resample=Image.Resampling.LANCZOS) for image in images]
    images = [torch.from_numpy(np.array(image).astype(np.float32) / 255.0).movedim(-1, 0) for image in images]
    return torch.stack(images)


def _comfy_common_upscale(samples, width, height, upscale_method):          # crop "disabled"
    if upscale_method == "lanczos":
        return _comfy_lanczos(samples, width, height)
    return torch.nn.functional.interpolate(samples, size=(height, width), mode=upscale_method)


def _comfy_resize_and_pad(image, target_width, target_height, padding_color, interpolation):
    batch_size, orig_height, orig_width, channels = image.shape
    scale = min(target_width / orig_width, target_height / orig_height)
    new_width, new_height = int(orig_width * scale), int(orig_height * scale)
    resized = _comfy_common_upscale(image.permute(0, 3, 1, 2), new_width, new_height, interpolation)
    pad_value = 0.0 if padding_color == "black" else 1.0
    padded = torch.full((batch_size, channels, target_height, target_width), pad_value, dtype=image.dtype)
    y_offset = (target_height - new_height) // 2
    x_offset = (target_width - new_width) // 2
    padded[:, :, y_offset:y_offset + new_height, x_offset:x_offset + new_width] = resized
    return padded.permute(0, 2, 3, 1)


def _comfy_longer_side(height, width, largest_size):                      # ImageScaleToMaxDimension
    if height > width:
        width = round((width / height) * largest_size)
        height = largest_size
    elif width > height:
        height = round((height / width) * largest_size)
        width = largest_size
    else:
        height = width = largest_size
    return width, height


def _comfy_total_pixels(w, h, megapixels):                                 # Resize Image/Mask, scale total pixels
    total = int(megapixels * 1024 * 1024)
    scale_by = math.sqrt(total / (w * h))
    return round(w * scale_by), round(h * scale_by)


# -- video.resize_pad ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (2, 9, 14, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", ["area", "bicubic", "nearest-exact", "bilinear", "lanczos"])
@pytest.mark.parametrize("size,colour", [((16, 16), "white"), ((20, 8), "black"), ((7, 5), "white")])
def test_resize_pad_is_comfyuis(frames, method, size, colour):
    from nodes.video.nodes import resize_pad
    want = _comfy_resize_and_pad(torch.from_numpy(frames).float() / 255.0, *size, colour, method)
    want = np.clip(np.rint(want.numpy() * 255.0), 0, 255)
    got = resize_pad(None, Clip.from_array(frames), *size, colour, "nearest" if method == "nearest-exact" else method)
    out = got.frames(0, 2)
    assert out.shape == want.shape and (got.width, got.height) == size
    # ComfyUI's float result is rounded to the nearest 8-bit level here (its lanczos truncates on the way in)
    assert np.abs(out.astype(int) - want).max() <= 1


def test_resize_pad_streams_and_keeps_alpha_opaque_under_bars(frames):
    from nodes.video.nodes import resize_pad
    matte = np.full((2, 9, 14, 1), 100, np.uint8)
    alpha = Clip(2, 24.0, 14, 9, lambda a, b: matte[a:b], channels=1)
    clip = Clip.from_array(frames).with_(matte=alpha)
    out = resize_pad(None, clip, 16, 16, "black", "area")
    assert np.array_equal(out.frames(1, 2), out.frames(0, 2)[1:])          # a chunk alone as in the whole
    a = out.matte.frames(0, 2)
    top = (16 - int(9 * 16 / 14)) // 2
    assert a[0, 0, 0, 0] == 255 and a[0, top + 2, 8, 0] == 100            # bars opaque, the picture's alpha kept


@pytest.mark.parametrize("kw,match", [({"width": 0}, "width and height must both be 1 or more"),
                                       ({"colour": "grey"}, "colour='grey': choose one of black, white"),
                                       ({"method": "bislerp"}, "method='bislerp': choose one of")])
def test_resize_pad_refuses_bad_settings(frames, kw, match):
    from nodes.video.edit import resize_pad
    args = {"width": 16, "height": 16, "colour": "white", "method": "area", **kw}
    with pytest.raises(NodeError, match=match):
        resize_pad(Clip.from_array(frames), **args).frames(0, 1)


def test_resize_pad_node_refuses_huge_size():
    from graph_engine.api import load_workflow
    from graph_engine.errors import WorkflowError
    text = ("kinograph: 1\nnodes:\n  src: {type: generate.solid, params: {width: 8, height: 8}}\n"
            "  pad: {type: video.resize_pad, inputs: {video: src.video}, params: {width: 100000, height: 8}}\n")
    with pytest.raises(WorkflowError, match="width"):
        load_workflow(text=text)


# -- the ComfyUI nodes as they import ------------------------------------------------------------------------------
def _imported(node: dict):
    from app.comfyui import import_data
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
           "2": {**node, "inputs": {"image": ["1", 0], "input": ["1", 0], **node["inputs"]}},
           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    return res, next(e for e in res.report.entries.values() if e.class_type == node["class_type"])


def _node(res, type_):
    import yaml
    nodes = yaml.safe_load(res.yaml)["nodes"]
    return next(n for n in nodes.values() if n["type"] == type_)


def test_resize_and_pad_imports_exactly():
    res, entry = _imported({"class_type": "ResizeAndPadImage", "inputs": {
        "target_width": 960, "target_height": 640, "padding_color": "white", "interpolation": "nearest-exact"}})
    assert entry.status == "exact", entry.notes
    assert _node(res, "video.resize_pad")["params"] == {"width": 960, "height": 640, "colour": "white",
                                                        "method": "nearest"}


@pytest.mark.parametrize("w,h", [(14, 9), (9, 14), (10, 10), (333, 101)])
def test_scale_to_max_dimension_is_comfyuis_size(w, h):
    from nodes.video.nodes import resize_side
    res, entry = _imported({"class_type": "ImageScaleToMaxDimension", "inputs": {"upscale_method": "area",
                                                                                "largest_size": 24}})
    assert entry.status == "exact", entry.notes
    p = _node(res, "video.resize_side")["params"]
    out = resize_side(None, Clip.from_array(np.zeros((1, h, w, 3), np.uint8)), p["size"], p["side"], p["method"])
    assert (out.width, out.height) == _comfy_longer_side(h, w, 24)


@pytest.mark.parametrize("w,h,mp", [(14, 9, 0.0007), (1000, 563, 1.6), (640, 480, 1.0)])
def test_resize_image_mask_total_pixels_is_comfyuis_size(w, h, mp):
    from nodes.video.edit import pixel_count_size
    res, entry = _imported({"class_type": "ResizeImageMaskNode", "inputs": {
        "resize_type": "scale total pixels", "resize_type.megapixels": mp, "scale_method": "area"}})
    assert entry.status == "exact", entry.notes
    p = _node(res, "video.resize_pixels")["params"]
    assert p["method"] == "area" and p["step"] == 1
    assert pixel_count_size(w, h, p["megapixels"], p["step"]) == _comfy_total_pixels(w, h, mp)


def test_resize_image_mask_multiplier_and_unmapped_types():
    res, entry = _imported({"class_type": "ResizeImageMaskNode", "inputs": {
        "resize_type": "scale by multiplier", "resize_type.multiplier": 1.5, "scale_method": "bilinear"}})
    assert _node(res, "upscale.resize")["params"] == {"scale": 1.5, "method": "bicubic"}
    assert entry.status == "approx" and any("no bilinear" in n for n in entry.notes)
    _, entry = _imported({"class_type": "ResizeImageMaskNode", "inputs": {
        "resize_type": "scale to multiple", "resize_type.multiple": 8, "scale_method": "area"}})
    assert entry.status == "unmapped" and "'scale to multiple' is not mapped" in entry.notes[-1]


def test_save_image_advanced():
    res, entry = _imported({"class_type": "SaveImageAdvanced", "inputs": {
        "images": ["1", 0], "filename_prefix": "Qwen/edit", "format": "png", "format.bit_depth": "8-bit",
        "format.input_color_space": "sRGB"}})
    assert entry.status == "exact", entry.notes
    saves = [n for n in __import__("yaml").safe_load(res.yaml)["nodes"].values() if n["type"] == "io.save_frames"]
    assert {"path": "out/Qwen/edit", "format": "png"} in [n["params"] for n in saves]
    _, entry = _imported({"class_type": "SaveImageAdvanced", "inputs": {
        "images": ["1", 0], "filename_prefix": "x", "format": "png", "format.bit_depth": "16-bit",
        "format.input_color_space": "sRGB"}})
    assert entry.status == "approx" and any("bit_depth='16-bit' is not carried" in n for n in entry.notes)
    _, entry = _imported({"class_type": "SaveImageAdvanced", "inputs": {
        "images": ["1", 0], "filename_prefix": "x", "format": "exr", "format.bit_depth": "32-bit float",
        "format.input_color_space": "sRGB"}})
    assert entry.status == "approx" and any("half float" in n for n in entry.notes)


# -- io.save_audio (SaveAudio, SaveAudioMP3, SaveAudioOpus, SaveAudioAdvanced) --------------------------------------
@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    """0.4 s of a 440 Hz stereo tone at 44.1 kHz, 16-bit."""
    import wave
    t = np.arange(int(0.4 * 44100)) / 44100
    pcm = (np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], -1) * 20000).astype("<i2")
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(pcm.tobytes())
    return path, pcm


def _decoded(path):
    import av
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        rate, codec = s.codec_context.sample_rate, s.codec_context.name
        data = np.concatenate([f.to_ndarray().reshape(-1, s.codec_context.channels) if f.format.is_packed else
                               f.to_ndarray().T for f in c.decode(s)])
        tags = dict(c.metadata)
    return rate, codec, data, tags


def test_save_audio_writes_each_format_as_comfyui(tone, tmp_path):
    from nodes.io.audio_write import write_audio
    from nodes.io.sound import sound_span
    src, pcm = tone
    audio = sound_span(str(src), 0.0, 0.0)
    write_audio(audio, str(tmp_path / "a.flac"), workflow_yaml="kinograph: 1\n")
    rate, codec, data, tags = _decoded(tmp_path / "a.flac")
    assert (rate, codec) == (44100, "flac") and np.array_equal(data, pcm)      # lossless, at the sound's rate
    assert any("kinograph" in v for v in tags.values())
    sizes = {}
    for q in ("V0", "128k", "320k"):
        info = write_audio(audio, str(tmp_path / f"{q}.mp3"), q)
        rate, codec, data, _ = _decoded(info["path"])
        assert rate == 44100 and codec.startswith("mp3") and abs(len(data) - len(pcm)) < 2000
        sizes[q] = info["bytes"]
    assert sizes["128k"] < sizes["V0"] < sizes["320k"]
    rate, codec, _, _ = _decoded(write_audio(audio, str(tmp_path / "a.opus"), "128k")["path"])
    assert rate == 48000 and "opus" in codec        # the first rate Opus codes at above 44.1 kHz, as ComfyUI


@pytest.mark.parametrize("name,quality,match", [("a.ogg", "V0", "not a sound type Kinograph writes"),
                                                ("a.opus", "V0", "V0 is MP3's variable rate"),
                                                ("a.mp3", "99k", "quality='99k': choose one of")])
def test_save_audio_refuses_bad_settings(tone, tmp_path, name, quality, match):
    from nodes.io.audio_write import write_audio
    from nodes.io.sound import sound_span
    with pytest.raises(NodeError, match=match):
        write_audio(sound_span(str(tone[0]), 0.0, 0.0), str(tmp_path / name), quality)
    assert not list(tmp_path.iterdir())


def test_save_audio_nodes_import():
    from app.comfyui import import_data
    api = {"1": {"class_type": "LoadAudio", "inputs": {"audio": "a.wav"}},
           "2": {"class_type": "SaveAudioAdvanced", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/x",
                                                              "format": "opus", "format.quality": "192k"}},
           "3": {"class_type": "SaveAudioMP3", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/y",
                                                         "quality": "V0"}},
           "4": {"class_type": "SaveAudioAdvanced", "inputs": {"audio": ["1", 0], "filename_prefix": "audio/z",
                                                              "format": "flac"}}}
    res = import_data(api)
    assert all(e.status == "exact" for e in res.report.entries.values()), res.report.entries
    import yaml
    got = sorted(tuple(sorted(n["params"].items())) for n in yaml.safe_load(res.yaml)["nodes"].values()
                 if n["type"] == "io.save_audio")
    assert got == [(("path", "out/audio/x.opus"), ("quality", "192k")), (("path", "out/audio/y.mp3"),
                                                                         ("quality", "V0")),
                   (("path", "out/audio/z.flac"),)]


# -- video.slice (Video Slice) -------------------------------------------------------------------------------------
def _comfy_slice(n, fps, start, duration, den=15360):
    """The frames ComfyUI's VideoFromFile keeps trimmed: pts >= int(start / time_base) and, with a duration,
    pts < int((start + duration) / time_base); a negative start is counted from the end (get_active_trim_window)."""
    from fractions import Fraction
    tb = Fraction(1, den)
    per = Fraction(den) / Fraction(fps)                                     # pts a frame
    if start < 0:
        start = max(n / fps + start, 0.0)
    start_pts = int(start / tb)
    end_pts = int((start + duration) / tb) if duration else None
    return [i for i in range(n) if i * per >= start_pts and (end_pts is None or i * per < end_pts)]


@pytest.mark.parametrize("fps,start,duration", [(24, 0.0, 0.5), (24, 0.3, 0.25), (30, 1.0, 0.0), (24, -0.5, 0.0),
                                                (30, 0.1, 5.0), (24, 0.5, 0.5)])
def test_slice_keeps_comfyuis_frames(fps, start, duration):
    from nodes.video.nodes import slice_seconds
    n = 48
    frames = np.zeros((n, 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    out = slice_seconds(None, Clip.from_array(frames, fps=fps), start, duration, False)
    assert list(out.frames(0, out.length)[:, 0, 0, 0]) == _comfy_slice(n, fps, start, duration)


def test_slice_refuses_what_comfyui_refuses_and_imports():
    from nodes.video.nodes import slice_seconds
    clip = Clip.from_array(np.zeros((24, 4, 4, 3), np.uint8), fps=24)
    with pytest.raises(NodeError, match="less than the 2 s asked for"):
        slice_seconds(None, clip, 0.0, 2.0, True)
    with pytest.raises(NodeError, match="past the end of the clip"):
        slice_seconds(None, clip, 1.5, 0.0, False)
    from nodes.video.edit import slice_span
    with pytest.raises(NodeError, match="duration must be 0"):
        slice_span(24, 24.0, 0.0, -1.0)
    from app.comfyui import import_data
    res = import_data({"1": {"class_type": "LoadVideo", "inputs": {"file": "a.mp4"}},
                       "2": {"class_type": "Video Slice", "inputs": {"video": ["1", 0], "start_time": -2.0,
                                                                     "duration": 1.5, "strict_duration": True}},
                       "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "v",
                                                                   "format": "auto", "codec": "auto"}}})
    assert res.report.entries["2"].status == "exact"
    assert _node(res, "video.slice")["params"] == {"start": -2.0, "duration": 1.5, "strict": True}


# -- video.blend (ImageBlend) and video.blur (ImageBlur) -----------------------------------------------------------
def _comfy_upscale_center(samples, width, height, method):
    old_width, old_height = samples.shape[-1], samples.shape[-2]
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    s = samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2)
    return torch.nn.functional.interpolate(s, size=(height, width), mode=method)


def _comfy_blend(image1, image2, blend_factor, blend_mode):
    if image1.shape != image2.shape:
        image2 = _comfy_upscale_center(image2.permute(0, 3, 1, 2), image1.shape[2], image1.shape[1], "bicubic")
        image2 = image2.permute(0, 2, 3, 1)
    img1, img2 = image1, image2
    if blend_mode == "normal":
        b = img2
    elif blend_mode == "multiply":
        b = img1 * img2
    elif blend_mode == "screen":
        b = 1 - (1 - img1) * (1 - img2)
    elif blend_mode == "overlay":
        b = torch.where(img1 <= 0.5, 2 * img1 * img2, 1 - 2 * (1 - img1) * (1 - img2))
    elif blend_mode == "soft_light":
        g = torch.where(img1 <= 0.25, ((16 * img1 - 12) * img1 + 4) * img1, torch.sqrt(img1))
        b = torch.where(img2 <= 0.5, img1 - (1 - 2 * img2) * img1 * (1 - img1), img1 + (2 * img2 - 1) * (g - img1))
    else:
        b = img1 - img2
    return torch.clamp(image1 * (1 - blend_factor) + b * blend_factor, 0, 1)


def _comfy_blur(image, blur_radius, sigma):
    batch_size, height, width, channels = image.shape
    kernel_size = blur_radius * 2 + 1
    x, y = torch.meshgrid(torch.linspace(-1, 1, kernel_size), torch.linspace(-1, 1, kernel_size), indexing="ij")
    d = torch.sqrt(x * x + y * y)
    g = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    kernel = (g / g.sum()).repeat(channels, 1, 1).unsqueeze(1)
    image = image.permute(0, 3, 1, 2)
    padded = torch.nn.functional.pad(image, (blur_radius,) * 4, "reflect")
    blurred = torch.nn.functional.conv2d(padded, kernel, padding=kernel_size // 2, groups=channels)
    return blurred[:, :, blur_radius:-blur_radius, blur_radius:-blur_radius].permute(0, 2, 3, 1)


def _levels(t):
    return np.clip(np.rint(t.numpy() * 255.0), 0, 255)


@pytest.mark.parametrize("mode", ["normal", "multiply", "screen", "overlay", "soft_light", "difference"])
@pytest.mark.parametrize("other_shape", [(2, 9, 14, 3), (1, 12, 10, 3)])
def test_blend_is_comfyuis(frames, mode, other_shape):
    from nodes.video.nodes import blend
    other = np.random.default_rng(5).integers(0, 256, other_shape, dtype=np.uint8)
    want = _levels(_comfy_blend(torch.from_numpy(frames).float() / 255, torch.from_numpy(other).float() / 255, 0.7,
                                mode))
    out = blend(None, Clip.from_array(frames), Clip.from_array(other), 0.7, mode)
    got = np.concatenate([out.frames(1, 2), out.frames(0, 1)])[[1, 0]]       # chunk by chunk as in one
    assert np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("radius,sigma", [(1, 1.0), (3, 0.5), (4, 10.0), (8, 0.3)])
def test_blur_is_comfyuis(frames, radius, sigma):
    from nodes.video.nodes import blur
    want = _levels(_comfy_blur(torch.from_numpy(frames).float() / 255, radius, sigma))
    got = blur(None, Clip.from_array(frames), radius, sigma).frames(0, 2)
    assert np.abs(got.astype(int) - want).max() <= 1


def test_blend_and_blur_refuse_bad_settings(frames):
    from nodes.video.blend import blend, blur
    clip = Clip.from_array(frames)
    with pytest.raises(NodeError, match="`other` has 3 frames and `video` 2"):
        blend(clip, Clip.from_array(np.zeros((3, 9, 14, 3), np.uint8)), "normal", 0.5)
    with pytest.raises(NodeError, match="mode='dodge': choose one of normal"):
        blend(clip, clip, "dodge", 0.5)
    with pytest.raises(NodeError, match="factor must be between 0 and 1"):
        blend(clip, clip, "normal", 1.5)
    with pytest.raises(NodeError, match="radius 9 is not below the picture's 9-pixel side"):
        blur(clip, 9, 1.0)
    with pytest.raises(NodeError, match="radius must be 1 or more"):
        blur(clip, 0, 1.0)


def test_blend_blur_longer_edge_and_alpha_nodes_import():
    from app.comfyui import import_data
    res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
                       "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 31,
                                                                  "sigma": 1.0}},
                       "3": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["2", 0],
                                                                   "blend_factor": 0.5, "blend_mode": "overlay"}},
                       "4": {"class_type": "ResizeImagesByLongerEdge", "inputs": {"images": ["3", 0],
                                                                                 "longer_edge": 1536}},
                       "5": {"class_type": "ImageRemoveAlpha+", "inputs": {"image": ["4", 0]}},
                       "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}}})
    status = {e.class_type: e.status for e in res.report.entries.values()}
    assert status["ImageBlur"] == status["ImageBlend"] == "exact"
    # ComfyUI's int(h * longer_edge / w) rounds down where video.resize_side rounds: said, not claimed exact
    assert status["ResizeImagesByLongerEdge"] == "approx" and status["ImageRemoveAlpha+"] == "approx"
    assert any("rounds it down" in n for e in res.report.entries.values() for n in e.notes
               if e.class_type == "ResizeImagesByLongerEdge")
    assert _node(res, "video.blur")["params"] == {"radius": 31, "sigma": 1.0}
    assert _node(res, "video.blend")["params"] == {"factor": 0.5, "mode": "overlay"}
    assert _node(res, "video.resize_side")["params"] == {"size": 1536, "side": "longer", "method": "lanczos"}
    assert _node(res, "video.matte")["params"] == {"mode": "none"}


# -- video.match_size (Resize Image/Mask match size, Batch Images' resize to the first) -----------------------------
@pytest.mark.parametrize("method,crop", [("bilinear", True), ("area", False), ("lanczos", True)])
def test_match_size_is_comfyuis(frames, method, crop):
    from nodes.video.nodes import match_size
    small = np.random.default_rng(9).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    t = torch.from_numpy(small).float().permute(0, 3, 1, 2) / 255
    if method == "lanczos":
        if crop:
            h0, w0 = 6, 5
            old, new = w0 / h0, 14 / 9
            y = round((h0 - h0 * (old / new)) / 2)
            t = t.narrow(-2, y, h0 - 2 * y)
        want = _comfy_lanczos(t, 14, 9)
    else:
        want = _comfy_upscale_center(t, 14, 9, method) if crop else torch.nn.functional.interpolate(
            t, size=(9, 14), mode=method)
    out = match_size(None, Clip.from_array(small), Clip.from_array(frames), method, crop)
    assert np.abs(out.frames(0, 2).astype(int) - _levels(want.permute(0, 2, 3, 1))).max() <= 1
    same = Clip.from_array(frames)
    assert match_size(None, same, Clip.from_array(frames[:1]), "bilinear", True) is same


def test_batch_images_and_match_size_import():
    from app.comfyui import import_data
    res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
                       "2": {"class_type": "LoadImage", "inputs": {"image": "b.png"}},
                       "3": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0],
                                                                        "images.image1": ["2", 0]}},
                       "4": {"class_type": "ResizeImageMaskNode", "inputs": {
                           "input": ["3", 0], "resize_type": "match size", "resize_type.match": ["1", 0],
                           "resize_type.crop": "disabled", "scale_method": "nearest-exact"}},
                       "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}})
    assert {e.class_type: e.status for e in res.report.entries.values()}["BatchImagesNode"] == "exact"
    assert res.report.entries["4"].status == "exact", res.report.entries["4"].notes
    import yaml
    nodes = yaml.safe_load(res.yaml)["nodes"]
    fits = [n for n in nodes.values() if n["type"] == "video.match_size"]
    assert {"method": "bilinear", "crop": True} in [f["params"] for f in fits]
    assert {"method": "nearest", "crop": False} in [f["params"] for f in fits]
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)


# -- video.scale (ImageScale's and Resize Image/Mask's by-size resize) ----------------------------------------------
@pytest.mark.parametrize("method", ["area", "nearest-exact", "lanczos", "bicubic"])
@pytest.mark.parametrize("size,crop", [((6, 0), False), ((0, 13), False), ((10, 7), True), ((10, 7), False)])
def test_scale_is_comfyuis(frames, method, size, crop):
    from nodes.video.nodes import scale
    t = torch.from_numpy(frames).float().permute(0, 3, 1, 2) / 255
    w, h = size
    w = w or max(1, round(14 * h / 9))
    h = h or max(1, round(9 * w / 14))
    if method == "lanczos":
        want = _comfy_lanczos(t, w, h) if not crop else None
        if crop:
            old, new = 14 / 9, w / h
            x = round((14 - 14 * (new / old)) / 2)
            want = _comfy_lanczos(t.narrow(-1, x, 14 - 2 * x), w, h)
    else:
        want = _comfy_upscale_center(t, w, h, method) if crop else torch.nn.functional.interpolate(
            t, size=(h, w), mode=method)
    out = scale(None, Clip.from_array(frames), *size, "nearest" if method == "nearest-exact" else method, crop)
    assert np.abs(out.frames(0, 2).astype(int) - _levels(want.permute(0, 2, 3, 1))).max() <= 1


@pytest.mark.parametrize("ui,want", [
    (["scale dimensions", 512, 288, "center", "area"], ("video.scale", {"width": 512, "height": 288, "crop": True,
                                                                        "method": "area"})),
    (["scale height", 300, "nearest-exact"], ("video.scale", {"width": 0, "height": 300, "method": "nearest"})),
    (["scale longer dimension", 1536, "lanczos"], ("video.resize_side", {"size": 1536, "side": "longer",
                                                                         "method": "lanczos"})),
    (["scale total pixels", 1.6, "area"], ("video.resize_pixels", {"megapixels": 1677721 / 1048576,
                                                                   "method": "area", "step": 1}))])
def test_resize_image_mask_as_saved_by_comfyuis_editor(ui, want):
    """The widgets as the template files hold them: a type's own widgets, then the scale method."""
    from app.comfyui import import_data
    wf = {"last_node_id": 3, "last_link_id": 2, "version": 0.4, "links": [[1, 1, 0, 2, 0, "IMAGE"],
                                                                          [2, 2, 0, 3, 0, "IMAGE"]],
          "nodes": [{"id": 1, "type": "LoadImage", "pos": [0, 0], "mode": 0, "inputs": [],
                     "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": ["a.png", "image"]},
                    {"id": 2, "type": "ResizeImageMaskNode", "pos": [300, 0], "mode": 0,
                     "inputs": [{"name": "input", "type": "IMAGE", "link": 1}],
                     "outputs": [{"name": "resized", "type": "IMAGE", "links": [2]}], "widgets_values": ui},
                    {"id": 3, "type": "SaveImage", "pos": [600, 0], "mode": 0,
                     "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "outputs": [],
                     "widgets_values": ["x"]}]}
    res = import_data(wf)
    assert res.report.entries["2"].status == "exact", res.report.entries["2"].notes
    assert _node(res, want[0])["params"] == want[1]


def _comfy_side(h, w, size, side):
    """ComfyUI's scale_longer_dimension / scale_shorter_dimension sizes."""
    if (h > w) if side == "longer" else (h < w):
        return round((w / h) * size), size
    if (w > h) if side == "longer" else (w < h):
        return size, round((h / w) * size)
    return size, size


@pytest.mark.parametrize("side", ["longer", "shorter"])
@pytest.mark.parametrize("method", ["area", "lanczos"])
def test_resize_side_and_pixels_resample_as_comfyui(frames, side, method):
    from nodes.video.nodes import resize_pixels, resize_side
    t = torch.from_numpy(frames).float().permute(0, 3, 1, 2) / 255
    for out, (w, h) in ((resize_side(None, Clip.from_array(frames), 6, side, method), _comfy_side(9, 14, 6, side)),
                        (resize_pixels(None, Clip.from_array(frames), 0.00005, method, 1),
                         _comfy_total_pixels(14, 9, 0.00005))):
        want = _comfy_common_upscale(t, w, h, method)
        assert (out.width, out.height) == (w, h)
        assert np.abs(out.frames(0, 2).astype(int) - _levels(want.permute(0, 2, 3, 1))).max() <= 1


def test_vae_encode_tiled_imports_as_vae_encode_and_says_so():
    from app.comfyui import import_data
    res = import_data({"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
                       "2": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
                       "3": {"class_type": "VAEEncodeTiled", "inputs": {"pixels": ["1", 0], "vae": ["2", 0],
                                                                       "tile_size": 512, "overlap": 64,
                                                                       "temporal_size": 64, "temporal_overlap": 8}},
                       "4": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["2", 0]}},
                       "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "x"}}})
    entry = res.report.entries["3"]
    assert entry.status == "approx" and "along its tiles' edges" in entry.notes[0]
    enc = _node(res, "vae.encode")
    assert set(enc["inputs"]) == {"video", "vae"}


@pytest.mark.parametrize("method", ["area", "bilinear", "bicubic", "nearest-exact"])
@pytest.mark.parametrize("size", [(7, 3), (5, 4), (23, 17)])                 # (7, 3): a whole-number shrink
def test_comfy_scaled_float_and_one_channel_are_torchs(method, size):
    """The float pixels (Clip.linear) and a matte's one channel resample as ComfyUI's torch.interpolate does."""
    from nodes.video.edit import comfy_scaled
    rng = np.random.default_rng(11)
    for frames in (rng.random((2, 9, 14, 3), dtype=np.float32) * 1.5, rng.integers(0, 256, (2, 9, 14, 1), np.uint8)):
        want = torch.nn.functional.interpolate(torch.from_numpy(frames).float().permute(0, 3, 1, 2),
                                               size=size[::-1], mode=method).permute(0, 2, 3, 1).numpy()
        got = comfy_scaled(frames, *size, "nearest" if method == "nearest-exact" else method)
        assert got.dtype == frames.dtype and got.shape == want.shape
        assert np.abs(got - (want if frames.dtype != np.uint8 else np.clip(np.rint(want), 0, 255))).max() <= (
            1e-4 if frames.dtype != np.uint8 else 1)


def test_resize_side_and_pixels_saved_before_comfyuis_resampling_load_as_version_2():
    """A workflow saved when video.resize_side and video.resize_pixels resampled by OpenCV (version 1) loads as
    version 2, its parameters as they were: the cache key changes with the pixels, so a result cached then is not
    served for the new resampling."""
    from graph_engine.api import load_workflow
    text = ("kinograph: 1\nnodes:\n  src: {type: generate.solid, params: {width: 8, height: 8}}\n"
            "  side: {type: video.resize_side, version: 1, inputs: {video: src.video}, params: {size: 6}}\n"
            "  px: {type: video.resize_pixels, version: 1, inputs: {video: side.video}, params: {megapixels: 0.5}}\n")
    nodes = load_workflow(text=text).graph.nodes
    assert (nodes["side"].version, nodes["side"].params) == (2, {"size": 6})
    assert (nodes["px"].version, nodes["px"].params) == (2, {"megapixels": 0.5})
