"""Sound under the pictures, as a music-video editor hears it: read back from the rendered file with PyAV
(beep onsets against white frames, in seconds) after the nodes that change time and the writers."""
import av
import pytest

from nodes.io.video_write import write_video
from nodes.video import edit
from tests.test_phone_footage import clap, claps


def test_an_mp3_track_that_starts_late_stays_on_its_pictures_in_an_mxf(tmp_path):
    # An MP3 (or AAC) track starts a few ms after the pictures (the encoder's delay): MP4 and MOV state that,
    # MXF cannot, so a DNxHR render's sound played 52 ms early and the file lost its last frame.
    clip = clap(tmp_path / "take.mkv", 0.5, rate=22050, layout=("-ac", "1"), sound=("-c:a", "libmp3lame"))
    out = tmp_path / "avid.mxf"
    write_video(edit.resize(clip, 256, 144), str(out), codec="dnxhr")
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([0.5], abs=1e-3) and beeps == pytest.approx([0.5], abs=0.002)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30
