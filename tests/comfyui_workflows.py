"""ComfyUI workflows written for the tests (the public ones are JSON files in tests/data/comfyui).

ANIMATEDIFF_API is an AnimateDiff-Evolved Gen1 graph in ComfyUI's API format, as its README builds one:
checkpoint -> AnimateDiff loader with static context options, CLIP skip 2, KSampler, VAE decode,
VideoHelperSuite combine. AnimateDiff-Evolved ships its examples only as PNG images, which the
public-code index here cannot read, so this one is written out by hand (see README in data/comfyui)."""

ANIMATEDIFF_API = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"},
          "_meta": {"title": "Load Checkpoint"}},
    "2": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (red:1.2) fox running through snow", "clip": ["2", 0]},
          "_meta": {"title": "Positive"}},
    "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, watermark", "clip": ["2", 0]},
          "_meta": {"title": "Negative"}},
    "5": {"class_type": "ADE_StandardStaticContextOptions",
          "inputs": {"context_length": 16, "context_overlap": 4, "fuse_method": "pyramid", "use_on_equal_length": False,
                     "start_percent": 0, "guarantee_steps": 1}},
    "6": {"class_type": "ADE_AnimateDiffLoaderGen1",
          "inputs": {"model": ["1", 0], "model_name": "mm_sd_v15_v2.ckpt", "beta_schedule": "autoselect",
                     "context_options": ["5", 0]}},
    "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 16}},
    "8": {"class_type": "KSampler",
          "inputs": {"seed": 1234, "steps": 20, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
                     "denoise": 1, "model": ["6", 0], "positive": ["3", 0], "negative": ["4", 0],
                     "latent_image": ["7", 0]}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
    "10": {"class_type": "VHS_VideoCombine",
           "inputs": {"images": ["9", 0], "frame_rate": 8, "loop_count": 0, "filename_prefix": "AnimateDiff",
                      "format": "video/h264-mp4", "pingpong": False, "save_output": True}},
}


def ui_format(nodes):
    """ComfyUI's UI (litegraph) format from (id, type, widgets_values, {input: (from id, slot, type)}, [output types])."""
    out_nodes, out_links, feeds = [], [], {}
    for nid, cls, widgets, inputs, outputs in nodes:
        ins = []
        for name, (src, slot, typ) in inputs.items():
            lid = len(out_links) + 1
            out_links.append([lid, src, slot, nid, len(ins), typ])
            feeds.setdefault((src, slot), []).append(lid)
            ins.append({"name": name, "type": typ, "link": lid})
        out_nodes.append({"id": nid, "type": cls, "pos": [nid * 250, 100], "size": [240, 120], "flags": {},
                          "order": len(out_nodes), "mode": 0, "inputs": ins, "properties": {"Node name for S&R": cls},
                          "widgets_values": widgets, "_outputs": outputs})
    for n in out_nodes:
        n["outputs"] = [{"name": t, "type": t, "links": feeds.get((n["id"], k), []), "slot_index": k}
                        for k, t in enumerate(n.pop("_outputs"))]
    return {"last_node_id": max(n["id"] for n in out_nodes), "last_link_id": len(out_links), "nodes": out_nodes,
            "links": out_links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def wan_wrapper_t2v(sampler_widgets=(30, 6.0, 8.0, 42, "fixed", True, "unipc", 0, 1.0, False, "comfy"),
                    prompt="a red fox running through snow, tracking shot", lora=True):
    """kijai's WanVideoWrapper text-to-video graph as its example workflows wire it (the same class names, widget
    orders from the pack's source): block swap and TeaCache on the loader and sampler, one LoRA (strength 0, which the
    pack skips, without `lora`), VHS's combine."""
    return ui_format([
        (1, "WanVideoBlockSwap", [20, False, False], {}, ["BLOCKSWAPARGS"]),
        (2, "WanVideoLoraSelect", ["wan_fox_style.safetensors", 0.8 if lora else 0.0, False], {}, ["WANVIDLORA"]),
        (3, "WanVideoModelLoader", ["wan2.1_t2v_14B_fp8_e4m3fn.safetensors", "bf16", "fp8_e4m3fn", "offload_device",
                                    "sageattn"],
         {"block_swap_args": (1, 0, "BLOCKSWAPARGS"), "lora": (2, 0, "WANVIDLORA")}, ["WANVIDEOMODEL"]),
        (4, "LoadWanVideoT5TextEncoder", ["umt5-xxl-enc-bf16.safetensors", "bf16", "offload_device", "disabled"], {},
         ["WANTEXTENCODER"]),
        (5, "WanVideoTextEncode", [prompt, "blurry, static", True],
         {"t5": (4, 0, "WANTEXTENCODER")}, ["WANVIDEOTEXTEMBEDS"]),
        (6, "WanVideoEmptyEmbeds", [832, 480, 81], {}, ["WANVIDIMAGE_EMBEDS"]),
        (7, "WanVideoTeaCache", [0.25, 1, -1, "offload_device", True, "e"], {}, ["CACHEARGS"]),
        (8, "WanVideoSampler", list(sampler_widgets),
         {"model": (3, 0, "WANVIDEOMODEL"), "image_embeds": (6, 0, "WANVIDIMAGE_EMBEDS"),
          "text_embeds": (5, 0, "WANVIDEOTEXTEMBEDS"), "cache_args": (7, 0, "CACHEARGS")}, ["LATENT", "LATENT"]),
        (9, "WanVideoVAELoader", ["Wan2_1_VAE_bf16.safetensors", "bf16"], {}, ["WANVAE"]),
        (10, "WanVideoDecode", [False, 272, 272, 144, 128], {"vae": (9, 0, "WANVAE"), "samples": (8, 0, "LATENT")},
         ["IMAGE"]),
        (11, "VHS_VideoCombine", {"frame_rate": 16, "loop_count": 0, "filename_prefix": "WanVideoWrapper_T2V",
                                  "format": "video/h264-mp4", "pingpong": False, "save_output": True},
         {"images": (10, 0, "IMAGE")}, ["VHS_FILENAMES"]),
    ])


def run_imported(data, folder):
    """Import a ComfyUI workflow, write it beside `folder`'s files and run it on the CPU; returns the import result."""
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    res = import_data(data)
    wf = folder / "imported.kino.yaml"
    wf.write_text(res.yaml)
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    return res


def decoded_and_saved(nid, latent):
    """Nodes `nid` to `nid` + 2 that decode node `latent`'s latent and save it: ComfyUI runs only what an output
    needs, so a test graph's latent that feeds nothing is left out of the import."""
    return [(nid, "VAELoader", ["vae.safetensors"], {}, ["VAE"]),
            (nid + 1, "VAEDecode", [], {"samples": (latent, 0, "LATENT"), "vae": (nid, 0, "VAE")}, ["IMAGE"]),
            (nid + 2, "SaveImage", ["out"], {"images": (nid + 1, 0, "IMAGE")}, [])]
