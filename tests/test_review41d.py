"""Review of attacker17's hostile-input pass: what a Kinograph YAML holding half of a UTF-16 pair is told."""
import pytest

from graph_engine.workflow import parse_workflow


def _said(text: str) -> str:
    wf, problems = parse_workflow(text)
    assert len(problems) == 1
    return problems[0].message


@pytest.mark.parametrize("escape, said", [
    # JSON's way of writing 😀 (two halves, as json.dumps writes it), which YAML reads as two lone halves
    ("\\uD83D\\uDE00", "\\uD83D\\uDE00 is the two halves of one character, which YAML cannot join: write "
                       "\\U0001F600 (or the character itself, \U0001F600)"),
    ("\\uD800", "\\uD800 is half of a UTF-16 pair (a surrogate), which no text holds"),
    ("\\U0000DC00", "\\U0000DC00 is half of a UTF-16 pair (a surrogate), which no text holds"),
    ("\\U00110000", "\\U00110000 is past the last Unicode character (\\U0010FFFF)"),
])
def test_a_yaml_holding_half_a_utf16_pair_is_told_so_not_about_windows_paths(escape, said):
    message = _said(f'kinograph: 1\nnodes:\n  p:\n    type: text.prompt\n    params:\n      text: "a cat {escape}"\n')
    assert said in message
    assert "Windows" not in message and "footage" not in message


def test_a_windows_path_in_double_quotes_still_gets_its_advice():
    message = _said('kinograph: 1\nnodes:\n  v:\n    type: io.load_video\n    params:\n      path: "C:\\Users\\me.mp4"\n')
    assert "single quotes" in message


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_an_animation_named_webp_that_is_not_one_plays_at_its_own_rate(tmp_path, fmt):
    """A GIF or APNG saved under a .webp name (a download named by its address) was read by Pillow, its durations
    from each decoded frame; attacker17 reads them from a WebP's ANMF headers, which such a file has none of, and it
    played at the 10 fps default. Its rate is what Pillow reads from the file's own frames."""
    from PIL import Image

    from nodes.io.video_read import load_video
    path = tmp_path / "download.webp"
    frames = [Image.new("RGB", (16, 16), (40 * i, 0, 0)) for i in range(4)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)
    with Image.open(path) as im:
        ms = []
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            ms.append(im.info["duration"])
    clip = load_video(str(path))
    assert clip.length == len(ms) == 4
    assert clip.fps == pytest.approx(1000 * len(ms) / sum(ms), rel=0.05)



@pytest.mark.parametrize("late_transparency", [False, True])
def test_a_gif_too_long_to_look_through_keeps_its_matte_and_is_not_said_to_be_transparent(tmp_path, monkeypatch,
                                                                                           late_transparency):
    """Past OPAQUE_LOOK_PIXELS (attacker17) a GIF keeps its matte unlooked: one whose transparency starts late keeps
    it, as it should, but an opaque one (a 30 s 1080p screen recording is 600 million pixels) was logged as 'it has
    transparency'. The log says what is known: it was not looked through."""
    from PIL import Image

    from nodes.io import video_read
    frames = [Image.new("RGBA", (8, 8), (20 * i, 0, 0, 255)) for i in range(10)]       # differing: Pillow joins equal ones
    if late_transparency:
        frames[-1].putpixel((3, 3), (0, 0, 0, 0))
    path = tmp_path / "long.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, disposal=2, optimize=False, loop=0)
    monkeypatch.setattr(video_read, "OPAQUE_LOOK_PIXELS", 3 * 64)
    source = video_read.VideoSource(str(path))
    assert source._alpha
    note, = [n for n in source.notes if "transparen" in n]
    assert not note.startswith("it has transparency") and "not looked through" in note
    monkeypatch.setattr(video_read, "OPAQUE_LOOK_PIXELS", 100 * 64)
    assert video_read.VideoSource(str(path))._alpha == late_transparency


def test_a_real_rate_made_too_many_frames_is_not_called_damaged():
    """attacker17's guard on io.load_video's fps refuses past MAX_HELD more frames than the file holds, saying 'the
    file states a rate no video has (damaged or made to fill memory)': right for one frame a million seconds, wrong
    for a day of 30 fps footage (a security camera's) asked at fps 60, whose rate is real. Each is told its own."""
    from graph_engine import NodeError
    from nodes.io.video_read import _resampled_count
    with pytest.raises(NodeError) as long:
        _resampled_count("cctv.mp4", 2_600_000, 30.0, 60.0)
    said = str(long.value)
    assert "no video has" not in said and "damaged" not in said
    assert "5,199,998 frames" in said and "lower fps" in said and "cut the part you need first" in said
    with pytest.raises(NodeError, match="the file states a rate no video has"):
        _resampled_count("slow.mkv", 50, 1e-6, 24.0)
