"""A newcomer's afternoon with the README (newcomer40): each test is a mistake or a surprise they met."""
from pathlib import Path

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(folder: Path, capsys, nodes: str) -> str:
    """Run a workflow of these `nodes` (YAML lines) written in `folder`; what it said on stderr."""
    wf = folder / "shot.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + nodes)
    assert main(["run", str(wf)]) == 0
    return capsys.readouterr().err


def test_a_sweep_file_given_as_the_workflow_says_how_a_sweep_is_run(capsys):
    """`kinograph run examples/seeds.yaml` (or validate, or batch without --sweep) was told the file lacked
    `kinograph: 1`, that 'grid' was an unknown key and that it had no nodes: three fixes to a file that is right."""
    for command in (["run"], ["validate"], ["batch"]):
        assert main(command + [str(ROOT / "examples" / "seeds.yaml")]) == 2
        err = capsys.readouterr().err
        assert err.strip().endswith("this is a sweep file (its grid:/cases: are values for a workflow's parameters), "
                                    "not a workflow: run it with `kinograph batch WORKFLOW.yaml --sweep seeds.yaml`")
        assert "unknown top-level key" not in err and "kinograph: 1" not in err


def test_a_missing_model_path_with_dot_dot_is_said_to_go_beside_the_workflow(tmp_path, monkeypatch, capsys):
    """examples/tiny/wan.yaml before its tiny model is built: '../../models/wan' was to be put 'into
    MODELS/diffusion_models/../../models', a folder outside every model folder; it is read beside the workflow."""
    monkeypatch.setenv("KINOGRAPH_MODELS", str(tmp_path / "models_here"))
    (tmp_path / "shots").mkdir()
    wf = tmp_path / "shots" / "wan.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  load: {type: load.wan, params: {path: ../models/wan}}\n")
    assert main(["validate", str(wf)]) == 2
    err = capsys.readouterr().err
    assert (f"put wan at {tmp_path / 'models' / 'wan'} (a path with '..' is taken from the workflow's folder), or set "
            f"path to its name in the model folders") in err
    assert "/../" not in err


def test_an_odd_sized_clip_written_as_h264_says_the_edge_added_and_how_to_keep_its_size(tmp_path, capsys):
    """A 133x101 picture moved by the camera came out 134x102 with a black edge, and the log said nothing."""
    import av
    err = _run(tmp_path, capsys,
               "  pattern: {type: generate.test_pattern, params: {frames: 2, width: 33, height: 17}}\n"
               "  save: {type: io.save_video, inputs: {video: pattern.video}, params: {path: odd.mp4}}\n"
               "  keep: {type: io.save_video, inputs: {video: pattern.video}, params: {path: odd.mov, codec: prores}}\n")
    assert ("save: the frames are 33x17, and h264 takes even sizes only: a black column on the right and a black row "
            "at the bottom are added (34x18). To keep the size, crop or resize to an even one first (video.crop, "
            "video.resize), or set codec to prores (.mov) or ffv1 (.mkv)") in err
    assert "keep: the frames" not in err          # prores keeps an odd size
    for name, size in (("odd.mp4", (34, 18)), ("odd.mov", (33, 17))):
        with av.open(str(tmp_path / name)) as f:
            assert (f.streams.video[0].width, f.streams.video[0].height) == size


def test_an_opaque_gif_is_not_said_to_have_transparency_and_a_transparent_one_is(tmp_path):
    """FFmpeg decodes every GIF as BGRA: a GIF io.save_video wrote read back 'it has transparency', and writing it to
    .mp4 then warned that its alpha was left out."""
    import numpy as np
    from PIL import Image
    from graph_engine import Clip
    from nodes.io.video_read import ALPHA_NOTE, load_video
    from nodes.io.video_write import write_video
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    frames[:, :, :8] = (200, 30, 30)
    write_video(Clip.from_array(frames, fps=10.0), str(tmp_path / "opaque.gif"), codec="gif")
    said = []
    clip = load_video(str(tmp_path / "opaque.gif"), log=said.append)
    assert clip.matte is None and not any("transparency" in s for s in said)
    sticker = Image.new("P", (16, 16), 0)
    sticker.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    sticker.paste(1, (4, 4, 12, 12))
    sticker.save(tmp_path / "sticker.gif", transparency=0, save_all=True, append_images=[sticker.copy()], duration=100)
    said = []
    clip = load_video(str(tmp_path / "sticker.gif"), log=said.append)
    assert clip.matte is not None and f"sticker.gif: {ALPHA_NOTE}" in said


def test_a_sharded_render_names_each_shards_own_frames_and_no_empty_context():
    """`run examples/test_pattern.yaml --ray local --shards 2` said '(each pulls up to 0 frames of context either
    side)', then 'frames 0-27' and 'frames 27-48', as if frame 27 were rendered twice."""
    from app.batch import _shard_printer

    class Notes(list):
        def note(self, line):
            self.append(line)
    said = Notes()
    emit = _shard_printer(said, False)
    emit({"event": "shards_planned", "ranges": [(0, 27), (27, 48)], "asked": 2, "workers": 2, "frames": 48,
          "context": 0, "chunk": 27})
    emit({"event": "shard_finished", "ok": True, "frames": (27, 48), "shard": 1, "host": "vm", "seconds": 3.0})
    emit({"event": "shards_planned", "ranges": [(0, 48)], "asked": 2, "workers": 1, "frames": 48, "context": 2,
          "chunk": 32})
    assert said == ["48 frames in 2 shards on 2 workers", "  shard 1 frames 27-47 done on vm (3.00s)",
                    "48 frames in 1 shard on 1 worker (each pulls up to 2 frames of context either side); shards hold "
                    "whole 32-frame chunks, so not 2"]


def test_a_16_bit_png_read_by_load_image_says_it_is_read_as_8_bits_and_what_keeps_its_depth(tmp_path, capsys):
    import cv2
    import numpy as np
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((8, 8, 3), 40000, np.uint16))
    cv2.imwrite(str(tmp_path / "plain.png"), np.full((8, 8, 3), 200, np.uint8))
    err = _run(tmp_path, capsys,
               "  deep: {type: io.load_image, params: {path: deep.png}}\n"
               "  plain: {type: io.load_image, params: {path: plain.png}}\n"
               "  a: {type: io.save_image, inputs: {image: deep.image}, params: {path: a.png}}\n"
               "  b: {type: io.save_image, inputs: {image: plain.image}, params: {path: b.png}}\n")
    assert ("deep: deep.png holds more than 8 bits a channel: io.load_image reads it as 8-bit RGB (what the models "
            "take); to keep its depth through grading into a 16-bit TIFF or an EXR (io.save_frames) or ProRes, read "
            "it with io.load_frames (path: the file itself)") in err
    assert "plain: plain.png holds" not in err


def test_a_gif_opaque_at_first_and_transparent_later_keeps_its_matte(tmp_path):
    """Only the first picture was looked at: a sticker that appears on a solid card and then clears to transparent
    (disposal to background) was read as opaque, its later frames' matte dropped. PIL's reading of the file says
    which pixels of the second picture are transparent."""
    import numpy as np
    from PIL import Image
    from nodes.io.video_read import ALPHA_NOTE, load_video
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759
    card = Image.new("P", (16, 16), 1)
    card.putpalette(palette)
    sticker = Image.new("P", (16, 16), 0)
    sticker.putpalette(palette)
    sticker.paste(2, (4, 4, 12, 12))
    path = tmp_path / "late.gif"
    card.save(path, save_all=True, append_images=[sticker], transparency=0, disposal=2, duration=100, optimize=False)
    with Image.open(path) as im:
        im.seek(1)
        shown = np.asarray(im.convert("RGBA"))[..., 3] > 0
    assert shown.any() and not shown.all()
    said = []
    clip = load_video(str(path), log=said.append)
    assert clip.matte is not None and f"late.gif: {ALPHA_NOTE}" in said
    matte = clip.matte.to_array()
    assert (matte[0] > 0).all() and np.array_equal(matte[1].reshape(16, 16, -1)[..., 0] > 0, shown)


def test_an_odd_sized_clip_with_transparency_written_as_vp9_says_its_added_edge_is_transparent(tmp_path):
    """vp9 keeps the alpha, and the edge added to make the size even is transparent there (pad color black@0):
    the log said a black column was added."""
    import numpy as np
    from graph_engine import Clip
    from nodes.io.nodes import save_video
    from nodes.io.video_read import load_video

    class Ctx:
        workflow_yaml, said = "", []
        log = said.append

        def progress(self, *a, **k):
            pass
        wrote = report = progress
    frames = np.full((2, 17, 33, 3), 200, np.uint8)
    alpha = np.full((2, 17, 33, 1), 255, np.uint8)
    clip = Clip.from_array(frames, fps=10.0).with_matte(lambda a, b: alpha[a:b])
    save_video(Ctx(), clip, path=str(tmp_path / "odd.webm"), fps=0.0, codec="auto", crf=30, keep_audio=False,
               overwrite=True)
    assert any("a transparent column on the right and a transparent row at the bottom are added (34x18)" in s
               for s in Ctx.said), Ctx.said
    matte = load_video(str(tmp_path / "odd.webm")).matte.to_array()
    assert matte.shape[1:3] == (18, 34) and matte[:, :, -1].max() == 0 and matte[:, -1].max() == 0
