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
