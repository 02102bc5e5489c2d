"""ComfyUI workflows in: both JSON formats, the files that carry them, the report and exit codes.

Real public workflows are in tests/data/comfyui (README there names their sources and licences);
the small graphs built here exercise one UI-format rule each."""
import copy
import json
import sys
from pathlib import Path

import pytest

from app.comfyui import ComfyImportError, import_data, import_workflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "tests" / "data" / "comfyui"


def _load(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _by_type(graph, type_name):
    return [n for n in graph.nodes.values() if n.type == type_name]


def _cli(*args):
    from app.cli import main
    return main(["import", *map(str, args)])


# -- the corpus ------------------------------------------------------------------------------------------
# Corpus files that do not import, and the ComfyUI nodes that block each: nodes with no Kinograph
# equivalent yet, reported as such. Any change either way (a regression, or a file that now imports)
# must show here.
BLOCKED = {
    "templates_mjm_looped_restyler.json": {"GeminiImageNode", "GeminiNodeV3"},
}


def test_public_corpus_imports_and_validates(capsys):
    from comfyui_corpus import SOURCES, check, corpus_files
    results = {}
    for source in SOURCES:
        if source == "community":       # test_comfyui_community's table
            continue
        files = corpus_files(source)
        mine = {f.name: check(f) for f in files}
        for name, (good, how) in mine.items():
            print(f"{'ok  ' if good else 'FAIL'} {name}: {how}")
        print(f"{sum(good for good, _ in mine.values())} of {len(files)} {source} workflows import and validate")
        results.update(mine)
    assert len(corpus_files("ComfyUI_examples")) >= 18 and len(corpus_files("ComfyUI templates")) >= 33
    blocked = {name: set(how.split("not mapped: ")[1].split(", ")) if "not mapped: " in how else {how}
               for name, (good, how) in results.items() if not good}
    assert blocked == BLOCKED


def test_every_family_is_in_the_corpus():
    from app.comfyui.mapping import RULES
    names = {f.name for f in DATA.glob("*.json")}
    for prefix in ("wan_", "wan22_", "ltxv_", "hunyuan_", "svd_"):
        assert any(n.startswith(prefix) for n in names), prefix
    readme = (DATA / "README.md").read_text()
    for n in names | {f.name for f in (DATA / "templates").glob("*.json")}:
        assert f"`{n}`" in readme, f"{n} has no source and licence line in tests/data/comfyui/README.md"
    assert "ADE_AnimateDiffLoaderGen1" in RULES


# -- UI format rules -------------------------------------------------------------------------------------
def test_positional_widgets_with_and_without_control_after_generate():
    wf = _load("wan_t2v.json")
    sample = _by_type(import_data(wf).graph, "generate.sample")[0]
    assert sample.params == {"seed": 878361741413693, "steps": 30, "cfg": 6, "sampler": "uni_pc",
                             "scheduler": "simple", "denoise": 1}
    old = copy.deepcopy(wf)                         # files written before "control after generate" existed
    ks = next(n for n in old["nodes"] if n["type"] == "KSampler")
    ks["widgets_values"] = [5, 12, 4.5, "euler", "karras", 0.8]
    sample = _by_type(import_data(old).graph, "generate.sample")[0]
    # ComfyUI's 12 steps at denoise 0.8 are the last 12 of 15 (test_denoise_runs_comfyuis_steps)
    assert sample.params == {"seed": 5, "steps": 15, "cfg": 4.5, "sampler": "euler", "scheduler": "karras",
                             "denoise": 0.8}


def test_early_2023_randomize_toggle_after_the_seed_is_skipped():
    """ComfyUI's first frontends stored "control after generate" as a true/false toggle. Read as the next
    widget, a KSampler's [seed, true, 20, 8, "euler", "normal", 1] became steps=True, cfg=20, sampler 8."""
    wf = _load("wan_t2v.json")
    ks = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    for toggle in (True, False):
        ks["widgets_values"] = [617281412569369, toggle, 20, 8, "euler", "karras", 1]
        res = import_data(wf)
        assert _by_type(res.graph, "generate.sample")[0].params == {
            "seed": 617281412569369, "steps": 20, "cfg": 8, "sampler": "euler", "scheduler": "karras", "denoise": 1}
        assert res.report.entries[str(ks["id"])].status == "exact"


@pytest.mark.parametrize("steps,denoise,total", [(4, 0.3, 13), (20, 0.5, 40), (30, 0.75, 40), (1, 0.5, 2)])
def test_denoise_runs_comfyuis_steps(steps, denoise, total):
    """ComfyUI's KSampler runs all `steps` over the tail of a schedule of int(steps / denoise) steps; Kinograph's
    sample runs the last round(steps * denoise) of `steps`. Imported as they stood, steps 4 at denoise 0.3 (a
    distilled model's video-to-video) ran one step, and steps 1 at denoise 0.5 redrew the input from pure noise."""
    import torch
    from nodes.generate.adapters import get_adapter
    from nodes.generate.sampling import make_sigmas
    wf = _load("wan_t2v.json")
    ks = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    ks["widgets_values"] = [5, "fixed", steps, 6, "euler", "simple", denoise]
    res = import_data(wf)
    assert res.report.entries[str(ks["id"])].status == "exact"
    p = _by_type(res.graph, "generate.sample")[0].params
    wan, shape = get_adapter("wan"), (1, 16, 3, 8, 8)
    ran = make_sigmas(wan, None, p["steps"], p["scheduler"], p["denoise"], shape, shift=5.0)
    comfy = make_sigmas(wan, None, total, "simple", 1.0, shape, shift=5.0)[-(steps + 1):]
    assert p["steps"] == total and len(ran) == steps + 1 and torch.equal(ran, comfy)


def test_widgets_a_file_stops_short_of_are_named_with_the_default_used():
    """widgets_values ending early (an older save, a hand-edited file): ComfyUI fills in its own defaults, which
    Kinograph's need not equal (its cfg default is not ComfyUI's 8), so each missing setting is named."""
    wf = _load("wan_t2v.json")
    ks = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    ks["widgets_values"] = [5, "fixed", 12]
    res = import_data(wf)
    entry = res.report.entries[str(ks["id"])]
    assert entry.status == "approx"
    notes = "; ".join(entry.notes)
    sample = _by_type(res.graph, "generate.sample")[0]
    assert sample.params["seed"] == 5 and sample.params["steps"] == 12
    for comfy, param in (("cfg", "cfg"), ("sampler_name", "sampler"), ("scheduler", "scheduler"),
                         ("denoise", "denoise")):
        assert f"{comfy} is not in the file (its widgets_values ends early): Kinograph's default {param}=" in notes
    assert "steps is not" not in notes and "seed is not" not in notes
    ks["widgets_values"] = [5, "fixed", 12, 6, None, "simple", 1]      # a null where the sampler's name belongs
    assert import_data(wf).report.entries[str(ks["id"])].notes == [
        "sampler_name is empty (null) in the file: Kinograph's default sampler='euler' is used; check it"]


def test_wan22_two_experts_become_two_samplers_sharing_a_schedule():
    g = import_data(_load("wan22_t2v_14B.json")).graph
    first, second = sorted(_by_type(g, "generate.sample"), key=lambda n: n.params["start_step"])
    assert first.params["end_step"] == 10 and first.params["leftover_noise"] and first.params["add_noise"]
    assert second.params["start_step"] == 10 and not second.params["add_noise"]
    assert not second.params["leftover_noise"] and second.params["end_step"] == 10000
    assert g.inputs[second.id]["latent"] == (first.id, "latent")
    shifts = {g.inputs[s.id]["model"][0] for s in (first, second)}
    assert {g.nodes[s].type for s in shifts} == {"model.flow_shift"} and len(shifts) == 2
    loaders = {g.nodes[g.inputs[s]["model"][0]].params["name"] for s in shifts}
    assert loaders == {"wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                       "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"}


def test_levels_from_basicschedulers_plain_wan_model_are_comfyuis_shift_8(monkeypatch):
    # ComfyUI takes the levels from BasicScheduler's model: a plain Wan model is shifted by its own 8
    # (comfy/supported_models.py WAN21_T2V), whatever the guider's ModelSamplingSD3 says; Kinograph's default for
    # Wan is diffusers' 3, so taking the plain model alone sampled other levels than ComfyUI's.
    from app.comfyui.convert import Converter
    monkeypatch.setattr(Converter, "_loads_family", lambda self, out: "wan")
    g = import_data({
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 5.0}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                     "type": "wan"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "a fox"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": ""}},
        "6": {"class_type": "CFGGuider", "inputs": {"model": ["2", 0], "positive": ["4", 0], "negative": ["5", 0],
                                                    "cfg": 5.0}},
        "7": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": 20,
                                                         "denoise": 1.0}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "9": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1}},
        "10": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 33,
                                                                   "batch_size": 1}},
        "11": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["9", 0], "guider": ["6", 0],
                                                                 "sampler": ["8", 0], "sigmas": ["7", 0],
                                                                 "latent_image": ["10", 0]}}}).graph
    sample = _by_type(g, "generate.sample")[0]
    shift = g.nodes[g.inputs[sample.id]["model"][0]]
    assert shift.type == "model.flow_shift" and shift.params["shift"] == 8.0
    assert g.nodes[g.inputs[shift.id]["model"][0]].type == "load.diffusion_model"


def test_vhs_dict_widgets():
    g = import_data(_load("vhs_load_combine.json")).graph
    load = _by_type(g, "io.load_video")[0]
    assert load.params == {"path": "leader.webm", "fps": 8, "count": 16, "start": 1, "every_nth": 1, "width": 304}
    save = _by_type(g, "io.save_video")[0]
    assert save.params == {"fps": 8, "crf": 20, "codec": "vp9", "path": "out/AnimateDiff.webm"}


def test_vhs_path_loader_and_video_info_as_vhs_tests_use_them():
    """VideoHelperSuite's own test workflows: VHS_LoadVideoPath (a typed path) and VHS_VideoInfoLoaded (whose fps
    sets the combine's frame rate) were not mapped, so the two-node load-and-save did not import."""
    res = import_data(_load("vhs_converted_input.json"))
    assert res.report.summary() == "3 mapped exactly"
    load, = _by_type(res.graph, "io.load_video")
    assert load.params == {"path": "input/leader.webm", "start": 0, "count": 64, "every_nth": 1, "fps": 0}
    save, = _by_type(res.graph, "io.save_video")
    # the loaded clip's own rate: io.save_video's default keeps it
    assert "fps" not in save.params and res.graph.inputs[save.id]["video"] == (load.id, "video")


def test_vhs_vae_inputs_make_latents_and_decode_them():
    """With a VAE on VHS's loader it outputs latents, and its combine decodes them: without the VAE the frames
    skipped the encode-decode round trip the file asks for, and the report said mapped exactly."""
    g = import_data(_load("vhs_old_vae_conversion.json")).graph
    vae, = _by_type(g, "load.vae")
    enc, = _by_type(g, "vae.encode")
    dec, = _by_type(g, "vae.decode")
    load, = _by_type(g, "io.load_video")
    save, = _by_type(g, "io.save_video")
    assert g.inputs[enc.id] == {"video": (load.id, "video"), "vae": (vae.id, "vae")}
    assert g.inputs[dec.id] == {"latent": (enc.id, "latent"), "vae": (vae.id, "vae")}
    assert g.inputs[save.id] == {"video": (dec.id, "video")}


def test_vhs_batch_manager_size_presets_pingpong_and_audio():
    res = import_data(_load("vhs_batch4x4.json"))
    assert res.report.entries["18"].status == "ui"          # VHS_BatchManager: Kinograph streams clips itself
    loads = {n.id: n.params for n in _by_type(res.graph, "io.load_video")}
    assert loads["vhs_load_video_path_10"]["width"] == 512 and "height" not in loads["vhs_load_video_path_10"]
    assert loads["vhs_load_video_path_14"]["width"] == 384 and "height" not in loads["vhs_load_video_path_14"]
    assert not any("force_size" in n for e in res.report.entries.values() for n in e.notes)
    assert "its audio input is not carried" in "; ".join(res.report.entries["11"].notes)
    nth = import_data({"1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "a.mp4"}},
                       "2": {"class_type": "VHS_SelectEveryNthImage",
                             "inputs": {"images": ["1", 0], "select_every_nth": 3, "skip_first_images": 1}},
                       "3": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["2", 0], "frame_rate": 8,
                                                                          "filename_prefix": "n"}}})
    (load,), (every,) = (_by_type(nth.graph, t) for t in ("io.load_video", "video.every_nth"))
    assert every.params == {"n": 3, "offset": 1} and nth.graph.inputs[every.id]["video"] == (load.id, "video")
    assert nth.report.entries["2"].status == "exact"
    wf = _load("vhs_load_combine.json")
    combine = next(n for n in wf["nodes"] if n["type"] == "VHS_VideoCombine")
    combine["widgets_values"]["pingpong"] = True
    res = import_data(wf)
    g = res.graph
    pp, = _by_type(g, "video.pingpong")
    load, = _by_type(g, "io.load_video")
    save, = _by_type(g, "io.save_video")
    assert g.inputs[pp.id]["video"] == (load.id, "video") and g.inputs[save.id]["video"] == (pp.id, "video")
    assert res.report.entries[str(combine["id"])].status == "exact"


UPSCALE_API = {
    "1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "in.mp4", "force_rate": 0, "force_size": "Disabled",
                                                    "custom_width": 512, "custom_height": 512, "frame_load_cap": 0,
                                                    "skip_first_frames": 0, "select_every_nth": 1}},
    "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
    "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
    "4": {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "area", "scale_by": 0.5, "image": ["3", 0]}},
    "5": {"class_type": "ImageScale", "inputs": {"upscale_method": "nearest-exact", "width": 640, "height": 0,
                                                 "crop": "disabled", "image": ["4", 0]}},
    "6": {"class_type": "RIFE VFI", "inputs": {"ckpt_name": "rife47.pth", "clear_cache_after_n_frames": 10,
                                               "multiplier": 3, "fast_mode": True, "ensemble": True, "scale_factor": 1,
                                               "frames": ["5", 0]}},
    "7": {"class_type": "FILM VFI", "inputs": {"ckpt_name": "film_net_fp32.pt", "clear_cache_after_n_frames": 10,
                                               "multiplier": 2, "frames": ["6", 0]}},
    "8": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": 48, "loop_count": 0, "filename_prefix": "up",
                                                       "format": "video/h264-mp4", "pingpong": False,
                                                       "save_output": True, "images": ["7", 0]}},
}


def test_resize_to_width_and_height_0_passes_the_picture_on():
    """ComfyUI's ImageScale and Resize Image/Mask (scale dimensions) with width and height both 0 return the picture
    as it is; imported as video.resize, the run stopped at 'give a width, a height or both'."""
    api = {"1": UPSCALE_API["1"],
           "2": {"class_type": "ImageScale", "inputs": {"upscale_method": "area", "width": 0, "height": 0,
                                                        "crop": "disabled", "image": ["1", 0]}},
           "3": {"class_type": "ResizeImageMaskNode", "inputs": {
               "input": ["2", 0], "resize_type": "scale dimensions", "resize_type.width": 0, "resize_type.height": 0,
               "resize_type.crop": "center", "scale_method": "area"}},
           "4": dict(UPSCALE_API["8"], inputs=dict(UPSCALE_API["8"]["inputs"], images=["3", 0]))}
    res = import_data(api)
    g = res.graph
    assert sorted(n.type for n in g.nodes.values()) == ["io.load_video", "io.save_video"]
    assert g.inputs[_by_type(g, "io.save_video")[0].id]["video"][0] == _by_type(g, "io.load_video")[0].id
    assert {k: e.status for k, e in res.report.entries.items()} == {"1": "exact", "2": "exact", "3": "exact",
                                                                    "4": "exact"}


def test_upscale_resize_and_interpolation_nodes_map_to_kinographs():
    """The upscale-and-interpolate tail of most community video workflows (an ESRGAN model, ImageScaleBy, RIFE VFI
    from ComfyUI-Frame-Interpolation) had no mapping although Kinograph has each: the import stopped there."""
    res = import_data(UPSCALE_API)
    assert not res.report.blocking
    g = res.graph
    chain, node = [], _by_type(g, "io.save_video")[0].id
    while g.inputs.get(node):
        node = g.inputs[node]["video"][0]
        chain.append((g.nodes[node].type, g.nodes[node].params))
    assert chain[::-1] == [
        ("io.load_video", {"path": "in.mp4", "fps": 0, "count": 0, "start": 0, "every_nth": 1}),
        ("upscale.model", {"model": "4x-UltraSharp.pth"}),
        ("upscale.resize", {"method": "area", "scale": 0.5}),
        ("video.scale", {"method": "nearest", "width": 640, "height": 0, "crop": False}),
        ("interpolate.rife", {"scene_threshold": 0.0, "model": "rife47.pth", "factor": 3, "ensemble": True,
                              "scale": 1}),
        ("interpolate.flow", {"scene_threshold": 0.0, "quality": "medium", "factor": 2})]
    statuses = {k: e.status for k, e in res.report.entries.items()}
    assert statuses == {"1": "exact", "2": "exact", "3": "exact", "4": "exact", "5": "exact", "6": "exact",
                        "7": "approx", "8": "exact"}
    assert "FILM is not in Kinograph" in res.report.entries["7"].notes[0]
    odd = copy.deepcopy(UPSCALE_API)
    odd["4"]["inputs"]["upscale_method"] = "bilinear"
    odd["5"]["inputs"]["crop"] = "center"
    odd["6"]["inputs"].update(multiplier=24, fast_mode=False)
    notes = {k: "; ".join(e.notes) for k, e in import_data(odd).report.entries.items()}
    assert "upscale.resize has no bilinear; bicubic used" in notes["4"]
    assert notes["5"] == ""     # crop center is video.scale's crop (below)
    assert "multiplier 24 is above Kinograph's 16" in notes["6"] and "fast_mode=False is not carried" in notes["6"]
    assert _by_type(import_data(odd).graph, "video.scale")[0].params["crop"] is True


def test_a_clips_own_rate_and_sound_stay_with_it():
    """ComfyUI splits a clip into frames, sound and rate (GetVideoComponents) and joins them again (CreateVideo);
    Kinograph's clip carries all three. The rate became `fps: null` (the workflow did not validate) and the sound
    'not carried'; now both are the clip's own, unless a node between changes the rate."""
    wf = json.loads((DATA / "templates" / "utility-gan_upscaler.json").read_text(encoding="utf-8"))
    res = import_data(wf)
    assert res.report.summary() == "6 mapped exactly, 1 editor only"
    save, = _by_type(res.graph, "io.save_video")
    assert save.params == {"path": "out/video/ComfyUI.mp4", "codec": "h264"}
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)
    api = {"1": {"class_type": "LoadVideo", "inputs": {"file": "a.mp4"}},
           "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
           "3": {"class_type": "RIFE VFI", "inputs": {"ckpt_name": "rife49.pth", "multiplier": 2, "frames": ["2", 0]}},
           "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "audio": ["2", 1], "fps": ["2", 2]}},
           "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "x"}}}
    res = import_data(api)
    assert res.report.entries["4"].notes == [
        "fps is the loaded clip's frame rate, and the frames here are not at that rate (a node between changes it): "
        "the clip's own rate is kept; set fps by hand to play them at another"]
    # the sound lasts as long as the interpolated frames: it stays with them
    assert res.report.entries["4"].status == "approx"


def test_comfyuis_frame_interpolation_template_plays_at_the_same_speed():
    """ComfyUI's Frame Interpolation template: its own FrameInterpolate node (not mapped) and an fps of
    'min(abs(b), 16) * a' over the clip's rate (only known when it runs: not mapped). Interpolated frames at the
    clip's rate times the multiplier are what Kinograph's interpolator gives the clip, so the rate is left to it."""
    wf = json.loads((DATA / "templates" / "utility_video_frame_interpolation.json").read_text(encoding="utf-8"))
    res = import_data(wf)
    assert not res.report.blocking and res.report.entries["16:11"].status == "exact"
    g = res.graph
    (load,), (interp,), (save,) = (_by_type(g, t) for t in ("io.load_video", "interpolate.flow", "io.save_video"))
    assert interp.params == {"factor": 2, "quality": "medium", "scene_threshold": 0.0}      # FILM's weights
    assert g.inputs[save.id]["video"] == (interp.id, "video") and "fps" not in save.params
    assert {e.status for k, e in res.report.entries.items() if k != "16:2"} <= {"exact", "ui"}, res.report.text()
    loader = next(n for n in wf["definitions"]["subgraphs"][0]["nodes"] if n["type"] == "FrameInterpolationModelLoader")
    loader["widgets_values"] = ["rife_v4.26.safetensors"]
    mult = next(n for n in wf["definitions"]["subgraphs"][0]["nodes"] if n["type"] == "PrimitiveInt")
    mult["widgets_values"] = [4, "fixed"]
    res = import_data(wf)
    rife, = _by_type(res.graph, "interpolate.rife")
    assert rife.params == {"model": "rife_v4.26.safetensors", "factor": 4, "scene_threshold": 0.0}
    assert "fps" not in _by_type(res.graph, "io.save_video")[0].params
    formula = next(n for n in wf["definitions"]["subgraphs"][0]["nodes"] if n["type"] == "ComfyMathExpression")
    formula["widgets_values"] = ["a * 3"]                 # not the rate the interpolated frames have
    res = import_data(wf)
    assert "fps is the loaded clip's frame rate x 3, and the frames here are not at that rate" in \
        "; ".join(res.report.entries["16:5"].notes)
    formula["widgets_values"] = ["a * a"]                 # not a multiple of the rate: only known when it runs
    assert "its input values is only known when the workflow runs" in \
        "; ".join(import_data(wf).report.entries["16:11"].notes)


def test_controlnet_on_the_conditioning_steers_the_samplers_model():
    """AnimateDiff video-to-video drives each frame with a ControlNet (a pose or depth video): ComfyUI attaches it to
    the conditioning, Kinograph's control.apply to the model. The ControlNet nodes were not mapped."""
    api = {"1": {"class_type": "CheckpointLoader|pysssss",
                 "inputs": {"ckpt_name": {"content": "sd15\\dream.safetensors", "image": "x.jpg"}, "example": "[none]"}},
           "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dancer", "clip": ["1", 1]}},
           "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
           "4": {"class_type": "VHS_LoadVideo", "inputs": {"video": "pose.mp4", "frame_load_cap": 16}},
           "5": {"class_type": "ControlNetLoaderAdvanced", "inputs": {"control_net_name": "openpose.pth"}},
           "6": {"class_type": "ACN_AdvancedControlNetApply",
                 "inputs": {"strength": 0.8, "start_percent": 0, "end_percent": 1, "positive": ["2", 0],
                            "negative": ["3", 0], "control_net": ["5", 0], "image": ["4", 0]}},
           "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 16}},
           "8": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler",
                                                      "scheduler": "karras", "denoise": 1, "model": ["1", 0],
                                                      "positive": ["6", 0], "negative": ["6", 1],
                                                      "latent_image": ["7", 0]}},
           "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
           "10": {"class_type": "SaveImage", "inputs": {"images": ["9", 0], "filename_prefix": "f"}}}
    res = import_data(api)
    assert {e.status for e in res.report.entries.values()} == {"exact"}, res.report.text()
    g = res.graph
    (loader,), (control,), (video,), (sample,) = (_by_type(g, t) for t in ("load.model", "control.apply",
                                                                            "io.load_video", "generate.sample"))
    assert loader.params == {"path": "sd15\\dream.safetensors"}
    assert control.params == {"path": "openpose.pth", "strength": 0.8, "start": 0, "end": 1, "preprocessor": "none"}
    assert g.inputs[control.id] == {"model": (loader.id, "model"), "video": (video.id, "video")}
    assert g.inputs[sample.id]["model"] == (control.id, "model")
    assert {g.inputs[sample.id][k][0] for k in ("positive", "negative")} == {n.id for n in _by_type(g, "encode.text")}
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)
    # a LoRA's text-encoder strength is carried (lora.image's clip_strength), so nothing is said of it
    api["11"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "ink.safetensors", "strength_model": 0.7,
                                                        "strength_clip": 1, "model": ["1", 0], "clip": ["1", 1]}}
    api["2"]["inputs"]["clip"] = ["11", 1]
    assert import_data(api).report.entries["11"].notes == []
    # the ControlNet's step range is carried (it was "not carried" before control.apply had one)
    api["6"]["inputs"]["end_percent"] = 0.6
    res = import_data(api)
    assert res.report.entries["6"].status == "exact" and res.report.entries["6"].notes == []
    assert _by_type(res.graph, "control.apply")[0].params["end"] == 0.6


def test_fizznodes_prompt_schedule_and_advanced_clip_encode():
    """FizzNodes' BatchPromptSchedule (the prompt travel of most AnimateDiff workflows) and ADV_CLIP_emb's encoder
    were not mapped. The schedule's JSON-like keyframes become Kinograph's `FRAME: (prompt)` schedule, which
    Kinograph's own parser reads back to the same prompts (the emphasis inside them kept)."""
    from graph_engine.schedule import parse_text_keyframes
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
           "2": {"class_type": "BatchPromptSchedule",
                 "inputs": {"text": '"0" :"girl closed eyes (happy:1.2), seaside",\n"6" :"girl \\"open\\" eyes",\n'
                                    '"9" :"(smiling:1.2)"\n\n', "max_frames": 16, "print_output": False,
                            "pre_text": "best quality, masterpiece,\n", "app_text": "", "start_frame": 0,
                            "end_frame": 0, "clip": ["1", 1]}},
           "3": {"class_type": "BNK_CLIPTextEncodeAdvanced",
                 "inputs": {"text": "blurry", "token_normalization": "none", "weight_interpretation": "comfy",
                            "clip": ["1", 1]}}}
    res = import_data(api)
    sched = res.graph.nodes["batch_prompt_schedule_2"]
    assert parse_text_keyframes(sched.params["text"]) == [
        (0, "best quality, masterpiece, girl closed eyes (happy:1.2), seaside"),
        (6, 'best quality, masterpiece, girl "open" eyes'), (9, "best quality, masterpiece, (smiling:1.2)")]
    assert sched.params["weighting"] == "comfy" and res.report.entries["2"].status == "approx"
    neg = res.graph.nodes["bnk_clip_text_encode_advanced_3"]
    assert neg.params == {"text": "blurry", "weighting": "comfy"} and res.report.entries["3"].status == "exact"
    api["3"]["inputs"]["weight_interpretation"] = "A1111"
    assert import_data(api).report.entries["3"].notes == ["weight_interpretation='A1111' is not carried"]


def test_efficiency_nodes_loader_and_sampler_unbundle():
    """efficiency-nodes' Efficient Loader (checkpoint, VAE, clip skip, LoRA, both prompts, empty latent in one node)
    and KSampler (Efficient) (a KSampler that also decodes) are in many shared AnimateDiff workflows; neither was
    mapped, so nothing downstream of them converted."""
    api = {"15": {"class_type": "Efficient Loader",
                  "inputs": {"ckpt_name": "dreamshaper_8.safetensors", "vae_name": "vae-ft-mse.safetensors",
                             "clip_skip": -2, "lora_name": "ink.safetensors", "lora_model_strength": 0.8,
                             "lora_clip_strength": 0, "positive": "a fox", "negative": "blurry",
                             "token_normalization": "none", "weight_interpretation": "comfy",
                             "empty_latent_width": 512, "empty_latent_height": 384, "batch_size": 16}},
           "2": {"class_type": "KSampler (Efficient)",
                 "inputs": {"seed": 7, "steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "karras",
                            "denoise": 1, "preview_method": "auto", "vae_decode": "true", "model": ["15", 0],
                            "positive": ["15", 1], "negative": ["15", 2], "latent_image": ["15", 3],
                            "optional_vae": ["15", 4]}},
           "3": {"class_type": "ImageSharpen", "inputs": {"sharpen_radius": 1, "sigma": 0.4, "alpha": 0.6,
                                                          "image": ["2", 5]}},
           "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "fox"}}}
    res = import_data(api)
    assert not res.report.blocking and res.report.entries["15"].status == "exact", res.report.text()
    g = res.graph
    (load,), (vae,), (lora,), (enc,), (lat,), (sample,), (dec,), (sharp,) = (
        _by_type(g, t) for t in ("load.model", "load.vae", "lora.image", "encode.text", "latent.empty",
                                 "generate.sample", "vae.decode", "upscale.resize"))
    assert (load.params, vae.params, lora.params) == ({"path": "dreamshaper_8.safetensors"},
                                                      {"name": "vae-ft-mse.safetensors"},
                                                      {"path": "ink.safetensors", "strength": 0.8,
                                                       "clip_strength": 0})
    assert enc.params == {"text": "a fox", "negative": "blurry", "weighting": "comfy", "clip_skip": 2}
    assert lat.params == {"width": 512, "height": 384, "frames": 16} and g.inputs[lat.id]["vae"] == (vae.id, "vae")
    assert g.inputs[sample.id] == {"model": (lora.id, "model"), "positive": (enc.id, "positive"),
                                   "negative": (enc.id, "negative"), "latent": (lat.id, "latent")}
    assert sample.params == {"seed": 7, "steps": 20, "cfg": 7, "sampler": "euler", "scheduler": "karras",
                             "denoise": 1}
    assert g.inputs[dec.id] == {"latent": (sample.id, "latent"), "vae": (vae.id, "vae")}
    assert g.inputs[sharp.id]["video"] == (dec.id, "video") and sharp.params == {"scale": 1.0, "sharpen": 0.6}
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)


def test_bypassed_node_is_rewired_and_muted_node_dropped():
    wf = _load("wan_t2v_optimalsteps.json")
    next(n for n in wf["nodes"] if n["type"] == "ModelSamplingSD3")["mode"] = 4
    res = import_data(wf)
    sample = _by_type(res.graph, "generate.sample")[0]
    assert res.graph.nodes[res.graph.inputs[sample.id]["model"][0]].type == "load.diffusion_model"
    assert not _by_type(res.graph, "model.flow_shift")
    assert "bypassed" in res.report.entries["48"].notes[0]
    res = import_workflow(DATA / "hunyuan_t2v.json")    # its plain VAEDecode is muted, the tiled one runs
    assert len(_by_type(res.graph, "vae.decode")) == 1
    assert res.report.entries["8"].status == "ui" and "muted" in res.report.entries["8"].notes[0]


def test_a_linked_input_that_receives_nothing_is_named_in_the_report():
    """Links into a node or link the file lacks, from a muted node, or through a bypass with nothing to pass on
    leave the input empty (an image-to-video without its image): the node's line says so, never 'exactly'."""
    def entry(wf, nid):
        e = import_data(wf).report.entries[nid]
        return e.status, "; ".join(e.notes)

    wf = _load("wan_i2v.json")
    for n in wf["nodes"]:
        if n["type"] == "ModelSamplingSD3":
            n["mode"] = 4                                  # a bypass that passes its MODEL on: nothing lost
    assert entry(wf, "50") == ("exact", "")
    gone = copy.deepcopy(wf)
    gone["nodes"] = [n for n in gone["nodes"] if n["type"] != "LoadImage"]
    status, notes = entry(gone, "50")
    assert status == "approx" and "input start_image receives nothing: it is linked to node 52, which is not in " \
                                  "the file" in notes
    cut = copy.deepcopy(wf)
    cut["links"] = [link for link in cut["links"] if link[0] != 106]
    assert "input start_image receives nothing: its link 106 is missing" in entry(cut, "50")[1]
    for mode, why in ((2, "LoadImage #52, which feeds it, is muted in ComfyUI"),
                      (4, "LoadImage #52, which feeds it, is bypassed in ComfyUI and has no connected IMAGE input")):
        off = copy.deepcopy(wf)
        next(n for n in off["nodes"] if n["type"] == "LoadImage")["mode"] = mode
        status, notes = entry(off, "50")
        assert status == "approx" and f"input start_image receives nothing: {why}" in notes
        assert f"input image receives nothing: {why}" in entry(off, "51")[1]
    api = {"1": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["2", 0]}},
           "2": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}}}
    assert "input samples receives nothing: it is linked to node 7, which is not in the file" in entry(api, "1")[1]


def test_two_nodes_of_one_id_and_junk_link_rows_lose_nothing_silently():
    """A damaged or hand-merged file: the second node of an id replaced the first (a prompt gone without a word), a
    null row in `links` stopped the whole import with 'TypeError'. Both nodes are kept and the second is named."""
    wf = _load("wan_i2v.json")
    second = copy.deepcopy(next(n for n in wf["nodes"] if n["id"] == 6))
    second["widgets_values"] = ["a second prompt"]
    wf["nodes"].append(second)
    wf["links"] += [None, 7, [999, 3, 0], {"id": 998}]
    res = import_data(wf)
    texts = {n.params["text"] for n in _by_type(res.graph, "encode.text")}
    assert {"a second prompt", "a cute anime girl with massive fennec ears and a big fluffy tail wearing a maid "
                               "outfit turning around"} <= texts
    entry = res.report.entries["6-2"]
    assert entry.status == "approx" and entry.notes == [
        "the file has another node with id 6 (CLIPTextEncode): this one is imported as #6-2, and links from node 6 "
        "go to the other; check its connections"]


def _tiny_ui(extra_nodes, links, sampler_inputs):
    """A KSampler fed by what the test puts in front of it."""
    nodes = [{"id": 4, "type": "CheckpointLoaderSimple", "pos": [0, 0], "mode": 0, "outputs": [
                 {"name": "MODEL", "type": "MODEL"}, {"name": "CLIP", "type": "CLIP"}, {"name": "VAE", "type": "VAE"}],
              "widgets_values": ["sd15.safetensors"]},
             {"id": 3, "type": "KSampler", "pos": [400, 0], "mode": 0, "inputs": sampler_inputs,
              "outputs": [{"name": "LATENT", "type": "LATENT"}],
              "widgets_values": [7, "fixed", 20, 8, "euler", "karras", 1]}] + extra_nodes
    return {"last_node_id": 20, "last_link_id": 20, "nodes": nodes, "links": links, "groups": [], "version": 0.4}


def test_reroutes_and_primitives_are_inlined():
    wf = _tiny_ui(
        [{"id": 10, "type": "Reroute", "pos": [200, 0], "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}],
          "outputs": [{"name": "", "type": "MODEL", "links": [2]}]},
         {"id": 11, "type": "Reroute", "pos": [300, 0], "mode": 0, "inputs": [{"name": "", "type": "*", "link": 2}],
          "outputs": [{"name": "", "type": "MODEL", "links": [3]}]},
         {"id": 12, "type": "PrimitiveNode", "pos": [0, 300], "mode": 0,
          "outputs": [{"name": "INT", "type": "INT", "links": [4], "widget": {"name": "steps"}}],
          "widgets_values": [33, "fixed"]}],
        [[1, 4, 0, 10, 0, "MODEL"], [2, 10, 0, 11, 0, "MODEL"], [3, 11, 0, 3, 0, "MODEL"], [4, 12, 0, 3, 4, "INT"]],
        [{"name": "model", "type": "MODEL", "link": 3}, {"name": "positive", "type": "CONDITIONING", "link": None},
         {"name": "negative", "type": "CONDITIONING", "link": None},
         {"name": "latent_image", "type": "LATENT", "link": None},
         {"name": "steps", "type": "INT", "link": 4, "widget": {"name": "steps"}}])
    g = import_data(wf).graph
    sample = _by_type(g, "generate.sample")[0]
    assert g.inputs[sample.id]["model"] == ("checkpoint_loader_simple_4", "model")
    assert sample.params["steps"] == 33
    assert set(g.nodes) == {"checkpoint_loader_simple_4", "k_sampler_3"}


def test_kjnodes_set_and_get_pairs_are_inlined_as_reroutes():
    """Community workflows send a VAE or model across the canvas through KJNodes' SetNode/GetNode pairs, which ComfyUI
    resolves before running, as it does reroutes: they blocked the import as unmapped custom nodes."""
    wf = _load("wan_i2v.json")
    wf["nodes"] += [{"id": 80, "type": "SetNode", "title": "Set_vae", "pos": [0, 0], "mode": 0,
                     "inputs": [{"name": "VAE", "type": "VAE", "link": 300}], "outputs": [{"name": "*", "type": "*"}],
                     "widgets_values": ["vae"]},
                    {"id": 81, "type": "GetNode", "title": "Get_vae", "pos": [0, 0], "mode": 0, "inputs": [],
                     "outputs": [{"name": "VAE", "type": "VAE"}], "widgets_values": ["vae"]}]
    for link in wf["links"]:
        if link[0] in (76, 99):                     # the VAE into VAEDecode and WanImageToVideo: from the GetNode
            link[1], link[2] = 81, 0
    wf["links"].append([300, 39, 0, 80, 0, "VAE"])
    res = import_data(wf)
    assert not res.report.blocking and {"80", "81"}.isdisjoint(res.report.entries)
    assert res.graph.inputs["vae_decode_8"]["vae"] == ("vae_loader_39", "vae")
    assert res.graph.inputs["wan_image_to_video_50"]["vae"] == ("vae_loader_39", "vae")
    next(n for n in wf["nodes"] if n["id"] == 81)["widgets_values"] = ["vea"]
    assert "input vae receives nothing: GetNode #81 \"Get_vae\" reads 'vea', which no SetNode in the file sets" in \
        import_data(wf).report.entries["8"].notes[0]


def test_editor_only_nodes_of_popular_packs_do_not_stop_an_import():
    """rgthree's group bypasser (on most community canvases) and image comparer run nothing: they stopped the import
    as nodes Kinograph lacks ('not written', exit 2)."""
    wf = _load("wan_i2v.json")
    wf["nodes"] += [{"id": 90, "type": "Fast Groups Bypasser (rgthree)", "pos": [0, 0], "mode": 0, "inputs": [],
                     "outputs": [{"name": "OPT_CONNECTION", "type": "*", "links": None}]},
                    {"id": 91, "type": "Image Comparer (rgthree)", "pos": [0, 0], "mode": 0,
                     "inputs": [{"name": "image_a", "type": "IMAGE", "link": 400}], "outputs": [], "widgets_values": [[]]}]
    wf["links"].append([400, 8, 0, 91, 0, "IMAGE"])
    res = import_data(wf)
    assert not res.report.blocking and res.report.exit_code == 0           # all exact, as without them
    assert res.report.entries["90"].status == res.report.entries["91"].status == "ui"
    assert not [n for n in res.graph.nodes.values() if n.type.startswith("comfyui.")]


def test_a_file_comfyui_marks_as_in_its_output_folder_is_named():
    """LoadImage's "ComfyUI_00001_.png [output]" (a render picked from ComfyUI's output folder) was kept as a path
    with " [output]" in it, which no file has."""
    wf = _load("wan_i2v.json")
    load = next(n for n in wf["nodes"] if n["type"] == "LoadImage")
    load["widgets_values"] = ["ComfyUI_00001_.png [output]", "image"]
    res = import_data(wf)
    assert _by_type(res.graph, "io.load_image")[0].params["path"] == "ComfyUI_00001_.png"
    assert res.report.entries[str(load["id"])].notes == [
        "ComfyUI_00001_.png is in ComfyUI's output folder: copy it beside the workflow (or give its full path)"]
    load["widgets_values"] = ["flux_dev_example.png [input]", "image"]
    res = import_data(wf)
    assert _by_type(res.graph, "io.load_image")[0].params["path"] == "flux_dev_example.png"
    assert res.report.entries[str(load["id"])].status == "exact"


def test_a_workflow_that_only_previews_says_that_nothing_is_saved():
    """ComfyUI shows a PreviewImage's frames; after the import `kinograph run` computed the whole video and kept none,
    'finished: ok'. The report says so up front."""
    wf = _load("svd_i2v.json")
    for n in wf["nodes"]:
        if n["type"] == "SaveAnimatedWEBP":
            n["type"], n["widgets_values"] = "PreviewImage", []
            preview = n["id"]
    res = import_data(wf)
    assert res.report.remarks == [
        f"nothing in this workflow saves a file (PreviewImage #{preview} only shows frames, in the editor's viewer): "
        "`kinograph run` would compute it and keep nothing; add io.save_video (or io.save_frames) where you want a file"]
    assert res.report.text().startswith("note: nothing in this workflow saves a file")
    assert not import_data(_load("svd_i2v.json")).report.remarks


def test_core_primitive_nodes_become_their_values():
    """PrimitiveInt/Float/Boolean/String(Multiline) are nodes that run in ComfyUI and output their widget value:
    the consumer gets that value (also through a second primitive), and the report says each mapped exactly."""
    wf = _tiny_ui(
        [{"id": 12, "type": "PrimitiveInt", "pos": [0, 300], "mode": 0, "inputs": [],
          "outputs": [{"name": "INT", "type": "INT", "links": [4]}], "widgets_values": [33, "fixed"]},
         {"id": 13, "type": "PrimitiveFloat", "pos": [0, 400], "mode": 0,
          "inputs": [{"name": "value", "type": "FLOAT", "widget": {"name": "value"}, "link": 6}],
          "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [5]}], "widgets_values": [1.0]},
         {"id": 14, "type": "PrimitiveFloat", "pos": [0, 500], "mode": 0, "inputs": [],
          "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [6]}], "widgets_values": [3.5]},
         {"id": 15, "type": "PrimitiveStringMultiline", "pos": [0, 600], "mode": 0, "inputs": [],
          "outputs": [{"name": "STRING", "type": "STRING", "links": [7]}], "widgets_values": ["a cat\non a roof"]},
         {"id": 16, "type": "CLIPTextEncode", "pos": [200, 600], "mode": 0,
          "inputs": [{"name": "clip", "type": "CLIP", "link": 8},
                     {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 7}],
          "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [9]}], "widgets_values": ["unused"]}],
        [[4, 12, 0, 3, 4, "INT"], [5, 13, 0, 3, 5, "FLOAT"], [6, 14, 0, 13, 0, "FLOAT"], [7, 15, 0, 16, 1, "STRING"],
         [8, 4, 1, 16, 0, "CLIP"], [9, 16, 0, 3, 1, "CONDITIONING"]],
        [{"name": "model", "type": "MODEL", "link": None},
         {"name": "positive", "type": "CONDITIONING", "link": 9},
         {"name": "negative", "type": "CONDITIONING", "link": None},
         {"name": "latent_image", "type": "LATENT", "link": None},
         {"name": "steps", "type": "INT", "link": 4, "widget": {"name": "steps"}},
         {"name": "cfg", "type": "FLOAT", "link": 5, "widget": {"name": "cfg"}}])
    res = import_data(wf)
    sample = _by_type(res.graph, "generate.sample")[0]
    assert (sample.params["steps"], sample.params["cfg"]) == (33, 3.5)
    assert _by_type(res.graph, "encode.text")[0].params["text"] == "a cat\non a roof"
    assert {n.type for n in res.graph.nodes.values()} == {"load.model", "generate.sample", "encode.text"}
    for cid in ("12", "13", "14", "15"):
        assert res.report.entries[cid].status == "exact", res.report.entries[cid].line()
    # the same as an API prompt
    api = {"1": {"class_type": "PrimitiveBoolean", "inputs": {"value": False}},
           "2": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": ["1", 0], "noise_seed": 1, "steps": 4,
                                                              "cfg": 1.0, "sampler_name": "euler",
                                                              "scheduler": "simple", "start_at_step": 0,
                                                              "end_at_step": 4, "return_with_leftover_noise": "disable"}}}
    assert _by_type(import_data(api).graph, "generate.sample")[0].params["add_noise"] is False


def test_core_video_nodes_load_and_save_the_clip():
    """LoadVideo -> GetVideoComponents -> (frames) ... CreateVideo -> SaveVideo: a Kinograph clip is its frames
    (with its rate and audio), so GetVideoComponents' images is the loaded clip itself."""
    api = {"1": {"class_type": "LoadVideo", "inputs": {"file": "dance.mp4", "upload": "image"}},
           "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
           "3": {"class_type": "ImageFromBatch", "inputs": {"image": ["2", 0], "batch_index": 2, "length": 5}},
           "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 12.0}},
           "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "video/clip",
                                                        "format": "auto", "codec": "auto"}}}
    res = import_data(api)
    g = res.graph
    (load,), (trim,), (save,) = (_by_type(g, t) for t in ("io.load_video", "video.trim", "io.save_video"))
    assert load.params["path"] == "dance.mp4"
    assert g.inputs[trim.id]["video"] == (load.id, "video")
    assert g.inputs[save.id]["video"] == (trim.id, "video")
    assert (save.params["fps"], save.params["path"]) == (12.0, "out/video/clip.mp4")
    assert {e.status for e in res.report.entries.values()} == {"exact"}, res.report.text()
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)
    # GetVideoComponents' fps is the clip's own rate, which the trimmed clip still carries: left unset, io.save_video
    # keeps it (it was `fps: null`, a workflow that did not validate)
    api["4"]["inputs"]["fps"] = ["2", 2]
    res = import_data(api)
    assert res.report.entries["4"].status == "exact"
    assert "fps" not in _by_type(res.graph, "io.save_video")[0].params
    load_workflow(text=res.yaml)


def _stitch_subgraph():
    """Wan Animate 2's "Video Stitch" subgraph cut down: the frames of its two clips side by side, at the first's
    rate (GetVideoComponents, ImageStitch, CreateVideo inside; the clips come in as subgraph inputs)."""
    def node(nid, typ, inputs, outputs, widgets=None):
        return {"id": nid, "type": typ, "pos": [nid * 200, 0], "mode": 0, "widgets_values": widgets or [],
                "inputs": [{"name": a, "type": t, "link": lk} for a, t, lk in inputs],
                "outputs": [{"name": o, "type": o} for o in outputs]}
    parts = ["images", "AUDIO", "FLOAT", "INT"]
    return {"id": "5717c4e1-0000-4000-8000-00000000a2f1", "name": "Video Stitch", "inputNode": {"id": -10},
            "outputNode": {"id": -20},
            "inputs": [{"name": "video", "type": "VIDEO", "linkIds": [201]},
                       {"name": "video_1", "type": "VIDEO", "linkIds": [202]}],
            "outputs": [{"name": "VIDEO", "type": "VIDEO", "linkIds": [207]}],
            "nodes": [node(11, "GetVideoComponents", [("video", "VIDEO", 201)], parts),
                      node(12, "GetVideoComponents", [("video", "VIDEO", 202)], parts),
                      node(13, "ImageStitch", [("image1", "IMAGE", 203), ("image2", "IMAGE", 204)], ["IMAGE"],
                           ["right", True, 0, "white"]),
                      node(14, "CreateVideo", [("images", "IMAGE", 205), ("fps", "FLOAT", 206)], ["VIDEO"], [30])],
            "links": [{"id": i, "origin_id": o, "origin_slot": os, "target_id": t, "target_slot": ts, "type": "*"}
                      for i, o, os, t, ts in ((201, -10, 0, 11, 0), (202, -10, 1, 12, 0), (203, 11, 0, 13, 0),
                                              (204, 12, 0, 13, 1), (205, 13, 0, 14, 0), (206, 11, 2, 14, 1),
                                              (207, 14, 0, -20, 0))]}


def test_what_savevideo_saves_is_handed_on_to_the_nodes_reading_it(tmp_path):
    """ComfyUI's SaveVideo hands on the clip it saves (comfy_extras/nodes_video.py: outputs=[io.Video.Output("video",
    tooltip="The input video, unchanged.")], execute returns io.NodeOutput(video, ...)); SaveImage its pictures
    (nodes.py: "result": (images,)). Wan Animate 2's templates stitch the saved clip beside the driving clip in a
    subgraph from SaveVideo's output: that link was lost (video.size and video.trim inside: "required input 'video'
    is not connected"). Run here on a 16x16 clip: the second file is the inverted clip beside the clip, as ComfyUI
    computes it (ImageStitch right with no spacing is torch.cat on the width)."""
    import numpy as np

    from comfyui_workflows import ui_format
    from graph_engine import Clip
    from graph_engine.api import Session, load_workflow
    from graph_engine.registry import default_registry
    from graph_engine.workflow import to_yaml
    from nodes.io.video_read import load_video
    from nodes.io.video_write import write_video
    sub = _stitch_subgraph()
    data = ui_format([
        (1, "LoadVideo", ["drive.mkv", "image"], {}, ["VIDEO"]),
        (2, "GetVideoComponents", [], {"video": (1, 0, "VIDEO")}, ["IMAGE", "AUDIO", "FLOAT", "INT"]),
        (3, "ImageInvert", [], {"image": (2, 0, "IMAGE")}, ["IMAGE"]),
        (4, "CreateVideo", [30], {"images": (3, 0, "IMAGE"), "fps": (2, 2, "FLOAT")}, ["VIDEO"]),
        (5, "SaveVideo", ["video/made", "auto", "auto"], {"video": (4, 0, "VIDEO")}, ["VIDEO"]),
        (6, sub["id"], [], {"video": (5, 0, "VIDEO"), "video_1": (1, 0, "VIDEO")}, ["VIDEO"]),
        (7, "SaveVideo", ["video/stitched", "auto", "auto"], {"video": (6, 0, "VIDEO")}, ["VIDEO"])])
    data["definitions"] = {"subgraphs": [sub]}
    res = import_data(data)
    assert res.report.blocking == [] and res.report.entries["5"].status == "exact", res.report.text()
    load_workflow(text=res.yaml)            # validates: the stitch's clips are both connected
    g = res.graph
    (invert,), (stitch,) = _by_type(g, "video.invert"), _by_type(g, "video.stitch")
    saves = {n.params["path"]: n for n in _by_type(g, "io.save_video")}
    assert g.inputs[saves["out/video/made.mp4"].id]["video"] == (invert.id, "video")
    assert g.inputs[stitch.id] == {"video": (invert.id, "video"), "other": ("load_video_1", "video")}
    # run losslessly (ffv1) so that the frames can be compared exactly
    for n in saves.values():
        n.params.update(codec="ffv1", path=n.params["path"].replace(".mp4", ".mkv"))
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    write_video(Clip.from_array(frames, fps=12), str(tmp_path / "drive.mkv"), codec="ffv1")
    wf = tmp_path / "imported.kino.yaml"
    wf.write_text(to_yaml(g, default_registry()))
    run = Session(device="cpu").run(load_workflow(wf, check=False), use_cache=False)
    assert run.ok, run.failed
    got = load_video(str(tmp_path / "out" / "video" / "stitched.mkv")).to_array()
    assert np.array_equal(got, np.concatenate([255 - frames, frames], axis=2))
    # SaveImage's pictures likewise (ImageCompare beside the source reads them in many templates)
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
           "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
           "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
           "4": {"class_type": "ImageStitch", "inputs": {"image1": ["3", 0], "image2": ["1", 0], "direction": "right",
                                                         "match_image_size": True, "spacing_width": 0,
                                                         "spacing_color": "white"}},
           "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "y"}}}
    g = import_data(api).graph
    assert g.inputs[_by_type(g, "video.stitch")[0].id]["video"] == (_by_type(g, "video.invert")[0].id, "video")


def test_wan_fun_inpaint_is_first_last_frame_conditioning():
    wf = import_data(_load("templates/video_wan2_2_5B_fun_inpaint.json"))
    cond, = _by_type(wf.graph, "condition.frames")
    assert {"first", "last", "latent", "vae"} <= set(wf.graph.inputs[cond.id])
    assert [e.status for e in wf.report.entries.values() if e.class_type == "WanFunInpaintToVideo"] == ["exact"]


def test_batched_clips_play_one_after_another():
    api = {"1": {"class_type": "LoadVideo", "inputs": {"file": "a.mp4"}},
           "2": {"class_type": "LoadVideo", "inputs": {"file": "b.mp4"}},
           "3": {"class_type": "LoadVideo", "inputs": {"file": "c.mp4"}},
           "4": {"class_type": "BatchImagesNode", "inputs": {"images.image0": ["1", 0], "images.image2": ["3", 0],
                                                             "images.image1": ["2", 0]}},
           "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "all"}}}
    res = import_data(api)
    g = res.graph
    save, = _by_type(g, "io.save_video")
    last = g.inputs[save.id]["video"][0]
    first = g.inputs[last]["video"][0]
    # each clip after the first through video.match_size (to the first's size, as ComfyUI resizes them)
    fitted = [g.inputs[first]["other"][0], g.inputs[last]["other"][0]]
    assert [g.nodes[f].type for f in fitted] == ["video.match_size"] * 2
    assert [g.inputs[first]["video"][0]] + [g.inputs[f]["video"][0] for f in fitted] == \
        ["load_video_1", "load_video_2", "load_video_3"]
    assert {g.inputs[f]["reference"][0] for f in fitted} == {"load_video_1"}
    assert res.report.entries["4"].status == "exact"
    # a single image is a one-frame clip: batched, it is a frame of the clip (VACE's first/last-frame batches)
    api["1"] = {"class_type": "LoadImage", "inputs": {"image": "a.png"}}
    res = import_data(api)
    assert res.report.blocking == []
    first = res.graph.inputs[res.graph.inputs[save.id]["video"][0]]["video"][0]
    assert res.graph.inputs[first]["video"] == ("load_image_1", "image")


def test_switch_and_math_on_constants_are_resolved_at_import():
    """A constant switch hands on the input it picks, and the nodes feeding only the other input are left out (ComfyUI
    never runs them); a formula over constants becomes its FLOAT / INT / BOOLEAN results."""
    api = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "wan.safetensors"}},
           "2": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["1", 0], "lora_name": "fast.safetensors",
                                                                 "strength_model": 1.0}},
           "3": {"class_type": "PrimitiveBoolean", "inputs": {"value": False}},
           "4": {"class_type": "ComfySwitchNode", "inputs": {"switch": ["3", 0], "on_true": ["2", 0],
                                                             "on_false": ["1", 0]}},
           "5": {"class_type": "PrimitiveInt", "inputs": {"value": 4}},
           "6": {"class_type": "PrimitiveInt", "inputs": {"value": 20}},
           "7": {"class_type": "ComfySwitchNode", "inputs": {"switch": ["3", 0], "on_true": ["5", 0],
                                                             "on_false": ["6", 0]}},
           "8": {"class_type": "PrimitiveFloat", "inputs": {"value": 16.0}},
           "9": {"class_type": "ComfyMathExpression", "inputs": {"expression": "floor(a * b) + 1 - 0.5",
                                                                 "values.a": ["8", 0], "values.b": 5}},
           "10": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64,
                                                                      "length": ["9", 1], "batch_size": 1}},
           "11": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "latent_image": ["10", 0], "seed": 1,
                                                       "steps": ["7", 0], "cfg": ["9", 0], "sampler_name": "euler",
                                                       "scheduler": "simple", "denoise": 1.0}}}
    res = import_data(api)
    g = res.graph
    sample, = _by_type(g, "generate.sample")
    assert g.inputs[sample.id]["model"][0] == "checkpoint_loader_simple_1"
    assert (sample.params["steps"], sample.params["cfg"]) == (20, 80.5)
    assert _by_type(g, "latent.empty")[0].params["frames"] == 80          # INT output: truncated
    assert not _by_type(g, "lora.image")
    assert {cid for cid, e in res.report.entries.items() if e.status == "ui"} == {"2", "5"}
    assert not res.report.blocking
    # an empty latent on the unpicked side goes too (it would have been given a VAE after the walk)
    api["12"] = {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 32, "height": 32, "length": 9}}
    api["13"] = {"class_type": "ComfySwitchNode", "inputs": {"switch": ["3", 0], "on_true": ["12", 0],
                                                              "on_false": ["10", 0]}}
    api["11"]["inputs"]["latent_image"] = ["13", 0]
    res = import_data(api)
    assert [n.params["frames"] for n in _by_type(res.graph, "latent.empty")] == [80]
    # a switch or a value known only when the workflow runs stays not mapped
    api["3"] = {"class_type": "SomeNodePack_IsDaytime", "inputs": {}}
    api["8"] = {"class_type": "SomeNodePack_Random", "inputs": {}}
    blocking = {e.class_type for e in import_data(api).report.blocking}
    assert blocking == {"SomeNodePack_IsDaytime", "SomeNodePack_Random", "ComfySwitchNode", "ComfyMathExpression"}


@pytest.mark.parametrize("expression, values, result", [
    ("a + b", {"a": 1, "b": 2.5}, 3.5), ("max(4, (int(a) // 16) * 16)", {"a": 481}, 480),
    ("a * 16 + 1", {"a": 5}, 81), ("sum(values) / 2", {"a": 1, "b": 3}, 2.0), ("-a ** 2", {"a": 3}, -9),
    ("a if a > 1 else 1", {"a": 0.5}, 1), ("sqrt(a)", {"a": 16}, 4.0), ("a > 0", {"a": 2}, 1)])
def test_math_expression_values(expression, values, result):
    from nodes.math.expr import evaluate
    assert evaluate(expression, values) == result


@pytest.mark.parametrize("expression, message", [
    ("a.__class__", "not arithmetic"), ("open('x')", "not arithmetic"), ("a +", "not a formula"),
    ("a / 0", "fails"), ("c", "no value named 'c'"), ("2 ** 100000", "exponent"), ("pow(9, 9 ** 9)", "exponent"),
    ("((9 ** 999) ** 999) ** 999", "4096 bits"), ("(" * 5000 + "a" + ")" * 5000, "10001 characters"),
    ("a * 1e308 * 10", "not a finite number"), ("round(a, -10 ** 8)", "rounding to -100000000 digits")])
def test_math_expression_refuses_what_is_not_arithmetic(expression, message):
    from nodes.math.expr import ExprError, evaluate
    with pytest.raises(ExprError, match=message):
        evaluate(expression, {"a": 1})


def test_groups_notes_and_positions_are_kept_in_ui():
    res = import_data(_load("svd_i2v.json"))
    assert res.graph.ui["_groups"]["group_1"] == {"title": "Image to Video", "color": "#8A8",
                                                   "rect": [478, 192, 954, 478]}
    assert res.graph.ui["k_sampler_3"]["pos"] == [868, 376]
    res = import_data(_load("ltxv_t2v.json"))
    notes = res.graph.ui["_notes"]
    assert list(notes.values())[0]["text"].startswith("This model needs long descriptive prompts")
    assert list(notes.values())[0]["pos"] == [40, 350]


def test_subgraph_is_expanded_with_its_widget_values():
    inner = {"id": "sub-1", "name": "Sampler block", "inputNode": {"id": -10}, "outputNode": {"id": -20},
             "inputs": [{"name": "model", "type": "MODEL", "linkIds": [101]},
                        {"name": "steps", "type": "INT", "linkIds": [102]}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [103]}],
             "nodes": [{"id": 1, "type": "ModelSamplingSD3", "pos": [0, 0], "mode": 0,
                        "inputs": [{"name": "model", "type": "MODEL", "link": 101}],
                        "outputs": [{"name": "MODEL", "type": "MODEL"}], "widgets_values": [5]},
                       {"id": 2, "type": "KSampler", "pos": [200, 0], "mode": 0,
                        "inputs": [{"name": "model", "type": "MODEL", "link": 104},
                                   {"name": "steps", "type": "INT", "link": 102, "widget": {"name": "steps"}}],
                        "outputs": [{"name": "LATENT", "type": "LATENT"}],
                        "widgets_values": [3, "randomize", 25, 5, "euler", "simple", 1]}],
             "links": [{"id": 101, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0},
                       {"id": 104, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0},
                       {"id": 102, "origin_id": -10, "origin_slot": 1, "target_id": 2, "target_slot": 1},
                       {"id": 103, "origin_id": 2, "origin_slot": 0, "target_id": -20, "target_slot": 0}]}
    wf = {"nodes": [{"id": 4, "type": "UNETLoader", "pos": [0, 0], "mode": 0,
                     "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}],
                     "widgets_values": ["wan.safetensors", "default"]},
                    {"id": 9, "type": "sub-1", "pos": [300, 0], "mode": 0,
                     "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                                {"name": "steps", "type": "INT", "link": None, "widget": {"name": "steps"}}],
                     "outputs": [{"name": "LATENT", "type": "LATENT", "links": [2]}], "widgets_values": []},
                    {"id": 5, "type": "VAEDecode", "pos": [600, 0], "mode": 0,
                     "inputs": [{"name": "samples", "type": "LATENT", "link": 2}],
                     "outputs": [{"name": "IMAGE", "type": "IMAGE"}]}],
             "links": [[1, 4, 0, 9, 0, "MODEL"], [2, 9, 0, 5, 0, "LATENT"]],
             "definitions": {"subgraphs": [inner]}}
    res = import_data(wf)
    g = res.graph
    assert set(res.report.entries) == {"4", "5", "9:1", "9:2"}
    sample = g.nodes["k_sampler_9_2"]
    assert sample.params["steps"] == 25                      # the subgraph input is unconnected: inner value
    assert g.inputs["k_sampler_9_2"]["model"] == ("model_sampling_sd3_9_1", "model")
    assert g.inputs["model_sampling_sd3_9_1"]["model"] == ("unet_loader_4", "model")
    assert g.inputs["vae_decode_5"]["latent"] == ("k_sampler_9_2", "latent")
    # an instance that lists only the inputs it links (as ComfyUI's templates do): matched by name, not position
    inner["inputs"].insert(0, {"name": "cfg", "type": "FLOAT", "linkIds": []})
    for link in inner["links"]:
        if link["origin_id"] == -10:
            link["origin_slot"] += 1
    wf["nodes"][1]["inputs"] = [{"name": "steps", "type": "INT", "link": 3, "widget": {"name": "steps"}},
                                {"name": "model", "type": "MODEL", "link": 1}]
    wf["nodes"].append({"id": 6, "type": "PrimitiveInt", "pos": [0, 200], "mode": 0,
                        "outputs": [{"name": "INT", "type": "INT", "links": [3]}], "widgets_values": [12, "fixed"]})
    wf["links"] = [[1, 4, 0, 9, 1, "MODEL"], [2, 9, 0, 5, 0, "LATENT"], [3, 6, 0, 9, 0, "INT"]]
    g = import_data(wf).graph
    assert g.nodes["k_sampler_9_2"].params["steps"] == 12
    assert g.inputs["model_sampling_sd3_9_1"]["model"] == ("unet_loader_4", "model")
    # a value set on the instance for an unlinked widget input is the one ComfyUI runs with
    wf["nodes"][1]["inputs"] = [{"name": "model", "type": "MODEL", "link": 1}]
    wf["nodes"][1]["widgets_values"] = [40]
    wf["links"] = [[1, 4, 0, 9, 0, "MODEL"], [2, 9, 0, 5, 0, "LATENT"]]
    assert import_data(wf).graph.nodes["k_sampler_9_2"].params["steps"] == 40


def test_the_same_file_always_gives_the_same_workflow():
    import os
    import subprocess
    code = "from app.comfyui import import_workflow; import sys; print(import_workflow(sys.argv[1]).yaml)"
    outs = {subprocess.run([sys.executable, "-c", code, str(DATA / "wan_camera_i2v.json")], capture_output=True,
                           text=True, check=True, env=dict(os.environ, PYTHONHASHSEED=seed)).stdout
            for seed in ("0", "1")}          # two seeds that ordered it differently before
    assert len(outs) == 1


# -- API format and the report ----------------------------------------------------------------------------
def test_api_prompt_with_clip_skip_and_animatediff():
    from comfyui_workflows import ANIMATEDIFF_API
    res = import_data(ANIMATEDIFF_API)
    g = res.graph
    loader = g.nodes["checkpoint_loader_simple_1"]
    assert loader.type == "load.animatediff" and loader.params == {"path": "dreamshaper_8.safetensors",
                                                                   "motion_adapter": "mm_sd_v15_v2.ckpt"}
    enc = [n for n in _by_type(g, "encode.text")]
    assert {n.params["clip_skip"] for n in enc} == {2} and {n.params["weighting"] for n in enc} == {"comfy"}
    ctx = _by_type(g, "context.windows")[0]
    assert ctx.params == {"schedule": "static", "length": 16, "overlap": 4, "fuse": "pyramid"}
    sample = _by_type(g, "generate.sample")[0]
    assert g.inputs[sample.id]["model"] == (ctx.id, "model")
    assert res.report.exit_code == 0, res.report.text()


@pytest.mark.parametrize("module, schedule, carried", [
    ("mm_sd_v15_v2.ckpt", "sqrt_linear (AnimateDiff)", True),
    ("mm_sd_v15_v2.ckpt", "linear (AnimateDiff-SDXL)", False),
    ("mm_sdxl_v10_beta.ckpt", "linear (AnimateDiff-SDXL)", True),
    ("mm_sdxl_v10_beta.ckpt", "autoselect", True),
    ("mm_sdxl_v10_beta.ckpt", "sqrt_linear (AnimateDiff)", False),
    ("hsxl_temporal_layers.safetensors", "linear (HotshotXL/default)", True),
])
def test_an_animatediff_schedule_is_carried_where_the_module_samples_on_it(module, schedule, carried):
    """AnimateDiff-SDXL and Hotshot-XL modules sample on their own schedules (load.animatediff picks them, as
    AnimateDiff-Evolved's autoselect does); the import said an SDXL module's own was "not carried"."""
    import copy
    from comfyui_workflows import ANIMATEDIFF_API
    wf = copy.deepcopy(ANIMATEDIFF_API)
    wf["6"]["inputs"].update(model_name=module, beta_schedule=schedule)
    text = import_data(wf).report.text()
    assert ("beta_schedule" not in text) == carried, text


def test_exit_codes_and_partial(tmp_path, capsys):
    assert _cli(DATA / "svd_i2v.json", "-o", tmp_path / "svd.yaml") == 0
    assert (tmp_path / "svd.yaml").read_text().startswith("kinograph: 1")
    assert _cli(DATA / "wan_t2v.json", "-o", tmp_path / "wan.yaml") == 0      # uni_pc is ComfyUI's own now
    wan = _load("wan_t2v.json")
    # a custom pack's sampler (RES4LYF's res_2s): every one of ComfyUI's own is mapped exactly now
    next(n for n in wan["nodes"] if n["type"] == "KSampler")["widgets_values"][4] = "res_2s"
    (tmp_path / "wan_sde.json").write_text(json.dumps(wan))
    assert _cli(tmp_path / "wan_sde.json", "-o", tmp_path / "wan_sde.yaml") == 3
    err = capsys.readouterr().err
    assert "mapped approximately   KSampler #3" in err and "sampler 'res_2s' is not in Kinograph; euler used" in err
    wf = _load("svd_i2v.json")
    wf["nodes"].append({"id": 30, "type": "ImageQuantize", "pos": [1300, 600], "mode": 0, "title": "Soft",
                        "inputs": [{"name": "image", "type": "IMAGE", "link": 50}],
                        "outputs": [{"name": "IMAGE", "type": "IMAGE"}], "widgets_values": [16, "none"]})
    wf["links"].append([50, 8, 0, 30, 0, "IMAGE"])
    src = tmp_path / "blur.json"
    src.write_text(json.dumps(wf))
    assert _cli(src, "-o", tmp_path / "out.yaml") == 2
    assert not (tmp_path / "out.yaml").exists()
    assert "NOT MAPPED             ImageQuantize #30 \"Soft\"" in capsys.readouterr().err
    assert _cli(src, "-o", tmp_path / "out.yaml", "--partial") == 2
    text = (tmp_path / "out.yaml").read_text()
    assert "type: comfyui.ImageQuantize" in text and "placeholder: true" in text
    assert _cli(src, "-o", tmp_path / "out.yaml", "--partial") == 2       # never overwrites silently
    assert "exists" in capsys.readouterr().err


def test_an_unmapped_node_says_what_it_is_and_what_to_do(tmp_path, capsys):
    """A group node or a subgraph missing its definition bundles nodes Kinograph may well map: 'no Kinograph
    equivalent' sent the user looking for one. A custom node names the pack ComfyUI recorded for it."""
    wf = _load("svd_i2v.json")
    loader = next(n for n in wf["nodes"] if n["type"] == "ImageOnlyCheckpointLoader")
    for kind, says in (("workflow>Loaders", "a group node (ComfyUI's older bundle of nodes) whose definition is "
                                            "missing from the file (extra.groupNodes): in ComfyUI right-click it > "
                                            "Convert to nodes, save, and import again"),
                       ("0d1e2f3a-1111-4222-8333-444455556666", "a subgraph whose definition is missing from the "
                                                                "file (definitions.subgraphs)")):
        loader["type"] = kind
        src = tmp_path / "wf.json"
        src.write_text(json.dumps(wf))
        assert _cli(src, "-o", tmp_path / "out.yaml") == 2
        err = capsys.readouterr().err
        assert f"NOT MAPPED             {kind} #{loader['id']}" in err and says in err
        assert f"not written: {kind} #{loader['id']} cannot be converted (why is above)" in err
    loader["type"] = "ImageOnlyCheckpointLoader"
    # linked to the picture (a node no output needs would be left out, not named)
    image = next(n for n in wf["nodes"] if n["type"] == "LoadImage")
    wf["links"].append([900, image["id"], 0, 30, 0, "IMAGE"])
    wf["nodes"].append({"id": 30, "type": "ColorMatch", "pos": [0, 0], "mode": 0, "widgets_values": ["mkl", 1.0],
                        "inputs": [{"name": "image_ref", "type": "IMAGE", "link": 900}],
                        "properties": {"cnr_id": "comfyui-kjnodes", "ver": "1.1.0"}})
    entry = import_data(wf).report.entries["30"]
    assert entry.notes[:1] == ["no Kinograph equivalent (from the custom node pack comfyui-kjnodes 1.1.0): a placeholder "
                           "marks its place"]


def test_unmapped_nodes_that_pass_a_value_on_can_be_bypassed(tmp_path, capsys):
    """A model patch Kinograph lacks (here a KJNodes one in the place of the Wan-Fun InP template's CFG-Zero*, every
    node of which is now mapped) blocked the import: the report said 'a placeholder marks its place' and nothing the
    user could do short of editing the graph. It passes its MODEL on, so it can be bypassed as ComfyUI bypasses a
    node."""
    data = json.loads((DATA / "templates" / "wan2.1_fun_inp.json").read_text())
    next(n for n in data["nodes"] if n["id"] == 66)["type"] = "ModelPatchTorchSettings"
    src = tmp_path / "fun_inp.json"
    src.write_text(json.dumps(data))
    assert _cli(src, "-o", tmp_path / "out.yaml") == 2
    err = capsys.readouterr().err
    assert "it passes its MODEL input on, so it can be bypassed as ComfyUI bypasses a node (`kinograph import " \
           "--bypass-unmapped`, or delete it and link its MODEL input on)" in err
    assert "--bypass-unmapped bypasses" in err and not (tmp_path / "out.yaml").exists()
    assert _cli(src, "-o", tmp_path / "out.yaml", "--bypass-unmapped") == 3
    err = capsys.readouterr().err
    assert "mapped approximately   ModelPatchTorchSettings #66: no Kinograph equivalent: bypassed as you asked " \
           "(--bypass-unmapped), its MODEL input passed straight on, so what it did is missing" in err
    from graph_engine.api import load_workflow
    g = load_workflow(path=tmp_path / "out.yaml").graph
    sample, = _by_type(g, "generate.sample")
    chain, node = [], g.inputs[sample.id]["model"][0]
    while True:
        chain.append(g.nodes[node].type)
        if "model" not in g.inputs.get(node, {}):
            break
        node = g.inputs[node]["model"][0]
    assert chain == ["model.attention_multiply", "model.flow_shift", "guide.skip_layer_guidance",
                     "load.diffusion_model"]
    # a node that makes a value of a type it does not take (a loader) is never bypassed
    assert "it passes" not in import_data(_load("vhs_batch4x4.json")).report.entries["16"].line()
    # an API prompt names no types: what a node passes on is read from its input names
    api = copy.deepcopy(UPSCALE_API)
    api["9"] = {"class_type": "ImageQuantize", "inputs": {"colors": 16, "dither": "none", "image": ["3", 0]}}
    api["10"] = {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": "ip.bin"}}
    api["11"] = {"class_type": "IPAdapterApply", "inputs": {"ipadapter": ["10", 0], "image": ["9", 0],
                                                           "weight": 1.0}}
    api["12"] = {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "x"}}
    api["4"]["inputs"]["image"] = ["9", 0]
    entry = import_data(api).report.entries["9"]
    assert entry.status == "unmapped" and "it passes its IMAGE input on" in entry.line()
    res = import_data(api, bypass_unmapped=True)
    assert not res.report.blocking and res.report.entries["10"].status == "ui"       # fed only the bypassed apply
    g = res.graph
    up, = _by_type(g, "upscale.model")
    assert g.inputs[_by_type(g, "upscale.resize")[0].id]["video"] == (up.id, "video")
    assert g.inputs[_by_type(g, "io.save_frames")[0].id]["video"] == (up.id, "video")


def test_what_only_feeds_a_bypassed_or_muted_node_does_not_run():
    """ComfyUI runs a node only for an output that needs it. With an IP-Adapter bypassed, its model loader and
    image fed nothing that runs, yet the loader (not mapped) still stopped the import, and a node feeding only a
    muted node was converted and run."""
    wf = _load("svd_i2v.json")
    wf["nodes"] += [
        {"id": 91, "type": "IPAdapterModelLoader", "pos": [0, 0], "mode": 0, "widgets_values": ["ip-adapter.bin"],
         "outputs": [{"name": "IPADAPTER", "type": "IPADAPTER", "links": [91]}]},
        {"id": 92, "type": "IPAdapterApply", "pos": [0, 0], "mode": 0, "widgets_values": [1, 0],
         "inputs": [{"name": "ipadapter", "type": "IPADAPTER", "link": 91}, {"name": "image", "type": "IMAGE",
                                                                           "link": 92},
                    {"name": "model", "type": "MODEL", "link": 93}],
         "outputs": [{"name": "MODEL", "type": "MODEL", "links": [39]}]},
        {"id": 93, "type": "LoadImage", "pos": [0, 0], "mode": 0, "widgets_values": ["face.png", "image"],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [92]}, {"name": "MASK", "type": "MASK"}]}]
    wf["links"] = [l for l in wf["links"] if l[0] != 39] + [[91, 91, 0, 92, 0, "IPADAPTER"], [92, 93, 0, 92, 1, "IMAGE"],
                                                           [93, 14, 0, 92, 2, "MODEL"], [39, 92, 0, 3, 0, "MODEL"]]
    assert {e.class_type for e in import_data(wf).report.blocking} == {"IPAdapterApply"}
    res = import_data(wf, bypass_unmapped=True)
    assert not res.report.blocking, res.report.text()
    for k in ("91", "93"):
        assert res.report.entries[k].notes == ["not run: it only feeds nodes that do not run (muted, or bypassed), "
                                               "as in ComfyUI"]
    assert not _by_type(res.graph, "io.load_image") or all(n.params["path"] != "face.png"
                                                            for n in _by_type(res.graph, "io.load_image"))
    sample, = _by_type(res.graph, "generate.sample")
    assert res.graph.nodes[res.graph.inputs[sample.id]["model"][0]].type == "guide.linear_cfg"
    from graph_engine.api import load_workflow
    load_workflow(text=res.yaml)
    next(n for n in wf["nodes"] if n["id"] == 92)["mode"] = 2              # muted in the file: the same, unasked
    res = import_data(wf)
    assert {e.class_type for e in res.report.blocking} == set() and res.report.entries["91"].status == "ui"


@pytest.mark.parametrize("content,message", [
    (b"\x89PNG\r\n\x1a\nbroken", "not a readable PNG"),
    (b"not json at all", "not valid JSON"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"hello": "world"}', "not a ComfyUI workflow"),
    (b'{"nodes": [],\n "links": [], "note": "caf\xe9"}', "not UTF-8 text (byte 0xe9 on line 2, in another encoding "
                                                         "such as Windows-1252): ComfyUI writes UTF-8; save the file as "
                                                         "UTF-8"),
    (b'{"nodes": [{"id": 1, "type": "VAEDecode", "title": "dec', "the file ends before its JSON does: it was cut short"),
    (b'{"nodes": [{"id": 1, "type": "VAEDecode"}, ', "the file ends before its JSON does: it was cut short"),
    (b"  \n", "the file is empty"),
    (b'{"nodes": [{"id": 1}], "links": []}', "damaged"),
    (b'{"1": {"class_type": "KSampler", "inputs": {"model": ["1", 0]}}}', "loop"),
    (b'{"nodes": [{"id": 1, "type": "VAEDecode", "widgets_values": 5, "inputs": "x"}], "links": [[1]]}', "damaged"),
])
def test_malformed_files_get_a_message_and_exit_2(tmp_path, capsys, content, message):
    suffix = ".png" if content.startswith(b"\x89PNG") else ".json"
    f = tmp_path / f"bad{suffix}"
    f.write_bytes(content)
    assert _cli(f) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and str(f) in err


def test_a_json_nested_too_deeply_opens_in_the_editor_as_a_refusal(tmp_path):
    """File > Open and a drop ask is_comfyui_file first, which parsed the file again itself: a .json of 100000
    nested brackets raised a RecursionError from the editor's open. It goes to the importer, which names it."""
    from app.comfyui import ComfyImportError, import_workflow, is_comfyui_file
    f = tmp_path / "deep.json"
    f.write_bytes(b"[" * 100000 + b"]" * 100000)
    assert is_comfyui_file(f)
    with pytest.raises(ComfyImportError, match="the file is nested too deeply to be a ComfyUI workflow"):
        import_workflow(f)


def test_a_widget_of_1e999_is_a_damaged_workflow_not_a_crash(tmp_path, capsys):
    """A received workflow whose KSamplerAdvanced says start_at_step 1e999 (JSON's infinity, or an integer too long for a
    float): int() or float() raised OverflowError out of the import (kinograph import, File > Open, a dropped PNG),
    which names every other damage. Found by setting each node's numbers of the corpus to 1e999 in turn: also
    SaveWEBM, GenerateTracks, WanTrackToVideo, ImageScale."""
    data = json.loads((DATA / "wan22_t2v_14B.json").read_text())
    (sampler,) = [n for n in data["nodes"] if n["type"] == "KSamplerAdvanced"][:1]
    sampler["widgets_values"][7] = float("inf")        # start_at_step
    f = tmp_path / "inf.json"
    f.write_text(json.dumps(data))
    assert _cli(f) == 2
    err = capsys.readouterr().err
    assert "damaged ComfyUI workflow (a number too large for any widget: OverflowError" in err
    assert "Traceback" not in err and str(f) in err


def test_missing_file_and_media_without_workflow(tmp_path, capsys):
    from PIL import Image
    assert _cli(tmp_path / "nope.json") == 2
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert _cli(tmp_path / "plain.png") == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "carries no ComfyUI workflow" in err


# -- workflows embedded in ComfyUI's outputs ---------------------------------------------------------------
def _prompt_of(ui):
    """The API prompt ComfyUI would queue for a UI workflow (enough of it for these files)."""
    from comfyui_workflows import ANIMATEDIFF_API
    return ANIMATEDIFF_API


def test_png_and_apng_text_chunks(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text("prompt", json.dumps(_prompt_of(None)))
    info.add_text("workflow", (DATA / "svd_i2v.json").read_text())
    Image.new("RGB", (8, 8)).save(tmp_path / "out.png", pnginfo=info)
    res = import_workflow(tmp_path / "out.png")
    assert res.kind == "ui" and _by_type(res.graph, "guide.linear_cfg")      # the UI workflow is preferred
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
    api = PngInfo()
    api.add_text("prompt", json.dumps(_prompt_of(None)))
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:], pnginfo=api)
    res = import_workflow(tmp_path / "anim.png")
    assert res.kind == "api" and _by_type(res.graph, "context.windows")


def test_workflows_as_they_arrive_from_other_hands(tmp_path):
    """A .json saved by a Windows editor as "Unicode" (UTF-16 with a BOM), a ComfyUI WebP that an image host or chat
    app renamed .png, a PNG whose workflow chunk is damaged but whose prompt is whole, a workflow too large for
    Pillow's default text limit, a note storing its text in a dict: each imports."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    wf = _load("svd_i2v.json")
    (tmp_path / "unicode.json").write_bytes(json.dumps(wf).encode("utf-16"))
    assert _by_type(import_workflow(tmp_path / "unicode.json").graph, "guide.linear_cfg")
    exif = Image.Exif()
    exif[0x010F] = "workflow:" + json.dumps(wf)
    Image.new("RGB", (8, 8)).save(tmp_path / "render.png", format="WEBP", exif=exif.tobytes())
    assert import_workflow(tmp_path / "render.png").kind == "ui"
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png", format="JPEG")
    with pytest.raises(ComfyImportError, match="is a JPEG image, not a PNG or WebP, which ComfyUI writes its workflow "
                                               "into .* get the original PNG or the .json"):
        import_workflow(tmp_path / "photo.png")
    info = PngInfo()
    info.add_text("workflow", json.dumps(wf)[:300])
    info.add_text("prompt", json.dumps(_prompt_of(None)))
    Image.new("RGB", (8, 8)).save(tmp_path / "cut.png", pnginfo=info)
    res = import_workflow(tmp_path / "cut.png")
    assert res.kind == "api" and _by_type(res.graph, "context.windows")
    assert res.report.text().startswith("note: the embedded workflow is not readable JSON, so this is the embedded "
                                        "prompt: what runs, without positions, groups and notes")
    big = copy.deepcopy(wf)
    big["nodes"].append({"id": 900, "type": "Note", "pos": [0, 0], "widgets_values": {"text": "x" * 2_000_000}})
    info = PngInfo()
    info.add_text("workflow", json.dumps(big), zip=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "big.png", pnginfo=info)
    res = import_workflow(tmp_path / "big.png")
    assert res.graph.ui["_notes"]["note_900"]["text"] == "x" * 2_000_000


def test_webp_exif_as_comfyui_writes_it(tmp_path):
    from PIL import Image
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(_prompt_of(None))
    exif[0x010F] = "workflow:" + (DATA / "hunyuan_t2v.json").read_text()
    Image.new("RGB", (8, 8)).save(tmp_path / "out.webp", exif=exif.tobytes())
    res = import_workflow(tmp_path / "out.webp")
    assert res.kind == "ui" and _by_type(res.graph, "generate.sample")[0].params["cfg"] == 6


def _tiny_video(path, metadata):
    import av
    import numpy as np
    codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    with av.open(str(path), "w") as c:
        c.metadata.update(metadata)
        s = c.add_stream(codec, rate=8)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        for i in range(2):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((16, 16, 3), i * 50, np.uint8), format="rgb24")))
        c.mux(s.encode(None))


def test_mp4_comment_as_videohelpersuite_writes_it(tmp_path):
    wf = json.loads((DATA / "wan_t2v.json").read_text())
    _tiny_video(tmp_path / "vhs.mp4", {"comment": json.dumps({"prompt": json.dumps(_prompt_of(None)), "workflow": wf})})
    res = import_workflow(tmp_path / "vhs.mp4")
    assert res.kind == "ui" and _by_type(res.graph, "generate.sample")[0].params["steps"] == 30


def test_webm_metadata_as_comfyui_savewebm_writes_it(tmp_path):
    _tiny_video(tmp_path / "out.webm", {"prompt": json.dumps(_prompt_of(None))})
    res = import_workflow(tmp_path / "out.webm")
    assert res.kind == "api" and _by_type(res.graph, "load.animatediff")


def test_kinograph_file_is_not_taken_for_comfyui(tmp_path):
    from app.comfyui import is_comfyui_file
    assert is_comfyui_file(DATA / "wan_t2v.json")
    assert not is_comfyui_file(ROOT / "examples" / "default.yaml")
    with pytest.raises(ComfyImportError, match="no such file"):
        import_workflow(tmp_path / "x.json")


# -- the mapping page stays current -------------------------------------------------------------------------
def test_mapping_doc_is_generated_from_the_table():
    from app.comfyui.docs import mapping_markdown
    doc = ROOT / "docs" / "comfyui-mapping.md"
    assert doc.read_text(encoding="utf-8") == mapping_markdown(), \
        "docs/comfyui-mapping.md is stale: run `python -m app.comfyui.docs`"


def test_run_and_validate_point_a_comfyui_file_to_import(tmp_path, capsys):
    from app.cli import main
    for cmd in ("run", "validate"):
        assert main([cmd, str(DATA / "svd_i2v.json")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err                        # one line, not the schema's complaints
        assert "svd_i2v.json is a ComfyUI workflow, not a Kinograph one" in err[0]
        assert f"kinograph import {DATA / 'svd_i2v.json'} -o svd_i2v.yaml" in err[0]
    # A Kinograph workflow written as JSON (YAML's subset) is not taken for a ComfyUI one.
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"kinograph": 1, "nodes": {"p": {"type": "generate.test_pattern"}}}))
    assert main(["validate", str(own)]) == 0
    assert "own.json: ok (1 nodes)" in capsys.readouterr().out


DEPTH_API = {
    "1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "in.mp4", "force_rate": 0, "force_size": "Disabled",
                                                    "custom_width": 512, "custom_height": 512, "frame_load_cap": 0,
                                                    "skip_first_frames": 0, "select_every_nth": 1}},
    "2": {"class_type": "DepthAnythingV2Preprocessor", "inputs": {"ckpt_name": "depth_anything_v2_vits.pth",
                                                                  "resolution": 512, "image": ["1", 0]}},
    "3": {"class_type": "MiDaS-DepthMapPreprocessor", "inputs": {"a": 6.28, "bg_threshold": 0.1, "resolution": 512,
                                                                 "image": ["1", 0]}},
    "4": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": 24, "loop_count": 0, "filename_prefix": "depth",
                                                       "format": "video/h264-mp4", "pingpong": False,
                                                       "save_output": True, "images": ["2", 0]}},
    "5": {"class_type": "VHS_VideoCombine", "inputs": {"frame_rate": 24, "loop_count": 0, "filename_prefix": "midas",
                                                       "format": "video/h264-mp4", "pingpong": False,
                                                       "save_output": True, "images": ["3", 0]}},
}


def test_controlnet_aux_depth_preprocessors_become_depth_estimate():
    """A ControlNet workflow's depth preprocessor (comfyui_controlnet_aux) stopped the import; it is depth.estimate
    with the same model's Hugging Face folder, named in the report."""
    res = import_data(DEPTH_API)
    assert not res.report.blocking
    g = res.graph
    load, = _by_type(g, "io.load_video")
    models = {}
    for node in _by_type(g, "depth.estimate"):
        assert g.inputs[node.id]["video"] == (load.id, "video")
        models[node.params["model"]] = node.id
    assert set(models) == {"Depth-Anything-V2-Small-hf", "dpt-hybrid-midas"}
    for key in ("2", "3"):
        entry = res.report.entries[key]
        assert entry.status == "approx" and "reads the model as its Hugging Face folder in a depth/ model folder" in \
            entry.notes[-1], entry.notes
    giant = copy.deepcopy(DEPTH_API)
    giant["2"]["inputs"]["ckpt_name"] = "depth_anything_v2_vitg.pth"
    res = import_data(giant)
    assert {n.params["model"] for n in _by_type(res.graph, "depth.estimate")} == {"Depth-Anything-V2-Large-hf",
                                                                                  "dpt-hybrid-midas"}
    assert "depth_anything_v2_vitg.pth has no Hugging Face folder; Depth Anything V2 Large" in \
        "; ".join(res.report.entries["2"].notes)


def test_legacy_uniform_context_options_keep_their_looped_windows():
    """AnimateDiff-Evolved's legacy ADE_AnimateDiffUniformContextOptions makes looped uniform windows (its only
    context_schedule, 'uniform', is looped_uniform); imported as uniform_standard, closed_loop was dropped silently
    and a looping GIF's last frames no longer led into its first."""
    from comfyui_workflows import ANIMATEDIFF_API
    api = copy.deepcopy(ANIMATEDIFF_API)
    api["5"] = {"class_type": "ADE_AnimateDiffUniformContextOptions",
                "inputs": {"context_length": 16, "context_stride": 1, "context_overlap": 4, "context_schedule": "uniform",
                           "closed_loop": True, "fuse_method": "flat"}}
    res = import_data(api)
    ctx = _by_type(res.graph, "context.windows")[0]
    assert ctx.params == {"schedule": "uniform_looped", "length": 16, "stride": 1, "overlap": 4, "closed_loop": True,
                          "fuse": "flat"}
    assert res.report.exit_code == 0, res.report.text()


@pytest.mark.parametrize("config,v", [("v2-inference-v.yaml", True), ("v2-inference-v_fp32.yaml", True),
                                      ("v1-inference.yaml", False), ("v2-inference.yaml", False)])
def test_checkpoint_loader_with_a_v_config_samples_as_v_prediction(config, v):
    """CheckpointLoader's yaml is the only place an SD 2.x 768-v (or SD 1.5 v) file says it predicts v: with
    v2-inference-v.yaml the model goes through model.sampling v_prediction to the sampler (it was sampled as
    epsilon, grey noise); the plain configs add nothing."""
    api = {"1": {"class_type": "CheckpointLoader", "inputs": {"config_name": config,
                                                              "ckpt_name": "v2-1_768-ema-pruned.safetensors"}},
           "2": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 7.0, "sampler_name": "euler",
                                                      "scheduler": "simple", "denoise": 1.0, "model": ["1", 0]}}}
    g = import_data(api).graph
    (load,), (sample,) = _by_type(g, "load.model"), _by_type(g, "generate.sample")
    sampling = _by_type(g, "model.sampling")
    if v:
        assert sampling[0].params == {"prediction": "v_prediction", "zsnr": False}
        assert g.inputs[sampling[0].id]["model"] == (load.id, "model")
        assert g.inputs[sample.id]["model"] == (sampling[0].id, "model")
    else:
        assert not sampling and g.inputs[sample.id]["model"] == (load.id, "model")



def test_empty_latents_floor_their_size_as_comfyui_does():
    """ComfyUI's empty latents floor the size to their factor (EmptyHunyuanLatentVideo: // 8); latent.empty does it
    with size_fit floor and the family's step, which for HunyuanVideo and Wan 2.1 (2x2 patches) is 16: the report
    says a size off 16 may come out smaller than ComfyUI's, and says nothing of one on it."""
    for width, warned in ((840, True), (832, False)):
        res = import_data({"1": {"class_type": "EmptyHunyuanLatentVideo",
                                 "inputs": {"width": width, "height": 480, "length": 33, "batch_size": 1}}})
        lat, = _by_type(res.graph, "latent.empty")
        assert lat.params == {"width": width, "height": 480, "frames": 33, "size_fit": "floor"}
        notes = "; ".join(res.report.entries["1"].notes)
        assert ("need a multiple of 16 in Kinograph, so a size that is not one comes out up to 8 px smaller than "
                "ComfyUI's" in notes) == warned, notes


def test_a_red_node_feeding_a_required_input_is_named_in_validate_with_what_it_feeds_and_the_fix():
    # Since red placeholders keep their links, the sampler it feeds no longer says "connect latent by hand": the
    # one message left, "unknown node type 'comfyui.MyLatentMaker'", said neither what it was nor what to do.
    from graph_engine.registry import default_registry
    from graph_engine.validate import validate
    from graph_engine.workflow import parse_workflow, to_yaml
    reg = default_registry()
    data = _load("templates/sdxlturbo_example.json")
    next(n for n in data["nodes"] if n["type"] == "EmptyLatentImage")["type"] = "MyLatentMaker"
    g = import_data(data, registry=reg).graph
    wf, problems = parse_workflow(to_yaml(g, reg), registry=reg)         # saves and loads as YAML
    assert problems == [] and g.inputs["sampler_custom_13"]["latent"] == ("my_latent_maker_5", "latent")
    (problem,) = [str(p) for p in validate(wf, reg)]
    assert "unknown node type 'comfyui.MyLatentMaker'" in problem
    assert "ComfyUI node Kinograph has no equivalent for" in problem and "sampler_custom_13.latent" in problem
    assert "Replace it with a Kinograph node" in problem


def test_a_placeholders_link_into_a_setting_is_named_in_the_report_and_its_properties():
    """A sampler's sigmas fed from a scheduler Kinograph does not map (LaplaceScheduler; Chroma1 Radiance's template
    fed them from BetaSamplingScheduler before it was mapped): sigmas is a setting of generate.sample, so the
    placeholder's SIGMAS link has nowhere to land. It was dropped and nothing said so."""
    from comfyui_workflows import ui_format
    data = ui_format([
        (1, "UNETLoader", ["chroma.safetensors", "default"], {}, ["MODEL"]),
        (2, "CLIPLoader", ["t5xxl.safetensors", "chroma", "default"], {}, ["CLIP"]),
        (3, "CLIPTextEncode", ["a fox"], {"clip": (2, 0, "CLIP")}, ["CONDITIONING"]),
        (4, "CLIPTextEncode", [""], {"clip": (2, 0, "CLIP")}, ["CONDITIONING"]),
        (5, "CFGGuider", [4.0], {"model": (1, 0, "MODEL"), "positive": (3, 0, "CONDITIONING"),
                                 "negative": (4, 0, "CONDITIONING")}, ["GUIDER"]),
        (6, "LaplaceScheduler", [20, 14.614642, 0.0291675, 0.0, 0.5], {}, ["SIGMAS"]),
        (7, "RandomNoise", [1, "fixed"], {}, ["NOISE"]),
        (8, "KSamplerSelect", ["euler"], {}, ["SAMPLER"]),
        (9, "EmptySD3LatentImage", [512, 512, 1], {}, ["LATENT"]),
        (10, "SamplerCustomAdvanced", [], {"noise": (7, 0, "NOISE"), "guider": (5, 0, "GUIDER"),
                                           "sampler": (8, 0, "SAMPLER"), "sigmas": (6, 0, "SIGMAS"),
                                           "latent_image": (9, 0, "LATENT")}, ["LATENT", "LATENT"]),
        (11, "VAELoader", ["ae.safetensors"], {}, ["VAE"]),
        (12, "VAEDecode", [], {"samples": (10, 0, "LATENT"), "vae": (11, 0, "VAE")}, ["IMAGE"]),
        (13, "SaveImage", ["fox"], {"images": (12, 0, "IMAGE")}, [])])
    res = import_data(data)
    rep = res.report.entries
    (place,) = rep["6"].kinograph
    assert "its SIGMAS link to SamplerCustomAdvanced #10's sigmas" in rep["6"].why(), res.report.text()
    assert "its sigmas input from LaplaceScheduler #6's SIGMAS is dropped" in rep["10"].why()
    assert rep["10"].status == "approx"
    assert res.graph.nodes[place].params["comfyui_outputs"] == {"SIGMAS": "ComfyUI node 10 input sigmas: not linked "
                                                                          "(dropped)"}


@pytest.mark.parametrize("primitive, ksampler, want", [("randomize", "fixed", {"seed": "random"}),
                                                       ("fixed", "randomize", None)])
def test_a_primitive_driving_a_seed_gives_its_control_after_generate(primitive, ksampler, want):
    """ComfyUI's editor applies the control after generate of the Primitive node that drives a seed (the KSampler's
    own seed widget, turned into an input, keeps a stale one). The importer read the KSampler's: a Primitive set to
    randomize came in fixed, and the other way round. ComfyUI's ACE-Step 1.5 template (a Primitive on the KSampler's
    and the text encoder's seed), its two controls set apart."""
    wf = _load("templates/audio_ace_step_1_5_split.json")
    ks = next(n for n in wf["nodes"] if n["type"] == "KSampler")
    link = next(i["link"] for i in ks["inputs"] if (i.get("widget") or {}).get("name") == "seed")
    src = next(lk[1] for lk in wf["links"] if lk[0] == link)
    prim = next(n for n in wf["nodes"] if n["id"] == src)
    assert prim["type"] == "PrimitiveNode"
    prim["widgets_values"][1], ks["widgets_values"][1] = primitive, ksampler
    g = import_data(wf).graph
    assert g.nodes["k_sampler_3"].params["seed"] == 31
    assert g.ui["k_sampler_3"].get("seed") == want


def test_two_saves_of_one_prefix_write_two_files(tmp_path):
    """InfiniteTalk's template saves its first pass and the whole clip under one filename_prefix: ComfyUI numbers the
    files, Kinograph wrote both to out/video/ComfyUI.mp4, the first pass kept only as the second's earlier take."""
    from app.comfyui import import_workflow
    api = {"1": {"class_type": "LoadImage", "inputs": {"image": "in.png", "upload": "image"}}}
    for nid in ("2", "3", "4"):
        api[nid] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "shot"}}
    api["5"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "shot_2"}}
    (tmp_path / "w.json").write_text(json.dumps(api), encoding="utf-8")
    result = import_workflow(tmp_path / "w.json")
    paths = sorted(n.params["path"] for n in result.graph.nodes.values() if n.type == "io.save_frames")
    assert paths == ["out/shot", "out/shot_2", "out/shot_3", "out/shot_4"]
    assert "an earlier save of this workflow writes out/shot (ComfyUI numbers each file" in result.report.text()


def test_a_text_encoder_type_kinograph_loads_no_model_of_is_named_as_such(tmp_path):
    """A CLIPLoader of a type Kinograph has no family for (FLUX.3 klein's flux3 and OmniGen2's omnigen2 before they
    loaded; HunyuanImage 2.1's hunyuan_image) failed validation with "(did you mean 'flux'?)" alone, sending a
    newcomer to FLUX.1's type; its report line now says Kinograph loads nothing of that family yet."""
    from app.comfyui import import_workflow
    api = {"1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b.safetensors",
                                                        "type": "hunyuan_image", "device": "default"}},
           "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 0], "text": "a cat"}},
           "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5.safetensors", "type": "wan",
                                                        "device": "default"}},
           "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["3", 0], "text": "a cat"}}}
    (tmp_path / "w.json").write_text(json.dumps(api), encoding="utf-8")
    report = import_workflow(tmp_path / "w.json").report
    assert ("type 'hunyuan_image': Kinograph loads no text encoder, and no model, of ComfyUI's hunyuan_image family yet"
            in report.entries["1"].why())
    assert report.entries["1"].status == "approx" and not report.entries["3"].notes


def test_a_file_two_loaders_name_is_said_missing_once(tmp_path, monkeypatch):
    """InfiniteTalk's template loads each of its six files in both its passes: the import listed each missing file
    twice, eleven long lines. Now one line per file names every node that reads it."""
    from app.comfyui import import_workflow
    from app.comfyui.cli import missing_models
    from graph_engine.api import load_workflow
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path))
    api = {str(i): {"class_type": "VAELoader", "inputs": {"vae_name": name}}
           for i, name in ((1, "wan_2.1_vae.safetensors"), (2, "wan_2.1_vae.safetensors"), (3, "other_vae.safetensors"))}
    api.update({str(i + 3): {"class_type": "VAEDecode", "inputs": {"vae": [str(i), 0], "samples": ["9", 0]}}
                for i in (1, 2, 3)})
    api["9"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    api.update({str(i + 10): {"class_type": "SaveImage", "inputs": {"images": [str(i + 3), 0], "filename_prefix": "x"}}
                for i in (1, 2, 3)})
    (tmp_path / "w.json").write_text(json.dumps(api), encoding="utf-8")
    lines = missing_models(load_workflow(text=import_workflow(tmp_path / "w.json").yaml, check=False), tmp_path)
    assert len(lines) == 2 and all("is not in the model folders" in line for line in lines)
    both = next(line for line in lines if "'wan_2.1_vae.safetensors'" in line)
    one = next(line for line in lines if "'other_vae.safetensors'" in line)
    assert both.startswith("nodes vae_loader_1, vae_loader_2: name:") and one.startswith("node vae_loader_3: name:")


def test_a_grown_picture_input_the_node_cannot_take_is_said_not_read():
    """ComfyUI's autogrow picture lists (images.image_1, image_2, ..) grow as a user links pictures; where Kinograph's
    node takes fewer (TextEncodeFibo2: four), a fifth linked picture is not silently dropped while the node reads
    as exact: the import says it is not read."""
    data = _load("templates/image_fibo2_edit_dev_pe.json")
    node = next(n for n in data["nodes"] if n["type"] == "TextEncodeFibo2")
    node["inputs"].append({"name": "images.image_5", "localized_name": "images.image_5", "type": "IMAGE",
                           "shape": 7, "link": 990})
    data["links"].append([990, 10, 0, node["id"], len(node["inputs"]) - 1, "IMAGE"])
    res = import_data(data)
    entry, = [e for e in res.report.entries.values() if e.class_type == "TextEncodeFibo2"]
    assert entry.status != "exact"
    assert any("images.image_5" in n and "not read" in n for n in entry.notes), entry.notes
