"""Three newcomers with the README (newcomer41): a ComfyUI user bringing their models folder and workflows, a
Deforum / Blender user after a camera move over a still, a Nuke compositor with plates. Each test is something one
of them met."""
import sys
from pathlib import Path

from app.comfyui import import_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from comfyui_workflows import ui_format  # noqa: E402


def test_comfyui_ggufs_triple_and_quadruple_text_encoder_loaders_import():
    """ComfyUI-GGUF's TripleCLIPLoaderGGUF (SD3 / SD 3.5 with a T5 GGUF) and QuadrupleCLIPLoaderGGUF (HiDream-I1
    with a Llama 3.1 GGUF) were 'no Kinograph equivalent', though their plain ComfyUI twins and the one- and
    two-file GGUF loaders import. ComfyUI-GGUF loads three files as SD3's encoders and four as HiDream's (its own
    `type` widget is absent), as TripleCLIPLoader and QuadrupleCLIPLoader do."""
    nodes = [(1, "TripleCLIPLoaderGGUF", ["clip_l.safetensors", "clip_g.safetensors", "t5-v1_1-xxl-encoder-Q8_0.gguf"],
              {}, ["CLIP"]),
             (2, "QuadrupleCLIPLoaderGGUF", ["clip_l_hidream.safetensors", "clip_g_hidream.safetensors",
                                             "t5-v1_1-xxl-encoder-Q8_0.gguf", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"],
              {}, ["CLIP"])]
    res = import_data(ui_format(nodes))
    entries = res.report.entries
    assert {entries[i].status for i in "12"} == {"exact"}, [(e.status, e.notes) for e in entries.values()]
    triple, quad = (res.graph.nodes[n] for n in ("triple_clip_loader_gguf_1", "quadruple_clip_loader_gguf_2"))
    assert (triple.type, quad.type) == ("load.text_encoder", "load.text_encoder")
    assert triple.params == {"name": "clip_l.safetensors", "name2": "clip_g.safetensors",
                             "name3": "t5-v1_1-xxl-encoder-Q8_0.gguf", "type": "sd3"}
    assert quad.params == {"name": "clip_l_hidream.safetensors", "name2": "clip_g_hidream.safetensors",
                           "name3": "t5-v1_1-xxl-encoder-Q8_0.gguf", "name4": "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
                           "type": "hidream"}


def _comfyui_models(tmp_path) -> Path:
    """A ComfyUI models/ folder whose checkpoint is a link to a drive that is not mounted, as a models folder
    kept on a second drive is."""
    models = tmp_path / "ComfyUI" / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "sd_xl_base_1.0.safetensors").symlink_to(tmp_path / "usb" / "sd_xl_base_1.0.safetensors")
    (models / "loras").symlink_to(tmp_path / "usb" / "loras")
    return models


def test_validate_says_a_model_is_a_link_to_nothing_not_that_it_is_missing(tmp_path, monkeypatch, capsys):
    """checkpoints/sd_xl_base_1.0.safetensors, a link to an unplugged drive: validate (and the run's check before
    it starts) said the file was not in the model folders and to put it there; the run's own loader named the link.
    The user sees it in the folder."""
    from app.cli import main
    models = _comfyui_models(tmp_path)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    wf = tmp_path / "shot.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  load: {type: load.model, params: {path: sd_xl_base_1.0.safetensors}}\n")
    assert main(["validate", str(wf)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"{models / 'checkpoints' / 'sd_xl_base_1.0.safetensors'} is a link to "
            f"{tmp_path / 'usb' / 'sd_xl_base_1.0.safetensors'}, which does not exist (a drive that is not mounted?)") \
        in err, err


def test_info_lists_a_model_link_that_leads_nowhere(tmp_path, capsys):
    """`kinograph info` on that folder listed the models it found and left the link out, so an unplugged drive
    looked like a model that had never been there; a kind's whole folder linked there (loras/) too."""
    from app.cli import main
    models = _comfyui_models(tmp_path)
    assert main(["info", str(models)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"{models / 'checkpoints' / 'sd_xl_base_1.0.safetensors'} is a link to "
            f"{tmp_path / 'usb' / 'sd_xl_base_1.0.safetensors'}, which does not exist (a drive that is not mounted?)") \
        in out, out
    assert f"{models / 'loras'} is a link to {tmp_path / 'usb' / 'loras'}, which does not exist" in out


def test_info_names_the_comfyui_folders_it_does_not_search(tmp_path, capsys):
    """ComfyUI's models/ holds folders of kinds Kinograph reads nothing from (t2i_adapter/, hypernetworks/,
    photomaker/ ...): `kinograph info` listed the files it found and said nothing of those, so a newcomer could
    not tell an unread folder from one it had missed."""
    from app.cli import main
    from model_stub import stub
    models = tmp_path / "ComfyUI" / "models"
    for sub in ("t2i_adapter", "hypernetworks", "checkpoints", "configs", "xlabs/loras"):
        (models / sub).mkdir(parents=True)
    stub(models / "t2i_adapter" / "t2iadapter_depth_sd15v2.pth")
    stub(models / "hypernetworks" / "a.pt")
    stub(models / "hypernetworks" / "b.safetensors")
    (models / "configs" / "v1-inference.yaml").write_text("model: {}\n")
    assert main(["info", str(models)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{models / 'hypernetworks'}/ holds 2 model files and is not searched: no Kinograph node reads " \
           f"that kind of model" in out, out
    assert f"{models / 't2i_adapter'}/ holds 1 model file and is not searched" in out
    assert f"{models / 'configs'}/" not in out and f"{models / 'xlabs'}/" not in out


def _nodes_found(capsys, *words):
    from app.cli import main
    assert main(["nodes", *words]) == 0
    return [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and line[0] != " "]


def test_nodes_search_matches_a_comfyui_name_whole_not_one_of_its_words(capsys):
    """`kinograph nodes image sequence` (a compositor's words) showed io.save_frames and video.resize, and `image
    blur` the same two: WAS's 'Image Save' and 'Image Resize' matched on their word 'image' alone. A ComfyUI node's
    name matches as a whole, spaces or not ('Image Resize', ImageResize)."""
    assert _nodes_found(capsys, "image", "blur") != ["io.save_frames", "video.resize"]
    assert "io.load_frames" in _nodes_found(capsys, "image", "sequence")
    assert _nodes_found(capsys, "Image", "Resize") == _nodes_found(capsys, "ImageResize") == ["video.resize"]
    assert _nodes_found(capsys, "KSampler") == ["generate.sample"]


def test_nodes_search_knows_the_words_for_a_camera_move_over_a_still(capsys):
    """A Deforum / Blender / editing user after a camera move over a photo types 'ken burns', 'push in' or '2.5d':
    `kinograph nodes` (and the editor's Tab search, which reads the same task words) matched no node."""
    for words in (("ken", "burns"), ("Ken", "Burns"), ("push", "in"), ("pull", "out")):
        assert {"motion.camera_path", "motion.apply_camera"} <= set(_nodes_found(capsys, *words)), words
    assert "motion.camera_path" in _nodes_found(capsys, "2.5d")
    from app.editor.fuzzy import expand
    assert expand("ken burns over a photo") == "camera over a photo"


def test_a_camera_keyframe_past_the_paths_last_frame_is_said_to_stop_short(capsys):
    """Four seconds at 24 fps is 96 frames, numbered 0 to 95: a Blender or Deforum user's end key '96:(1.4)' is never
    reached, and the push-in stopped at 1.396 without a word."""
    from graph_engine.context import Context
    from nodes.motion import camera_nodes
    from node_call import Nodes
    events = []
    cam = Nodes(camera_nodes).camera_path(Context("cam", emit=events.append), frames=96, zoom="0:(1.0), 96:(1.4)")
    fx = cam.intrinsics[:, 0]
    assert fx[-1] / fx[0] == __import__("pytest").approx(1.0 + 0.4 * 95 / 96)      # linear, as keyframes are
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert logs == ["zoom has a keyframe at frame 96, past the path's last frame (95: frames are counted from 0), so "
                    "the move stops short of it (zoom 1.396 at frame 95). Put the key at frame 95, or set frames to 97"]
    events.clear()
    Nodes(camera_nodes).camera_path(Context("cam", emit=events.append), frames=96, zoom="0:(1.0), 95:(1.4)")
    assert not [e for e in events if e["event"] == "log"]


def test_an_extra_model_paths_section_marked_is_default_is_searched_first(tmp_path, monkeypatch):
    """ComfyUI's extra_model_paths.yaml: `is_default: true` puts a section's folders before ComfyUI's own
    (folder_paths.add_model_folder_path inserts them at 0), so a name in both reads the shared drive's file there.
    Kinograph read the models/ folder's copy, another file than ComfyUI loads for the same workflow."""
    from model_stub import stub
    from nodes.common.models_dirs import find_model
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "shared" / "ckpts").mkdir(parents=True)
    own = stub(comfy / "models" / "checkpoints" / "x.safetensors")
    shared = stub(tmp_path / "shared" / "ckpts" / "x.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    yaml = f"shared:\n    base_path: {tmp_path / 'shared'}\n    checkpoints: ckpts\n"
    (comfy / "extra_model_paths.yaml").write_text(yaml)
    assert find_model("x.safetensors", "checkpoints") == own
    (comfy / "extra_model_paths.yaml").write_text(yaml + "    is_default: true\n")
    assert find_model("x.safetensors", "checkpoints") == shared


def test_load_video_given_an_image_sequence_names_load_frames(tmp_path, capsys):
    """A compositor gives io.load_video the plate as Nuke names it (plates/shot.####.exr): validate said ok, and the
    run failed on 'video file not found ... did you mean shot.1002.exr?'. The sequence is io.load_frames's."""
    from app.cli import main
    wf = tmp_path / "comp.yaml"
    (tmp_path / "plates").mkdir()
    for n in (1001, 1002):
        (tmp_path / "plates" / f"shot.{n}.exr").write_bytes(b"v/1\x01")
    for path in ("plates/shot.####.exr", "plates/shot.%04d.exr", "plates/*.exr"):
        wf.write_text("kinograph: 1\nnodes:\n"
                      f"  plate: {{type: io.load_video, params: {{path: '{path}'}}}}\n"
                      "  save: {type: io.save_video, inputs: {video: plate.video}, params: {path: out/comp.mov}}\n")
        assert main(["validate", str(wf)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert (f"node plate: path: {path.split('/')[-1]!r} names an image sequence; io.load_video reads one video "
                f"file: read the sequence with io.load_frames") in err, err


def test_info_on_one_downloaded_file_says_what_it_is_and_where_it_goes(tmp_path, capsys):
    """`kinograph info ~/Downloads/x.safetensors`, to learn whether Kinograph reads a file before moving it into
    ComfyUI's models folder: it was refused as 'not a folder'. It reads the file's header, as for a folder's files."""
    import torch
    from safetensors.torch import save_file
    from app.cli import main
    lora = tmp_path / "wan_lora.safetensors"      # a Wan LoRA in PEFT's names, as ComfyUI's trainers save them
    save_file({"diffusion_model.blocks.0.cross_attn.q.lora_A.weight": torch.zeros(4, 64),
               "diffusion_model.blocks.0.cross_attn.q.lora_B.weight": torch.zeros(64, 4)}, str(lora))
    assert main(["info", str(lora)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"{lora}: wan peft lora, fp32, loads yes; it goes in the loras/ sub-folder of a model folder "
            f"(ComfyUI's models/loras/)") in out, out


def test_nodes_search_knows_a_compositors_words_for_keying_tracking_and_letterboxing(capsys):
    """'chroma key' showed the Chroma image model first; 'matchmove' and 'camera solve' (Depth Anything 3's camera
    from footage) and 'letterbox' (padding to a frame) matched nothing."""
    assert _nodes_found(capsys, "chroma", "key") == ["video.matte"]
    for words in (("matchmove",), ("camera", "solve"), ("camera", "tracking")):
        assert _nodes_found(capsys, *words) == ["depth.da3_camera"], words
    assert _nodes_found(capsys, "letterbox") == _nodes_found(capsys, "pillarbox") == ["video.resize_pad"]


def test_extra_model_paths_keys_for_comfyuis_newer_folders_are_read(tmp_path, monkeypatch):
    """ComfyUI's folder_paths has geometry_estimation (Depth Anything 3, MoGe), frame_interpolation (RIFE, FILM) and
    detection, and a shared models store's extra_model_paths.yaml lists them: Kinograph reads those folders from
    ComfyUI's models/, but dropped the keys in the yaml, so the files there were 'not in the model folders'."""
    from model_stub import stub
    from nodes.common.models_dirs import find_model
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    store = tmp_path / "store"
    for sub in ("geo", "fi", "det"):
        (store / sub).mkdir(parents=True)
    moge = stub(store / "geo" / "moge_2_vitl_normal_fp16.safetensors")
    rife = stub(store / "fi" / "rife49.pth")
    (comfy / "extra_model_paths.yaml").write_text(
        f"store:\n    base_path: {store}\n    geometry_estimation: geo\n    frame_interpolation: fi\n"
        "    detection: det\n")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    assert find_model(moge.name, "depth") == moge
    assert find_model(rife.name, "rife") == rife


def test_info_says_an_extra_model_paths_windows_folder_names_nothing_here(tmp_path, capsys):
    """A ComfyUI folder from Windows (or WSL beside a Windows ComfyUI) whose extra_model_paths.yaml has
    `base_path: D:\\AI\\models`: `kinograph info` printed 'and, from .../extra_model_paths.yaml:' over nothing."""
    from app.cli import main
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "checkpoints").mkdir(parents=True)
    (comfy / "extra_model_paths.yaml").write_text("comfyui:\n    base_path: D:\\AI\\models\n    checkpoints: ckpts\n")
    assert main(["info", str(comfy)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"and, from {comfy / 'extra_model_paths.yaml'}: D:\\AI\\models (a Windows folder, which names nothing on "
            f"this computer: write it as this computer names it, such as /mnt/d/AI/models under WSL)") in out, out
