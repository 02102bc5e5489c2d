"""Review of newcomer41: node search by a ComfyUI name, extra_model_paths.yaml as ComfyUI reads it, and each
workflow's default output."""


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
