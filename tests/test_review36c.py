"""Review of stop 36's Boogu-Image, Qwen-Image-Layered and MiniMax H3 work: the faults found, each kept as a test."""
from __future__ import annotations


def _boogu_edit_workflow(pictures: int) -> dict:
    """A ComfyUI API workflow whose TextEncodeBooguEdit (its Autogrow takes image_1 .. image_16) has `pictures`
    pictures connected."""
    images = {f"images.image_{i}": ["3", 0] for i in range(1, pictures + 1)}
    return {
        "1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen3vl_8b_fp8_scaled.safetensors", "type": "boogu",
                                                     "device": "default"}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "4": {"class_type": "TextEncodeBooguEdit", "inputs": {"clip": ["1", 0], "vae": ["2", 0], "prompt": "x",
                                                              "negative_prompt": "", **images}},
        "6": {"class_type": "UNETLoader", "inputs": {"unet_name": "boogu_image_0_1_edit_fp8_scaled.safetensors",
                                                     "weight_dtype": "default"}},
        "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {"model": ["6", 0], "positive": ["4", 0], "negative": ["4", 1],
                                                   "latent_image": ["7", 0], "seed": 1, "steps": 20, "cfg": 3.5,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["2", 0]}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "x"}},
    }


def test_boogu_edit_pictures_beyond_four_are_named_at_import():
    """ComfyUI's TextEncodeBooguEdit reads up to 16 pictures; encode.boogu_edit takes 4. A fifth was dropped while
    the import said the node converted exactly."""
    from app.comfyui import import_data
    four = import_data(_boogu_edit_workflow(4)).report.entries["4"]
    assert four.status == "exact" and not four.notes
    six = import_data(_boogu_edit_workflow(6)).report.entries["4"]
    assert six.status != "exact" and any(n.startswith("images.image_5, images.image_6: encode.boogu_edit reads 4") for n in six.notes), (six.status, six.notes)


def test_reference_multi_latent_pictures_beyond_four_are_named_at_import():
    """ReferenceMultiLatent (its images an Autogrow: image0, image1, ...) on condition.references, which takes 4: a
    fifth was dropped under 'exact' too."""
    from app.comfyui import import_data
    api = _boogu_edit_workflow(1)
    api["4"] = {"class_type": "ReferenceMultiLatent", "inputs": {
        "positive": ["11", 0], "vae": ["2", 0], "resolution": "keep resolution",
        **{f"images.image{i}": ["3", 0] for i in range(5)}}}
    api["11"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 0], "text": "x"}}
    api["8"]["inputs"]["negative"] = ["4", 0]
    entry = import_data(api).report.entries["4"]
    assert any(n.startswith("images.image4: condition.references reads 4") for n in entry.notes), entry.notes


def test_minimax_fun_controlnet_refuses_keyframes_and_references_as_comfyui():
    """ComfyUI's MiniMaxH3FunControl.init_stream raises on a layout with keyframe or reference segments
    (comfy/ldm/minimax/controlnet.py: "does not support keyframe or reference conditioning"); Kinograph ran it,
    giving the held rows the projection of zeros, maths no reference has. It is named instead."""
    import pytest
    import torch
    from graph_engine import NodeError
    from nodes.generate.minimax_fun_control import steering
    blocks = torch.nn.ModuleList([torch.nn.Identity()])
    net = type("Net", (), {"places": (0,)})()
    controls = [(net, 1.0, torch.zeros(4, 8))]
    target, sound = torch.arange(10, 14), torch.arange(5, 7)
    with steering(blocks, controls, target, target, sound):      # the generated video's rows only: steered
        pass
    with pytest.raises(NodeError, match="keyframes or reference pictures"):
        with steering(blocks, controls, torch.cat([torch.arange(7, 10), target]), target, sound):
            pass


def test_an_rgba_vae_reads_a_pictures_alpha():
    """Qwen-Image-Layered's (and Qwen-Image 2.1's) VAE reads RGBA: QwenImageLayeredPipeline gives it the picture's
    straight colour and its alpha (image.convert("RGBA")), so a layer it made can be split again. Kinograph gave it
    the colour laid over black and an opaque alpha, whatever the picture's matte: a cut-out read as a picture on
    black. Reference: diffusers' AutoencoderKLQwenImage on the straight RGBA pixels."""
    import types

    import numpy as np
    import torch
    from graph_engine import Clip
    from nodes.common.alpha import premultiplied
    from diffusers import AutoencoderKLQwenImage
    from nodes.generate.vae_ops import encode_clip, fit_to_grid
    torch.manual_seed(3)
    ae = AutoencoderKLQwenImage(base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                temperal_downsample=[False, True, True], input_channels=4).eval()
    vae = types.SimpleNamespace(family="qwenimage", pipe=types.SimpleNamespace(vae=ae, vae_scale_factor=8))
    rng = np.random.default_rng(5)
    straight = rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    alpha = np.zeros((1, 48, 64, 1), np.uint8)
    alpha[:, 8:40, 16:48] = 255                       # a cut-out with a soft edge
    alpha[:, 8:40, 12:16] = 128
    clip = Clip.from_array(premultiplied(straight, alpha)).with_matte(lambda a, b: alpha[a:b])
    rgba = np.concatenate([np.where(alpha > 0, straight, 0), alpha], -1)     # colour where alpha 0 is black here
    px = torch.from_numpy(rgba).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    mean = torch.tensor(ae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(ae.config.latents_std).view(1, 16, 1, 1, 1)
    with torch.no_grad():
        want = (ae.encode(px).latent_dist.mode() - mean) / std
    got = encode_clip(vae, clip).samples
    # under the half-transparent edge the colour comes back within a level (a Clip holds it over black in 8 bits):
    # 4.3e-4 of the latent's range here; the colour over black read as opaque was 4.1e-2
    bound = 1e-3 * float(want.abs().max())
    assert float((got - want).abs().max()) < bound, float((got - want).abs().max())
    # condition.references' crop to the grid keeps the matte with the colour
    wide = Clip.from_array(np.pad(premultiplied(straight, alpha), ((0, 0), (0, 0), (4, 4), (0, 0)))).with_matte(
        lambda a, b: np.pad(alpha, ((0, 0), (0, 0), (4, 4), (0, 0)))[a:b])
    cut, _ = fit_to_grid(vae, wide)
    assert cut.matte is not None and np.array_equal(cut.matte.frames(0, 1), alpha)
    assert float((encode_clip(vae, cut).samples - want).abs().max()) < bound


def test_layers_need_the_rgba_vae():
    """latent.layers with layers on Qwen-Image's RGB VAE (qwen_image_vae) made a latent whose layers decode without
    alpha, and the picture to split encoded in another latent space than the layered model's: named instead. 0
    layers (a plain Qwen-Image latent) stays allowed."""
    import types

    import pytest
    from graph_engine import NodeError
    from nodes.generate.vae_ops import layered_latent
    rgb = types.SimpleNamespace(family="qwenimage", pipe=types.SimpleNamespace(
        vae=types.SimpleNamespace(config=types.SimpleNamespace(input_channels=3))))
    with pytest.raises(NodeError, match="qwen_image_layered_vae"):
        layered_latent(rgb, 3, 64, 48)
