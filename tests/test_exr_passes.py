"""Blender's render passes as ControlNet inputs (before: a multilayer EXR gave its Combined picture alone,
and a file of one pass, depth_0001.exr, was 'holds no colour channels'; nothing turned a Z pass into the
near-bright depth picture a depth ControlNet takes)."""
import numpy as np
import pytest

OpenEXR = pytest.importorskip("OpenEXR")

from graph_engine import NodeError  # noqa: E402
from graph_engine.api import Session, load_workflow  # noqa: E402
from nodes.io.images import load_frames  # noqa: E402

H, W = 4, 8


def write(path, channels):
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(path))


def run(tmp_path, nodes: str) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("kinograph: 1\nnodes:\n" + nodes)
    res = Session().run(load_workflow(str(wf)))
    assert res.ok, res.failed


def blender_frame(path, z, mist=None, normal=None):
    """A Blender multilayer EXR: grey Combined, and the Depth (and Mist, Normal) passes given."""
    grey = np.full((H, W), 0.18, np.float32)
    ch = {f"ViewLayer.Combined.{c}": grey for c in "RGB"}
    ch["ViewLayer.Combined.A"] = np.ones((H, W), np.float32)
    ch["ViewLayer.Depth.Z"] = z.astype(np.float32)
    if mist is not None:
        ch["ViewLayer.Mist.Z"] = mist.astype(np.float32)
    if normal is not None:
        for i, c in enumerate("XYZ"):
            ch[f"ViewLayer.Normal.{c}"] = np.ascontiguousarray(normal[..., i].astype(np.float32))
    write(path, ch)


def depth_scene(frame: int) -> np.ndarray:
    """A wall at 10 across the left half, background (Blender's 1e10; inf at one pixel) on the right; a
    box at 2 in front of the wall on frame 2 only."""
    z = np.full((H, W), 1e10, np.float32)
    z[:, :4] = 10.0
    z[0, 7] = np.inf
    if frame == 2:
        z[:2, :2] = 2.0
    return z


def test_a_blender_depth_pass_is_a_steady_near_bright_depth_picture(tmp_path):
    for i in range(3):
        blender_frame(tmp_path / f"render.{1001 + i:04d}.exr", depth_scene(i))
    frames = load_frames(str(tmp_path / "render.####.exr"), 24.0, layer="Depth").to_array()
    assert frames.shape == (3, H, W, 3)
    assert (frames[..., 0] == frames[..., 1]).all() and (frames[..., 0] == frames[..., 2]).all()
    wall, box, sky = frames[:, 3, 0, 0], frames[2, 0, 0, 0], frames[:, :, 4:, 0]
    assert box == 255 and 0 < wall[0] < box          # near white, far dark, as MiDaS shows depth
    assert (sky == 0).all()                           # 1e10 and inf: the background, black
    # One range for the clip: the wall keeps its level when the box comes in front of it (per-frame
    # normalisation made it jump to white on frames 0 and 1, where it was the nearest thing).
    assert wall[0] == wall[1] == wall[2]
    # The Combined picture is still what the sequence shows without a layer.
    plain = load_frames(str(tmp_path / "render.####.exr"), 24.0).to_array()
    assert (plain == plain[0, 0, 0, 0]).all() and 100 < plain[0, 0, 0, 0] < 130


def test_a_sequence_of_one_pass_from_frame_1_reads_through_a_workflow(tmp_path):
    """Blender's File Output node writes each pass as its own sequence (depth_0001.exr ...), one channel
    named as it likes: the pass `layer` names is that channel."""
    for i in range(2):
        write(tmp_path / f"depth_{1 + i:04d}.exr", {"V": depth_scene(2)})
    run(tmp_path, "  depth: {type: io.load_frames, params: {path: depth_####.exr, layer: depth}}\n"
              "  save: {type: io.save_frames, inputs: {video: depth.video}, params: {path: out}}\n")
    back = load_frames(str(tmp_path / "out"), 24.0).to_array()
    assert back.shape == (2, H, W, 3) and back[0, 0, 0, 0] == 255 and back[0, 3, 3, 0] < 255
    assert (back[:, :, 4:] == 0).all()


def test_mist_and_camera_space_normals_become_control_pictures(tmp_path):
    mist = np.tile(np.linspace(0.0, 1.0, W, dtype=np.float32), (H, 1))
    normal = np.zeros((H, W, 3), np.float32)
    normal[0] = (0, 0, 1)       # facing the camera
    normal[1] = (1, 0, 0)       # facing the picture's right
    normal[2] = (0, 1, 0)       # facing up
    blender_frame(tmp_path / "still.exr", depth_scene(0), mist, normal)
    # Depth is the Depth pass, not the Z channels of Mist and Normal beside it.
    d = load_frames(str(tmp_path / "still.exr"), 24.0, layer="Depth").to_array()[0, :, :, 0]
    assert (d[:, :4] == 255).all() and (d[:, 4:] == 0).all()
    m = load_frames(str(tmp_path / "still.exr"), 24.0, layer="Mist").to_array()[0, 0, :, 0].astype(int)
    assert m[0] == 255 and m[-1] == 0 and (np.diff(m) < 0).all()       # near (mist 0) white
    notes = []
    n = load_frames(str(tmp_path / "still.exr"), 24.0, layer="ViewLayer.Normal", log=notes.append).to_array()[0]
    n = n.astype(int)
    assert len(notes) == 1 and notes[0].startswith("Blender's Normal pass is in world space")
    # normalbae's colours: red towards the left, green up, blue towards the viewer.
    assert np.abs(n[0, 0] - [128, 128, 255]).max() <= 1
    assert np.abs(n[1, 0] - [0, 128, 128]).max() <= 1
    assert np.abs(n[2, 0] - [128, 255, 128]).max() <= 1
    assert np.abs(n[3, 0] - [128, 128, 255]).max() <= 1      # no surface: the flat normal
    # The same normals from Blender's File Output node: a file of its own, as R, G, B and an A of 1.
    write(tmp_path / "normal_0001.exr", {**{c: np.ascontiguousarray(normal[..., i]) for i, c in enumerate("RGB")},
                                         "A": np.ones((H, W), np.float32)})
    alone = load_frames(str(tmp_path / "normal_####.exr"), 24.0, layer="Normal").to_array()[0].astype(int)
    assert np.array_equal(alone, n)


def test_a_depth_channel_beside_the_colour_and_pass_mistakes(tmp_path):
    """Nuke and Blender's single-layer EXR with 'Z buffer' keep the depth as a Z channel beside R, G, B."""
    z = depth_scene(2)
    write(tmp_path / "beauty.exr", {**{c: np.full((H, W), 0.5, np.float32) for c in "RGB"}, "Z": z})
    d = load_frames(str(tmp_path / "beauty.exr"), 24.0, layer="Z").to_array()[0]
    assert d[0, 0, 0] == 255 and (d[:, 4:] == 0).all()
    with pytest.raises(NodeError, match=r"beauty.exr has no layer or pass 'Normal' \(it has B, G, R, Z\)"):
        load_frames(str(tmp_path / "beauty.exr"), 24.0, layer="Normal")
    with pytest.raises(NodeError, match=r"holds no colour channels \(it has Z\).*`layer` \(Depth"):
        write(tmp_path / "z.exr", {"Z": z})
        load_frames(str(tmp_path / "z.exr"), 24.0).to_array()
    from PIL import Image
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "depth.png")
    with pytest.raises(NodeError, match=r"depth.png is not an EXR file: `layer` \('Depth'\)"):
        load_frames(str(tmp_path / "depth.png"), 24.0, layer="Depth")


def test_the_luminance_depth_proxy_keeps_one_range_for_the_clip():
    """control.apply's depth preprocessor stretched each frame to 0..255 by itself: a bright lamp coming
    into view on frame 1 dimmed the wall behind it from 255 to about half (the depth pumped)."""
    from graph_engine import Clip
    from nodes.generate.control import preprocess
    frames = np.full((2, 64, 64, 3), 40, np.uint8)
    frames[:, :, 32:] = 120                 # a wall, the same on both frames
    frames[1, 24:40, 4:20] = 250            # the lamp, frame 1 only
    depth = preprocess(Clip.from_array(frames, 8.0), "depth")
    assert depth.shape == frames.shape
    assert depth[0, 32, 60, 0] == depth[1, 32, 60, 0] < depth[1, 32, 12, 0]
    assert depth[0, 32, 2, 0] == depth[1, 2, 2, 0] == 0
    assert np.array_equal(preprocess(Clip.from_array(frames, 8.0), "none"), frames)


def test_load_image_reads_one_pass_of_a_still(tmp_path):
    blender_frame(tmp_path / "still.exr", depth_scene(2))
    run(tmp_path, "  depth: {type: io.load_image, params: {path: still.exr, layer: Depth}}\n"
              "  save: {type: io.save_image, inputs: {image: depth.image}, params: {path: depth.png}}\n")
    from PIL import Image
    d = np.asarray(Image.open(tmp_path / "depth.png").convert("RGB"))
    assert d[0, 0, 0] == 255 and 0 < d[3, 0, 0] < 255 and (d[:, 4:] == 0).all()
