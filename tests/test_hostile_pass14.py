"""Hostile inputs, pass 14: what landed last (block-scaled NVFP4 / MXFP8 weights, meshes from voxel grids, CLIP's
77-token windows, prompt weights). Each case was a traceback, a hang, a silent NaN or a memory bomb before its fix;
each must now be a NodeError naming the thing and what to do."""
import sys
from pathlib import Path

import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _file(tmp_path, state, name="model.safetensors"):
    from safetensors.torch import save_file
    path = tmp_path / name
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp8"])
@pytest.mark.parametrize("empty", [(48, 0), (0, 48, 32)])
def test_a_block_scaled_weight_of_no_values_is_named(tmp_path, fmt, empty):
    """A layer tagged NVFP4 / MXFP8 whose weight holds no values (rows of no columns, a bank of no experts; no byte
    in the file) beside an empty scale: a ZeroDivisionError (rows of 0 columns) or torch's 'stack expects a non-empty
    TensorList' (no experts) traceback out of every loader of the file."""
    import comfy_blockquant as ref
    from nodes.generate.weights import load_weights
    state = ref.quantise_layer("l", torch.randn(48, 64), fmt)
    dtype = state["l.weight"].dtype
    state["l.weight"] = torch.zeros(empty, dtype=dtype)
    state["l.weight_scale"] = state["l.weight_scale"].reshape(-1)[:0].contiguous()
    with pytest.raises(NodeError, match=f"model.safetensors: l is tagged {fmt}") as e:
        load_weights(_file(tmp_path, state))
    assert "holds no values" in str(e.value) and str(list(empty)) in str(e.value)


@pytest.mark.parametrize("algorithm", ["surface net", "basic"])
def test_a_noisy_voxel_grid_is_named_before_it_is_meshed(algorithm):
    """A voxel grid of noise (a damaged ShapeVAE, a latent sampled a step): nearly every cell crosses the threshold.
    mesh.from_voxels's surface net took about 1.5 KB a crossed cell before a vertex came out (1.46 GB at 100^3, 25 GB
    at decode.hunyuan3d's default resolution 256, the machine's memory at 512), the basic mesh 4 vertices a shown face;
    now the crossed cells / shown faces are counted first and a grid past MAX_CELLS is named. A smooth shape meshes
    as before (test_mesh_voxels)."""
    import numpy as np

    from graph_engine.context import Context
    from nodes.common.mesh import Voxel
    from nodes.mesh import nodes
    from nodes.mesh.voxels import MAX_CELLS
    n = 170                      # 4.9 million cells, nearly all crossed; 7.4 million faces shown
    assert n ** 3 > MAX_CELLS
    noise = (np.random.default_rng(0).random((n, n, n)) > 0.5).astype(np.float32)
    with pytest.raises(NodeError, match="grid is noise rather than a shape") as e:
        nodes.from_voxels(Context("m"), Voxel(noise), algorithm=algorithm, threshold=0.6)
    assert ("passes through 4,8" if algorithm == "surface net" else "voxel faces") in str(e.value)


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    from diffusers import StableDiffusionPipeline
    from test_comfy_long_prompts import _handle
    from tiny_models import build_sd15_single_file
    return _handle(build_sd15_single_file, tmp_path_factory.mktemp("sd15"), "sd", StableDiffusionPipeline)


def _windows(k: int) -> str:
    """A prompt of k 77-token windows for the tiny encoders (a token a letter)."""
    return "x" * (75 * (k - 1) + 10)


def test_prompts_of_coprime_window_counts_are_named_not_repeated_to_terabytes(sd15):
    """Conditionings of different window counts are repeated to their least common multiple (ComfyUI's
    CONDCrossAttn.concat): a 5 KB schedule of prompts of 2, 3, 5, ..., 19 windows asked the allocator for 191 GB with
    the tiny encoder's 64 channels (2.3 TB at SD's 768: a RuntimeError traceback), and 2, 3, 5, 7 windows made every
    keyframe 210 windows long, 30 times the longest, silently. ComfyUI itself concatenates only up to 4 times the
    shorter (can_concat). Now past 8 times the longest the prompts are named with how to fix them; 2 and 3 windows
    still sample together (test_comfy_long_prompts)."""
    from nodes.generate.clip_windows import same_length
    from nodes.generate.text import encode_prompt
    schedule = ", ".join(f"{i * 10}: ({_windows(k)})" for i, k in enumerate((2, 3, 5, 7, 11, 13, 17, 19)))
    with pytest.raises(NodeError, match="2, 3, 5, 7, 11, 13, 17 and 19 windows") as e:
        encode_prompt(sd15, schedule)
    assert "divide one another" in str(e.value)
    with pytest.raises(NodeError, match="210 windows, 30 times the longest"):
        encode_prompt(sd15, ", ".join(f"{i * 10}: ({_windows(k)})" for i, k in enumerate((2, 3, 5, 7))))
    assert encode_prompt(sd15, f"0: ({_windows(2)}), 10: ({_windows(3)})").embeds.shape[1] == 6 * 77
    long, other = (encode_prompt(sd15, _windows(k)).embeds for k in (11, 13))
    with pytest.raises(NodeError, match="11 and 13 windows"):
        same_length([long, other])


@pytest.mark.parametrize("weighting", ["comfy", "kinograph"])
def test_brackets_nested_thousands_deep_are_named(sd15, weighting):
    """ComfyUI's weight parser (prompts.comfy_parts, which ACE-Step v1's lyrics and tags, Anima's prompts and comfy
    weighting read) recursed a level a bracket: 3,000 nested were a RecursionError traceback; Kinograph's re-weighed
    every run inside at each closing bracket (20,000 nested took 22 s). Past MAX_DEPTH they are named; 100 deep
    still reads."""
    from nodes.generate.ace_step1 import lyric_ids
    from nodes.generate.prompts import MAX_DEPTH
    from nodes.generate.text import encode_prompt
    for deep in ("(" * 3000 + "fox" + ")" * 3000, "(a" * 20000 + ")" * 20000):
        with pytest.raises(NodeError, match=f"nests brackets more than {MAX_DEPTH} deep"):
            encode_prompt(sd15, deep, weighting=weighting)
    with pytest.raises(NodeError, match="nests brackets"):
        lyric_ids(None, "[verse]\n" + "(" * 3000 + "la" + ")" * 3000)
    fine = "a " + "(" * MAX_DEPTH + "fox" + ")" * MAX_DEPTH
    assert torch.isfinite(encode_prompt(sd15, fine, weighting=weighting).embeds).all()


@pytest.mark.parametrize("prompt,weighting", [("a (fox:1e400)", "comfy"), ("a (fox:nan)", "comfy"),
                                              ("a (fox:" + "9" * 400 + ")", "kinograph"),
                                              ("a ((fox:" + "9" * 200 + "):" + "9" * 200 + ")", "kinograph")])
def test_a_weight_that_is_no_number_is_named_not_an_infinite_conditioning(sd15, prompt, weighting):
    """A weight of 1e400 or nan (ComfyUI's float() reads both), 400 digits, or nested weights whose product
    overflows: the conditioning came out infinite or NaN without a word. Now the part and its weight are named."""
    from nodes.generate.text import encode_prompt
    with pytest.raises(NodeError, match="'fox' by (inf|nan), which is no weight"):
        encode_prompt(sd15, prompt, weighting=weighting)


@pytest.mark.parametrize("weighting", ["comfy", "kinograph"])
def test_a_prompt_of_thousands_of_windows_is_named(sd15, weighting):
    """A 200 KB prompt of weighted words read in 1,600 77-token windows (8,000 for a megabyte), every one encoded at
    once (gigabytes of CLIP's per-layer states at SD's width) and attended to at every step; Kinograph's weighting
    took 18 s (53 s a megabyte) before that, scanning every span for every token and cutting the token list at each
    window. Past MAX_WINDOWS the prompt is named; 64 windows still read."""
    from nodes.generate.clip_windows import MAX_WINDOWS
    from nodes.generate.text import encode_prompt
    prompt = ("a fox, (in the snow:1.2) " * 8000)[:200_000]
    with pytest.raises(NodeError, match=f"200,000 characters.*reads 1,[56]\\d\\d windows.*at most {MAX_WINDOWS}"):
        encode_prompt(sd15, prompt, weighting=weighting)
    assert encode_prompt(sd15, _windows(MAX_WINDOWS), weighting=weighting).embeds.shape[1] == MAX_WINDOWS * 77


def test_token_weights_by_bisection_are_the_scans():
    """prompts.token_weights finds each token's span by bisection; the linear scan it replaces (each token against
    every span, the first holding its start) is written out here and gives the same weights for spans as
    clean_and_weights makes them (in order, apart) and tokens of any offsets, specials (None, empty) included."""
    import random

    from nodes.generate.prompts import clean_and_weights, token_weights

    def scan(offsets, spans):
        out = []
        for off in offsets:
            w = 1.0
            if off is not None and off[1] > off[0]:
                for a, b, sw in spans:
                    if a <= off[0] < b:
                        w = sw
                        break
            out.append(w)
        return out
    rng = random.Random(0)
    words = ["fox", "(snow:1.3)", "[mist]", "((hill))", "a", "(b:0.5)", ",", " "]
    for _ in range(50):
        clean, spans = clean_and_weights(" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))))
        offsets = [None, (0, 0)] + [tuple(sorted((rng.randint(0, len(clean)), rng.randint(0, len(clean)))))
                                    for _ in range(60)]
        assert token_weights(offsets, spans) == scan(offsets, spans)


@pytest.fixture(scope="module")
def ace1(tmp_path_factory):
    import test_ace_step1
    from nodes.generate import ace_step1 as ace
    from nodes.generate.model_manager import ModelManager
    tiny = test_ace_step1.tiny.__wrapped__(tmp_path_factory)
    return ace.load(ModelManager(), str(tiny[0]), "cpu")


@pytest.mark.parametrize("which", ["lyrics", "tags"])
def test_ace_step_v1_lyrics_or_tags_of_a_book_are_named(ace1, which):
    """ACE-Step v1 read its lyrics and tags whole (ComfyUI's tokenizers take 99,999,999 tokens): 20 KB of lyrics asked
    the allocator for 30 GB of attention with the tiny model (a RuntimeError traceback; a little less fills the
    machine), 60 KB of tags 29 GB; the tags' ids were gathered by copying the list at each weighted part. Now both
    are counted as they are read and refused past MAX_TOKENS, before the model runs; a song still sings
    (test_ace_step1)."""
    from nodes.generate import ace_step1 as ace
    from test_ace_step1 import LYRICS, SECONDS, TAGS
    song = ace.Song(TAGS, ("la la\n" * 20000)[:60000]) if which == "lyrics" else \
        ace.Song(("(guitar:1.1), " * 5000)[:60000], LYRICS)
    with pytest.raises(NodeError, match=f"the {which} make more than {ace.MAX_TOKENS:,} tokens"):
        ace.generate(ace1, song, SECONDS, 1, 1.0, "euler", "simple", 5.0, 7)


@pytest.mark.parametrize("size,said", [((8192, 4320), "set decimation to 2 or more"),
                                       ((13000, 13000), "set decimation to 4 or more"),
                                       ((40000, 40000), r"make the picture smaller \(video.resize\)")])
def test_a_point_map_too_large_to_mesh_is_named_before_moge_runs(size, said):
    """mesh.from_points made a vertex of every pixel: triangulating takes about 160 bytes a pixel (27 GB for a
    13,000-pixel-square picture, whose 7.4 GB mesh no .glb can hold: its sizes are 32-bit). Past 4096 x 4096
    vertices the geometry is named, from the picture's size, before MoGe makes the frame's maps, with the decimation
    that fits (the node's most is 8)."""
    from types import SimpleNamespace

    from graph_engine.context import Context
    from nodes.depth.moge import Geometry
    from nodes.mesh import nodes

    class Unmade(Geometry):
        def __init__(self, width, height):
            self.video, self.length = SimpleNamespace(width=width, height=height), 1

        def frames(self, a, b):
            raise AssertionError("MoGe ran on a picture too large to mesh")
    with pytest.raises(NodeError, match=f"is {size[0]} x {size[1]} points.*at most 16,777,216 are meshed.*{said}"):
        nodes.from_points(Context("m"), Unmade(*size), frame=0, decimation=1, discontinuity_threshold=0.04,
                          texture=True)


@pytest.mark.parametrize("name,said", [("a" * 1_000_000 + ".png", "a name of 1,000,004 bytes"),
                                       ("/" + "/".join(["d" * 200] * 30) + "/x.png", "is 6,036 bytes long as a path")])
def test_a_footage_path_no_file_system_holds_is_named_in_a_line(tmp_path, capsys, name, said):
    """A picture's path of a megabyte (or of 6 KB, folder after folder) was said to be 'not there', the whole path
    echoed twice: a 2 MB message, and no word that no file can have such a name. Now its length is named, past the
    file system's limits, the path shown by its start."""
    from app.cli import main
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  img:\n    type: io.load_image\n    params: {path: '" + name + "'}\n"
                  "  save:\n    type: io.save_image\n    inputs: {image: img.image}\n    params: {path: out/x.png}\n")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert said in err and "no file can be there" in err and len(err) < 1000, err[:2000]
