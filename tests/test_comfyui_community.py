"""Community ComfyUI workflows (custom node packs' example graphs, tests/data/comfyui/community) and the pack nodes
they use: each file imports and validates, or is blocked only by the nodes named here."""
import sys
from pathlib import Path

import pytest

from app.comfyui import import_data, import_workflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import decoded_and_saved, ui_format, wan_wrapper_t2v  # noqa: E402

# Community files that do not import, and the nodes that block each (named in the report with what to use instead)
COMMUNITY_BLOCKED = {
    "kjnodes_leapfusion_hunyuan_i2v.json": {"LeapfusionHunyuanI2VPatcher"},
    "impact_facedetailer_simple.json": {"SAMLoader", "MMDetLoader", "FaceDetailer"},
}


def test_community_corpus_imports_and_validates():
    from comfyui_corpus import check, corpus_files
    files = corpus_files("community")
    results = {f.name: check(f) for f in files}
    for name, (good, how) in results.items():
        print(f"{'ok  ' if good else 'FAIL'} {name}: {how}")
    assert len(files) >= 4
    blocked = {name: set(how.split("not mapped: ")[1].split(", ")) if "not mapped: " in how else {how}
               for name, (good, how) in results.items() if not good}
    assert blocked == COMMUNITY_BLOCKED
    readme = (ROOT / "tests" / "data" / "comfyui" / "README.md").read_text()
    for f in files:
        assert f"`community/{f.name}`" in readme, f"{f.name} has no source and licence line"


def test_nodes_without_an_equivalent_say_what_to_use_instead():
    """Impact Pack's face detailer graph cannot import (no YOLO / mmdet detector in Kinograph): each of its nodes says
    what builds the same in Kinograph, where the report said only 'no Kinograph equivalent'."""
    res = import_workflow(ROOT / "tests/data/comfyui/community/impact_facedetailer_simple.json")
    for nid in ("15", "16", "27"):
        notes = "; ".join(res.report.entries[nid].notes)
        assert "mask.segment (SAM 3" in notes and "inpainting sample" in notes, notes


def test_kijai_leapfusion_graph_runs_through_kjnodes_resize_and_latent_range():
    """kijai's Leapfusion example: ImageResizeKJ (feeding the empty latent its width and height), SamplerCustom's
    denoised_output and GetLatentRangeFromBatch were not mapped, so nothing after the sampler connected."""
    res = import_workflow(ROOT / "tests/data/comfyui/community/kjnodes_leapfusion_hunyuan_i2v.json",
                          bypass_unmapped=True)
    g, entries = res.graph, res.report.entries
    assert g.nodes["image_resize_kj_66"].params == {"method": "lanczos", "width": 960, "height": 640, "fit": "crop"}
    assert g.inputs["image_resize_kj_66"] == {"video": ("load_image_65", "image")}
    empty = g.nodes["empty_hunyuan_latent_video_53"]
    assert (empty.params["width"], empty.params["height"]) == (960, 640)      # the resize's width, height outputs
    assert entries["53"].status == "exact"
    trim = g.nodes["get_latent_range_from_batch_84"]
    assert trim.type == "latent.trim" and trim.params == {"amount": 1}
    assert g.inputs[trim.id] == {"latent": ("sampler_custom_42", "latent")}
    assert g.inputs["vae_decode_tiled_57"]["latent"] == (trim.id, "latent")
    assert "denoised_output is read as sample's latent" in "; ".join(entries["42"].notes)


def _resize_graph(widgets, consumer=True, width_link=False):
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"])]
    if width_link:
        nodes.append((2, "PrimitiveInt", [720, "fixed"], {}, ["INT"]))
    nodes.append((3, "ImageResizeKJ", widgets, {"image": (1, 0, "IMAGE"),
                                                **({"width_input": (2, 0, "INT")} if width_link else {})},
                  ["IMAGE", "INT", "INT"]))
    nodes.append((4, "SaveImage", ["out"], {"images": (3, 0, "IMAGE")}, []))
    if consumer:
        nodes.append((5, "EmptyHunyuanLatentVideo", [16, 16, 33, 1],
                      {"width": (3, 1, "INT"), "height": (3, 2, "INT")}, ["LATENT"]))
        nodes += decoded_and_saved(6, 5)
    return ui_format(nodes)


@pytest.mark.parametrize("widgets,crop", [
    ([1000, 650, "bilinear", False, 16, 0, 0, "center"], "crop"),      # width_input, height_input, then crop
    ([1000, 650, "bilinear", False, 16, 0, 0], "stretch"),             # before crop existed
    ([1000, 650, "bilinear", False, 16, "disabled"], "stretch"),       # width_input link-only: crop follows
    ([1000, 650, "bilinear", False, 16, 0], "crop"),                   # ... where 0 is the pack's centre crop
])
def test_image_resize_kj_widget_orders(widgets, crop):
    """ImageResizeKJ's widgets moved as the pack changed; read as one order, a newer file's crop was taken for
    width_input. divisible_by rounds each side down, and the width and height outputs are that size."""
    res = import_data(_resize_graph(widgets))
    resize, = [n for n in res.graph.nodes.values() if n.type == "video.resize"]
    assert resize.params == {"method": "bilinear", "width": 992, "height": 640, "fit": crop}
    empty, = [n for n in res.graph.nodes.values() if n.type == "latent.empty"]
    assert (empty.params["width"], empty.params["height"]) == (992, 640)
    assert res.report.entries["3"].status == "exact"


def test_image_resize_kj_sizes_only_the_run_knows():
    """keep_proportion with both sides, and a 0 side without it, give sizes that depend on the picture: the
    differences are named, and the width and height outputs are measured from the resized clip (video.size)."""
    res = import_data(_resize_graph([640, 480, "lanczos", True, 8, "disabled"]))
    resize, = [n for n in res.graph.nodes.values() if n.type == "video.resize"]
    assert resize.params["fit"] == "pad" and (resize.params["width"], resize.params["height"]) == (640, 480)
    notes = "; ".join(res.report.entries["3"].notes)
    assert "keep_proportion fits the picture inside 640x480 and makes it that smaller size" in notes
    assert "divisible_by 8 is applied to the size ComfyUI computes" in notes
    size, = [n for n in res.graph.nodes.values() if n.type == "video.size"]
    empty, = [n for n in res.graph.nodes.values() if n.type == "latent.empty"]
    assert res.graph.inputs[size.id] == {"video": (resize.id, "video")}
    assert res.graph.inputs[empty.id]["width"] == (size.id, "width")
    assert res.graph.inputs[empty.id]["height"] == (size.id, "height")

    res = import_data(_resize_graph([0, 480, "area", False, 0, "disabled"], consumer=False))
    assert "width 0 keeps the picture's own width in ComfyUI" in "; ".join(res.report.entries["3"].notes)

    res = import_data(_resize_graph([512, 512, "area", False, 2, 0, 0, "disabled"], width_link=True))
    resize, = [n for n in res.graph.nodes.values() if n.type == "video.resize"]
    assert (resize.params["width"], resize.params["height"]) == (720, 512)     # width_input replaces width


def test_latent_range_that_stops_early_is_named():
    nodes = [(1, "EmptyHunyuanLatentVideo", [64, 64, 33, 1], {}, ["LATENT"]),
             (2, "GetLatentRangeFromBatch", [0, 4], {"latents": (1, 0, "LATENT")}, ["LATENT"])]
    entry = import_data(ui_format(nodes)).report.entries["2"]
    assert entry.status == "unmapped"
    assert "start_index 0 with num_frames 4 keeps a range Kinograph has no node for" in "; ".join(entry.notes)


def test_wan_video_wrapper_text_to_video_maps_onto_kinographs_wan_nodes():
    """kijai's WanVideoWrapper graphs (the most shared Wan workflows) were 9 unmapped nodes: nothing imported."""
    from graph_engine.api import load_workflow
    res = import_data(wan_wrapper_t2v())
    g, entries = res.graph, res.report.entries
    by = {n.type: n for n in g.nodes.values()}
    assert by["load.diffusion_model"].params == {"name": "wan2.1_t2v_14B_fp8_e4m3fn.safetensors",
                                                 "weight_dtype": "fp8_e4m3fn"}
    lora = by["lora.image"]
    assert lora.params == {"path": "wan_fox_style.safetensors", "strength": 0.8}
    assert g.inputs[lora.id] == {"model": (by["load.diffusion_model"].id, "model")}
    shift = by["model.flow_shift"]
    assert shift.params == {"shift": 8.0} and g.inputs[shift.id] == {"model": (lora.id, "model")}
    assert by["load.text_encoder"].params == {"name": "umt5-xxl-enc-bf16.safetensors", "type": "wan"}
    enc = by["encode.text"]
    assert enc.params == {"text": "a red fox running through snow, tracking shot", "negative": "blurry, static",
                          "weighting": "comfy"}
    assert by["latent.empty"].params == {"width": 832, "height": 480, "frames": 81, "size_fit": "floor"}
    sample = by["generate.sample"]
    assert sample.params == {"steps": 30, "cfg": 6.0, "seed": 42, "sampler": "unipc", "scheduler": "simple"}
    assert g.inputs[sample.id] == {"model": (shift.id, "model"), "positive": (enc.id, "positive"),
                                   "negative": (enc.id, "negative"), "latent": (by["latent.empty"].id, "latent")}
    assert g.inputs[by["vae.decode"].id] == {"latent": (sample.id, "latent"), "vae": (by["load.vae"].id, "vae")}
    assert entries["1"].status == "ui" and entries["7"].status == "ui"
    assert "its cache_args input is not carried" in "; ".join(entries["8"].notes)
    assert "umt5-xxl-enc-bf16.safetensors keeps the Wan repository's own T5 layout" in entries["4"].notes[0]
    assert not res.report.blocking
    load_workflow(text=res.yaml)


@pytest.mark.parametrize("widgets,expect", [
    # a file from before start_step existed; denoise 0.6 of 20 starts at step 20 - 12 - 1 with fresh noise
    ((20, 5.0, 5.0, 7, "fixed", True, "euler/beta", 0, 0.6), {"sampler": "euler", "scheduler": "beta",
                                                               "start_step": 7}),
    # Wan 2.2's high-noise expert: steps 0-10 of 20, its noise left for the second sampler
    ((20, 3.5, 8.0, 7, "fixed", True, "dpm++", 0, 1.0, False, "comfy", 0, 10, False),
     {"sampler": "dpmpp_2m", "scheduler": "simple", "end_step": 10, "leftover_noise": True}),
])
def test_wan_video_wrapper_sampler_steps(widgets, expect):
    sample, = [n for n in import_data(wan_wrapper_t2v(widgets)).graph.nodes.values() if n.type == "generate.sample"]
    assert {k: sample.params[k] for k in expect} == expect


def test_wan_video_wrapper_differences_are_named():
    res = import_data(wan_wrapper_t2v((4, 1.0, 8.0, 3, "fixed", True, "flowmatch_distill", 6),
                                   prompt="(a red fox:1.3) runs | the fox leaps"))
    sampler = "; ".join(res.report.entries["8"].notes)
    assert "scheduler 'flowmatch_distill' is not in Kinograph; euler on the simple schedule is the nearest" in sampler
    assert "riflex_freq_index=6 is not carried" in sampler
    text = "; ".join(res.report.entries["5"].notes)
    assert "a prompt holds '|'" in text and "(text:weight) is read as ComfyUI's own prompts weigh it" in text


def test_wan_video_wrapper_two_experts_share_steps_from_kjnodes_constants():
    """Wan 2.2 in the wrapper as community graphs build it: two loaders through WanVideoSetBlockSwap and
    WanVideoSetLoRAs, KJNodes' INTConstant giving both samplers their steps and the step they split at, the second
    sampler continuing the first's samples."""
    w = [0, 1.0, 8.0, 11, "fixed", True, "euler", 0, 1.0, False, "comfy", 0, -1, False]
    nodes = [(1, "INTConstant", [6], {}, ["INT"]), (2, "INTConstant", [3], {}, ["INT"]),
             (3, "WanVideoBlockSwap", [20, False, False], {}, ["BLOCKSWAPARGS"]),
             (4, "WanVideoLoraSelect", ["lightx2v_4step.safetensors", 1.0], {}, ["WANVIDLORA"]),
             (5, "LoadWanVideoT5TextEncoder", ["umt5_xxl_fp16.safetensors", "bf16"], {}, ["WANTEXTENCODER"]),
             (6, "WanVideoTextEncode", ["a paper boat on a river", ""], {"t5": (5, 0, "WANTEXTENCODER")},
              ["WANVIDEOTEXTEMBEDS"]),
             (7, "WanVideoEmptyEmbeds", [640, 352, 49], {}, ["WANVIDIMAGE_EMBEDS"])]
    for base, name in ((10, "high"), (20, "low")):
        nodes += [(base, "WanVideoModelLoader", [f"wan2.2_t2v_{name}_noise_14B_fp16.safetensors", "fp16_fast",
                                                 "disabled", "offload_device", "sdpa", "default"], {}, ["WANVIDEOMODEL"]),
                  (base + 1, "WanVideoSetBlockSwap", [], {"model": (base, 0, "WANVIDEOMODEL"),
                                                          "block_swap_args": (3, 0, "BLOCKSWAPARGS")},
                   ["WANVIDEOMODEL"]),
                  (base + 2, "WanVideoSetLoRAs", [], {"model": (base + 1, 0, "WANVIDEOMODEL"),
                                                      "lora": (4, 0, "WANVIDLORA")}, ["WANVIDEOMODEL"])]
    shared = {"text_embeds": (6, 0, "WANVIDEOTEXTEMBEDS"), "image_embeds": (7, 0, "WANVIDIMAGE_EMBEDS"),
              "steps": (1, 0, "INT")}
    nodes += [(30, "WanVideoSampler", w, {"model": (12, 0, "WANVIDEOMODEL"), **shared, "end_step": (2, 0, "INT")},
               ["LATENT", "LATENT"]),
              (31, "WanVideoSampler", w, {"model": (22, 0, "WANVIDEOMODEL"), **shared, "start_step": (2, 0, "INT"),
                                          "samples": (30, 0, "LATENT")}, ["LATENT", "LATENT"])]
    res = import_data(ui_format(nodes))
    g = res.graph
    first, second = g.nodes["wan_video_sampler_30"], g.nodes["wan_video_sampler_31"]
    assert first.params["steps"] == second.params["steps"] == 6
    assert first.params["end_step"] == 3 and first.params["leftover_noise"] is True
    assert second.params["start_step"] == 3 and second.params["add_noise"] is False
    assert g.inputs[second.id]["latent"] == (first.id, "latent")
    for sampler, loader in ((first, "wan_video_model_loader_10"), (second, "wan_video_model_loader_20")):
        shift = g.inputs[sampler.id]["model"][0]
        lora = g.inputs[shift]["model"][0]
        assert g.nodes[lora].params == {"path": "lightx2v_4step.safetensors", "strength": 1.0}
        assert g.inputs[lora]["model"] == (loader, "model")
    assert not res.report.blocking


def _broadcast_graph():
    """A text-to-image graph whose model, CLIP, VAE and prompts reach their nodes through cg-use-everywhere's
    broadcasters, with no links in the file (the editor links them when it queues)."""
    data = ui_format([
        (4, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
        (10, "Anything Everywhere3", [], {"anything": (4, 0, "MODEL"), "anything2": (4, 1, "CLIP"),
                                          "anything3": (4, 2, "VAE")}, []),
        (6, "CLIPTextEncode", ["a lighthouse at dusk"], {}, ["CONDITIONING"]),
        (7, "CLIPTextEncode", ["blurry"], {}, ["CONDITIONING"]),
        (11, "Prompts Everywhere", [], {"CONDITIONING": (6, 0, "CONDITIONING"),
                                        "CONDITIONING2": (7, 0, "CONDITIONING")}, []),
        (5, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
        (3, "KSampler", [5, "fixed", 20, 7, "euler", "simple", 1], {"latent_image": (5, 0, "LATENT")}, ["LATENT"]),
        (8, "VAEDecode", [], {"samples": (3, 0, "LATENT")}, ["IMAGE"]),
        (9, "SaveImage", ["out"], {"images": (8, 0, "IMAGE")}, []),
    ])
    by_id = {n["id"]: n for n in data["nodes"]}
    # the inputs the broadcasts fill, unconnected as the editor saves them
    by_id[6]["inputs"] = by_id[7]["inputs"] = [{"name": "clip", "type": "CLIP", "link": None}]
    by_id[3]["inputs"] = [{"name": "model", "type": "MODEL", "link": None},
                          {"name": "positive", "type": "CONDITIONING", "link": None},
                          {"name": "negative", "type": "CONDITIONING", "link": None}] + by_id[3]["inputs"]
    by_id[3]["inputs"][3]["name"] = "latent_image"
    by_id[8]["inputs"].append({"name": "vae", "type": "VAE", "link": None})
    for link in data["links"]:                    # the sampler's latent moved to input 3
        if link[3] == 3:
            link[4] = 3
    return data


def _sampler_inputs(res):
    g = res.graph
    sample, = [n for n in g.nodes.values() if n.type == "generate.sample"]
    return {k: g.nodes[v[0]].params.get("text", g.nodes[v[0]].type) for k, v in g.inputs[sample.id].items()}


def test_use_everywhere_broadcasts_link_the_inputs_they_reach():
    """cg-use-everywhere (Anything Everywhere, Prompts Everywhere) is in many shared graphs: its broadcasts are not
    links in the file, so the sampler, the encoders and the decoder imported with nothing connected."""
    res = import_data(_broadcast_graph())
    assert _sampler_inputs(res) == {"model": "load.model", "positive": "a lighthouse at dusk", "negative": "blurry",
                                    "latent": "latent.empty"}
    g = res.graph
    dec, = [n for n in g.nodes.values() if n.type == "vae.decode"]
    assert g.nodes[g.inputs[dec.id]["vae"][0]].type == "load.model"
    assert res.report.entries["10"].status == "ui" and res.report.entries["11"].status == "ui"
    assert not res.report.blocking and not any(e.notes for e in res.report.entries.values()
                                               if e.comfy_id in ("3", "6", "7", "8"))


def test_use_everywhere_version_7_links_as_the_file_records_them():
    """Version 7 writes the links it made (extra.ue_links) and names their ids in the inputs, not in the file's
    links: those inputs were read as receiving nothing. The record is followed (here against the type rule: the
    positive prompt comes from the node whose own broadcast the user pointed at `positive`)."""
    data = _broadcast_graph()
    by_id = {n["id"]: n for n in data["nodes"]}
    data["nodes"].remove(by_id[11])
    by_id[3]["inputs"][0]["link"], by_id[3]["inputs"][1]["link"], by_id[3]["inputs"][2]["link"] = 13, 14, 15
    data["extra"]["ue_links"] = [
        {"downstream": 3, "downstream_slot": 0, "upstream": "4", "upstream_slot": 0, "controller": 10, "type": "MODEL"},
        {"downstream": 3, "downstream_slot": 1, "upstream": "7", "upstream_slot": 0, "controller": 7,
         "type": "CONDITIONING"},
        {"downstream": 3, "downstream_slot": 2, "upstream": "6", "upstream_slot": 0, "controller": 6,
         "type": "CONDITIONING"},
        {"downstream": 6, "downstream_slot": 0, "upstream": "4", "upstream_slot": 1, "controller": 10, "type": "CLIP"},
        {"downstream": 7, "downstream_slot": 0, "upstream": "4", "upstream_slot": 1, "controller": 10, "type": "CLIP"},
        {"downstream": 8, "downstream_slot": 1, "upstream": "4", "upstream_slot": 2, "controller": 10, "type": "VAE"},
        # a stale entry for the sampler's latent, which the file links itself, and a damaged slot: neither replaces it
        {"downstream": 3, "downstream_slot": 3, "upstream": "4", "upstream_slot": 0, "controller": 10, "type": "MODEL"},
        {"downstream": 3, "downstream_slot": -1, "upstream": "4", "upstream_slot": 0, "controller": 10,
         "type": "MODEL"}]
    data["extra"]["links_added_by_ue"] = [13, 14, 15]
    res = import_data(data)
    assert _sampler_inputs(res) == {"model": "load.model", "positive": "blurry", "negative": "a lighthouse at dusk",
                                    "latent": "latent.empty"}
    assert not res.report.blocking


def test_use_everywhere_restrictions_and_clashes():
    data = _broadcast_graph()
    by_id = {n["id"]: n for n in data["nodes"]}
    # a second MODEL broadcast restricted to its own group, which holds only the decoder: the sampler gets one
    data["nodes"].append({"id": 12, "type": "Anything Everywhere", "pos": [5000, 5000], "mode": 0,
                          "inputs": [{"name": "anything", "type": "*", "link": 99}], "outputs": [],
                          "properties": {"group_restricted": 1}})
    data["links"].append([99, 4, 0, 12, 0, "MODEL"])
    data["groups"] = [{"title": "decode", "bounding": [4900, 4900, 3000, 3000]}]
    by_id[8]["pos"] = [5100, 5100]
    assert _sampler_inputs(import_data(data))["model"] == "load.model"
    # unrestricted, both reach the sampler's model: named, not guessed
    data["nodes"][-1]["properties"] = {}
    res = import_data(data)
    assert "model" not in _sampler_inputs(res)
    assert ("input model is reached by 2 Anything Everywhere broadcasts of MODEL (#10, #12): link it by hand"
            in "; ".join(res.report.entries["3"].notes))


def test_was_node_suite_basic_workflow():
    """wyrde's WAS Node Suite starter graph (early 2023: reroutes, a SEED from WAS's Seed, its Pillow resizes and save):
    seven WAS nodes were unmapped, so nothing between the loader and the decoder was connected."""
    res = import_workflow(ROOT / "tests/data/comfyui/community/wyrde_was_basic.json")
    g = res.graph
    sample = g.nodes["k_sampler_was_14"]
    # the early-2023 randomize toggle after the Seed's value is skipped, not read as anything; its ddim_uniform is
    # ComfyUI's own
    assert sample.params == {"seed": 904019488781965, "steps": 12, "cfg": 8, "sampler": "uni_pc_bh2",
                             "scheduler": "ddim_uniform", "denoise": 1}
    assert g.nodes["image_resize_35"].params == {"method": "lanczos", "width": 512, "height": 768, "fit": "stretch"}
    assert g.inputs["vae_encode_33"]["video"] == ("image_resize_35", "video")
    # Latent Upscale by Factor 1 changes nothing: the decoder takes the sampler's latent
    assert g.inputs["vae_decode_8"]["latent"] == (sample.id, "latent")
    assert g.nodes["image_resize_16"].type == "upscale.resize" and g.nodes["image_resize_16"].params["scale"] == 1
    assert g.nodes["image_save_17"].params == {"path": "out/WAS WF"}
    assert "supersample resizes to 8 times the size first" in "; ".join(res.report.entries["16"].notes)


def test_was_resize_and_latent_upscale_settings():
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"]),
             (2, "Image Resize", ["resize", "false", "bicubic", 2, 1000, 570], {"image": (1, 0, "IMAGE")}, ["IMAGE"]),
             (3, "Image Resize", ["rescale", "false", "bilinear", 1.5, 512, 512], {"image": (2, 0, "IMAGE")}, ["IMAGE"]),
             (4, "SaveImage", ["x"], {"images": (3, 0, "IMAGE")}, []),
             (5, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (6, "Latent Upscale by Factor (WAS)", ["bilinear", 2.0, "true"], {"samples": (5, 0, "LATENT")}, ["LATENT"]),
             (7, "SaveLatent", ["y"], {"samples": (6, 0, "LATENT")}, [])]
    res = import_data(ui_format(nodes))
    g = res.graph
    assert g.nodes["image_resize_2"].params == {"method": "bicubic", "width": 1000, "height": 576, "fit": "stretch"}
    assert g.nodes["image_resize_3"].type == "upscale.resize"
    assert g.nodes["image_resize_3"].params == {"method": "bicubic", "scale": 1.5}
    assert g.nodes["latent_upscale_by_factor_was_6"].params == {"scale": 2.0, "method": "bilinear"}
    assert "align true (corner-aligned interpolation) is not carried" in "; ".join(res.report.entries["6"].notes)


def test_was_resize_sizes_from_links():
    """WAS's Image Resize with its size or factor fed by another node (GetImageSize, a primitive) stopped the import
    as a 'damaged ComfyUI workflow (TypeError ...)', or put the link itself in upscale.resize's scale."""
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"]),
             (8, "GetImageSize", [], {"image": (1, 0, "IMAGE")}, ["INT", "INT"]),
             (2, "Image Resize", ["resize", "false", "bicubic", 2, 1000, 570],
              {"image": (1, 0, "IMAGE"), "resize_width": (8, 0, "INT")}, ["IMAGE"]),
             (3, "Image Resize", ["rescale", "false", "bicubic", 2, 512, 512],
              {"image": (2, 0, "IMAGE"), "rescale_factor": (8, 1, "INT")}, ["IMAGE"]),
             (4, "SaveImage", ["x"], {"images": (3, 0, "IMAGE")}, [])]
    res = import_data(ui_format(nodes))
    g = res.graph
    assert g.nodes["image_resize_2"].params == {"method": "bicubic", "fit": "stretch", "height": 576}
    assert g.inputs["image_resize_2"]["width"] == ("get_image_size_8", "width")
    assert ("resize_width from a link is rounded up to a multiple of 8 by WAS"
            in "; ".join(res.report.entries["2"].notes))
    assert g.nodes["image_resize_3"].params == {"method": "bicubic"}
    assert g.inputs["image_resize_3"]["scale"] == ("get_image_size_8", "height")


def test_choices_and_numbers_fed_by_links():
    """A combo or number widget turned into an input and fed by another node (a scheduler selector, a math node):
    WanVideoSampler's scheduler, ImageResizeKJv2's keep_proportion and WAS's latent upscale mode stopped the import
    as a 'damaged ComfyUI workflow (TypeError: unhashable type: 'Out')', and a linked shift was put into
    model.flow_shift's params as the link object itself."""
    data = wan_wrapper_t2v()
    data["nodes"].append({"id": 20, "type": "SchedulerPicker", "pos": [0, 0], "size": [200, 80], "flags": {},
                          "order": 0, "mode": 0, "inputs": [], "widgets_values": [],
                          "outputs": [{"name": "A", "type": "*", "links": [90]}, {"name": "B", "type": "INT",
                                                                               "links": [91, 92]}]})
    sampler = next(n for n in data["nodes"] if n["id"] == 8)
    sampler["inputs"] += [{"name": "scheduler", "type": "COMBO", "link": 90, "widget": {"name": "scheduler"}},
                          {"name": "shift", "type": "FLOAT", "link": 91, "widget": {"name": "shift"}}]
    data["links"] += [[90, 20, 0, 8, len(sampler["inputs"]) - 2, "*"], [91, 20, 1, 8, len(sampler["inputs"]) - 1,
                                                                        "FLOAT"]]
    res = import_data(data)
    by = {n.type: n for n in res.graph.nodes.values()}
    assert by["generate.sample"].params["sampler"] == "unipc"
    assert by["model.flow_shift"].params == {}
    assert "scheduler comes from another node's output: unipc is used; set it by hand" in res.report.entries["8"].notes
    # steps from a node only the run reads: denoise_strength's start step is not counted from the default 30
    sampler["widgets_values"][8] = 0.5
    sampler["inputs"].append({"name": "steps", "type": "INT", "link": 92, "widget": {"name": "steps"}})
    data["links"].append([92, 20, 1, 8, len(sampler["inputs"]) - 1, "INT"])
    res = import_data(data)
    assert "start_step" not in next(n for n in res.graph.nodes.values() if n.type == "generate.sample").params
    assert ("denoise_strength 0.5 starts at step steps - int(steps x 0.5) - 1 of steps that come from a link; set "
            "start_step by hand" in res.report.entries["8"].notes)
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"]),
             (8, "GetImageSize", [], {"image": (1, 0, "IMAGE")}, ["INT", "INT"]),
             (2, "ImageResizeKJv2", [832, 480, "lanczos", "crop", "0, 0, 0", "center", 16],
              {"image": (1, 0, "IMAGE"), "keep_proportion": (8, 0, "INT")}, ["IMAGE", "INT", "INT", "MASK"]),
             (3, "SaveImage", ["x"], {"images": (2, 0, "IMAGE")}, []),
             (5, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (6, "Latent Upscale by Factor (WAS)", ["bilinear", 2.0, "true"],
              {"samples": (5, 0, "LATENT"), "mode": (8, 1, "INT")}, ["LATENT"]),
             (7, "SaveLatent", ["y"], {"samples": (6, 0, "LATENT")}, [])]
    res = import_data(ui_format(nodes))
    assert res.graph.nodes["image_resize_k_jv2_2"].params["fit"] == "stretch"
    assert res.graph.nodes["latent_upscale_by_factor_was_6"].params["method"] == "bilinear"
    assert "mode comes from another node's output: bilinear is used" in "; ".join(res.report.entries["6"].notes)


def test_gguf_loaders():
    """city96's ComfyUI-GGUF loaders are in most shared low-VRAM graphs (Wan 2.2 Lightning, FLUX.1): unmapped, the
    model and text encoder loaders blocked the import. A GGUF diffusion model and a T5 / umT5 / Llama / Qwen / Gemma
    encoder GGUF load as they are; a GGUF text encoder of an architecture read as safetensors only is named, and so
    is a vision projector (mmproj) given as the encoder."""
    nodes = [(1, "UnetLoaderGGUF", ["wan2.2_t2v_high_noise_14B_Q4_K_M.gguf"], {}, ["MODEL"]),
             (2, "UnetLoaderGGUFAdvanced", ["flux1-dev-Q8_0.gguf", "default", "default", False], {}, ["MODEL"]),
             (3, "CLIPLoaderGGUF", ["umt5-xxl-encoder-Q5_K_M.gguf", "wan"], {}, ["CLIP"]),
             (4, "DualCLIPLoaderGGUF", ["clip_l.safetensors", "t5xxl_fp16.safetensors", "flux"], {}, ["CLIP"]),
             (5, "DualCLIPLoaderGGUF", ["clip_l.safetensors", "t5-v1_1-xxl-encoder-Q5_K_M.gguf", "flux"], {}, ["CLIP"]),
             (6, "CLIPLoaderGGUF", ["Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", "qwen_image"], {}, ["CLIP"]),
             (7, "CLIPLoaderGGUF", ["Qwen3-VL-8B-Instruct-Q4_K_M.gguf", "qwen_image"], {}, ["CLIP"]),
             (8, "CLIPLoaderGGUF", ["Qwen2.5-VL-7B-Instruct-mmproj-F16.gguf", "qwen_image"], {}, ["CLIP"])]
    res = import_data(ui_format(nodes))
    g, entries = res.graph, res.report.entries
    assert g.nodes["unet_loader_gguf_1"].params == {"name": "wan2.2_t2v_high_noise_14B_Q4_K_M.gguf"}
    assert g.nodes["unet_loader_gguf_advanced_2"].params == {"name": "flux1-dev-Q8_0.gguf"}
    assert {entries[i].status for i in "123456"} == {"exact"}
    assert g.nodes["clip_loader_gguf_6"].params == {"name": "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", "type": "qwen_image"}
    assert g.nodes["dual_clip_loader_gguf_4"].params == {"name": "clip_l.safetensors", "name2": "t5xxl_fp16.safetensors",
                                                         "type": "flux"}
    assert g.nodes["clip_loader_gguf_3"].params == {"name": "umt5-xxl-encoder-Q5_K_M.gguf", "type": "wan"}
    assert g.nodes["dual_clip_loader_gguf_5"].params["name2"] == "t5-v1_1-xxl-encoder-Q5_K_M.gguf"
    assert "Qwen3-VL-8B-Instruct-Q4_K_M.gguf is a GGUF of a language model Kinograph reads in safetensors form only" \
        in entries["7"].notes[0]
    # the projector is read with the language model beside it, not named as the encoder
    assert "vision projector, which is read with the Qwen2.5-VL GGUF beside it" in entries["8"].notes[0]


@pytest.mark.parametrize("widgets,params,noted", [
    ([832, 480, "lanczos", "crop", "0, 0, 0", "center", 16, "cpu"],
     {"width": 832, "height": 480, "fit": "crop"}, ""),
    ([1000, 570, "bicubic", "stretch", "0, 0, 0", "center", 16],
     {"width": 992, "height": 560, "fit": "stretch"}, ""),
    ([832, 480, "bicubic", "pad", "255, 255, 255", "top", 16],
     {"width": 832, "height": 480, "fit": "pad"}, "pad_color '255, 255, 255' is not carried"),
    ([832, 480, "bicubic", "resize", "0, 0, 0", "center", 16],
     {"width": 832, "height": 480, "fit": "pad"}, "keep_proportion resize fits the picture inside the size"),
])
def test_image_resize_kjv2_modes(widgets, params, noted):
    """KJNodes' current resize (kijai's Wan graphs size the start image with it) was unmapped; its width and height
    outputs size the latent."""
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"]),
             (2, "ImageResizeKJv2", widgets, {"image": (1, 0, "IMAGE")}, ["IMAGE", "INT", "INT", "MASK"]),
             (3, "SaveImage", ["x"], {"images": (2, 0, "IMAGE")}, []),
             (4, "EmptyHunyuanLatentVideo", [16, 16, 33, 1], {"width": (2, 1, "INT"), "height": (2, 2, "INT")},
              ["LATENT"]), *decoded_and_saved(5, 4)]
    res = import_data(ui_format(nodes))
    resize = res.graph.nodes["image_resize_k_jv2_2"]
    assert {k: resize.params[k] for k in params} == params
    notes = "; ".join(res.report.entries["2"].notes)
    assert noted in notes and (noted or res.report.entries["2"].status == "exact" or "lanczos" in notes)
    empty, = [n for n in res.graph.nodes.values() if n.type == "latent.empty"]
    if "resize fits" in noted:                  # only the run knows the size: measured from the resized clip
        assert res.graph.inputs[empty.id]["width"][1] == "width"
    else:
        assert (empty.params["width"], empty.params["height"]) == (params["width"], params["height"])


def test_rgthree_context_chains_carry_each_field():
    """rgthree's Context nodes bundle model, clip, vae and prompts along a chain: unmapped, they blocked the import and
    left every node reading from one unconnected. Each output is the input of its name, else its base_ctx's field."""
    nodes = [(4, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
             (10, "Context (rgthree)", [], {"model": (4, 0, "MODEL"), "clip": (4, 1, "CLIP"), "vae": (4, 2, "VAE")},
              ["RGTHREE_CONTEXT", "MODEL", "CLIP", "VAE", "CONDITIONING", "CONDITIONING", "LATENT", "IMAGE", "INT"]),
             (6, "CLIPTextEncode", ["a lighthouse at dusk"], {"clip": (10, 2, "CLIP")}, ["CONDITIONING"]),
             (7, "CLIPTextEncode", ["blurry"], {"clip": (10, 2, "CLIP")}, ["CONDITIONING"]),
             (11, "Reroute", [], {"": (10, 0, "RGTHREE_CONTEXT")}, ["RGTHREE_CONTEXT"]),
             (12, "Context (rgthree)", [], {"base_ctx": (11, 0, "RGTHREE_CONTEXT"), "positive": (6, 0, "CONDITIONING"),
                                            "negative": (7, 0, "CONDITIONING")},
              ["RGTHREE_CONTEXT", "MODEL", "CLIP", "VAE", "CONDITIONING", "CONDITIONING", "LATENT", "IMAGE", "INT"]),
             (5, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (3, "KSampler", [5, "fixed", 20, 7, "euler", "simple", 1],
              {"model": (12, 1, "MODEL"), "positive": (12, 4, "CONDITIONING"), "negative": (12, 5, "CONDITIONING"),
               "latent_image": (5, 0, "LATENT")}, ["LATENT"]),
             (8, "VAEDecode", [], {"samples": (3, 0, "LATENT"), "vae": (12, 3, "VAE")}, ["IMAGE"]),
             (13, "VAEDecode", [], {"samples": (3, 0, "LATENT"), "vae": (12, 7, "IMAGE")}, ["IMAGE"]),
             (9, "SaveImage", ["out"], {"images": (8, 0, "IMAGE")}, []),
             (14, "SaveImage", ["out"], {"images": (13, 0, "IMAGE")}, [])]
    data = ui_format(nodes)
    names = ["CONTEXT", "MODEL", "CLIP", "VAE", "POSITIVE", "NEGATIVE", "LATENT", "IMAGE", "SEED"]
    for n in data["nodes"]:
        if n["type"] == "Context (rgthree)":
            for o, name in zip(n["outputs"], names):
                o["name"] = name
    res = import_data(data)
    assert _sampler_inputs(res) == {"model": "load.model", "positive": "a lighthouse at dusk", "negative": "blurry",
                                    "latent": "latent.empty"}
    g = res.graph
    assert g.nodes[g.inputs["vae_decode_8"]["vae"][0]].type == "load.model"
    assert ("Context (rgthree) #12 carries no IMAGE: no context along its chain (#12, #10) has its image input "
            "connected" in "; ".join(res.report.entries["13"].notes))
    assert not [e for e in res.report.entries.values() if e.class_type.startswith("Context")]


def test_rgthree_contexts_in_a_loop_are_named_once():
    """Two contexts each other's base_ctx (a miswired chain): the field no context carries was named with the chain
    walked round the loop 128 times, a message of thousands of characters."""
    nodes = [(10, "Context (rgthree)", [], {"base_ctx": (12, 0, "RGTHREE_CONTEXT")}, ["RGTHREE_CONTEXT", "MODEL"]),
             (12, "Context (rgthree)", [], {"base_ctx": (10, 0, "RGTHREE_CONTEXT")}, ["RGTHREE_CONTEXT", "MODEL"]),
             (5, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (3, "KSampler", [5, "fixed", 20, 7, "euler", "simple", 1],
              {"model": (12, 1, "MODEL"), "latent_image": (5, 0, "LATENT")}, ["LATENT"])]
    data = ui_format(nodes)
    for n in data["nodes"]:
        if n["type"] == "Context (rgthree)":
            for o, name in zip(n["outputs"], ["CONTEXT", "MODEL"]):
                o["name"] = name
    note, = [n for n in import_data(data).report.entries["3"].notes if "model" in n]
    assert note == ("input model receives nothing: Context (rgthree) #12 carries no MODEL: its chain of contexts (#12, "
                    "#10, #12) comes back on itself through base_ctx, and none along it has its model input connected; "
                    "connect it by hand if it is needed")


def test_rgthree_any_switch_and_seed():
    """Any Switch (rgthree) passes on its first input that receives something (here the second: the first comes from
    a muted loader); Seed (rgthree) gives its seed, and names -1 (a new seed each run)."""
    nodes = [(1, "CheckpointLoaderSimple", ["a.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
             (2, "CheckpointLoaderSimple", ["b.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
             (3, "Any Switch (rgthree)", [], {"any_01": (1, 0, "MODEL"), "any_02": (2, 0, "MODEL")}, ["MODEL"]),
             (4, "Seed (rgthree)", [1234, None, None, None], {}, ["INT"]),
             (5, "CLIPTextEncode", ["x"], {"clip": (2, 1, "CLIP")}, ["CONDITIONING"]),
             (6, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (7, "KSampler", [0, "fixed", 20, 7, "euler", "simple", 1],
              {"model": (3, 0, "MODEL"), "positive": (5, 0, "CONDITIONING"), "negative": (5, 0, "CONDITIONING"),
               "latent_image": (6, 0, "LATENT"), "seed": (4, 0, "INT")}, ["LATENT"])]
    data = ui_format(nodes)
    data["nodes"][0]["mode"] = 2
    res = import_data(data)
    g = res.graph
    sample, = [n for n in g.nodes.values() if n.type == "generate.sample"]
    assert g.nodes[g.inputs[sample.id]["model"][0]].params == {"path": "b.safetensors"}
    assert sample.params["seed"] == 1234
    data["nodes"][3]["widgets_values"] = [-1, None, None, None]
    res = import_data(data)
    assert "seed -1 makes rgthree draw a new seed each run" in "; ".join(res.report.entries["4"].notes)


def test_kjnodes_get_image_size_and_count():
    """GetImageSizeAndCount (kijai's graphs read a picture's size with it, and pass the picture on through it) was
    unmapped: the picture stopped there and the sizes it feeds were left unset."""
    nodes = [(1, "LoadImage", ["a.png", "image"], {}, ["IMAGE", "MASK"]),
             (2, "ImageResizeKJv2", [832, 480, "bicubic", "crop", "0, 0, 0", "center", 16], {"image": (1, 0, "IMAGE")},
              ["IMAGE", "INT", "INT", "MASK"]),
             (3, "GetImageSizeAndCount", [], {"image": (2, 0, "IMAGE")}, ["IMAGE", "INT", "INT", "INT"]),
             (4, "SaveImage", ["x"], {"images": (3, 0, "IMAGE")}, []),
             (5, "EmptyHunyuanLatentVideo", [16, 16, 33, 1], {"width": (3, 1, "INT"), "height": (3, 2, "INT")},
              ["LATENT"]),
             (6, "GetImageSizeAndCount", [], {"image": (1, 0, "IMAGE")}, ["IMAGE", "INT", "INT", "INT"]),
             (7, "EmptyHunyuanLatentVideo", [16, 16, 33, 1], {"width": (6, 1, "INT"), "length": (6, 3, "INT")},
              ["LATENT"]), *decoded_and_saved(8, 5), *decoded_and_saved(11, 7)]
    res = import_data(ui_format(nodes))
    g = res.graph
    assert g.inputs["save_image_4"]["video"] == ("image_resize_k_jv2_2", "video")
    assert (g.nodes["empty_hunyuan_latent_video_5"].params["width"],
            g.nodes["empty_hunyuan_latent_video_5"].params["height"]) == (832, 480)
    size = g.nodes["get_image_size_and_count_6"]
    assert size.type == "video.size" and g.inputs[size.id] == {"video": ("load_image_1", "image")}
    assert g.inputs["empty_hunyuan_latent_video_7"]["width"] == (size.id, "width")
    assert g.inputs["empty_hunyuan_latent_video_7"]["frames"] == (size.id, "frames")


def test_rgthree_power_prompt_applies_its_lora_tags():
    """rgthree's Power Prompt takes <lora:...> tags out of the prompt and applies them to its model and clip: unmapped,
    it blocked the import; read as plain text the tags would have been encoded as words."""
    nodes = [(1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
             (2, "Power Prompt (rgthree)", ["a fox in snow <lora:fox_style:0.7><lora:sub/film.pt>, film grain <lora:off:0>",
                                            "CHOOSE", "CHOOSE", "CHOOSE"],
              {"opt_model": (1, 0, "MODEL"), "opt_clip": (1, 1, "CLIP")}, ["CONDITIONING", "MODEL", "CLIP", "STRING"]),
             (3, "Power Prompt - Simple (rgthree)", ["blurry", "CHOOSE", "CHOOSE"], {"opt_clip": (2, 2, "CLIP")},
              ["CONDITIONING", "STRING"]),
             (5, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (4, "KSampler", [1, "fixed", 20, 7, "euler", "simple", 1],
              {"model": (2, 1, "MODEL"), "positive": (2, 0, "CONDITIONING"), "negative": (3, 0, "CONDITIONING"),
               "latent_image": (5, 0, "LATENT")}, ["LATENT"]),
             (6, "ShowText|pysssss", [], {"text": (2, 3, "STRING")}, ["STRING"]), *decoded_and_saved(7, 4)]
    res = import_data(ui_format(nodes))
    g = res.graph
    assert _sampler_inputs(res)["positive"] == "a fox in snow , film grain "      # the tags cut out, as rgthree does
    assert _sampler_inputs(res)["negative"] == "blurry"
    loras = [n.params for n in g.nodes.values() if n.type == "lora.image"]
    assert loras == [{"path": "fox_style.safetensors", "strength": 0.7, "clip_strength": 0.7},
                     {"path": "sub/film.pt", "strength": 1.0}]
    sample, = [n for n in g.nodes.values() if n.type == "generate.sample"]
    assert g.nodes[g.inputs[sample.id]["model"][0]].params["path"] == "sub/film.pt"
    neg = g.nodes[g.inputs[sample.id]["negative"][0]]
    assert g.nodes[g.inputs[neg.id]["text_encoder"][0]].params["path"] == "sub/film.pt"
    assert not res.report.blocking
    # a strength the tag pattern lets through but that is no number: named, where the import stopped as damaged
    nodes[1][2][0] = "a fox <lora:fox_style:.>"
    res = import_data(ui_format(nodes))
    assert not [n for n in res.graph.nodes.values() if n.type == "lora.image"]
    assert ("<lora:fox_style:.>'s strength '.' is not a number: the LoRA is left out; write it as "
            "<lora:fox_style:0.8>" in res.report.entries["2"].notes)


def test_easy_use_values():
    """Easy-Use's easy int / float / string feed shared graphs' sizes, cfg and prompts; unmapped, they blocked the
    import. easy float hands on its value rounded to 3 decimals, as the node does."""
    nodes = [(1, "easy int", [24], {}, ["INT"]), (2, "easy float", [6.12345], {}, ["FLOAT"]),
             (3, "easy string", ["a red kite over dunes"], {}, ["STRING"]),
             (4, "CheckpointLoaderSimple", ["a.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
             (5, "CLIPTextEncode", [""], {"clip": (4, 1, "CLIP"), "text": (3, 0, "STRING")}, ["CONDITIONING"]),
             (6, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
             (7, "KSampler", [1, "fixed", 20, 7, "euler", "simple", 1],
              {"model": (4, 0, "MODEL"), "positive": (5, 0, "CONDITIONING"), "negative": (5, 0, "CONDITIONING"),
               "latent_image": (6, 0, "LATENT"), "steps": (1, 0, "INT"), "cfg": (2, 0, "FLOAT")}, ["LATENT"])]
    res = import_data(ui_format(nodes))
    sample, = [n for n in res.graph.nodes.values() if n.type == "generate.sample"]
    assert (sample.params["steps"], sample.params["cfg"]) == (24, 6.123)
    assert _sampler_inputs(res)["positive"] == "a red kite over dunes"
    assert not res.report.blocking
