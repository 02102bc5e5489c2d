"""EXR stills and sequences, as Nuke and Blender render them (before: 'cannot read ... as an image
(corrupt or unsupported format)' for every EXR, though load_frames listed .exr among its types)."""
import numpy as np
import pytest

OpenEXR = pytest.importorskip("OpenEXR")

from graph_engine import NodeError  # noqa: E402
from graph_engine.api import Session, load_workflow  # noqa: E402
from graph_engine.embedded import read_embedded_workflow  # noqa: E402
from nodes.io.images import load_frames, read_image, read_image_alpha  # noqa: E402


def srgb_code(linear: float) -> int:
    """IEC 61966-2-1's encoding of a linear level, as an 8-bit code."""
    v = linear * 12.92 if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return int(round(255 * min(1.0, v)))


def write(path, channels, **header):
    h = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **header}
    with OpenEXR.File(h, channels) as f:
        f.write(str(path))


# Linear levels a render holds: an 18% grey card, a colour, a highlight four stops over white, a NaN.
PATCHES = [(0.18, 0.18, 0.18), (1.0, 0.5, 0.25), (4.0, 4.0, 4.0), (np.nan, 0.0, 0.0)]


def patches(dtype=np.float16):
    rgb = np.zeros((8, 32, 3), np.float32)
    for i, p in enumerate(PATCHES):
        rgb[:, 8 * i:8 * i + 8] = p
    return {c: np.ascontiguousarray(rgb[..., i].astype(dtype)) for i, c in enumerate("RGB")}


def test_an_exr_reads_as_the_srgb_view_shows_it(tmp_path):
    write(tmp_path / "still.exr", patches())
    img = read_image(str(tmp_path / "still.exr")).astype(int)
    grey, colour, hot, nan = img[4, 4], img[4, 12], img[4, 20], img[4, 28]
    assert (np.abs(grey - srgb_code(0.18)) <= 1).all()
    assert np.abs(colour - [srgb_code(1.0), srgb_code(0.5), srgb_code(0.25)]).max() <= 1
    assert (hot == 255).all() and (nan == 0).all()      # over white clips, as the view does; NaN is black


def test_a_nuke_style_sequence_loads_as_a_clip(tmp_path):
    for i in range(3):
        ch = patches(np.float32)
        ch["R"] = np.full_like(ch["R"], i / 4.0)        # frames told apart by their red
        write(tmp_path / f"shot.{1001 + i:04d}.exr", ch)
    clip = load_frames(str(tmp_path / "shot.*.exr"), 24.0)
    assert (clip.length, clip.width, clip.height) == (3, 32, 8)
    assert [int(f[0, 0, 0]) for f in clip.to_array()] == [srgb_code(i / 4.0) for i in range(3)]


def test_a_blender_multilayer_exr_shows_its_combined_pass_and_alpha(tmp_path):
    combined = np.full((8, 16), 0.5, np.float32)
    alpha = np.zeros((8, 16), np.float32)
    alpha[:, :8] = 1.0
    write(tmp_path / "render.exr", {"ViewLayer.Depth.Z": np.full((8, 16), 7.0, np.float32),
                                    "ViewLayer.Combined.R": combined * alpha, "ViewLayer.Combined.G": combined * alpha,
                                    "ViewLayer.Combined.B": combined * alpha, "ViewLayer.Combined.A": alpha})
    rgb, a = read_image_alpha(str(tmp_path / "render.exr"))
    assert (rgb[:, :8] == srgb_code(0.5)).all() and (rgb[:, 8:] == 0).all()     # premultiplied: over black
    assert np.array_equal(a, alpha)


def test_a_multi_part_exr_shows_its_first_part_with_colour(tmp_path):
    grey = np.full((8, 16), 0.5, np.float32)
    parts = [OpenEXR.Part({"type": OpenEXR.scanlineimage}, {"Z": grey * 9}, name="depth"),
             OpenEXR.Part({"type": OpenEXR.scanlineimage}, {"R": grey, "G": grey, "B": grey}, name="beauty")]
    with OpenEXR.File(parts) as f:
        f.write(str(tmp_path / "passes.exr"))
    assert (read_image(str(tmp_path / "passes.exr")) == srgb_code(0.5)).all()


def test_a_bounding_box_smaller_than_the_frame_lands_where_it_belongs(tmp_path):
    box = np.full((10, 20), 1.0, np.float32)
    write(tmp_path / "bbox.exr", {"R": box, "G": box, "B": box},
          dataWindow=(np.array([5, 3], np.int32), np.array([24, 12], np.int32)),
          displayWindow=(np.array([0, 0], np.int32), np.array([31, 15], np.int32)))
    img = read_image(str(tmp_path / "bbox.exr"))
    assert img.shape == (16, 32, 3)
    lit = img[..., 0] == 255
    assert lit.sum() == 200 and lit[3:13, 5:25].all()


def test_exr_mistakes_are_named(tmp_path):
    write(tmp_path / "depth.exr", {"Z": np.ones((4, 4), np.float32)})
    with pytest.raises(NodeError, match=r"depth.exr holds no colour channels \(it has Z\)"):
        read_image(str(tmp_path / "depth.exr"))
    write(tmp_path / "good.exr", patches())
    cut = tmp_path / "cut.exr"
    cut.write_bytes((tmp_path / "good.exr").read_bytes()[:300])
    with pytest.raises(NodeError, match="cannot read .*cut.exr as an EXR image"):
        read_image(str(cut))


def run_pattern(tmp_path, frames: int, rest: str) -> None:
    """Run a workflow of `frames` 32x16 test-pattern frames and the nodes `rest` adds after it."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n"
                  f"  pattern: {{type: generate.test_pattern, params: {{frames: {frames}, width: 32, height: 16}}}}\n"
                  + rest)
    res = Session().run(load_workflow(str(wf)))
    assert res.ok, res.failed


def test_save_image_writes_a_linear_exr_that_carries_its_workflow(tmp_path):
    run_pattern(tmp_path, 1, "  frame: {type: video.frame, inputs: {video: pattern.video}}\n"
                             "  save: {type: io.save_image, inputs: {image: frame.image}, params: {path: still.exr}}\n")
    with OpenEXR.File(str(tmp_path / "still.exr"), separate_channels=True) as f:
        ch = f.channels()
        assert ch["R"].pixels.dtype == np.float16
        linear = np.stack([ch[c].pixels for c in "RGB"], -1).astype(np.float32)
    again = read_image(str(tmp_path / "still.exr")).astype(int)
    from nodes.video.test_pattern import pattern_frames
    src = pattern_frames(0, 1, 32, 16, 1)[0].astype(int)
    # Linear light in the file (IEC 61966-2-1 decoding; half floats hold it to 0.1%), and back the same picture.
    want = np.where(src <= 10, src / 255 / 12.92, ((src / 255 + 0.055) / 1.055) ** 2.4)
    assert np.abs(linear - want).max() < 2e-3
    assert np.abs(again - src).max() <= 1
    assert "io.save_image" in read_embedded_workflow(tmp_path / "still.exr")


def test_save_frames_writes_an_exr_plate_that_loads_back(tmp_path):
    run_pattern(tmp_path, 5, "  save: {type: io.save_frames, inputs: {video: pattern.video}, "
                             "params: {path: plate, format: exr}}\n")
    names = sorted(p.name for p in (tmp_path / "plate").iterdir())
    assert names == [f"frame_{i:06d}.exr" for i in range(5)] + ["workflow.yaml"]
    from nodes.video.test_pattern import pattern_frames
    back = load_frames(str(tmp_path / "plate"), 24.0).to_array().astype(int)
    assert np.abs(back - pattern_frames(0, 5, 32, 16, 5).astype(int)).max() <= 1


def test_save_frames_numbers_a_plate_from_first_as_a_vfx_pipeline_does(tmp_path):
    """Plates start at 1001 (handles before the cut); the files were always frame_000000 on, so a comp
    script's Read node and the shot's frame range disagreed by 1001."""
    run_pattern(tmp_path, 3, "  save: {type: io.save_frames, inputs: {video: pattern.video}, "
                             "params: {path: plate, format: exr, first: 1001}}\n")
    names = sorted(p.name for p in (tmp_path / "plate").iterdir())
    assert names == ["frame_001001.exr", "frame_001002.exr", "frame_001003.exr", "workflow.yaml"]
    from nodes.video.test_pattern import pattern_frames
    back = load_frames(str(tmp_path / "plate"), 24.0).to_array().astype(int)
    assert np.abs(back - pattern_frames(0, 3, 32, 16, 3).astype(int)).max() <= 1
    # Renumbered from 0 again: the folder holds the new render alone, the 1001 frames are kept as a take.
    run_pattern(tmp_path, 2, "  save: {type: io.save_frames, inputs: {video: pattern.video}, "
                             "params: {path: plate, format: exr}}\n")
    assert sorted(p.name for p in (tmp_path / "plate").glob("*.exr")) == ["frame_000000.exr", "frame_000001.exr"]
    assert len(list((tmp_path / "takes").glob("plate.001/frame_0010*.exr"))) == 3


def test_a_frame_missing_from_a_sequence_is_held_and_named(tmp_path):
    """A render farm's sequence with holes (shot.1003, shot.1004 never rendered) was read in name order:
    every later frame came early, the clip short. The frame before a hole is held in its place."""
    for n in (1001, 1002, 1005, 1006):
        ch = patches(np.float32)
        ch["R"] = np.full_like(ch["R"], (n - 1000) / 8.0)
        write(tmp_path / f"shot.{n}.exr", ch)
    notes = []
    clip = load_frames(str(tmp_path), 24.0, log=notes.append)
    reds = [int(f[0, 0, 0]) for f in clip.to_array()]
    assert reds == [srgb_code(k / 8.0) for k in (1, 2, 2, 2, 5, 6)]
    assert notes and notes[0].startswith("shot.1003.exr, shot.1004.exr missing from the sequence")
    # Every 10th frame rendered on purpose, or names without numbers: nothing is missing.
    for n in (2000, 2010, 2020):
        write(tmp_path / f"step.{n}.exr", patches())
    from nodes.io.images import hold_gaps
    steps = sorted(str(p) for p in tmp_path.glob("step.*.exr"))
    assert hold_gaps(steps) == (steps, [])


def test_an_exr_plate_replacing_a_png_render_keeps_it_as_an_earlier_take(tmp_path):
    for fmt in ("png", "exr"):
        run_pattern(tmp_path, 3, "  save: {type: io.save_frames, inputs: {video: pattern.video}, "
                                 f"params: {{path: plate, format: {fmt}}}}}\n")
    assert sorted(p.name for p in (tmp_path / "plate").iterdir()) == \
        [f"frame_{i:06d}.exr" for i in range(3)] + ["workflow.yaml"]
    earlier = [p for p in (tmp_path / "takes").rglob("frame_*")]
    assert sorted(p.name for p in earlier) == [f"frame_{i:06d}.png" for i in range(3)]


def run_plate(tmp_path, rest: str) -> None:
    """Run a workflow reading the plate shot.####.exr in tmp_path and the nodes `rest` adds after it."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n  plate: {type: io.load_frames, params: {path: shot.####.exr}}\n" + rest)
    res = Session().run(load_workflow(str(wf)))
    assert res.ok, res.failed


def test_a_plate_read_from_1001_is_written_back_on_its_own_frame_numbers(tmp_path):
    """A Nuke plate shot.1001.exr ... through Kinograph came back as frame_000000.exr on: the comp's Read
    node and the shot's frame range disagreed by 1001 unless `first` was set by hand. The clip now carries
    its first frame's number (trims move it), and io.save_frames numbers from it."""
    for i in range(4):
        ch = patches(np.float32)
        ch["R"] = np.full_like(ch["R"], i / 4.0)
        write(tmp_path / f"shot.{1001 + i:04d}.exr", ch)
    run_plate(tmp_path, "  grade: {type: color.grade, inputs: {video: plate.video}, params: {exposure: 0.5}}\n"
                        "  cut: {type: video.trim, inputs: {video: grade.video}, params: {start: 1, count: 2}}\n"
                        "  whole: {type: io.save_frames, inputs: {video: grade.video}, params: {path: whole, format: exr}}\n"
                        "  part: {type: io.save_frames, inputs: {video: cut.video}, params: {path: part, format: exr}}\n"
                        "  zero: {type: io.save_frames, inputs: {video: cut.video}, params: {path: zero, first: 0}}\n")
    assert sorted(p.name for p in (tmp_path / "whole").glob("*.exr")) == [f"frame_{n:06d}.exr" for n in range(1001, 1005)]
    assert sorted(p.name for p in (tmp_path / "part").glob("*.exr")) == ["frame_001002.exr", "frame_001003.exr"]
    assert sorted(p.name for p in (tmp_path / "zero").glob("*.png")) == ["frame_000000.png", "frame_000001.png"]
    # The frames are the plate's own: frame_001002 is shot.1002 (read back with the OpenEXR bindings).
    with OpenEXR.File(str(tmp_path / "part" / "frame_001002.exr"), separate_channels=True) as f:
        red = f.channels()["R"].pixels.astype(np.float32)
    with OpenEXR.File(str(tmp_path / "whole" / "frame_001002.exr"), separate_channels=True) as f:
        assert np.array_equal(red, f.channels()["R"].pixels.astype(np.float32))


def test_a_linear_plate_passed_through_goes_out_as_it_came_in(tmp_path):
    """load -> trim -> save as EXR went through 8-bit sRGB: shadows moved by up to 21% (0.0005 came back
    0.00061), everything over 1.0 came back 1.0, and the alpha channel was dropped. A plate no node has
    changed is now written from its files' own pixels, within half-float precision, alpha included."""
    levels = np.array([0.0005, 0.002, 0.18, 1.0, 4.0, 37.5], np.float32)
    for i in range(3):
        rgb = np.tile(levels * (1 + i), (2, 1))
        alpha = np.ones_like(rgb)
        alpha[:, 0] = 0.5                        # premultiplied, as Blender writes it
        write(tmp_path / f"shot.{1001 + i}.exr", {"R": rgb, "G": rgb * 0.5, "B": rgb * 0.25, "A": alpha})
    run_plate(tmp_path, "  cut: {type: video.trim, inputs: {video: plate.video}, params: {start: 1}}\n"
                        "  save: {type: io.save_frames, inputs: {video: cut.video}, params: {path: out, format: exr}}\n"
                        "  graded: {type: color.grade, inputs: {video: cut.video}, params: {exposure: 1.0}}\n"
                        "  save2: {type: io.save_frames, inputs: {video: graded.video}, params: {path: graded, format: exr}}\n"
                        "  both: {type: video.concat, inputs: {video: cut.video, other: plate.video}}\n"
                        "  save3: {type: io.save_frames, inputs: {video: both.video}, params: {path: both, format: exr}}\n")
    for n, i in ((1002, 1), (1003, 2)):
        with OpenEXR.File(str(tmp_path / "out" / f"frame_{n:06d}.exr"), separate_channels=True) as f:
            ch = {k: v.pixels.astype(np.float32) for k, v in f.channels().items()}
        assert sorted(ch) == ["A", "B", "G", "R"]
        want = levels * (1 + i)
        for c, scale in (("R", 1.0), ("G", 0.5), ("B", 0.25)):
            assert np.allclose(ch[c][0], want * scale, rtol=1e-3, atol=0), c
        assert (ch["A"][:, 0] == 0.5).all() and (ch["A"][:, 1:] == 1.0).all()
    # Joined clips keep their pixels too: frame 2 of cut + plate is the plate's first frame.
    with OpenEXR.File(str(tmp_path / "both" / "frame_001004.exr"), separate_channels=True) as f:
        assert np.allclose(f.channels()["R"].pixels[0].astype(np.float32), levels, rtol=1e-3, atol=0)
    # A grade works on the float pixels too (its render was the 8-bit picture's light, clipped at 1.0): one
    # stop more doubles every level, 37.5 included, on the colour taken off its alpha, which stays as it was.
    with OpenEXR.File(str(tmp_path / "graded" / "frame_001002.exr"), separate_channels=True) as f:
        ch = {k: v.pixels.astype(np.float32) for k, v in f.channels().items()}
    assert sorted(ch) == ["A", "B", "G", "R"]
    assert np.allclose(ch["R"][0], levels * 2 * 2, rtol=1e-3, atol=0)
    assert np.allclose(ch["B"][0], levels * 2 * 2 * 0.25, rtol=1e-3, atol=0)
    assert (ch["A"][:, 0] == 0.5).all() and (ch["A"][:, 1:] == 1.0).all()


def test_a_plates_timecode_goes_through_to_the_render(tmp_path):
    """Nuke stamps each frame of a plate with its timeCode; read as a sequence it was dropped, so the render
    came back without one and an editor could not line it up. The first frame's timecode is the clip's."""
    from fractions import Fraction
    for i in range(3):
        write(tmp_path / f"shot.{1001 + i}.exr", patches(),
              timeCode=OpenEXR.TimeCode(1, 0, 10, 5 + i, 0, *[0] * 13), framesPerSecond=Fraction(25))
    run_plate(tmp_path, "  cut: {type: video.trim, inputs: {video: plate.video}, params: {start: 1}}\n"
                        "  save: {type: io.save_frames, inputs: {video: cut.video}, params: {path: out, format: exr}}\n")
    with OpenEXR.File(str(tmp_path / "out" / "frame_001003.exr"), header_only=True) as f:
        tc = f.header()["timeCode"]
        assert (tc.hours, tc.minutes, tc.seconds, tc.frame) == (1, 0, 10, 7)
        assert f.header()["framesPerSecond"] == Fraction(25)


def test_frame_numbers_stay_only_while_frames_are_the_plates():
    """Clip.number (a plate's first frame number) holds through a grade, a retime and a join, and goes where
    the frames are no longer the plate's one for one (every other frame, twice as many in between)."""
    from graph_engine import Clip
    from nodes.video import edit
    plate = Clip.from_array(np.zeros((4, 2, 2, 3), np.uint8)).with_(number=1001)
    assert plate.map(lambda f: f + 1).number == 1001
    assert edit.change_fps(plate, 12.0, "retime").number == 1001
    assert edit.concat(plate, plate).number == 1001 and edit.trim(plate, 2, 0).number == 1003
    assert edit.every_nth(plate, 2, 0).number is None
    assert plate.with_(length=7, fps=48.0, reader=lambda a, b: np.zeros((b - a, 2, 2, 3), np.uint8)).number is None


def test_a_timecode_without_a_stated_rate_is_counted_at_24(tmp_path):
    write(tmp_path / "shot.1001.exr", patches(), timeCode=OpenEXR.TimeCode(1, 0, 0, 0, 0, *[0] * 13))
    clip = load_frames(str(tmp_path / "shot.####.exr"), 0.0)
    assert clip.fps == 24.0 and clip.timecode.label() == "01:00:00:00" and clip.number == 1001


def test_save_image_keeps_a_blender_renders_alpha(tmp_path):
    """A Blender RGBA render read with io.load_image lost its alpha on the way out (io.save_image wrote RGB
    only), so a comp had nothing to put it over with. With the alpha connected, an EXR gets it as its A
    channel beside the premultiplied colour."""
    rgb = np.full((4, 8), 0.5, np.float32)
    alpha = np.tile(np.array([0.0, 0.25, 0.5, 1.0] * 2, np.float32), (4, 1))
    write(tmp_path / "render.exr", {"R": rgb * alpha, "G": rgb * alpha, "B": rgb * alpha, "A": alpha})
    run_pattern(tmp_path, 1, "  load: {type: io.load_image, params: {path: render.exr}}\n"
                             "  exr: {type: io.save_image, inputs: {image: load.image, alpha: load.alpha}, "
                             "params: {path: out.exr}}\n")
    with OpenEXR.File(str(tmp_path / "out.exr"), separate_channels=True) as f:
        ch = {k: v.pixels.astype(np.float32) for k, v in f.channels().items()}
    assert sorted(ch) == ["A", "B", "G", "R"] and np.array_equal(ch["A"], alpha)
    assert np.allclose(ch["R"], rgb * alpha, atol=4e-3)             # premultiplied, to 8 bits
    from nodes.io.images import write_png
    with pytest.raises(NodeError, match="out.jpg: a .jpg holds no alpha: name the image .png, .tif, .webp or .exr"):
        write_png(np.zeros((4, 8, 3), np.uint8), str(tmp_path / "out.jpg"), alpha=alpha)
    with pytest.raises(NodeError, match="the alpha is 8x4 but the image 4x2"):
        write_png(np.zeros((2, 4, 3), np.uint8), str(tmp_path / "small.exr"), alpha=alpha)
