"""`kinograph import` as someone coming from ComfyUI meets it: its exit status said where they look (its --help and
the README; it was written only in a module's docstring, and `import x.json -o x.yaml && run x.yaml` stopped after the
workflow was written), and the pictures their ComfyUI input/ folder holds found."""
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]
BIREFNET = ROOT / "tests" / "data" / "comfyui" / "templates" / "utility_birefnet_remove_background.json"


def test_an_approximate_import_writes_the_workflow_and_exits_3_as_help_and_readme_say(tmp_path, capsys):
    out = tmp_path / "bg.yaml"
    assert main(["import", str(BIREFNET), "-o", str(out)]) == 3
    assert "type: mask.remove_background" in out.read_text()
    assert "1 mapped approximately" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["import", "--help"])
    assert e.value.code == 0
    said = " ".join(capsys.readouterr().out.split())
    assert ("exit status: 0 every node mapped exactly; 3 written, with nodes mapped approximately (the report says "
            "how); 2 not written") in said
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "exit 0, exit 3 with the workflow written, exit 2 with nothing written" in readme


def test_a_picture_in_comfyuis_input_folder_is_written_where_it_is(tmp_path, monkeypatch, capsys):
    """ComfyUI's LoadImage names a file of its input/ folder (the_lily_veil.png). Imported beside another folder, the
    workflow read it from there: `kinograph run` stopped (exit 2) and the user set each path by hand. The import
    writes where the file is, and says so."""
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "background_removal").mkdir(parents=True)
    (comfy / "input").mkdir()
    picture = comfy / "input" / "the_lily_veil.png"
    picture.write_bytes((ROOT / "resources" / "samples" / "chelsea.png").read_bytes())
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy / "models"))
    (tmp_path / "work").mkdir()
    out = tmp_path / "work" / "bg.yaml"
    assert main(["import", str(BIREFNET), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"path: {picture}" in out.read_text()
    assert (f"load_image_17: path: the_lily_veil.png is in ComfyUI's input folder: the workflow reads {picture}"
            in err)
    # A picture beside the workflow is the one read, as written.
    (tmp_path / "work" / "the_lily_veil.png").write_bytes(picture.read_bytes())
    assert main(["import", str(BIREFNET), "-o", str(out), "--force"]) == 3
    assert "path: the_lily_veil.png" in out.read_text()


def test_the_editor_opens_it_reading_the_picture_where_it_is(tmp_path, monkeypatch):
    """File > Open of the same template: the LoadImage node read the_lily_veil.png beside the ComfyUI file."""
    from app.editor.comfyui_open import read_comfyui
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / "input").mkdir()
    picture = comfy / "input" / "the_lily_veil.png"
    picture.write_bytes((ROOT / "resources" / "samples" / "chelsea.png").read_bytes())
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy / "models"))
    (tmp_path / "dl").mkdir()
    template = tmp_path / "dl" / BIREFNET.name
    template.write_bytes(BIREFNET.read_bytes())
    read = read_comfyui(template, None)
    assert read.graph.nodes["load_image_17"].params["path"] == str(picture)
    assert (f"load_image_17: path: the_lily_veil.png is in ComfyUI's input folder: the workflow reads {picture}"
            in read.report.remarks)


GAN_UPSCALER = ROOT / "tests" / "data" / "comfyui" / "templates" / "utility-gan_upscaler.json"
ESRGAN_URL = "https://huggingface.co/Comfy-Org/Real-ESRGAN_repackaged/resolve/main/RealESRGAN_x4plus.safetensors"


def test_a_missing_model_file_is_said_with_the_download_the_comfyui_workflow_gives(tmp_path, monkeypatch, capsys):
    """ComfyUI's templates name, on each loader (properties.models), where its file is downloaded from, and ComfyUI
    offers it; the import said only that RealESRGAN_x4plus.safetensors was not in the model folders."""
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    assert main(["import", str(GAN_UPSCALER), "-o", str(tmp_path / "up.yaml")]) in (0, 3)
    line = next(x for x in capsys.readouterr().err.splitlines() if "RealESRGAN_x4plus.safetensors' is not" in x)
    assert line.endswith(f"; the ComfyUI workflow gives its download: {ESRGAN_URL}")
    # The editor's File > Open says the same in its report.
    from app.editor.comfyui_open import read_comfyui
    read = read_comfyui(GAN_UPSCALER, None)
    assert any(r.endswith(f"download: {ESRGAN_URL}") for r in read.report.remarks)


def test_download_links_are_read_from_subgraphs_by_file_name_and_only_plain_https_addresses():
    from app.comfyui.model_links import model_links
    models = [{"name": "vae/wan_2.1_VAE.safetensors", "url": "https://example.org/wan_2.1_vae.safetensors"},
              {"name": "a.safetensors", "url": "http://example.org/a.safetensors"},
              {"name": "b.safetensors", "url": "https://example.org/\x1b[2Jb.safetensors"},
              {"name": "c.safetensors"}]
    data = {"nodes": [{"type": "Note", "properties": None}],
            "definitions": {"subgraphs": [{"nodes": [{"type": "VAELoader", "properties": {"models": models}}]}]}}
    assert model_links(data) == {"wan_2.1_vae.safetensors": "https://example.org/wan_2.1_vae.safetensors"}
    assert model_links({"nodes": 3, "definitions": []}) == {} == model_links([1, 2])


def test_a_comfyui_api_node_is_said_to_be_a_paid_online_service_not_a_node_kinograph_lacks(capsys):
    """Half of ComfyUI's templates folder (api_*.json) is built on its API nodes (Kling, Veo, Luma ...), which run
    nothing locally; their import said 'no Kinograph equivalent', as of a node Kinograph might map."""
    from app.comfyui import import_data
    from app.comfyui.api_nodes import API_NODE, is_api_node
    prompt = {"1": {"class_type": "Kling4TextToVideoNode", "inputs": {"prompt": "a fairy"}},
              "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "video/k"}}}
    text = import_data(prompt).report.text()
    assert f"Kling4TextToVideoNode #1 -> kling4_text_to_video_node_1: {API_NODE}; a placeholder marks its place" in text
    assert main(["nodes", "Wan2TextToVideoApi"]) == 0
    assert capsys.readouterr().err.strip().endswith(f"a ComfyUI node: {API_NODE}")
    assert all(map(is_api_node, ("GeminiNodeV3", "FluxProUltraImageNode", "LtxApi25TextToVideo", "TripoRigNode")))
    # Nodes that run a model on the machine, or do local work, are not taken for them.
    assert not any(map(is_api_node, ("TripoSplatConditioning", "FluxGuidance", "WanImageToVideo", "BatchMasksNode",
                                     "Flux2Scheduler", "KSampler")))


def test_a_download_address_whose_host_is_not_the_name_read_first_is_not_given():
    """https://huggingface.co@files.example/x reads as Hugging Face and downloads from files.example (the part
    before @ is a user name): a stranger's workflow could pass off its own server as Hugging Face in the report."""
    from urllib.parse import urlsplit
    from app.comfyui.model_links import model_links
    # (a backslash before the @: browsers read it as '/', Python's urlsplit as part of a user name)
    tricks = ["https://huggingface.co@files.example/a.safetensors", "https://huggingface.co:x@files.example/b",
              "https://huggingface.co\\@files.example/c"]
    assert [urlsplit(u).hostname for u in tricks] == ["files.example"] * 3
    for url in tricks:
        assert model_links({"nodes": [{"properties": {"models": [{"name": "a.safetensors", "url": url}]}}]}) == {}
    plain = "https://huggingface.co/Comfy-Org/x/resolve/main/split_files/vae/a.safetensors?download=true#@x"
    assert model_links({"nodes": [{"properties": {"models": [{"name": "a.safetensors", "url": plain}]}}]}) == {
        "a.safetensors": plain}


def test_a_custom_packs_node_named_like_an_api_node_is_said_to_come_from_its_pack():
    """Names were the only sign: ControlAltAI's FluxResolutionNode (a size calculator that runs locally) was called
    one of ComfyUI's paid API nodes. ComfyUI records the pack a node came from (cnr_id); its API nodes are
    comfy-core's."""
    from app.comfyui import import_data
    nodes = [{"id": 1, "type": "FluxResolutionNode", "properties": {"cnr_id": "controlaltai-nodes", "ver": "1.1.4"},
              "inputs": [], "outputs": [], "widgets_values": []},
             {"id": 2, "type": "Kling4TextToVideoNode", "properties": {"cnr_id": "comfy-core", "ver": "0.3.66"},
              "inputs": [], "outputs": [], "widgets_values": []}]
    text = import_data({"nodes": nodes, "links": []}).report.text()
    assert ("FluxResolutionNode #1 -> flux_resolution_node_1: no Kinograph equivalent (from the custom node pack "
            "controlaltai-nodes 1.1.4)") in text
    assert "Kling4TextToVideoNode #2 -> kling4_text_to_video_node_2: one of ComfyUI's API nodes" in text


def test_a_workflow_of_api_nodes_only_is_said_to_be_built_on_online_services_without_partial(tmp_path, capsys):
    """`kinograph import api_kling.json` exited 2 suggesting --partial, which writes a workflow of placeholders where
    every node that makes something is a paid online service: the refusal says the workflow is built on online
    services Kinograph does not call. A workflow with another unmapped node still gets the --partial hint."""
    import json
    kling = {"1": {"class_type": "Kling4TextToVideoNode", "inputs": {"prompt": "a fairy"}},
             "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "video/k"}}}
    path = tmp_path / "api_kling.json"
    path.write_text(json.dumps(kling))
    assert main(["import", str(path), "-o", str(tmp_path / "k.yaml")]) == 2
    said = capsys.readouterr().err.splitlines()[-1]
    assert said == ("not written: Kling4TextToVideoNode #1 is one of ComfyUI's API nodes: the workflow is built on "
                    "paid online services that Kinograph does not call (it runs models on this machine only)")
    assert not (tmp_path / "k.yaml").exists()
    kling["3"] = {"class_type": "SomeUnknownNode", "inputs": {"video": ["1", 0]}}
    kling["4"] = {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "video/u"}}
    path.write_text(json.dumps(kling))
    assert main(["import", str(path), "-o", str(tmp_path / "k.yaml")]) == 2
    assert "--partial writes the workflow" in capsys.readouterr().err.splitlines()[-1]
