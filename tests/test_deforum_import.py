"""Deforum settings files (what the A1111 extension saves, with its real key names) open as Kinograph workflows:
the graph's parameters carry Deforum's schedules, prompts and sampling with Deforum's meaning, every setting
left out or approximated is named, damaged files are one message naming the setting, and a short one renders
on a tiny SD 1.5 checkpoint."""
import json
import math
import os
import sys
from pathlib import Path

import pytest
from tests.model_stub import stub

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA = ROOT / "tests" / "data" / "deforum"
BASE = json.loads((DATA / "deforum_settings_2d.txt").read_text())


def settings_file(tmp_path, name="deforum_settings.txt", **changes):
    s = dict(BASE, **changes)
    p = tmp_path / name
    p.write_text(json.dumps(s, indent=4))
    return p


def imported(path):
    from app.comfyui import import_workflow
    return import_workflow(path)


def params(result, node):
    return result.graph.nodes[node].params


def test_2d_settings_become_a_camera_move_diffused_frame_by_frame():
    from graph_engine.schedule import parse_schedule
    r = imported(DATA / "deforum_settings_2d.txt")
    g = r.graph
    assert r.kind == "deforum" and r.report.source == "Deforum"
    assert g.nodes["model"].type == "load.sd" and params(r, "model")["path"] == "v1-5-pruned-emaonly.safetensors"
    cam = params(r, "camera")
    assert (cam["frames"], cam["width"], cam["height"], cam["schedules"]) == (120, 512, 512, "per_frame")
    # Deforum's expression evaluated at every frame, as Deforum evaluates it (numexpr, t = the frame)
    zoom = parse_schedule(cam["zoom"]).values(120)
    want = [1.0025 + 0.002 * math.sin(1.25 * 3.14 * t / 30) for t in range(120)]
    assert max(abs(a - b) for a, b in zip(zoom, want)) < 1e-12
    pan = parse_schedule(cam["pan_x"]).values(120)
    assert pan[60] == 0 and pan[75] == 1.5 and pan[90] == 3 and pan[119] == 3
    assert "rotation_roll" not in cam and "pan_y" not in cam and "translation_z" not in cam
    # Deforum's loop: every frame img2img of the previous generated frame moved by the camera step
    loop = params(r, "loop")
    assert r.graph.nodes["loop"].type == "generate.feedback"
    assert loop == {"width": 512, "height": 512, "denoise": 0.35, "cfg": 7.0, "steps": 25, "sampler": "euler_ancestral",
                    "seed": 2738123946, "seed_behaviour": "iter", "cadence": 2, "color_coherence": "lab",
                    "color_coherence_after": True, "border": "replicate", "fps": 15.0, "noise": 0.065, "noise_type": "perlin", "sharpen": 0.1,
                    "noise_multiplier": 1.05}
    assert {(link.src, link.src_port, link.dst_port) for link in g.links_to("loop")} == {
        ("model", "model", "model"), ("model", "vae", "vae"), ("prompt", "positive", "positive"),
        ("prompt", "negative", "negative"), ("camera", "camera", "camera")}
    assert params(r, "save") == {"path": "out/Deforum.mp4", "fps": 15.0}
    assert [link.src for link in g.links_to("save")] == ["loop"]
    assert set(g.nodes) == {"model", "prompt", "camera", "loop", "save"}


def test_schedules_that_change_reach_the_loop_frame_by_frame(tmp_path):
    """strength, cfg and steps schedules that vary were one value for the whole clip (frame 1's); the loop takes
    them per frame, strength as denoise = 1 - strength."""
    from graph_engine.schedule import parse_schedule
    r = imported(settings_file(tmp_path, strength_schedule="0:(0.5), 60:(0.7), 90:(0.25+0.1*sin(t/5))",
                               cfg_scale_schedule="0:(4), 119:(12)", enable_steps_scheduling=True,
                               steps_schedule="0:(10), 60:(30)", seed_behavior="schedule",
                               seed_schedule="0:(100), 50:(7+t)", contrast_schedule="0:(1.02)"))
    loop = params(r, "loop")
    denoise = parse_schedule(loop["denoise"]).values(120)
    assert denoise[0] == pytest.approx(0.5) and denoise[30] == pytest.approx(0.4)
    assert denoise[100] == pytest.approx(0.75 - 0.1 * math.sin(100 / 5))
    cfg = parse_schedule(loop["cfg"]).values(120)
    assert (cfg[0], cfg[119]) == (4, 12)
    assert [round(v) for v in parse_schedule(loop["steps"]).values(120)[::30]] == [10, 20, 30, 30]
    assert loop["seed_behaviour"] == "schedule" and parse_schedule(loop["seed_schedule"])(80) == 87
    assert loop["contrast"] == 1.02
    text = r.report.text()
    for line in ("mapped exactly         strength_schedule -> loop.denoise", "mapped exactly         cfg_scale_"
                 "schedule -> loop.cfg", "mapped exactly         steps_schedule -> loop.steps",
                 "mapped exactly         seed_behavior, seed_schedule -> loop.seed_behaviour, loop.seed_schedule",
                 "mapped exactly         contrast_schedule -> loop.contrast"):
        assert line in text, text
    assert "one strength for the whole clip" not in text and "frame 1's" not in text


def test_prompts_switch_at_their_frames_with_their_negatives(tmp_path):
    """Deforum switches prompts at keyframes; Kinograph blends keyframed prompts, so the frame before each
    switch repeats the earlier prompt. `--neg` and the negative for every prompt go to the negative schedule;
    a frame written as an expression of max_f is that frame."""
    from graph_engine.schedule import parse_text_keyframes
    from nodes.generate.prompts import interpolation_weights
    r = imported(settings_file(tmp_path, diffusion_cadence=1))
    text, negative = params(r, "prompt")["text"], params(r, "prompt")["negative"]
    keys = parse_text_keyframes(text)
    assert [f for f, _ in keys] == [0, 29, 30, 59, 60, 88, 89]     # max_f/2+30 = 119/2+30 = 89
    assert keys[-1][1] == "a beautiful durian, award winning photography"
    assert keys[4][1] == "a beautiful coconut"
    w = interpolation_weights([f for f, _ in keys], [29, 30, 45, 88, 89])
    mixed = [{keys[i][1] for i in range(len(keys)) if row[i] > 0} for row in w]
    assert [len(m) for m in mixed] == [1] * 5           # one prompt at every frame, never a blend of two
    prompts = [m.pop() for m in mixed]
    assert prompts[0].startswith("tiny cute swamp bunny") and prompts[1].startswith("anthropomorphic clean cat")
    assert prompts[3] == "a beautiful coconut"
    neg = dict(parse_text_keyframes(negative))
    assert neg[0] == "nsfw, nude" and neg[60] == "photo, realistic nsfw, nude" and neg[89] == "nsfw, nude"
    # with a cadence the loop still reads the prompts at Deforum's own frames
    r = imported(DATA / "deforum_settings_2d.txt")
    assert [f for f, _ in parse_text_keyframes(params(r, "prompt")["text"])] == [0, 29, 30, 59, 60, 88, 89]


def test_a_prompt_holding_a_comma_and_a_number_with_a_colon_stays_one_prompt(tmp_path):
    from graph_engine.schedule import parse_text_keyframes
    r = imported(settings_file(tmp_path, prompts={"0": "a beach, 16:9 frame", "10": "a forest"}, diffusion_cadence=1))
    assert parse_text_keyframes(params(r, "prompt")["text"]) == [(0, "a beach; 16:9 frame"), (9, "a beach; 16:9 frame"),
                                                                  (10, "a forest")]


def test_prompt_weights_that_change_every_frame(tmp_path):
    """Deforum evaluates a backquoted weight at every frame, `(apple:`where(sin(t)>0, 1.5, 0.2)`)`; it was
    dropped, leaving (apple) at 1.1. Each frame of the stretch gets its prompt with the weight evaluated."""
    from graph_engine.schedule import MAX_TEXT, parse_text_keyframes
    prompt = "(apple:`where(cos(3.14159*t/5)>0, 1.5*cos(3.14159*t/5), 0.2)`), tree --neg (pear:`0.5+t/100`)"
    r = imported(settings_file(tmp_path, prompts={"0": prompt, "20": "a lake"}, diffusion_cadence=1, max_frames=30))
    keys = dict(parse_text_keyframes(params(r, "prompt")["text"]))
    assert sorted(keys) == list(range(0, 21))
    assert keys[0] == "(apple:1.5), tree" and keys[5] == "(apple:0.2), tree" and keys[10] == "(apple:1.5), tree"
    assert keys[2] == f"(apple:{1.5 * math.cos(3.14159 * 2 / 5):.4g}), tree" and keys[20] == "a lake"
    neg = dict(parse_text_keyframes(params(r, "prompt")["negative"]))
    assert neg[7] == "(pear:0.57) nsfw, nude" and neg[19] == "(pear:0.69) nsfw, nude" and neg[20] == "nsfw, nude"
    assert "`...` weights evaluated at every frame" in r.report.text()
    # a long clip: every few frames, within what a schedule may hold
    r = imported(settings_file(tmp_path, prompts={"0": prompt}, diffusion_cadence=1, max_frames=3000))
    text = params(r, "prompt")["text"]
    assert len(text) <= MAX_TEXT and len(parse_text_keyframes(text)) > 100
    assert "weights are evaluated every" in r.report.text()
    with pytest.raises(Exception, match=r"prompts: frame 0: the weight `1 \+` cannot be read"):
        imported(settings_file(tmp_path, prompts={"0": "(a:`1 +`)"}))


def test_the_report_names_every_setting_left_out_or_approximated(tmp_path):
    r = imported(DATA / "deforum_settings_2d.txt")
    text = r.report.text()
    lines = text.splitlines()
    for key, why in (("noise_schedule", "noise in blobs (white noise scaled by Perlin noise)"),
                     ("amount_schedule", "anti-blur: the moved picture unsharp-masked"),
                     ("enable_noise_multiplier_scheduling", "the noise each img2img run starts from, scaled"),
                     ("diffusion_cadence", "one frame in 2"), ("color_coherence", "LAB histograms matched to frame "
                                                                                  "0's before it is diffused")):
        assert any(key in line and why in line for line in lines), (key, text)
    assert "mapped exactly         amount_schedule, kernel_schedule, sigma_schedule, threshold_schedule -> " \
        "loop.sharpen" in text
    assert "mapped exactly         translation_x -> camera.pan_x: pixels per frame" in text
    assert not any("Deforum feeds" in remark for remark in r.report.remarks)     # no approximation left to own
    assert "translation_z: not used in 2D mode" in text
    # off features and Deforum's own bookkeeping are not listed
    assert "hybrid" not in text and "cn_1" not in text and "batch_name" not in text
    assert "frame_interpolation" not in text      # its engine is None
    assert r.report.exit_code == 0                # nothing left out or approximated
    looper = imported(settings_file(tmp_path, use_looper=True, use_mask_video=True)).report
    assert "NOT MAPPED             use_looper: guided images (the looper) are not imported" in looper.text()
    # a mask video was dropped without a word (it was counted among Deforum's bookkeeping)
    assert "NOT MAPPED             use_mask_video: the mask video is not imported; the whole picture is " \
        "re-diffused (to keep a region as it was, lay the render over the source with video.over" in looper.text()
    assert looper.exit_code == 3


def test_import_from_the_command_line_writes_a_workflow_that_validates(tmp_path, monkeypatch, capsys):
    from app.cli import main
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    stub(models / "v1-5-pruned-emaonly.safetensors")      # validate checks the name is there
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    src = settings_file(tmp_path, use_looper=True)
    out = tmp_path / "shot.yaml"
    assert main(["import", str(src), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"{src}: Deforum settings: " in err and "NOT MAPPED             use_looper" in err
    assert main(["validate", str(out)]) == 0
    assert f"{out}: ok (5 nodes)" in capsys.readouterr().out
    # run and validate given the settings themselves say how to convert them
    assert main(["run", str(src)]) == 2
    err = capsys.readouterr().err
    assert "holds Deforum settings, not a Kinograph workflow" in err and f"kinograph import {src}" in err


def test_3d_camera_moves_as_deforum_moves_its_camera(tmp_path):
    """3D: translation in 1/200 of the picture's distance per frame (x right, y up, z forward), rotation_3d_x
    tilts up, _y pans right, _z rolls clockwise, compounded in the camera's own axes; fov is vertical."""
    import numpy as np
    from nodes.motion.camera import from_schedules
    r = imported(settings_file(tmp_path, animation_mode="3D", W=768, H=512, translation_x="0:(0)",
                               translation_y="0:(2)", translation_z="0:(10)", rotation_3d_y="0:(0)",
                               rotation_3d_x="0:(0)", rotation_3d_z="0:(0)", fov_schedule="0: (70)"))
    cam = params(r, "camera")
    assert cam["translation_z"] == "0.05" and cam["translation_y"] == "-0.01"
    assert cam["fov"] == pytest.approx(math.degrees(2 * math.atan(1.5 * math.tan(math.radians(35)))))
    assert "zoom" not in cam and "rotation_roll" not in cam     # 2-D moves are not used in 3D mode
    path = from_schedules(11, 768, 512, **{k: v for k, v in cam.items() if k not in (
        "frames", "width", "height", "schedules")}, per_frame=True)
    assert np.allclose(path.c2w[10][:3, 3], [0, -0.1, 0.5])       # 10 frames: 0.5 forward, 0.1 up
    # Deforum flies on into its picture: 40 frames of translation_z 10 travel 2 of the picture's distances
    from nodes.motion.warp import apply_camera
    far = from_schedules(40, 64, 64, translation_z=cam["translation_z"], per_frame=True)
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    assert apply_camera(far, image=ramp, motion="compounding").frame(39).shape == (64, 64, 3)
    r = imported(settings_file(tmp_path, animation_mode="3D", rotation_3d_y="0:(1.5)", translation_z="0:(0)"))
    path = from_schedules(11, 512, 512, rotation_pan=params(r, "camera")["rotation_pan"], per_frame=True)
    forward = path.c2w[10][:3, 2]
    assert math.degrees(math.atan2(forward[0], forward[2])) == pytest.approx(15.0)     # turned right
    text = r.report.text()
    assert "use_depth_warping, depth_algorithm: no depth model in the model folders: the picture moves as a flat " \
        "plane" in text and "Put dpt-hybrid-midas (its Hugging Face folder) in a depth/ model folder" in text
    assert "padding_mode -> loop.border" in text and params(r, "loop")["border"] == "replicate"
    assert "depth_model" not in params(r, "loop")


def test_3d_depth_warping_takes_the_depth_model_the_model_folders_hold(tmp_path, monkeypatch):
    """Deforum's use_depth_warping with its depth_algorithm's model where the user keeps it (Depth Anything V2 Small
    standing in for a MiDaS the folders lack); the imported workflow validates and names it."""
    from tiny_models import build_depth_anything
    from app.cli import main
    build_depth_anything(tmp_path / "models" / "depth" / "Depth-Anything-V2-Small-hf")
    (tmp_path / "models" / "checkpoints").mkdir()
    stub(tmp_path / "models" / "checkpoints" / "v1-5-pruned-emaonly.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    src = settings_file(tmp_path, animation_mode="3D", depth_algorithm="Midas-3-Hybrid", translation_z="0:(5)")
    r = imported(src)
    assert params(r, "loop")["depth_model"] == "Depth-Anything-V2-Small-hf"
    assert "use_depth_warping, depth_algorithm -> loop.depth_model: each frame lifted to 3-D by " \
        "Depth-Anything-V2-Small-hf's depth before the camera moves it, spread 1 to 2.6 units as Deforum spreads " \
        "MiDaS's (Midas-3-Hybrid is not in the model folders)" in r.report.text()
    out = tmp_path / "shot.yaml"
    main(["import", str(src), "-o", str(out)])
    assert main(["validate", str(out)]) == 0


def test_schedules_keep_deforums_meaning():
    """An expression keyframe holds its expression until the next keyframe (Deforum evaluates it there; a
    blend would bend it); frames may be expressions of max_f; `s` is the seed; numexpr names are read."""
    from app.deforum.schedules import convert_schedule
    c = convert_schedule("0:(sin(t/4)), 10:(1), \"max_f-1\":(0)", 21)
    assert c.values[9] == pytest.approx(math.sin(9 / 4)) and c.values[10] == 1.0
    assert c.values[15] == pytest.approx(1 - 5 / 9) and c.values[19] == c.values[20] == 0.0     # max_f-1 = 19
    # a number runs linearly to the expression's value at its keyframe, then the expression runs
    c = convert_schedule("0:(0), 10:(t*t/10), 20:(3)", 30)
    assert c.values[5] == pytest.approx(5.0) and c.values[9] == pytest.approx(9.0)
    assert c.values[15] == pytest.approx(22.5) and c.values[20:] == [3.0] * 10
    assert convert_schedule("0: (s % 7)", 5, seed=23).values == [2.0] * 5
    assert convert_schedule("0:(arctan(1))", 3).values[0] == pytest.approx(math.pi / 4)
    assert convert_schedule(1.5, 3).values == [1.5] * 3       # old settings files hold bare numbers
    # Deforum's get_inbetweens reads keyframes up to the last frame and holds the last it read: a keyframe after
    # the clip is not interpolated toward (it was: 0:(1), 200:(2) reached 1.595 at frame 119 of 120)
    assert convert_schedule("0:(1), 200:(2)", 120).values == [1.0] * 120
    c = convert_schedule("0:(0), 50:(10), 500:(99)", 120)
    assert c.values[25] == 5.0 and c.values[50:] == [10.0] * 70
    with pytest.raises(ValueError, match=r"every keyframe is after the clip's last frame \(119\).*'0:\(3\)'"):
        convert_schedule("200:(3)", 120)


def test_video_input_and_interpolation_modes(tmp_path):
    r = imported(settings_file(tmp_path, animation_mode="Video Input", video_init_path="clips\\dance.mp4",
                               extract_from_frame=10, extract_to_frame=49, extract_nth_frame=2))
    assert params(r, "video") == {"path": "clips/dance.mp4", "start": 10, "count": 40, "every_nth": 2,
                                  "width": 512, "height": 512}
    # Deforum's loop with each frame's init the video's: the strength schedule frame by frame, no camera
    assert [(link.src, link.dst_port) for link in r.graph.links_to("loop") if link.dst_port == "video"] == \
        [("video", "video")]
    assert params(r, "loop")["denoise"] == 0.35 and params(r, "loop")["cadence"] == 1 and "camera" not in r.graph.nodes
    r = imported(settings_file(tmp_path, animation_mode="Interpolation"))
    assert params(r, "latent") == {"frames": 120, "width": 512, "height": 512}
    assert r.graph.nodes["noise"].type == "noise.constant"      # one seed for every frame, as Deforum does
    assert "denoise" not in params(r, "sample")
    assert params(r, "prompt")["text"].startswith("0: tiny cute swamp bunny") and ", 29:" not in \
        params(r, "prompt")["text"]        # blended between keyframes in this mode


def test_settings_choices_map_to_nodes(tmp_path):
    r = imported(settings_file(tmp_path, seed=-1, seed_behavior="fixed", sampler="DPM++ 2M Karras", W=500, H=300,
                               color_coherence="None", color_force_grayscale=True, use_init=True,
                               init_image="https://deforum.github.io/a1/I1.png", border="wrap",
                               strength_schedule="0:(0.5), 60:(0.7)"))
    s = params(r, "loop")
    assert (s["sampler"], s["scheduler"], s["seed"], s["seed_behaviour"]) == ("dpmpp_2m", "karras", 0, "fixed")
    assert s["denoise"] == "0:(0.5), 60:(0.3)"
    assert params(r, "camera")["width"] == 496 and params(r, "camera")["height"] == 296
    assert (s["width"], s["height"], s["color_coherence"], s["border"]) == (496, 296, "none", "wrap")
    assert params(r, "init") == {"path": "I1.png"}
    assert [link.src for link in r.graph.links_to("loop") if link.dst_port == "image"] == ["init"]
    # greyed inside the loop, as Deforum greys the picture it feeds back, and the init strength is frame 0's
    assert s["grayscale"] is True and s["image_denoise"] == 0.2 and "grey" not in r.graph.nodes
    text = r.report.text()
    for key, why in (("seed", "new random seed every run"), ("W, H", "rounded down to 496x296"),
                     ("init_image", "save it as I1.png beside the workflow"),
                     ("strength_schedule", "denoise = 1 - strength, frame by frame"),
                     ("strength", "re-diffused at denoise 1 - strength = 0.2"),
                     ("color_force_grayscale", "greyed before it is diffused, and each diffused frame")):
        assert any(line.split()[2:3] == [key.split(",")[0] + ("," if "," in key else "")] and why in line
                   for line in text.splitlines()), (key, text)
    r = imported(settings_file(tmp_path, color_coherence="Match Frame 0 RGB"))
    assert params(r, "loop")["color_coherence"] == "rgb" and "colour" not in r.graph.nodes
    assert "mapped exactly         color_coherence, legacy_colormatch -> loop.color_coherence, loop.color_coherence_" \
        "after: each moved frame's RGB histograms matched to frame 0's before it is diffused" in r.report.text()


@pytest.mark.parametrize("change,message", [
    ({"max_frames": "lots"}, "max_frames: expected a number, got 'lots'"),
    ({"zoom": "0:(1.0"}, "zoom: the value of keyframe 0 opens a parenthesis that is never closed"),
    ({"zoom": "0:(1.0 +* 2)"}, "zoom: "),
    ({"animation_mode": "4D"}, "animation_mode: '4D' is not one of Deforum's modes"),
    ({"prompts": {"0": 5}}, "prompts: the prompt at frame 0 is int, not text"),
    ({"prompts": None}, "prompts: the file has no prompts"),
    ({"strength_schedule": "0:(0.5), 9:(1.4)"}, "strength_schedule: strength 1.1 at frame 6 is outside 0..1"),
    ({"translation_x": "0:(0), \"max_q\":(1)"}, "translation_x: the keyframe frame 'max_q' is not a number"),
    # an integer past a float's range raised OverflowError out of math.isfinite / float()
    ({"steps": 10 ** 400}, "steps: expected a number, got 1000000000"),
    ({"zoom": 10 ** 400}, "zoom: expected keyframes such as '0:(1.0)', got 1000000000"),
])
def test_a_damaged_setting_is_one_message_naming_it(tmp_path, capsys, change, message):
    from app.cli import main
    src = settings_file(tmp_path, **change)
    assert main(["import", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kinograph import: {src}: ") and message in err and "Traceback" not in err


def test_a_settings_file_cut_short_says_so(tmp_path, capsys):
    from app.cli import main
    src = tmp_path / "deforum_settings.txt"
    src.write_text((DATA / "deforum_settings_2d.txt").read_text()[:3000])
    assert main(["import", str(src)]) == 2
    err = capsys.readouterr().err
    assert "ends before its JSON does: it was cut short" in err and "Traceback" not in err


def test_the_editor_opens_deforum_settings_with_the_report(qtbot, tmp_path):
    from PySide6.QtWidgets import QTextEdit
    from app.editor import window as window_mod
    from app.editor.document import Document
    from app.editor.settings import EditorSettings
    from app.editor.window import MainWindow, loader_for
    src = settings_file(tmp_path)
    assert loader_for(src) is None          # dropped, it opens as a workflow instead of becoming a loader
    w = MainWindow(Document(), settings=EditorSettings(tmp_path / "editor.json"))
    try:
        assert w.open_path(str(src)) is w
        assert w.doc.graph.nodes["camera"].params["schedules"] == "per_frame" and w.doc.path is None
        dlg = w._comfyui_report
        assert dlg.windowTitle() == "Imported from Deforum: deforum_settings.txt"
        assert "noise_schedule" in dlg.findChild(QTextEdit).toPlainText()
    finally:
        for x in list(window_mod.WINDOWS) + [w]:
            x.doc.undo.setClean()
            x.close()


def _render(tmp_path, monkeypatch, builder, **settings):
    """Deforum settings imported and run on a tiny checkpoint (`builder` from tiny_models) with one torch thread:
    the import's exit code, the workflow it wrote, and the frames of the video with their rate."""
    import av
    import torch
    from app.cli import main
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    root = builder(tmp_path / "tiny")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root / "models"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        src = settings_file(tmp_path, W=64, H=64, steps=2, **settings)
        out = tmp_path / "shot.yaml"
        code = main(["import", str(src), "-o", str(out)])
        assert main(["validate", str(out)]) == 0
        assert main(["run", str(out), "--device", "cpu", "--no-cache"]) == 0
    finally:
        torch.set_num_threads(threads)
    with av.open(str(tmp_path / "out" / "Deforum.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        rate = c.streams.video[0].average_rate
    return code, out.read_text(), frames, rate


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory):
    """One tiny SD 1.5 checkpoint for the render tests (building it is most of a render test's time)."""
    from tiny_models import build_sd15_single_file
    return build_sd15_single_file(tmp_path_factory.mktemp("tiny"))


def _tiny_video(path, frames, seed=3):
    """An H.264 file of `frames` 64 x 64 frames of noise."""
    import av
    import numpy as np
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=15)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for _ in range(frames):
            for packet in s.encode(av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 64, 3), np.uint8), "rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_a_short_2d_animation_renders_on_a_tiny_sd_checkpoint(tmp_path, monkeypatch, tiny_sd15):
    import numpy as np
    # generate.feedback, cadence 2 over 6 frames: frames 0, 2 and 4 diffused, the others moved on and mixed; with
    # hybrid video (its first frame the init, its frames blended in through a difference mask, its flow moving
    # every frame)
    _tiny_video(tmp_path / "dance.mp4", 6)
    code, text, frames, rate = _render(tmp_path, monkeypatch, lambda _: tiny_sd15, max_frames=6,
                                       sd_model_name="sd15_tiny.safetensors", zoom="0:(1.2)",
                                       translation_x="0:(0)", diffusion_cadence=2, video_init_path="dance.mp4",
                                       hybrid_composite="Normal", hybrid_motion="Optical Flow",
                                       hybrid_flow_method="DIS Medium", hybrid_comp_mask_type="Difference")
    assert code == 0                                 # every setting mapped exactly
    assert "type: generate.feedback" in text and "hybrid_motion: optical_flow" in text
    assert len(frames) == 6 and frames[0].shape == (64, 64, 3) and float(rate) == 15.0
    assert np.abs(frames[5].astype(int) - frames[0].astype(int)).mean() > 1      # the frames differ: it moved


def test_an_sdxl_checkpoint_in_the_model_folders_is_imported_as_sdxl_and_renders(tmp_path, monkeypatch):
    """Deforum runs SDXL checkpoints as it runs SD 1.5 ones: one the model folders hold is loaded by load.sdxl (the
    SD 1.5 loader refused it when the imported workflow ran)."""
    from tiny_models import build_sdxl_single_file
    _, text, frames, _ = _render(tmp_path, monkeypatch, build_sdxl_single_file, max_frames=3,
                                 sd_model_name="sdxl_tiny", zoom="0:(1.1)", diffusion_cadence=1)
    assert "type: load.sdxl" in text and "path: sdxl_tiny.safetensors" in text
    assert len(frames) == 3
    # not in the model folders when imported: the SD 1.5 loader, and the report says how to get SDXL's
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "empty"))
    r = imported(tmp_path / "deforum_settings.txt")
    assert r.graph.nodes["model"].type == "load.sd"
    assert "an SDXL checkpoint is loaded as SDXL (load.sdxl) when the model folders hold it" in r.report.text()


def test_an_early_colab_settings_file_with_its_older_key_names():
    """The Deforum notebook's settings: `scale` for the guidance, `fov` a number, `flip_2d_perspective`, klms,
    no fps (its default, said so), schedules that are expressions of t in 3D."""
    from graph_engine.schedule import parse_schedule
    r = imported(DATA / "deforum_colab_settings.txt")
    cam = params(r, "camera")
    assert (cam["width"], cam["height"], cam["frames"]) == (512, 448, 100)
    assert cam["fov"] == pytest.approx(math.degrees(2 * math.atan(512 / 448 * math.tan(math.radians(20)))))
    tx = parse_schedule(cam["translation_x"]).values(100)
    assert tx[7] == pytest.approx(10 * math.sin(2 * 3.14 * 7 / 10) / 200)
    assert cam["translation_z"] == "0.05"
    s = params(r, "loop")
    assert (s["cfg"], s["sampler"], s["steps"], s["seed"]) == (7.0, "euler", 50, 1185529623)
    text = r.report.text()
    assert "sampler -> loop.sampler, loop.scheduler: 'klms' has no Kinograph equivalent; the nearest is euler" in text
    assert "fps -> save.fps: not in the file: Deforum's default" in text
    assert "the file names no checkpoint: set model.path" in text
    assert "flip_2d_perspective" not in text and "does not know" not in text
    assert params(r, "save")["path"] == "out/StableFun.mp4"


def deforum_seeds(behaviour, seed, n, iter_n=1):
    """The seeds Deforum's seed.py gives n diffused frames in a row: next_seed runs once after each."""
    out, internal = [], 0
    for _ in range(n):
        out.append(seed)
        if behaviour == "iter":
            seed += 1 if internal % iter_n == 0 else 0
            internal += 1
        elif behaviour in ("ladder", "alternate"):
            seed += (2 if behaviour == "ladder" else 1) if internal == 0 else -1
            internal = 1 - internal
    return out


@pytest.mark.parametrize("cadence", [1, 3])
def test_seed_behaviours_give_deforums_seeds(tmp_path, cadence):
    """ladder and alternate were one more every frame, and seed_iter_N was dropped: the loop now gets each diffused
    frame's seed as Deforum's next_seed makes it."""
    from nodes.generate.feedback import frame_schedules
    for behaviour, iter_n in (("ladder", 1), ("alternate", 1), ("iter", 3), ("iter", 1)):
        r = imported(settings_file(tmp_path, seed=1000, seed_behavior=behaviour, seed_iter_N=iter_n,
                                   diffusion_cadence=cadence, max_frames=30))
        loop = params(r, "loop")
        plan = frame_schedules(30, cadence, denoise=0.5, cfg=7, steps=10, seed=loop["seed"],
                               seed_behaviour=loop["seed_behaviour"], seed_schedule=loop.get("seed_schedule", "0"))
        n = len(range(0, 30, cadence))
        assert list(plan.seeds[::cadence]) == deforum_seeds(behaviour, 1000, n, iter_n), (behaviour, iter_n)
        assert "mapped exactly         seed_behavior" in r.report.text()


def test_deforums_default_settings_file_imports_validates_and_schedules_its_seeds(tmp_path, monkeypatch, capsys):
    """scripts/default_settings.txt of deforum-art/sd-webui-deforum (the settings its UI starts from): imports and
    validates. Its seed_schedule `0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)` (-1: A1111 draws a seed) made the
    import refuse the file when seed_behavior is schedule; -1 frames now get their own seeds, said so."""
    from app.cli import main
    from graph_engine.schedule import parse_schedule
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    stub(models / "revAnimated_v122.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    out = tmp_path / "shot.yaml"
    assert main(["import", str(DATA / "default_settings.txt"), "-o", str(out)]) == 3    # some settings approximated
    assert main(["validate", str(out)]) == 0
    capsys.readouterr()
    s = json.loads((DATA / "default_settings.txt").read_text())
    r = imported(settings_file(tmp_path, **dict(s, seed=77, seed_behavior="schedule")))
    loop = params(r, "loop")
    seeds = [int(round(v)) for v in parse_schedule(loop["seed_schedule"]).values(120)]
    diffused = seeds[::2]                              # diffusion_cadence 2
    assert diffused[0] == diffused[-1] == 77           # frame 0 and max_f-1 (118): s
    assert len(set(diffused[1:-1])) == 58 and 77 not in diffused[1:-1]
    text = r.report.text()
    assert "-1 (a new random seed in Deforum) at 117 frame(s) from 1" in text
    # positive/negative prompts joined as Deforum joins them: f"{prompt} --neg {negative}", with a space
    assert params(r, "prompt")["negative"].startswith("0: nsfw, nude nsfw, nude, 59:")
    assert "negative_prompts -> prompt.text, prompt.negative" in text


def test_controlnet_units_steer_the_loop(tmp_path, monkeypatch, capsys):
    """Deforum's cn_1 .. cn_5 were all 'not imported'. A unit with a video (or picture) and a preprocessor
    control.apply makes is a control.apply on the loop's model, with its weight, guidance, canny thresholds and
    A1111's model name without its hash; one with a preprocessor it does not make says which node makes it."""
    from app.cli import main
    cn = dict(cn_1_enabled=True, cn_1_model="control_v11p_sd15_canny [d14c016b]", cn_1_module="canny",
              cn_1_vid_path="C:\\clips\\dance.mp4", cn_1_threshold_a=90, cn_1_threshold_b=180, cn_1_weight="0:(0.8)",
              cn_1_resize_mode="Just Resize",
              cn_2_enabled=True, cn_2_model="control_v11p_sd15_openpose [cab727d4]", cn_2_module="openpose_full",
              cn_2_vid_path="dance.mp4",
              cn_3_enabled=True, cn_3_model="control_v11f1p_sd15_depth [cfd03158]", cn_3_module="none",
              cn_3_vid_path="depth.png", cn_3_guidance_end="0:(0.6), 50:(0.9)",
              cn_4_enabled=False, cn_4_model="control_v11p_sd15_seg", cn_4_vid_path="seg.mp4")
    r = imported(settings_file(tmp_path, **cn))
    g = r.graph
    assert params(r, "controlnet1") == {"path": "control_v11p_sd15_canny", "preprocessor": "canny", "strength": 0.8,
                                        "start": 0.0, "end": 1.0, "low": 90, "high": 180}
    assert params(r, "controlnet1_video") == {"path": "C:/clips/dance.mp4", "count": 120}
    assert params(r, "controlnet3") == {"path": "control_v11f1p_sd15_depth", "preprocessor": "none", "strength": 1.0,
                                        "start": 0.0, "end": 0.6}
    assert g.nodes["controlnet3_video"].type == "io.load_image"
    assert "controlnet2" not in g.nodes and "controlnet4" not in g.nodes
    # model -> unit 1 -> unit 3 -> loop
    assert sorted((lk.src, lk.dst) for lk in g.links() if lk.dst_port == "model") == [
        ("controlnet1", "controlnet3"), ("controlnet3", "loop"), ("model", "controlnet1")]
    text = r.report.text()
    assert ("NOT MAPPED             cn_2_enabled, cn_2_model, cn_2_module, cn_2_vid_path: ControlNet unit 2: the "
            "'openpose_full' preprocessor is not imported: make the control video with pose.dwpose") in text
    assert ("cn_3_enabled, cn_3_model, cn_3_module, cn_3_vid_path -> controlnet3.path, controlnet3.strength, "
            "controlnet3_video.path: the control picture steers every frame; cn_3_guidance_end changes over the "
            "clip: its frame-0 value 0.6 for every frame") in text
    assert "Deforum's ControlNet units are not imported" not in text and "cn_4" not in text
    # the workflow validates with the files in place
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "controlnet").mkdir()
    stub(models / "checkpoints" / "v1-5-pruned-emaonly.safetensors")
    for name in ("control_v11p_sd15_canny.safetensors", "control_v11f1p_sd15_depth.pth"):
        stub(models / "controlnet" / name)
    monkeypatch.setenv("KINOGRAPH_MODELS", str(models))
    for name in ("dance.mp4", "depth.png"):
        (tmp_path / name).write_bytes(b"")
    out = tmp_path / "shot.yaml"
    assert main(["import", str(settings_file(tmp_path, **dict(cn, cn_1_vid_path="dance.mp4"))), "-o", str(out)]) == 3
    assert main(["validate", str(out)]) == 0, capsys.readouterr()


def test_a1111_options_deforum_passes_on_are_named_when_left_out(tmp_path):
    """tiling, restore_faces, seed_resize_from_w/h and motion_preview_mode changed Deforum's frames and were left
    out without a word; each on is a NOT MAPPED line, each off is silent."""
    on = dict(tiling=True, restore_faces=True, seed_resize_from_w=768, seed_resize_from_h=0, motion_preview_mode=True)
    text = imported(settings_file(tmp_path, **on)).report.text()
    for line in ("NOT MAPPED             tiling: seamless tiling (A1111's Tiling) has no Kinograph equivalent",
                 "NOT MAPPED             restore_faces: faces are not restored",
                 "NOT MAPPED             seed_resize_from_w: A1111's 'resize seed from' is not imported",
                 "NOT MAPPED             motion_preview_mode: Deforum's motion preview"):
        assert line in text, text
    assert "seed_resize_from_h" not in text
    text = imported(settings_file(tmp_path, tiling=False, restore_faces=False, motion_preview_mode=False)).report.text()
    assert "tiling" not in text and "restore_faces" not in text and "motion_preview" not in text


def test_a_cadence_above_16_is_kept(tmp_path, monkeypatch, capsys):
    """Deforum's cadence slider goes to 50: a cadence of 20 became 16 while the report said 'one frame in 16 ...
    mapped exactly'. The loop takes up to 200 (it holds two pictures whatever the cadence); beyond, it says so."""
    from app.cli import main
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    stub(models / "v1-5-pruned-emaonly.safetensors")
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models"))
    out = tmp_path / "shot.yaml"
    assert main(["import", str(settings_file(tmp_path, diffusion_cadence=20)), "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0, capsys.readouterr()
    r = imported(settings_file(tmp_path, diffusion_cadence=20))
    assert params(r, "loop")["cadence"] == 20 and "diffusion_cadence -> loop.cadence: one frame in 20" in r.report.text()
    r = imported(settings_file(tmp_path, diffusion_cadence=500, max_frames=1000))
    assert params(r, "loop")["cadence"] == 200
    assert ("mapped approximately   diffusion_cadence -> loop.cadence: 500 is more than the loop takes: one frame in "
            "200") in r.report.text()


def test_colour_coherence_follows_legacy_colormatch():
    """Deforum matches each diffused frame to frame 0 again after it is diffused unless legacy_colormatch is on (a file
    without the key is legacy, as Deforum reads it); the loop did the legacy matching for both."""
    from app.deforum import import_data
    for legacy, after in ((False, True), (True, False), (None, False)):
        s = dict(BASE, legacy_colormatch=legacy)
        if legacy is None:
            del s["legacy_colormatch"]
        r = import_data(s)
        assert r.graph.nodes["loop"].params.get("color_coherence_after", False) is after, legacy
        assert ("and each diffused frame's after (legacy_colormatch off)" in r.report.text()) is after


def test_image_colour_coherence_and_frame_0_matching_in_video_input_mode():
    """'Image' colour coherence was "not imported (the loop matches frame 0)": it matches (in LAB) to the picture
    color_coherence_image_path names. In Video Input mode Match Frame 0 RGB / HSV / LAB matched the render to frame
    0 after it (color.match); Deforum's render.py matches nothing there (it samples only frames it feeds back)."""
    from app.deforum import DeforumImportError, import_data
    r = import_data(dict(BASE, color_coherence="Image", color_coherence_image_path="C:\\refs\\sunset.png",
                         legacy_colormatch=False))
    assert params(r, "loop")["color_coherence"] == "lab" and params(r, "loop")["color_coherence_after"] is True
    assert params(r, "colour_image") == {"path": "C:/refs/sunset.png"}
    assert [link.src for link in r.graph.links_to("loop") if link.dst_port == "color_reference"] == ["colour_image"]
    assert "each moved frame's before it is diffused" in r.report.text()
    r = import_data(dict(BASE, animation_mode="Video Input", video_init_path="a.mp4", color_coherence="LAB",
                         legacy_colormatch=False))
    assert params(r, "loop")["color_coherence"] == "none" and "colour" not in r.graph.nodes
    assert "'LAB' matches nothing in Deforum's Video Input mode" in r.report.text()
    # hybrid video set in Video Input mode: the report told the file it had it off
    r = import_data(dict(BASE, animation_mode="Video Input", video_init_path="a.mp4", color_coherence="Video Input",
                         hybrid_composite="Normal"))
    assert ("with hybrid video on (hybrid_composite or hybrid_motion), which Deforum leaves off in Video Input mode "
            "(2D and 3D only); 'LAB' matches to frame 0") in r.report.text()
    with pytest.raises(DeforumImportError, match="color_coherence_image_path: 'Image' colour coherence needs a "
                                                 "picture; the setting is empty"):
        import_data(dict(BASE, color_coherence="Image", color_coherence_image_path=""))


def test_hybrid_video_settings_become_the_loops_hybrid_settings():
    """Hybrid video (hybrid_composite, hybrid_motion and their schedules) was "not imported"; it maps to the loop's
    hybrid_* settings on the init video, whose first frame is the init image (hybrid_use_first_frame_as_init_image)."""
    from app.deforum import import_data
    r = import_data(dict(BASE, video_init_path="dance.mp4", hybrid_composite="After Generation",
                         hybrid_comp_alpha_schedule="0:(0.3), 60:(0.6)", hybrid_comp_mask_type="Blend",
                         hybrid_comp_mask_equalize="After", hybrid_motion="Perspective", use_init=True,
                         init_image="a.png", strength=0.7))
    p = params(r, "loop")
    assert (p["hybrid_composite"], p["hybrid_alpha"], p["hybrid_mask"], p["hybrid_mask_equalize"], p["hybrid_motion"],
            p["hybrid_mask_auto_contrast"], p["image_denoise"]) == ("after_generation", "0:(0.3), 60:(0.6)", "blend",
                                                                    "after", "perspective", True, 0.3)
    links = {link.dst_port: link.src for link in r.graph.links_to("loop")}
    assert links["hybrid_video"] == "hybrid_video" and links["image"] == "hybrid_first" and "init" not in r.graph.nodes
    assert params(r, "hybrid_video")["path"] == "dance.mp4"
    assert "NOT MAPPED" not in r.report.text()
    r = import_data(dict(BASE, video_init_path="dance.mp4", hybrid_motion="Optical Flow", hybrid_flow_method="RAFT",
                         hybrid_composite="Before Motion", hybrid_comp_mask_type="Depth",
                         color_coherence="Video Input", color_coherence_video_every_N_frames=4))
    assert params(r, "loop")["hybrid_flow"] == "dis_fine" and params(r, "loop")["hybrid_composite"] == "normal"
    # 'Video Input' colour coherence: to the hybrid video's frame, taken every 4 frames, in LAB
    assert (params(r, "loop")["color_coherence"], params(r, "loop")["color_video_every"]) == ("lab", 4)
    text = r.report.text()
    for why in ("RAFT is measured with DIS fine", "Before Motion is composited after the video's motion",
                "the Depth mask is not imported"):
        assert why in text, why


def test_a_prompt_with_two_negatives_splits_as_deforum_splits_it(tmp_path):
    """Deforum's prepare_prompt: positive = the text before the first --neg, negative = every part after one joined;
    the second --neg was kept inside the negative, and a comma before --neg was dropped."""
    from app.deforum.schedules import split_negative
    assert split_negative("a cat, --neg blurry --neg text, watermark") == ("a cat,", "blurry  text, watermark")
    r = imported(settings_file(tmp_path, prompts={"0": "a cat, --neg blurry --neg text"}, negative_prompts="",
                               animation_prompts_negative=""))
    assert (params(r, "prompt")["text"], params(r, "prompt")["negative"]) == ("a cat,", "blurry  text")


def test_a_comfyui_workflow_of_deforums_nodes_says_what_to_use(tmp_path):
    """XmYx/deforum-comfy-nodes' nodes (as its examples wire them) said only 'no Kinograph equivalent'; they say that
    generate.feedback is Deforum's loop here and that the settings file imports."""
    from app.comfyui import import_workflow
    wf = {"last_node_id": 26, "last_link_id": 56, "version": 0.4, "links": [[53, 15, 0, 26, 0, "deforum_data"]],
          "nodes": [{"id": 15, "type": "DeforumBaseParamsNode", "pos": [0, 0], "mode": 0, "inputs": [],
                     "outputs": [{"name": "deforum_data", "type": "deforum_data", "links": [53]}],
                     "widgets_values": [1024, 1024, "euler", "normal", 25, 7, 1, "Deforum_{timestring}", "fixed", 1,
                                        "output/deforum", 0.4, True, False, False, True, False]},
                    {"id": 26, "type": "DeforumIteratorNode", "pos": [0, 0], "mode": 0,
                     "inputs": [{"name": "deforum_data", "type": "deforum_data", "link": 53}], "outputs": [],
                     "widgets_values": ["stable_diffusion", 1, "randomize", 0, 0.8, 0.1, False, False]}]}
    p = tmp_path / "deforum_comfy.json"
    p.write_text(json.dumps(wf))
    text = import_workflow(p).report.text()
    assert ("DeforumIteratorNode #26 -> deforum_iterator_node_26: not mapped: Deforum's ComfyUI nodes make one frame "
            "per queued run; Kinograph makes the whole animation in one node, generate.feedback") in text
    assert "`kinograph import` the .txt" in text and "no Kinograph equivalent" not in text


def test_video_input_mode_renders_each_frame_at_its_own_strength_matched_to_an_image(tmp_path, monkeypatch,
                                                                                     tiny_sd15):
    """Video Input mode sampled the whole clip at frame 1's strength ("one strength for the whole clip"), with one
    seed, and 'Image' colour coherence was not imported. Deforum's render.py diffuses each video frame at that frame's
    strength and seed, and with 'Image' matches each diffused frame to the picture (legacy_colormatch off). A settings
    file of this mode imports exactly and runs on a tiny SD 1.5: each frame's sampling run has its own denoise
    (1 - strength) and seed, and every frame takes the picture's colours."""
    import numpy as np
    from PIL import Image
    import nodes.generate.sampling as sampling
    rng = np.random.default_rng(3)
    _tiny_video(tmp_path / "clip.mp4", 3)
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 0] = rng.integers(150, 250, (40, 40))
    Image.fromarray(red).save(tmp_path / "red.png")
    runs = []
    real = sampling.run_sampling
    monkeypatch.setattr(sampling, "run_sampling", lambda *a, **kw: runs.append(kw) or real(*a, **kw))
    code, text, frames, _ = _render(tmp_path, monkeypatch, lambda _: tiny_sd15, animation_mode="Video Input",
                                    video_init_path="clip.mp4", max_frames=3, sd_model_name="sd15_tiny.safetensors",
                                    strength_schedule="0:(0.2), 2:(0.6)", seed=7, seed_behavior="iter",
                                    color_coherence="Image", color_coherence_image_path="red.png",
                                    legacy_colormatch=False, enable_noise_multiplier_scheduling=False)
    assert code == 0 and "type: generate.feedback" in text and "color_reference" in text
    assert [round(r["denoise"], 6) for r in runs] == [0.8, 0.6, 0.4] and [r["seed"] for r in runs] == [7, 8, 9]
    assert len(frames) == 3
    for f in frames:
        r, g, b = f.reshape(-1, 3).mean(axis=0)
        assert r > 120 and g < 40 and b < 40, (r, g, b)
