"""ComfyUI's patches of how the model runs: ModelAttentionBackend (comfy_extras/nodes_model_advanced.py) sets which
attention kernel runs the model, PyTorch's scaled_dot_product_attention (what Kinograph's models run) or Comfy
Kitchen's INT8 one; it computes the same layers, so the model passes on to the sampler unchanged: exactly for
"pytorch attention", approximately (and said so) for the quantized kernel. SkipLayerGuidanceDiTSimple becomes
guide.skip_layers_negative (its sampling is checked against a reference in test_wan_fun_control.py)."""
from app.comfyui import import_data


def _wan(attention):
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "ModelAttentionBackend", "inputs": {"model": ["1", 0], "attention": attention}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                     "type": "wan"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "a fox"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": ""}},
        "6": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 33,
                                                                  "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["4", 0], "negative": ["5", 0],
                                                   "latent_image": ["6", 0], "seed": 1, "steps": 20, "cfg": 5.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}}


def _model_of_sampler(res):
    g = res.graph
    sample = next(n for n in g.nodes.values() if n.type == "generate.sample")
    return g.nodes[g.inputs[sample.id]["model"][0]]


def test_pytorch_attention_passes_the_model_on_exactly():
    res = import_data(_wan("pytorch attention"))
    assert _model_of_sampler(res).type == "load.diffusion_model"
    entry = res.report.entries["2"]
    assert (entry.status, entry.notes) == ("exact", [])
    assert not [n for n in res.graph.nodes.values() if n.type.startswith("comfyui.")]


def test_comfy_kitchen_attention_is_said_to_differ():
    res = import_data(_wan("comfy kitchen attention"))
    assert _model_of_sampler(res).type == "load.diffusion_model"
    entry = res.report.entries["2"]
    assert entry.status == "approx" and "INT8" in " ".join(entry.notes), entry.notes


def test_skip_layer_guidance_simple_becomes_the_negative_pass_kind():
    """SkipLayerGuidanceDiTSimple (comfy_extras/nodes_slg.py) skips its double_layers in the negative prompt's pass
    between start_percent and end_percent: guide.skip_layers_negative with the same layers and share of the steps."""
    wf = _wan("pytorch attention")
    wf["8"] = {"class_type": "SkipLayerGuidanceDiTSimple",
               "inputs": {"model": ["2", 0], "double_layers": "9, 10", "single_layers": "", "start_percent": 0.2,
                          "end_percent": 0.8}}
    wf["7"]["inputs"]["model"] = ["8", 0]
    res = import_data(wf)
    slg = _model_of_sampler(res)
    assert slg.type == "guide.skip_layers_negative"
    assert slg.params == {"layers": "9, 10", "start": 0.2, "end": 0.8}
    assert res.graph.nodes[res.graph.inputs[slg.id]["model"][0]].type == "load.diffusion_model"
