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
    assert six.status != "exact" and any("images.image_5, images.image_6:" in n for n in six.notes), (six.status, six.notes)


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
