"""Review of newcomer41: node search by a ComfyUI name, extra_model_paths.yaml as ComfyUI reads it, and each
workflow's default output."""
from test_studio_batch import SHOT


def _nodes_found(capsys, *words):
    from app.cli import main
    assert main(["nodes", *words]) == 0
    return [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and line[0] != " "]


def test_nodes_search_finds_a_comfyui_node_by_the_words_of_its_name(capsys):
    """A ComfyUI name matched whole only: `kinograph nodes FILM` (ComfyUI-Frame-Interpolation's 'FILM VFI') showed
    the film-restoration nodes, `VFI` and `CLIPTextEncodeWithWeight` (Inspire's 'CLIPTextEncodeWithWeight
    //Inspire') nothing; each word alone found them before. Every word typed must be one of the name's, so 'image
    blur' still does not match WAS's 'Image Resize'."""
    assert _nodes_found(capsys, "FILM") == ["interpolate.flow"]
    assert _nodes_found(capsys, "VFI") == ["interpolate.flow", "interpolate.rife"]
    assert _nodes_found(capsys, "CLIPTextEncodeWithWeight") == ["encode.text"]
    assert "video.resize" not in _nodes_found(capsys, "image", "blur")
    assert _nodes_found(capsys, "ImageResize") == ["video.resize"]


# test_studio_batch's shot with its save node's path left out
DEFAULT_SAVE = SHOT.replace('    params: {path: "%s"}\n', "")


def test_two_workflows_in_one_folder_leaving_save_videos_path_write_their_own_files(tmp_path, capsys):
    """Both wrote out/video.mp4: the second run filed the first workflow's render away as 'the earlier take'
    (out/takes/video.001.mp4), and a batch of the two refused the second. A workflow file's writer left at its
    default now writes under the file's name; a take run again writes that name once more."""
    from app.cli import main
    for name in ("shot_a", "shot_b"):
        (tmp_path / f"{name}.yaml").write_text(DEFAULT_SAVE)
    assert main(["run", str(tmp_path / "shot_a.yaml")]) == 0
    assert main(["run", str(tmp_path / "shot_b.yaml")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shot_a.mp4", "shot_b.mp4"]
    assert main(["run", str(tmp_path / "out" / "shot_a.mp4")]) == 0        # its workflow, from the render
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shot_a.mp4", "shot_b.mp4"]
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "shot_a.yaml"), str(tmp_path / "shot_b.yaml")]) == 0
    assert "its own output path" not in capsys.readouterr().out
    # a path given, even the default's, is the user's own
    assert main(["run", str(tmp_path / "shot_a.yaml"), "--set", "save.path=out/video.mp4"]) == 0
    assert (tmp_path / "out" / "video.mp4").is_file()


def test_extra_model_paths_is_default_counts_as_comfyui_reads_it(tmp_path, monkeypatch):
    """ComfyUI's load_extra_path_config hands is_default to add_model_folder_path, which tests it as Python does
    (`if is_default:`): `is_default: 1` or a quoted "true" put the section first there, and Kinograph, taking only
    YAML's true, read the models/ folder's file of the same name instead."""
    from model_stub import stub
    from nodes.common.models_dirs import find_model
    comfy = tmp_path / "ComfyUI"
    (comfy / "models" / "loras").mkdir(parents=True)
    (tmp_path / "shared" / "loras").mkdir(parents=True)
    stub(comfy / "models" / "loras" / "x.safetensors")
    shared = stub(tmp_path / "shared" / "loras" / "x.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfy))
    for flag in ("1", '"true"'):
        (comfy / "extra_model_paths.yaml").write_text(
            f"shared:\n    base_path: {tmp_path / 'shared'}\n    is_default: {flag}\n    loras: loras\n")
        assert find_model("x.safetensors", "loras") == shared, flag


def test_load_video_reads_a_video_whose_name_holds_a_hash(tmp_path):
    """'take #2.mp4' (a video named as editors number takes) was refused before the run as 'an image sequence'
    (newcomer41's check on io.load_video): a file of exactly that name is the video, as io.load_frames' sequences
    count it."""
    import numpy as np
    from app.cli import main
    from graph_engine import Clip
    from nodes.io.video_write import write_video
    write_video(Clip.from_array(np.zeros((2, 16, 16, 3), np.uint8), fps=8), str(tmp_path / "take #2.mp4"))
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  plate:\n    type: io.load_video\n    params: {path: 'take #2.mp4'}\n"
                  "  save:\n    type: io.save_video\n    inputs: {video: plate.video}\n    params: {path: out/b.mp4}\n")
    assert main(["validate", str(wf)]) == 0
    assert main(["run", str(wf)]) == 0 and (tmp_path / "out" / "b.mp4").is_file()
