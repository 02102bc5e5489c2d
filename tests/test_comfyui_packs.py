"""ComfyUI graphs built with node packs and editor features Kinograph refused: ComfyUI's older group nodes, Comfyroll
(its own example workflow, tests/data/comfyui/community), Easy-Use's pipe; imported, and run on a tiny SD 1.5."""
import json
import sys
from pathlib import Path

import pytest

from app.comfyui import import_data, import_workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_workflows import ui_format  # noqa: E402

COMMUNITY = Path(__file__).resolve().parent / "data" / "comfyui" / "community"


def _group_workflow():
    """An SD 1.5 text-to-image graph whose prompts, latent and sampler ComfyUI's 'Convert to group node' made one node,
    written as the frontend writes it (groupNode.js): the instance holds the values, extra.groupNodes the inner nodes."""
    inner = [
        {"type": "CLIPTextEncode", "pos": [0, 0], "mode": 0, "index": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}], "widgets_values": ["old prompt"]},
        {"type": "CLIPTextEncode", "pos": [0, 200], "mode": 0, "index": 1,
         "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}], "widgets_values": ["old negative"]},
        {"type": "EmptyLatentImage", "pos": [0, 400], "mode": 0, "index": 2,
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}], "widgets_values": [512, 512, 1]},
        {"type": "KSampler", "pos": [400, 0], "mode": 0, "index": 3,
         "inputs": [{"name": "model", "type": "MODEL", "link": None},
                    {"name": "positive", "type": "CONDITIONING", "link": None},
                    {"name": "negative", "type": "CONDITIONING", "link": None},
                    {"name": "latent_image", "type": "LATENT", "link": None}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}],
         "widgets_values": [1, "fixed", 30, 8, "euler", "normal", 1]},
    ]
    definition = {"nodes": inner,
                  "links": [[None, 1, 0, 0, 4, "CLIP"], [None, 1, 1, 0, 4, "CLIP"], [None, 0, 3, 0, 4, "MODEL"],
                            [0, 0, 3, 1, 6, "CONDITIONING"], [1, 0, 3, 2, 7, "CONDITIONING"],
                            [2, 0, 3, 3, 5, "LATENT"]],
                  "external": []}

    def instance(nid, y, prompt, seed, steps):
        return {"id": nid, "type": "workflow>Prompt and sample", "pos": [400, y], "mode": 0,
                "inputs": [{"name": "clip", "type": "CLIP", "link": nid * 10 + 1},
                           {"name": "CLIPTextEncode clip", "type": "CLIP", "link": nid * 10 + 2},
                           {"name": "model", "type": "MODEL", "link": nid * 10 + 3}],
                "outputs": [{"name": "LATENT", "type": "LATENT", "links": [nid * 10 + 4]}],
                "widgets_values": [prompt, "blurry, text", 640, 384, 1, seed, "fixed", steps, 7.5, "euler", "simple", 1]}

    def decoded(nid, src):
        return [{"id": nid, "type": "VAEDecode", "pos": [800, 0], "mode": 0,
                 "inputs": [{"name": "samples", "type": "LATENT", "link": src * 10 + 4},
                            {"name": "vae", "type": "VAE", "link": nid * 10 + 5}],
                 "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [nid * 10 + 6]}]},
                {"id": nid + 1, "type": "SaveImage", "pos": [1000, 0], "mode": 0,
                 "inputs": [{"name": "images", "type": "IMAGE", "link": nid * 10 + 6}], "widgets_values": [f"out{nid}"]}]

    nodes = [{"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 0], "mode": 0,
              "outputs": [{"name": "MODEL", "type": "MODEL", "links": [33, 43]},
                          {"name": "CLIP", "type": "CLIP", "links": [31, 32, 41, 42]},
                          {"name": "VAE", "type": "VAE", "links": [55, 75]}],
              "widgets_values": ["dreamshaper_8.safetensors"]},
             instance(3, 0, "a lighthouse at dusk", 42, 20), instance(4, 600, "a harbour at dawn", 7, 12),
             *decoded(5, 3), *decoded(7, 4)]
    links = [[31, 1, 1, 3, 0, "CLIP"], [32, 1, 1, 3, 1, "CLIP"], [33, 1, 0, 3, 2, "MODEL"], [34, 3, 0, 5, 0, "LATENT"],
             [41, 1, 1, 4, 0, "CLIP"], [42, 1, 1, 4, 1, "CLIP"], [43, 1, 0, 4, 2, "MODEL"], [44, 4, 0, 7, 0, "LATENT"],
             [55, 1, 2, 5, 1, "VAE"], [56, 5, 0, 6, 0, "IMAGE"], [75, 1, 2, 7, 1, "VAE"], [76, 7, 0, 8, 0, "IMAGE"]]
    return {"nodes": nodes, "links": links, "groups": [], "extra": {"groupNodes": {"Prompt and sample": definition}},
            "version": 0.4}


def test_group_nodes_expand_into_their_inner_nodes():
    """A group node ('workflow>NAME', ComfyUI's bundle before subgraphs) was a red placeholder that blocked the import,
    though its definition sits in the file: each instance now becomes its inner nodes with the instance's own values,
    its inputs and outputs joined to the nodes outside, placed where the instance stood."""
    res = import_data(_group_workflow())
    g = res.graph
    assert not res.report.blocking
    for inst, prompt, seed, steps in (("3", "a lighthouse at dusk", 42, 20), ("4", "a harbour at dawn", 7, 12)):
        sample = g.nodes[f"k_sampler_{inst}_3"]
        assert sample.type == "generate.sample"
        assert sample.params == {"steps": steps, "cfg": 7.5, "sampler": "euler", "scheduler": "simple", "denoise": 1,
                                 "seed": seed}
        ins = g.inputs[sample.id]
        assert ins["model"] == ("checkpoint_loader_simple_1", "model")
        assert g.nodes[ins["positive"][0]].params["text"] == prompt
        assert g.nodes[ins["negative"][0]].params["text"] == "blurry, text"
        assert g.inputs[ins["negative"][0]]["text_encoder"] == ("checkpoint_loader_simple_1", "text_encoder")
        assert g.nodes[ins["latent"][0]].params == {"frames": 1, "width": 640, "height": 384,
                                                         "size_fit": "floor"}
        assert res.report.entries[f"{inst}:3"].status == "exact"
    assert g.inputs["vae_decode_5"]["latent"] == ("k_sampler_3_3", "latent")
    assert g.inputs["vae_decode_7"]["latent"] == ("k_sampler_4_3", "latent")
    # the inner nodes' layout moved to each instance's place: the second group's sampler 600 px below the first's
    assert g.ui["k_sampler_3_3"]["pos"] == [800, 0] and g.ui["k_sampler_4_3"]["pos"] == [800, 600]
    assert g.ui["clip_text_encode_4_1"]["pos"] == [400, 800]

    # widget values that do not fit the definition (a group edited after it was made): the definition's are kept, named
    data = _group_workflow()
    data["nodes"][1]["widgets_values"] = data["nodes"][1]["widgets_values"][:-1]
    res = import_data(data)
    assert res.graph.nodes["k_sampler_3_3"].params["steps"] == 30
    assert ("group node Prompt and sample: its 11 widget values do not match its definition's inner nodes, so the "
            "inner nodes keep the values the group was made with" in "; ".join(res.report.entries["3:0"].notes))


def test_group_node_widgets_turned_into_inputs():
    """groupNode.js lists the group's widgets node by node, then the inner widgets turned into inputs (its
    processConvertedWidgets runs last); an inner widget linked inside (from a primitive) has none. Both were read node by
    node: a KSampler whose seed was an input got steps 7.5 and denoise 42 without a word, and a group whose prompts
    share a primitive kept the prompt it was made with, its note lost on the primitive."""
    data = _group_workflow()
    sampler = data["extra"]["groupNodes"]["Prompt and sample"]["nodes"][3]
    sampler["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None})
    for inst in data["nodes"][1:3]:
        inst["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": None})
        w = inst["widgets_values"]
        inst["widgets_values"] = w[:5] + w[7:] + w[5:7]       # the seed and its control after every other widget
    res = import_data(data)
    assert res.graph.nodes["k_sampler_3_3"].params == {"seed": 42, "steps": 20, "cfg": 7.5, "sampler": "euler",
                                                       "scheduler": "simple", "denoise": 1}
    assert res.graph.nodes["k_sampler_4_3"].params["seed"] == 7 and res.report.entries["3:3"].status == "exact"

    # widgets the user turned into inputs on an instance, named as groupNode.js names the group's widgets ("seed",
    # the second prompt's "CLIPTextEncode text"): their links were dropped, the values they carry silently lost
    data = _group_workflow()
    data["nodes"][1]["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 90})
    data["nodes"][2]["inputs"] += [
        {"name": "CLIPTextEncode text", "type": "STRING", "widget": {"name": "CLIPTextEncode text"}, "link": 91},
        {"name": "guidance", "type": "FLOAT", "widget": {"name": "guidance"}, "link": 92}]
    data["nodes"] += [{"id": 20, "type": "PrimitiveInt", "pos": [0, 900], "mode": 0, "widgets_values": [1234, "fixed"],
                       "outputs": [{"name": "INT", "type": "INT", "links": [90]}]},
                      {"id": 21, "type": "PrimitiveString", "pos": [0, 1000], "mode": 0, "widgets_values": ["moody"],
                       "outputs": [{"name": "STRING", "type": "STRING", "links": [91]}]},
                      {"id": 22, "type": "PrimitiveFloat", "pos": [0, 1100], "mode": 0, "widgets_values": [2.0],
                       "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [92]}]}]
    data["links"] += [[90, 20, 0, 3, 3, "INT"], [91, 21, 0, 4, 3, "STRING"], [92, 22, 0, 4, 4, "FLOAT"]]
    res = import_data(data)
    assert res.graph.nodes["k_sampler_3_3"].params["seed"] == 1234
    assert res.graph.nodes["clip_text_encode_4_1"].params["text"] == "moody"
    assert res.graph.nodes["clip_text_encode_3_1"].params["text"] == "blurry, text"
    assert ("group node Prompt and sample: its input 'guidance' sets a widget Kinograph cannot find in the group, so "
            "that link is not carried" in "; ".join(res.report.entries["4:0"].notes))

    def encode(index):
        return {"type": "CLIPTextEncode", "pos": [0, 100 * index], "mode": 0, "index": index,
                "inputs": [{"name": "clip", "type": "CLIP", "link": None},
                           {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": None}],
                "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}],
                "widgets_values": ["made with"]}
    inner = [{"type": "PrimitiveNode", "pos": [0, 0], "mode": 0, "index": 0, "widgets_values": ["made with"],
              "outputs": [{"name": "STRING", "type": "STRING", "links": [], "widget": {"name": "text"}}]},
             encode(1), encode(2)]
    definition = {"nodes": inner, "links": [[0, 0, 1, 1, 1, "STRING"], [0, 0, 2, 1, 2, "STRING"],
                                            [None, 1, 1, 0, 3, "CLIP"], [None, 1, 2, 0, 4, "CLIP"]], "external": []}
    nodes = [{"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 0], "mode": 0, "widgets_values": ["m.safetensors"],
              "outputs": [{"name": "CLIP", "type": "CLIP", "links": [1, 2]}]},
             {"id": 2, "type": "workflow>Both", "pos": [300, 0], "mode": 0, "widgets_values": ["a fox"],
              "inputs": [{"name": "clip", "type": "CLIP", "link": 1}, {"name": "CLIPTextEncode clip", "type": "CLIP",
                                                                       "link": 2}],
              "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}]}]
    data = {"nodes": nodes, "links": [[1, 1, 0, 2, 0, "CLIP"], [2, 1, 0, 2, 1, "CLIP"]],
            "extra": {"groupNodes": {"Both": definition}}}
    g = import_data(data).graph
    assert [g.nodes[f"clip_text_encode_2_{k}"].params["text"] for k in (1, 2)] == ["a fox", "a fox"]
    # widget values that do not fit: named on the first inner node the report lists, not on the primitive
    nodes[1]["widgets_values"] = ["a fox", "extra"]
    res = import_data(data)
    assert res.graph.nodes["clip_text_encode_2_1"].params["text"] == "made with"
    assert "group node Both: its 2 widget values do not match" in "; ".join(res.report.entries["2:1"].notes)


def test_comfyroll_aspect_ratio_demo():
    """Comfyroll's own CR Aspect Ratio demo: the node was unmapped, so the import stopped. Its preset's size (SDXL 3:4,
    896x1152) and batch size reach EmptyLatentImage's widgets, and its own empty latent is decoded."""
    res = import_workflow(COMMUNITY / "comfyroll_aspect_ratio.json")
    g = res.graph
    assert not res.report.blocking
    assert g.nodes["empty_latent_image_7"].params == {"width": 896, "height": 1152, "frames": 2, "size_fit": "floor"}
    own = g.nodes["cr_aspect_ratio_1"]
    assert own.type == "latent.empty" and own.params == {"width": 896, "height": 1152, "frames": 2, "size_fit": "floor"}
    assert g.inputs["vae_decode_2"] == {"latent": ("cr_aspect_ratio_1", "latent"), "vae": ("vae_loader_4", "vae")}
    assert g.inputs[own.id]["vae"] == ("vae_loader_4", "vae")
    assert res.report.entries["1"].status == "exact" and res.report.entries["7"].status == "exact"

    # prescale_factor scales the size Comfyroll hands on and its latent, rounded down (int(896 * 0.7) = 627); the
    # latents ComfyUI makes of 627 x 806 are 627 // 8 x 806 // 8 latent pixels, pictures of 624 x 800: latent.empty
    # keeps 627 x 806 with size_fit floor and makes 624 x 800 as it runs (it refused them, as it did the 910 x 512 preset)
    data = json.loads((COMMUNITY / "comfyroll_aspect_ratio.json").read_text())
    next(n for n in data["nodes"] if n["type"] == "CR Aspect Ratio")["widgets_values"][5] = 0.7
    g = import_data(data).graph
    for nid in ("empty_latent_image_7", "cr_aspect_ratio_1"):
        assert g.nodes[nid].params == {"width": 627, "height": 806, "frames": 2, "size_fit": "floor"}

    # a file from before prescale_factor (six outputs, batch_size in its widget's place), dimensions swapped, custom
    data = json.loads((COMMUNITY / "comfyroll_aspect_ratio.json").read_text())
    cr = next(n for n in data["nodes"] if n["type"] == "CR Aspect Ratio")
    del cr["outputs"][3]
    cr["widgets_values"] = [640, 384, "custom", "On", 1.5, 3]
    for link in data["links"]:
        if link[1] == 1 and link[2] >= 4:
            link[2] -= 1
    g = import_data(data).graph
    assert g.nodes["empty_latent_image_7"].params == {"width": 384, "height": 640, "frames": 3, "size_fit": "floor"}
    assert g.nodes["cr_aspect_ratio_1"].params == {"width": 384, "height": 640, "frames": 3, "size_fit": "floor"}


def _easy_use_graph(image_output="Save"):
    """Easy-Use's usual chain: fullLoader -> preSampling -> kSampler along one pipe, with the positive prompt replaced
    through pipeOut's CLIP, a CLIPTextEncode and pipeIn (Easy-Use's nodes and widgets, written by hand: the pack's
    repository ships no example workflow)."""
    loader = ["dreamshaper_8.safetensors", "Default", "vae-ft-mse.safetensors", -2, "film_grain.safetensors", 0.7, 0.5,
              "768 x 512", 512, 512, "a red kite", "none", "comfy", "blurry, text", "none", "comfy", 2]
    return ui_format([
        (1, "easy fullLoader", loader, {}, ["PIPE_LINE", "MODEL", "VAE", "CLIP", "CONDITIONING", "CONDITIONING",
                                            "LATENT"]),
        (2, "easy pipeOut", [], {"pipe": (1, 0, "PIPE_LINE")},
         ["PIPE_LINE", "MODEL", "CONDITIONING", "CONDITIONING", "LATENT", "VAE", "CLIP", "IMAGE", "INT"]),
        (3, "CLIPTextEncode", ["a red kite over dunes, golden hour"], {"clip": (2, 6, "CLIP")}, ["CONDITIONING"]),
        (4, "easy pipeIn", [], {"pipe": (2, 0, "PIPE_LINE"), "pos": (3, 0, "CONDITIONING")}, ["PIPE_LINE"]),
        (5, "easy preSampling", [12, 6.5, "dpmpp_2m", "karras", 1.0, 99, "fixed"], {"pipe": (4, 0, "PIPE_LINE")},
         ["PIPE_LINE"]),
        (6, "easy kSampler", [image_output, 0, "kite"], {"pipe": (5, 0, "PIPE_LINE")}, ["PIPE_LINE", "IMAGE"])])


def test_easy_use_pipe_chain_becomes_kinograph_nodes():
    """Easy-Use's pipe nodes were unmapped: a graph built on them imported as red placeholders only. The loader's
    bundle, the pipe's fields and the sampler's settings now reach the Kinograph nodes that make and read them."""
    res = import_data(_easy_use_graph())
    g = res.graph
    assert not res.report.blocking, res.report.text()
    by = {}
    for n in g.nodes.values():
        by.setdefault(n.type, []).append(n)
    loader, = by["load.model"]
    assert loader.params == {"path": "dreamshaper_8.safetensors"}
    lora, = by["lora.image"]
    assert lora.params == {"path": "film_grain.safetensors", "strength": 0.7, "clip_strength": 0.5}
    latent, = by["latent.empty"]
    assert latent.params == {"width": 768, "height": 512, "frames": 2}          # the preset, not the widgets
    sample, = by["generate.sample"]
    assert sample.params == {"steps": 12, "cfg": 6.5, "sampler": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0,
                             "seed": 99}
    ins = g.inputs[sample.id]
    assert ins["model"] == (lora.id, "model") and ins["latent"] == (latent.id, "latent")
    assert g.nodes[ins["positive"][0]].params["text"] == "a red kite over dunes, golden hour"     # pipeIn's pos
    assert g.inputs[ins["positive"][0]]["text_encoder"] == (lora.id, "text_encoder")         # pipeOut's clip
    prompts = g.nodes[ins["negative"][0]]
    assert (prompts.params["negative"], prompts.params["clip_skip"], ins["negative"][1]) == ("blurry, text", 2,
                                                                                             "negative")
    decode, = by["vae.decode"]
    vae, = by["load.vae"]
    assert g.inputs[decode.id] == {"latent": (sample.id, "latent"), "vae": (vae.id, "vae")}
    save, = by["io.save_frames"]
    assert save.params == {"path": "out/kite"} and g.inputs[save.id] == {"video": (decode.id, "video")}
    # comfyLoader: fullLoader's settings without config and weighting widgets, and only pipe, model and vae out;
    # a1111Loader weighs its prompts as A1111 does, which is named
    data = _easy_use_graph()
    loader = data["nodes"][0]
    w = loader["widgets_values"]
    for name, note in (("easy comfyLoader", False), ("easy a1111Loader", True)):
        loader["type"] = name
        loader["widgets_values"] = [w[0], *w[2:10], w[10], w[13], w[16]] + ([False] if note else [])
        loader["outputs"] = loader["outputs"][:3]
        res = import_data(data)
        sample, = [n for n in res.graph.nodes.values() if n.type == "generate.sample"]
        assert res.graph.nodes[res.graph.inputs[sample.id]["negative"][0]].params["negative"] == "blurry, text"
        assert [n.params for n in res.graph.nodes.values() if n.type == "latent.empty"] == [
            {"width": 768, "height": 512, "frames": 2}]
        assert (res.report.entries["1"].status == "approx") == note
        assert note == ("positive prompt weighting A1111 with mean normalization is read as ComfyUI's own (comfy, "
                        "none)" in res.report.entries["1"].notes)
    # previewed only: nothing saved, and the report says so
    res = import_data(_easy_use_graph("Preview"))
    assert "io.save_frames" not in {n.type for n in res.graph.nodes.values()}
    assert any("nothing in this workflow saves a file" in r for r in res.report.remarks)


def _assert_samples_the_encoded_picture(res, entry):
    """The imported Easy-Use graph samples load_image_7's picture encoded with the pipe's VAE, and its report entry
    `entry` names the loader's batch it does not repeat."""
    g = res.graph
    sample, = [n for n in g.nodes.values() if n.type == "generate.sample"]
    enc = g.inputs[sample.id]["latent"][0]
    vae, = [n.id for n in g.nodes.values() if n.type == "load.vae"]
    assert g.nodes[enc].type == "vae.encode"
    assert g.inputs[enc] == {"video": ("load_image_7", "image"), "vae": (vae, "vae")}
    assert res.report.entries[entry].notes == ["ComfyUI repeats the encoded picture 2 times (the loader's batch "
                                               "size); here it is sampled once"]


def test_easy_use_pipe_in_picture_is_encoded_as_the_latent():
    """Easy-Use's pipeIn encodes a picture given without a latent with the pipe's VAE and makes it the pipe's latent
    (image to image); the import kept the loader's empty latent, so kSampler drew a new picture, reported exact."""
    data = _easy_use_graph()
    data["nodes"] += ui_format([(7, "LoadImage", ["kite.png", "image"], {}, ["IMAGE", "MASK"])])["nodes"]
    pipe_in = next(n for n in data["nodes"] if n["type"] == "easy pipeIn")
    pipe_in["inputs"].append({"name": "image", "type": "IMAGE", "link": 99})
    data["nodes"][-1]["outputs"][0]["links"] = [99]
    data["links"].append([99, 7, 0, pipe_in["id"], len(pipe_in["inputs"]) - 1, "IMAGE"])
    _assert_samples_the_encoded_picture(import_data(data), "4")


def test_easy_use_pre_sampling_image_to_latent():
    """Easy-Use's preSampling encodes its image_to_latent picture with the pipe's VAE, ahead of a latent given beside
    it (py/nodes/preSampling.py); the import said it was not carried and sampled the loader's empty latent."""
    data = _easy_use_graph()
    data["nodes"] += ui_format([(7, "LoadImage", ["kite.png", "image"], {}, ["IMAGE", "MASK"]),
                                (8, "EmptyLatentImage", [256, 256, 1], {}, ["LATENT"])])["nodes"]
    pre = next(n for n in data["nodes"] if n["type"] == "easy preSampling")
    for link, (name, kind, src) in enumerate((("image_to_latent", "IMAGE", 7), ("latent", "LATENT", 8)), 98):
        pre["inputs"].append({"name": name, "type": kind, "link": link})
        next(n for n in data["nodes"] if n["id"] == src)["outputs"][0]["links"] = [link]
        data["links"].append([link, src, 0, pre["id"], len(pre["inputs"]) - 1, kind])
    _assert_samples_the_encoded_picture(import_data(data), "5")


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory):
    from tiny_models import build_sd15_single_file
    return build_sd15_single_file(tmp_path_factory.mktemp("sd15")) / "models" / "checkpoints" / "sd15_tiny.safetensors"


def _run_small(session, result, out):
    """The imported graph at 32 x 32, one picture, one step, saved under `out`: the saved pictures."""
    from graph_engine.api import load_workflow
    for n in result.graph.nodes.values():
        if n.type == "latent.empty":
            n.params.update(width=32, height=32, frames=1)
        elif n.type == "generate.sample":
            n.params["steps"] = 1
        elif n.type == "io.save_frames":
            n.params["path"] = str(out / Path(n.params["path"]).name)
    res = session.run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    return sorted(p for p in out.rglob("*.png"))


def test_group_node_and_easy_use_graphs_run(tiny_sd15, tmp_path):
    """Both imports run on a tiny SD 1.5 checkpoint: a group node's inner sampler and Easy-Use's kSampler each save
    their 32 x 32 picture."""
    from PIL import Image
    from graph_engine.api import Session
    session = Session(device="cpu")         # one session: the checkpoint loads once for both
    data = _group_workflow()
    data["nodes"][0]["widgets_values"] = [str(tiny_sd15)]
    data["nodes"] = [n for n in data["nodes"] if n["id"] not in (4, 7, 8)]     # one instance is enough to run
    data["links"] = [link for link in data["links"] if not {link[1], link[3]} & {4, 7, 8}]
    saved = _run_small(session, import_data(data), tmp_path / "group")
    assert len(saved) == 1 and Image.open(saved[0]).size == (32, 32)

    data = _easy_use_graph()
    data["nodes"][0]["widgets_values"][:5] = [str(tiny_sd15), "Default", "Baked VAE", -1, "None"]
    saved = _run_small(session, import_data(data), tmp_path / "easy")
    assert len(saved) == 1 and Image.open(saved[0]).size == (32, 32)


def test_inspire_ksampler():
    """Inspire Pack's KSampler (ComfyUI's, with A1111-style noise and variation seeds) was unmapped, blocking the graph:
    it samples as KSampler does; a variation blended in is named as not carried."""
    def graph(variation):
        return ui_format([
            (1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
            (2, "CLIPTextEncode", ["a lighthouse at dusk"], {"clip": (1, 1, "CLIP")}, ["CONDITIONING"]),
            (3, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
            (4, "KSampler //Inspire", [5, "fixed", 25, 6.0, "euler_ancestral", "karras", 1.0, "GPU(=A1111)", "comfy",
                                       8, variation, "linear"],
             {"model": (1, 0, "MODEL"), "positive": (2, 0, "CONDITIONING"), "negative": (2, 0, "CONDITIONING"),
              "latent_image": (3, 0, "LATENT")}, ["LATENT"]),
            (5, "VAEDecode", [], {"samples": (4, 0, "LATENT"), "vae": (1, 2, "VAE")}, ["IMAGE"]),
            (6, "SaveImage", ["lighthouse"], {"images": (5, 0, "IMAGE")}, [])])
    res = import_data(graph(0.0))
    sample = res.graph.nodes["k_sampler_inspire_4"]
    assert sample.params == {"seed": 5, "steps": 25, "cfg": 6.0, "sampler": "euler_ancestral", "scheduler": "karras",
                             "denoise": 1.0}
    assert res.graph.inputs[sample.id]["latent"] == ("empty_latent_image_3", "latent")
    assert res.report.entries["4"].status == "exact" and not res.report.blocking
    res = import_data(graph(0.3))
    assert res.report.entries["4"].notes == ["variation_strength=0.3 is not carried"]
    # Inspire's internal_seed (its widget after variation_method, default 0) seeds euler_ancestral's later noise:
    # a picture of its own where it is not the seed; it was reported exact
    data = graph(0.0)
    data["nodes"][3]["widgets_values"].append(0)
    assert import_data(data).report.entries["4"].notes == [
        "internal_seed=0 is not carried: ComfyUI draws euler_ancestral's noise after the first step from it, "
        "Kinograph from the seed (5)"]
    data["nodes"][3]["widgets_values"][-1] = 5
    assert import_data(data).report.entries["4"].status == "exact"


def test_inspire_batch_seed_mode_counts_the_batch():
    """Inspire's batch_seed_mode (default 'incremental') only changes a batch of more than one picture, yet every file
    with it was marked approximate; now it is named only where the batch holds more than one (or is not known), with
    the batch's size. KSamplerAdvanced //Inspire samples as KSamplerAdvanced does."""
    def graph(batch, mode, cls="KSampler //Inspire"):
        widgets = [5, "fixed", 25, 6.0, "euler", "karras", 1.0, "GPU(=A1111)", mode, 8, 0.0, "linear", 0] \
            if cls == "KSampler //Inspire" else \
            [True, 5, "fixed", 30, 6.0, "euler", "karras", 4, 20, "CPU", True, mode, 8, 0.0, "linear", 5]
        return ui_format([
            (1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
            (2, "CLIPTextEncode", ["a lighthouse at dusk"], {"clip": (1, 1, "CLIP")}, ["CONDITIONING"]),
            (3, "EmptyLatentImage", [512, 512, batch], {}, ["LATENT"]),
            (7, "LatentUpscaleBy", ["nearest-exact", 1.5], {"samples": (3, 0, "LATENT")}, ["LATENT"]),
            (4, cls, widgets,
             {"model": (1, 0, "MODEL"), "positive": (2, 0, "CONDITIONING"), "negative": (2, 0, "CONDITIONING"),
              "latent_image": (7, 0, "LATENT")}, ["LATENT"]),
            (5, "VAEDecode", [], {"samples": (4, 0, "LATENT"), "vae": (1, 2, "VAE")}, ["IMAGE"]),
            (6, "SaveImage", ["lighthouse"], {"images": (5, 0, "IMAGE")}, [])])
    for mode in ("incremental", "variation str inc:0.05", "comfy"):
        res = import_data(graph(1, mode))
        assert res.report.entries["4"].status == "exact", (mode, res.report.entries["4"].notes)
    res = import_data(graph(4, "incremental"))
    assert res.report.entries["4"].notes == [
        "batch_seed_mode='incremental' is not carried: ComfyUI seeds picture i with seed + i, Kinograph draws its "
        "batch of 4 pictures from the one seed (as 'comfy')"]
    res = import_data(graph(4, "variation str inc:0.05"))
    assert "raises the variation strength by 0.05 a picture" in res.report.entries["4"].notes[0]
    # a video's empty latent: 33 frames are one picture (its batch_size), not a batch of 33
    data = graph(1, "incremental")
    data["nodes"][2].update(type="EmptyHunyuanLatentVideo", widgets_values=[512, 320, 33, 1])
    assert import_data(data).report.entries["4"].status == "exact"
    data["nodes"][2]["widgets_values"][3] = 2
    assert "its batch of 2 pictures" in import_data(data).report.entries["4"].notes[0]
    res = import_data(graph(1, "incremental", "KSamplerAdvanced //Inspire"))
    sample = res.graph.nodes["k_sampler_advanced_inspire_4"]
    assert sample.params == {"add_noise": True, "seed": 5, "steps": 30, "cfg": 6.0, "sampler": "euler",
                             "scheduler": "karras", "start_step": 4, "end_step": 20, "leftover_noise": True}
    assert res.report.entries["4"].status == "exact", res.report.entries["4"].notes
    assert res.graph.nodes[res.graph.inputs[sample.id]["latent"][0]].type == "latent.upscale"


def test_comfyroll_values_and_controlnet_stack():
    """Comfyroll's CR Prompt Text, CR Text, CR Seed and CR Value feeding a KSampler's widgets, and its ControlNet stack
    put on both prompts by CR Apply Multi-ControlNet, were unmapped and blocked the graph (nodes and widgets from the
    pack's nodes_core.py, nodes_utils_text.py, nodes_utils_other.py, nodes_controlnet.py)."""
    def graph(switch):
        return ui_format([
            (1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
            (2, "CR Prompt Text", ["a glass lighthouse"], {}, ["STRING", "STRING"]),
            (3, "CLIPTextEncode", ["old"], {"clip": (1, 1, "CLIP"), "text": (2, 0, "STRING")}, ["CONDITIONING"]),
            (4, "CR Text", ["fog, blur"], {}, ["*", "STRING"]),
            (5, "CLIPTextEncode", ["old"], {"clip": (1, 1, "CLIP"), "text": (4, 0, "STRING")}, ["CONDITIONING"]),
            (6, "CR Seed", [4242, "fixed"], {}, ["INT", "STRING"]),
            (7, "CR Value", [7.9], {}, ["FLOAT", "INT", "STRING"]),
            (8, "LoadImage", ["edges.png", "image"], {}, ["IMAGE", "MASK"]),
            (9, "CR Multi-ControlNet Stack", ["On", "canny.safetensors", 0.8, 0.1, 0.9,
                                              "Off", "depth.safetensors", 1.0, 0.0, 1.0,
                                              "On", "pose.safetensors", 1.0, 0.0, 1.0],
             {"image_1": (8, 0, "IMAGE"), "image_2": (8, 0, "IMAGE")}, ["CONTROL_NET_STACK", "STRING"]),
            (10, "CR Apply Multi-ControlNet", [switch],
             {"base_positive": (3, 0, "CONDITIONING"), "base_negative": (5, 0, "CONDITIONING"),
              "controlnet_stack": (9, 0, "CONTROL_NET_STACK")}, ["CONDITIONING", "CONDITIONING", "STRING"]),
            (11, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
            (12, "KSampler", [1, "fixed", 20, 8.0, "euler", "karras", 1.0],
             {"model": (1, 0, "MODEL"), "positive": (10, 0, "CONDITIONING"), "negative": (10, 1, "CONDITIONING"),
              "latent_image": (11, 0, "LATENT"), "seed": (6, 0, "INT"), "steps": (7, 1, "INT"),
              "cfg": (7, 0, "FLOAT")}, ["LATENT"]),
            (13, "VAEDecode", [], {"samples": (12, 0, "LATENT"), "vae": (1, 2, "VAE")}, ["IMAGE"]),
            (14, "SaveImage", ["lighthouse"], {"images": (13, 0, "IMAGE")}, [])])
    res = import_data(graph("On"))
    g = res.graph
    assert not res.report.blocking and {e.status for e in res.report.entries.values()} == {"exact"}, \
        res.report.text()
    sample = g.nodes["k_sampler_12"]
    assert sample.params == {"seed": 4242, "steps": 7, "cfg": 7.9, "sampler": "euler", "scheduler": "karras",
                             "denoise": 1.0}
    ins = g.inputs[sample.id]
    assert g.nodes[ins["positive"][0]].params["text"] == "a glass lighthouse"
    assert g.nodes[ins["negative"][0]].params["text"] == "fog, blur"
    control = g.nodes[ins["model"][0]]      # only the switched-on ControlNet with a picture
    assert control.type == "control.apply" and control.params == {
        "path": "canny.safetensors", "strength": 0.8, "start": 0.1, "end": 0.9, "preprocessor": "none"}
    assert g.inputs[control.id] == {"model": ("checkpoint_loader_simple_1", "model"),
                                    "video": ("load_image_8", "image")}
    g = import_data(graph("Off")).graph
    assert g.inputs["k_sampler_12"]["model"] == ("checkpoint_loader_simple_1", "model")
    assert "control.apply" not in {n.type for n in g.nodes.values()}


def test_easy_use_seed_lora_stack_and_controlnet():
    """Easy-Use's easy seed, easy loraStack (into fullLoader's optional_lora_stack), easy controlnetLoaderADV on the
    pipe and easy showAnything were unmapped (py/nodes/seed.py, loaders.py, logic.py): now the seed reaches the sampler,
    the stack's LoRAs (advanced mode, the first num_loras) follow the loader's own, and the ControlNet steers the model
    kSampler samples."""
    data = _easy_use_graph()
    loras = [v for i in range(1, 11) for v in (f"style_{i}.safetensors", 0.3, 0.6, 0.4)]
    loras[4] = "None"       # the second slot empty: skipped
    extra = ui_format([
        (7, "easy seed", [777, "fixed"], {}, ["INT"]),
        (8, "easy loraStack", [True, "advanced", 3] + loras, {}, ["LORA_STACK"]),
        (9, "LoadImage", ["depth.png", "image"], {}, ["IMAGE", "MASK"]),
        (10, "easy controlnetLoaderADV", ["depth.safetensors", 0.7, 0.0, 0.5, 1.0],
         {"pipe": (4, 0, "PIPE_LINE"), "image": (9, 0, "IMAGE")}, ["PIPE_LINE", "CONDITIONING", "CONDITIONING"]),
        (11, "easy showAnything", [], {"anything": (7, 0, "INT")}, [])])
    data["nodes"] += extra["nodes"]
    link = max(lk[0] for lk in data["links"])
    by_id = {n["id"]: n for n in data["nodes"]}

    def wire(src, slot, dst, name, kind):
        nonlocal link
        link += 1
        by_id[src]["outputs"][slot]["links"] = by_id[src]["outputs"][slot]["links"] + [link]
        inputs = by_id[dst]["inputs"]
        old = next((i for i in inputs if i["name"] == name), None)
        if old is None:
            inputs.append(old := {"name": name, "type": kind})
        else:
            data["links"] = [lk for lk in data["links"] if lk[0] != old["link"]]
        old["link"] = link
        data["links"].append([link, src, slot, dst, inputs.index(old), kind])
    for lk in extra["links"]:
        lk[0] += 1000
        data["links"].append(lk)
        by_id[lk[3]]["inputs"][lk[4]]["link"] = lk[0]
    for n in extra["nodes"]:
        for out in n["outputs"]:
            out["links"] = [x + 1000 for x in out["links"]]
    wire(8, 0, 1, "optional_lora_stack", "LORA_STACK")
    wire(10, 0, 5, "pipe", "PIPE_LINE")
    wire(7, 0, 5, "seed", "INT")
    res = import_data(data)
    g = res.graph
    assert not res.report.blocking, res.report.text()
    assert {res.report.entries[k].status for k in ("7", "8", "10")} == {"exact"}, res.report.text()
    assert res.report.entries["11"].status == "ui"
    loras = [n.params for n in g.nodes.values() if n.type == "lora.image"]
    assert loras == [{"path": "film_grain.safetensors", "strength": 0.7, "clip_strength": 0.5},
                     {"path": "style_1.safetensors", "strength": 0.6, "clip_strength": 0.4},
                     {"path": "style_3.safetensors", "strength": 0.6, "clip_strength": 0.4}]
    sample, = [n for n in g.nodes.values() if n.type == "generate.sample"]
    assert sample.params["seed"] == 777
    control = g.nodes[g.inputs[sample.id]["model"][0]]
    assert control.type == "control.apply" and control.params == {
        "path": "depth.safetensors", "strength": 0.7, "start": 0.0, "end": 0.5, "preprocessor": "none"}
    last_lora = [n.id for n in g.nodes.values() if n.type == "lora.image"][-1]
    assert g.inputs[control.id] == {"model": (last_lora, "model"), "video": ("load_image_9", "image")}


def test_easy_use_show_anything_hands_its_input_on():
    """easy showAnything returns what it shows (Easy-Use's logic.py, output 'output'): a prompt shown on the way to
    its encoder was dropped ('text comes from a node that did not convert') and the picture sampled without it."""
    res = import_data(ui_format([
        (1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
        (8, "easy string", ["a lighthouse at dusk"], {}, ["STRING"]),
        (9, "easy showAnything", [["a lighthouse at dusk"]], {"anything": (8, 0, "STRING")}, ["*"]),
        (2, "CLIPTextEncode", [""], {"clip": (1, 1, "CLIP"), "text": (9, 0, "STRING")}, ["CONDITIONING"]),
        (3, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
        (4, "KSampler", [5, "fixed", 25, 6.0, "euler", "karras", 1.0],
         {"model": (1, 0, "MODEL"), "positive": (2, 0, "CONDITIONING"), "negative": (2, 0, "CONDITIONING"),
          "latent_image": (3, 0, "LATENT")}, ["LATENT"]),
        (5, "VAEDecode", [], {"samples": (4, 0, "LATENT"), "vae": (1, 2, "VAE")}, ["IMAGE"]),
        (6, "SaveImage", ["lighthouse"], {"images": (5, 0, "IMAGE")}, [])]))
    assert res.graph.nodes["clip_text_encode_2"].params["text"] == "a lighthouse at dusk"
    assert res.report.entries["2"].status == "exact" and res.report.entries["9"].status == "ui"


def test_inspire_prompt_and_global_nodes():
    """Inspire's Prompt Builder, CLIPTextEncodeWithWeight and its Global Seed / Global Sampler (editor-side: they set
    other nodes' widgets) were unmapped and blocked the graph (inspire/prompt_support.py)."""
    def graph(strength):
        return ui_format([
            (1, "CheckpointLoaderSimple", ["dreamshaper_8.safetensors"], {}, ["MODEL", "CLIP", "VAE"]),
            (2, "PromptBuilder //Inspire", ["#PLACEHOLDER", "#PRESET", "a paper boat on a pond"], {}, ["STRING"]),
            (3, "CLIPTextEncodeWithWeight //Inspire", ["old", strength, 0.0],
             {"clip": (1, 1, "CLIP"), "text": (2, 0, "STRING")}, ["CONDITIONING"]),
            (4, "EmptyLatentImage", [512, 512, 1], {}, ["LATENT"]),
            (5, "KSampler //Inspire", [9, "fixed", 20, 7.0, "euler", "karras", 1.0, "GPU(=A1111)", "incremental", 0,
                                       0.0, "linear"],
             {"model": (1, 0, "MODEL"), "positive": (3, 0, "CONDITIONING"), "negative": (3, 0, "CONDITIONING"),
              "latent_image": (4, 0, "LATENT")}, ["LATENT"]),
            (6, "VAEDecode", [], {"samples": (5, 0, "LATENT"), "vae": (1, 2, "VAE")}, ["IMAGE"]),
            (7, "SaveImage", ["boat"], {"images": (6, 0, "IMAGE")}, []),
            (8, "GlobalSeed //Inspire", [9, True, "fixed", ""], {}, []),
            (9, "GlobalSampler //Inspire", ["euler", "karras"], {}, [])])
    res = import_data(graph(1.0))
    assert not res.report.blocking, res.report.text()
    assert {k: res.report.entries[k].status for k in ("2", "3", "5", "8", "9")} == {
        "2": "exact", "3": "exact", "5": "exact", "8": "ui", "9": "ui"}
    assert res.report.entries["8"].notes == ["sets the seed of every node in ComfyUI's editor: each node's own value "
                                             "in the file is used"]
    enc = res.graph.nodes["clip_text_encode_with_weight_inspire_3"]
    assert enc.params == {"text": "a paper boat on a pond", "weighting": "comfy"}
    assert res.graph.inputs["k_sampler_inspire_5"]["positive"] == (enc.id, "positive")
    assert import_data(graph(1.3)).report.entries["3"].notes == ["strength=1.3 is not carried"]
