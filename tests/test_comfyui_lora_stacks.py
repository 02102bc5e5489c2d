"""LoRA stacks as ComfyUI users build them: rgthree's Power Lora Loader (API and editor formats), efficiency-nodes'
LoRA Stacker feeding an Efficient Loader (simple and advanced modes, stackers chained) and chained LoraLoaders.
Each switched-on LoRA becomes a lora.image at its model and text-encoder strengths, chained in order into the
sampler's model and the prompt's text encoder."""
import copy

from app.comfyui import import_data

BASE = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dream.safetensors"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["3", 0], "negative": ["3", 0],
                                                   "latent_image": ["5", 0], "seed": 1, "steps": 4, "cfg": 7,
                                                   "sampler_name": "euler", "scheduler": "karras", "denoise": 1}}}


def _chain(g, sampler, encoder=None):
    """The lora.image nodes from the loader to `sampler`, as (path, strength, clip strength), loader side first;
    `encoder` (an encode.text) takes its text encoder from the last of them, which took it along the chain."""
    out, nid = [], g.inputs[sampler]["model"][0]
    last, after = nid, None
    while g.nodes[nid].type == "lora.image":
        p = g.nodes[nid].params
        out.append((p["path"], p["strength"], p.get("clip_strength", 1.0)))
        if after is not None:
            assert g.inputs[after]["text_encoder"] == (nid, "text_encoder")
        after, nid = nid, g.inputs[nid]["model"][0]
    assert g.nodes[nid].type == "load.model"
    assert g.inputs[after]["text_encoder"] == (nid, "text_encoder")
    if encoder:
        assert g.inputs[encoder]["text_encoder"] == (last, "text_encoder")
    return out[::-1]


POWER = {"PowerLoraLoaderHeaderWidget": {"type": "PowerLoraLoaderHeaderWidget"},
         "lora_1": {"on": True, "lora": "ink.safetensors", "strength": 0.8, "strengthTwo": None},
         "lora_2": {"on": False, "lora": "off.safetensors", "strength": 1},
         "lora_3": {"on": True, "lora": "sub\\detail.safetensors", "strength": 0.5, "strengthTwo": 0.2},
         "➕ Add Lora": ""}


def test_power_lora_loader_api_format():
    api = copy.deepcopy(BASE)
    api["2"] = {"class_type": "Power Lora Loader (rgthree)", "inputs": {**POWER, "model": ["1", 0], "clip": ["1", 1]}}
    res = import_data(api)
    assert res.report.entries["2"].status == "exact"
    # strengthTwo is the text encoder's strength; without it, `strength` is both
    assert _chain(res.graph, "k_sampler_6", "clip_text_encode_3") == [("ink.safetensors", 0.8, 0.8),
                                                                      ("sub\\detail.safetensors", 0.5, 0.2)]


def test_power_lora_loader_editor_format():
    wf = {"nodes": [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 0], "mode": 0, "widgets_values": ["dream.safetensors"],
         "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}, {"name": "CLIP", "type": "CLIP", "links": [2]},
                     {"name": "VAE", "type": "VAE", "links": []}]},
        {"id": 2, "type": "Power Lora Loader (rgthree)", "pos": [300, 0], "mode": 0,
         "inputs": [{"name": "model", "type": "MODEL", "link": 1}, {"name": "clip", "type": "CLIP", "link": 2}],
         "outputs": [{"name": "MODEL", "type": "MODEL", "links": [3]}, {"name": "CLIP", "type": "CLIP", "links": []}],
         "widgets_values": [{}, POWER["lora_1"], POWER["lora_2"], POWER["lora_3"], {}, ""]},
        {"id": 6, "type": "KSampler", "pos": [600, 0], "mode": 0,
         "inputs": [{"name": "model", "type": "MODEL", "link": 3}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}],
         "widgets_values": [1, "fixed", 4, 7, "euler", "karras", 1]}],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"], [3, 2, 0, 6, 0, "MODEL"]]}
    res = import_data(wf)
    assert _chain(res.graph, "k_sampler_6") == [("ink.safetensors", 0.8, 0.8), ("sub\\detail.safetensors", 0.5, 0.2)]


def test_lora_stacker_into_efficient_loader():
    """Two stackers chained (simple mode: lora_wt; advanced: model_str) and the loader's own LoRA: every one
    applied; before, the stack was 'not carried'."""
    simple = {"input_mode": "simple", "lora_count": 2, "lora_name_1": "a.safetensors", "lora_wt_1": 0.7,
              "model_str_1": 1.0, "clip_str_1": 1.0, "lora_name_2": "None", "lora_wt_2": 1.0, "model_str_2": 1.0,
              "clip_str_2": 1.0, "lora_name_3": "beyond_count.safetensors", "lora_wt_3": 1.0, "model_str_3": 1.0,
              "clip_str_3": 1.0}
    advanced = {"input_mode": "advanced", "lora_count": 1, "lora_name_1": "b.safetensors", "lora_wt_1": 1.0,
                "model_str_1": 0.4, "clip_str_1": 0.9, "lora_stack": ["7", 0]}
    api = {"7": {"class_type": "LoRA Stacker", "inputs": simple},
           "8": {"class_type": "LoRA Stacker", "inputs": advanced},
           "15": {"class_type": "Efficient Loader",
                  "inputs": {"ckpt_name": "dream.safetensors", "vae_name": "Baked VAE", "clip_skip": -1,
                             "lora_name": "own.safetensors", "lora_model_strength": 0.6, "lora_clip_strength": 0,
                             "positive": "a fox", "negative": "blurry", "token_normalization": "none",
                             "weight_interpretation": "comfy", "empty_latent_width": 512, "empty_latent_height": 512,
                             "batch_size": 1, "lora_stack": ["8", 0]}},
           "2": {"class_type": "KSampler", "inputs": {"model": ["15", 0], "positive": ["15", 1], "negative": ["15", 2],
                                                      "latent_image": ["15", 3], "seed": 1, "steps": 4, "cfg": 7,
                                                      "sampler_name": "euler", "scheduler": "karras", "denoise": 1}}}
    res = import_data(api)
    assert _chain(res.graph, "k_sampler_2", "efficient_loader_15_prompts") == [
        ("own.safetensors", 0.6, 0), ("a.safetensors", 0.7, 0.7), ("b.safetensors", 0.4, 0.9)]
    assert res.report.entries["15"].notes == []


def test_chained_lora_loaders_keep_their_model_strengths():
    api = copy.deepcopy(BASE)
    api["2"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "b.safetensors", "strength_model": 0.6,
                                                       "strength_clip": 0.3, "model": ["7", 0], "clip": ["7", 1]}}
    api["7"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "a.safetensors", "strength_model": 0.9,
                                                       "strength_clip": 1.0, "model": ["1", 0], "clip": ["1", 1]}}
    api["9"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "c.safetensors", "strength_model": -0.5,
                                                                "model": ["2", 0]}}
    api["6"]["inputs"]["model"] = ["9", 0]
    g = import_data(api).graph
    assert [(g.nodes[n].params["path"], g.nodes[n].params["strength"], g.nodes[n].params["clip_strength"])
            for n in ("lora_loader_7", "lora_loader_2")] == [("a.safetensors", 0.9, 1.0), ("b.safetensors", 0.6, 0.3)]
    assert g.nodes["lora_loader_model_only_9"].params == {"path": "c.safetensors", "strength": -0.5}
    assert g.inputs["lora_loader_model_only_9"]["model"] == ("lora_loader_2", "model")
    assert g.inputs["k_sampler_6"]["model"] == ("lora_loader_model_only_9", "model")
    # the prompt is encoded by the text encoder both LoraLoaders changed, at their strength_clip
    assert g.inputs["lora_loader_7"]["text_encoder"] == ("checkpoint_loader_simple_1", "text_encoder")
    assert g.inputs["lora_loader_2"]["text_encoder"] == ("lora_loader_7", "text_encoder")
    assert g.inputs["clip_text_encode_3"]["text_encoder"] == ("lora_loader_2", "text_encoder")


def test_comfyroll_lora_stack_applied_to_model_and_clip():
    """Comfyroll's CR LoRA Stack (chained, one switched Off) and an efficiency LoRA Stacker through CR Apply LoRA
    Stack: a lora.image per switched-on LoRA at its model and clip weights; both nodes were unmapped."""
    api = copy.deepcopy(BASE)
    api["7"] = {"class_type": "CR LoRA Stack", "inputs": {
        "switch_1": "On", "lora_name_1": "a.safetensors", "model_weight_1": 0.7, "clip_weight_1": 0.5,
        "switch_2": "Off", "lora_name_2": "off.safetensors", "model_weight_2": 1.0, "clip_weight_2": 1.0,
        "switch_3": "On", "lora_name_3": "None", "model_weight_3": 1.0, "clip_weight_3": 1.0}}
    api["8"] = {"class_type": "LoRA Stacker", "inputs": {
        "input_mode": "simple", "lora_count": 1, "lora_name_1": "b.safetensors", "lora_wt_1": 0.4,
        "model_str_1": 1.0, "clip_str_1": 1.0, "lora_stack": ["7", 0]}}
    api["9"] = {"class_type": "CR LoRA Stack", "inputs": {
        "switch_1": "On", "lora_name_1": "c.safetensors", "model_weight_1": -0.3, "clip_weight_1": 0.0,
        "switch_2": "Off", "lora_name_2": "None", "model_weight_2": 1.0, "clip_weight_2": 1.0,
        "switch_3": "Off", "lora_name_3": "None", "model_weight_3": 1.0, "clip_weight_3": 1.0,
        "lora_stack": ["8", 0]}}
    api["2"] = {"class_type": "CR Apply LoRA Stack", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                                "lora_stack": ["9", 0]}}
    res = import_data(api)
    assert _chain(res.graph, "k_sampler_6", "clip_text_encode_3") == [
        ("a.safetensors", 0.7, 0.5), ("b.safetensors", 0.4, 0.4), ("c.safetensors", -0.3, 0.0)]
    assert res.report.entries["2"].status == "exact" and not res.report.blocking
