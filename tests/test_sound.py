"""Sound under the pictures, as a music-video editor hears it: read back from the rendered file with PyAV
(beep onsets against white frames, in seconds) after the nodes that change time and the writers."""
import av
import numpy as np
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


def seconds_of_sound(path) -> float:
    """Seconds of sound decoded from a file's first audio stream."""
    with av.open(str(path)) as c:
        return sum(f.samples / f.sample_rate for f in c.decode(audio=0))


def song(path, beeps, seconds, sound=("-c:a", "libmp3lame"), rate=44100):
    """A song of `seconds` with a beep at each time in `beeps`."""
    from tests.test_phone_footage import ff
    on = "+".join(f"between(t,{t},{t + 0.05})" for t in beeps)
    ff("-f", "lavfi", "-i", f"aevalsrc='0.5*sin(2*PI*1000*t)*({on})':s={rate}:d={seconds}", *sound, path)
    return path


def run(tmp_path, nodes: str):
    """Run a workflow; the log lines of each node, and the error if it failed."""
    from graph_engine.api import Session, load_workflow
    events = []
    Session(use_disk=False).run(load_workflow(text="kinograph: 1\nnodes:\n" + nodes), on_event=events.append)
    logs = {}
    for e in events:
        if e["event"] == "log":
            logs.setdefault(e["node"], []).append(e["message"])
    return logs, [e for e in events if e["event"] in ("error", "node_failed")]


def test_a_song_laid_under_a_clip_plays_from_its_offset_in_sync_and_follows_a_trim(tmp_path):
    # Kinograph had no way to put a song under a clip: the sound could only come from the footage itself.
    take = tmp_path / "take.mp4"
    clap(take, 0.5)                                             # a camera beep at 0.5 s, to be replaced
    mp3 = song(tmp_path / "song.mp3", [1.5, 2.25], 4.0)
    out = tmp_path / "cut.mp4"
    logs, errors = run(tmp_path, f"""
  load: {{type: io.load_video, params: {{path: '{take}'}}}}
  song: {{type: io.add_audio, inputs: {{video: load.video}}, params: {{path: '{mp3}', offset: 1.0}}}}
  cut: {{type: video.trim, inputs: {{video: song.video}}, params: {{start: 6}}}}
  save: {{type: io.save_video, inputs: {{video: cut.video}}, params: {{path: '{out}'}}}}
""")
    assert not errors and logs["song"] == ["the clip's own sound is replaced by song.mp3"]
    # The song's 1.5 s is 0.5 s into the clip (offset 1), 0.3 s into the trimmed one; its 2.25 s is past the clip.
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([0.3], abs=1e-3) and beeps == pytest.approx([0.3], abs=0.002)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 24
    assert seconds_of_sound(out) == pytest.approx(0.8, abs=0.03)


def test_fit_song_cuts_the_clip_to_the_song_or_holds_its_last_frame_until_the_song_ends(tmp_path):
    take = tmp_path / "take.mp4"
    clap(take, 0.5)                                             # 1 s, 30 frames
    short = song(tmp_path / "jingle.wav", [0.1], 0.6, sound=("-c:a", "pcm_s16le"))
    long = song(tmp_path / "song.flac", [1.4], 1.5, sound=("-c:a", "flac"), rate=48000)
    cut, held = tmp_path / "cut.mkv", tmp_path / "held.mkv"
    logs, errors = run(tmp_path, f"""
  load: {{type: io.load_video, params: {{path: '{take}'}}}}
  short: {{type: io.add_audio, inputs: {{video: load.video}}, params: {{path: '{short}', fit: song}}}}
  long: {{type: io.add_audio, inputs: {{video: load.video}}, params: {{path: '{long}', fit: song}}}}
  a: {{type: io.save_video, inputs: {{video: short.video}}, params: {{path: '{cut}', codec: ffv1}}}}
  b: {{type: io.save_video, inputs: {{video: long.video}}, params: {{path: '{held}', codec: ffv1}}}}
""")
    assert not errors
    assert logs["short"][1] == "the clip is cut to the song: 18 of its 30 frames (0:00.60 of jingle.wav)"
    assert logs["long"][1] == ("song.flac plays 0.50 s past the clip's 30 frames: the last frame is held until it "
                               "ends (45 frames)")
    for path, frames, beep in ((cut, 18, 0.1), (held, 45, 1.4)):
        with av.open(str(path)) as c:
            assert sum(1 for _ in c.decode(video=0)) == frames
        assert seconds_of_sound(path) == pytest.approx(frames / 30, abs=0.005)
        assert claps(path)[1] == pytest.approx([beep], abs=0.002)


def test_a_song_shorter_than_the_clip_says_so_and_a_bad_one_is_named_before_anything_renders(tmp_path):
    from graph_engine import NodeError
    from nodes.io.sound import with_song
    clip = clap(tmp_path / "take.mp4", 0.5)
    jingle = song(tmp_path / "jingle.wav", [0.1], 0.6, sound=("-c:a", "pcm_s16le"))
    logs = []
    with_song(clip.with_(audio=None), str(jingle), 0.2, "clip", logs.append)
    assert logs == ["jingle.wav ends 0.60 s before the clip (it has 0:00.40 from offset 0.2 s): silence after it; "
                    "fit song cuts the clip to the song instead"]
    junk = tmp_path / "song.mp3"
    junk.write_bytes(b"not a song at all" * 100)
    silent = tmp_path / "silent.mp4"
    from tests.test_phone_footage import ff
    ff("-f", "lavfi", "-i", "color=c=black:s=32x32:d=0.5", "-c:v", "libx264", silent)
    cases = {str(junk): "song.mp3 cannot be read as sound (Invalid data found when processing input): the file is "
                        "damaged, cut short or not audio; export it again as WAV, FLAC or MP3",
             str(silent): "silent.mp4 holds no sound (no audio stream): give a song (WAV, MP3, FLAC, M4A) or a "
                          "video with sound",
             str(tmp_path / "gone.wav"): f"the sound file {tmp_path / 'gone.wav'} is not there (moved or deleted?): "
                                         f"put it back, or give another"}
    for path, message in cases.items():
        with pytest.raises(NodeError) as e:
            with_song(clip, path, 0.0, "clip", logs.append)
        assert str(e.value) == message
    with pytest.raises(NodeError) as e:
        with_song(clip, str(jingle), 0.6, "clip", logs.append)
    assert str(e.value) == "offset 0.6 s is past the end of jingle.wav (0:00.60 of sound): give an offset below 0.60"


def test_a_sound_gone_since_it_was_read_is_named_before_a_frame_is_computed(tmp_path):
    # ffmpeg opened the sound only when the pictures came: after the first chunk it failed with 'could not write
    # out.mp4 with codec h264: ... Error opening input', and the clip's every chunk was computed before that.
    from graph_engine import Audio, Clip, NodeError
    pulled = []

    def reader(a, b):
        pulled.append(a)
        return np.zeros((b - a, 32, 32, 3), np.uint8)
    wav = song(tmp_path / "song.wav", [0.1], 1.0, sound=("-c:a", "pcm_s16le"))
    clip = Clip(12, 12.0, 32, 32, reader, Audio(str(wav), 0.0, 1.0), chunk=1)
    wav.write_bytes(b"RIFF....WAVEjunk" * 4)         # overwritten by something else since
    with pytest.raises(NodeError) as e:
        write_video(clip, str(tmp_path / "out.mp4"))
    assert str(e.value) == ("cannot write out.mp4 with its sound: song.wav cannot be read as sound (Invalid data "
                            "found when processing input): the file is damaged, cut short or not audio; export it "
                            "again as WAV, FLAC or MP3 (or turn keep_audio off to write it silent)")
    assert pulled == [] and not (tmp_path / "out.mp4").exists()


def test_a_render_stops_computing_frames_when_ffmpeg_has_stopped(tmp_path, monkeypatch):
    # The feeder swallowed the broken pipe and drained the queue, so the clip was computed to its end (every
    # chunk of a generation) before the failure was said.
    import nodes.io.video_write as vw
    from graph_engine import Clip, NodeError
    quits = tmp_path / "ffmpeg"
    quits.write_text("#!/bin/sh\necho 'Conversion failed!' >&2\nexit 1\n")
    quits.chmod(0o755)
    monkeypatch.setattr(vw, "ffmpeg_exe", lambda: str(quits))
    pulled = []

    def reader(a, b):
        pulled.append(a)
        return np.zeros((b - a, 480, 640, 3), np.uint8)        # each frame more than a pipe holds
    with pytest.raises(NodeError) as e:
        write_video(Clip(50, 24.0, 640, 480, reader, chunk=1), str(tmp_path / "out.mp4"))
    assert str(e.value) == "ffmpeg could not write out.mp4 with codec h264: Conversion failed!"
    assert len(pulled) < 10


def test_the_song_s_beats_are_reported_as_the_clip_s_frames_to_cut_on(tmp_path):
    # A music video cuts on the beat: the song's beats were nowhere to be had in Kinograph.
    from graph_engine import Clip
    from nodes.io.sound import with_song
    from tests.test_phone_footage import ff
    beat = "lt(mod(t-0.25,0.5),0.03)*gte(t,0.25)*0.8*sin(2*PI*60*t)"           # a kick at 120 BPM from 0.25 s
    hats = "lt(mod(t-0.5,0.5),0.01)*0.2*sin(2*PI*8000*t)"                    # and a hi-hat between
    kicks = tmp_path / "kicks.mp3"
    ff("-f", "lavfi", "-i", f"aevalsrc='{beat}+{hats}+0.1*sin(2*PI*220*t)':s=44100:d=8", "-c:a", "libmp3lame", kicks)
    clip = Clip(48, 24.0, 32, 32, lambda a, b: np.zeros((b - a, 32, 32, 3), np.uint8))
    for offset, frames in ((0.0, [6, 18, 30, 42]), (2.125, [3, 15, 27, 39])):
        logs, reported = [], {}
        with_song(clip, str(kicks), offset, "clip", logs.append, reported.update)
        assert reported["beat_frames"] == frames and reported["bpm"] == pytest.approx(120, abs=0.5)
        assert logs == [f"kicks.mp3 keeps a beat of {reported['bpm']:.1f} BPM: it falls on frames "
                        f"{', '.join(map(str, frames))} of the clip (4 in all, listed as beat_frames in the report); "
                        f"cut on them with video.trim"]
    # A held note, or noise, has no beat: nothing made up.
    hum = tmp_path / "hum.wav"
    ff("-f", "lavfi", "-i", "sine=f=220:d=3", hum)
    noise = tmp_path / "noise.wav"
    ff("-f", "lavfi", "-i", "anoisesrc=d=3:a=0.2:seed=1", noise)
    for path in (hum, noise):
        logs, reported = [], {}
        with_song(clip, str(path), 0.0, "clip", logs.append, reported.update)
        assert reported == {"bpm": 0.0, "beat_frames": []} and not any("BPM" in m for m in logs)


def test_the_beats_of_a_whole_song_stay_on_their_frames_to_its_end(tmp_path):
    # The tempo as the autocorrelation gives it is off by a fraction of a millisecond a beat: laid from the first
    # beat, the grid slid off the kicks over a four-minute song and its beats were taken for none at all.
    from graph_engine import Clip
    from nodes.io.sound import with_song
    from tests.test_phone_footage import ff
    song = tmp_path / "song.wav"
    ff("-f", "lavfi", "-i", "aevalsrc='lt(mod(t-0.25,0.5),0.03)*0.8*sin(2*PI*60*t)+0.1*sin(2*PI*220*t)':s=8000:d=240",
       song)
    clip = Clip(240 * 24, 24.0, 32, 32, lambda a, b: np.zeros((b - a, 32, 32, 3), np.uint8))
    reported = {}
    with_song(clip, str(song), 0.0, "clip", [].append, reported.update)
    assert reported["bpm"] == pytest.approx(120, abs=0.01)
    assert reported["beat_frames"] == [6 + 12 * k for k in range(480)]


def tone_hz(path) -> float:
    """The loudest frequency of a file's sound (the clap's 1000 Hz beep, or where speed moved it)."""
    with av.open(str(path)) as c:
        mono = av.AudioResampler(format="flt", layout="mono", rate=48000)
        a = np.concatenate([g.to_ndarray().reshape(-1) for f in c.decode(audio=0) for g in mono.resample(f)])
    return float(np.fft.rfftfreq(len(a), 1 / 48000)[np.abs(np.fft.rfft(a)).argmax()])


@pytest.mark.parametrize("sound, hz, within", [("tape", 500, 0.002), ("stretch", 1000, 0.045)])
def test_slow_motion_keeps_its_sound_on_its_frames(tmp_path, sound, hz, within):
    # video.fps retime dropped the sound: a slowed shot came out silent. Now it plays at the pictures' speed:
    # as a tape (pitch an octave down at half speed, the beep on its frame) or stretched (pitch kept; atempo's
    # windows smear the beep's start up to a frame early at half speed).
    clip = clap(tmp_path / "take.mp4", 0.5)
    out = tmp_path / "slow.mp4"
    write_video(edit.change_fps(clip, 15, "retime", sound), str(out))
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([1.0], abs=1e-3) and beeps[0] == pytest.approx(1.0, abs=within)
    assert tone_hz(out) == pytest.approx(hz, rel=0.02) and seconds_of_sound(out) == pytest.approx(2.0, abs=0.03)


def test_reverse_and_pingpong_play_the_sound_backwards_with_the_pictures(tmp_path):
    # Both dropped the sound. Reversed, the beep that started at the white frame (0.5 s, 50 ms) ends where the
    # white frame now ends: it starts at 1 - 0.55 s. Pingponged, it sounds forwards at 0.5 s, then backwards.
    clip = clap(tmp_path / "take.mp4", 0.5)
    nodes = f"""
  load: {{type: io.load_video, params: {{path: '{tmp_path / "take.mp4"}'}}}}
  rev: {{type: video.reverse, inputs: {{video: load.video}}}}
  pp: {{type: video.pingpong, inputs: {{video: load.video}}}}
  a: {{type: io.save_video, inputs: {{video: rev.video}}, params: {{path: '{tmp_path / "rev.mp4"}'}}}}
  b: {{type: io.save_video, inputs: {{video: pp.video}}, params: {{path: '{tmp_path / "pp.mp4"}'}}}}
"""
    logs, errors = run(tmp_path, nodes)
    assert not errors and not logs.get("rev") and clip.length == 30
    flashes, beeps = claps(tmp_path / "rev.mp4")
    assert flashes == pytest.approx([14 / 30], abs=1e-3) and beeps == pytest.approx([0.45], abs=0.003)
    flashes, beeps = claps(tmp_path / "pp.mp4")
    # frames 0..29 then 28..1: frame 15 again at 30 + 13 = 43, its sound (0.5-0.55 s) backwards from 44/30 - 0.05
    assert flashes == pytest.approx([0.5, 43 / 30], abs=1e-3)
    assert beeps == pytest.approx([0.5, 44 / 30 - 0.05], abs=0.003)


def test_mono_clips_joined_stay_mono_at_the_highest_rate_of_theirs(tmp_path):
    # Every join was written 48 kHz stereo: two mono interviews came out as stereo, 44.1 kHz ones resampled.
    mono = ("-ac", "1")
    a = clap(tmp_path / "a.mov", 0.5, rate=44100, layout=mono, sound=("-c:a", "pcm_s16le"))
    b = clap(tmp_path / "b.mov", 0.25, rate=44100, layout=mono, sound=("-c:a", "pcm_s16le"))
    c = clap(tmp_path / "c.mov", 0.25, rate=48000, layout=mono, sound=("-c:a", "pcm_s16le"))
    for other, rate in ((b, 44100), (c, 48000)):
        out = tmp_path / f"joined{rate}.mov"
        write_video(edit.concat(a, other), str(out), codec="prores")
        with av.open(str(out)) as f:
            s = f.streams.audio[0]
            assert (s.rate, s.layout.name) == (rate, "mono")
        assert claps(out)[1] == pytest.approx([0.5, 1.25], abs=0.002)
    stereo = clap(tmp_path / "s.mov", 0.25, sound=("-c:a", "pcm_s16le"))
    write_video(edit.concat(a, stereo), str(tmp_path / "both.mov"), codec="prores")
    with av.open(str(tmp_path / "both.mov")) as f:
        assert (f.streams.audio[0].rate, f.streams.audio[0].layout.name) == (48000, "stereo")


def test_a_song_comes_in_mid_clip_mixed_over_the_clip_s_own_sound_at_the_gains_given(tmp_path):
    # io.add_audio could only replace the clip's sound from its first frame: a song coming in on a cut mid-shot,
    # over the shot's own sound, had no way to be made.
    take = tmp_path / "take.mp4"
    clap(take, 0.2)                                             # the clip's own beep at 0.2 s
    mp3 = song(tmp_path / "song.mp3", [0.1, 0.3], 2.0)          # from 0.05 s in, at frame 15 (0.5 s): 0.55, 0.75
    outs = {k: tmp_path / f"{k}.mp4" for k in ("mixed", "replaced", "ducked")}
    logs, errors = run(tmp_path, f"""
  load: {{type: io.load_video, params: {{path: '{take}'}}}}
  mixed: {{type: io.add_audio, inputs: {{video: load.video}}, params: {{path: '{mp3}', offset: 0.05, at: 15, mix: true}}}}
  replaced: {{type: io.add_audio, inputs: {{video: load.video}}, params: {{path: '{mp3}', offset: 0.05, at: 15}}}}
  ducked: {{type: io.add_audio, inputs: {{video: load.video}},
            params: {{path: '{mp3}', offset: 0.05, at: 15, mix: true, clip_gain: -60, gain: -3}}}}
""" + "".join(f"  s{k}: {{type: io.save_video, inputs: {{video: {k}.video}}, params: {{path: '{p}'}}}}\n"
              for k, p in outs.items()))
    assert not errors
    assert claps(outs["mixed"])[1] == pytest.approx([0.2, 0.55, 0.75], abs=0.003)
    assert claps(outs["replaced"])[1] == pytest.approx([0.55, 0.75], abs=0.003)
    assert claps(outs["ducked"])[1] == pytest.approx([0.55, 0.75], abs=0.003)     # the clip's beep 60 dB down
    assert logs["mixed"][0] == "the clip's own sound plays under song.mp3 at +0 dB"
    assert logs["replaced"][0] == "the clip's own sound is replaced by song.mp3 (mix keeps it under the song)"
    with pytest.raises(Exception, match=r"at=30 is past the clip's last frame \(30 frames\): give a frame below 30"):
        from nodes.io.sound import with_song
        with_song(load_video_of(take), str(mp3), 0.0, "clip", print, at=30)


def load_video_of(path):
    from nodes.io.video_read import load_video
    return load_video(str(path))


def test_a_cut_between_two_sounds_does_not_click(tmp_path):
    # A tone cut at -0.5 and joined to itself at +0.5 jumped by 1.0 in one sample (a click at every join of room
    # sound or music). Each side now fades over 4 ms where it meets the other: no step larger than the tone's own.
    from tests.test_phone_footage import ff
    from nodes.io.video_read import load_video
    ff("-f", "lavfi", "-i", "color=c=black:s=64x48:r=30:d=1", "-f", "lavfi", "-i",
       "aevalsrc='0.5*cos(2*PI*441*t)':s=48000:d=1", "-c:v", "libx264", "-c:a", "pcm_s16le", tmp_path / "tone.mov")
    tone = load_video(str(tmp_path / "tone.mov"))
    out = tmp_path / "joined.mov"
    write_video(edit.concat(edit.trim(tone, 0, 15), tone), str(out), codec="prores")
    with av.open(str(out)) as c:
        a = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)]).astype(np.float64) / 2 ** 31
    step = np.abs(np.diff(a))
    assert step[24000 - 100:24000 + 100].max() < step[:23000].max()
    # Pieces of one take that carry on from each other (a speed ramp from half speed to full at 1 s, the tone at
    # -0.5 there) meet without a fade: no dip.
    from graph_engine import Clip
    ramp = tone.audio.warped([(0.0, 0.5, 1.0), (0.5, 1.0, 0.5)], tape=True)
    write_video(Clip.from_array(np.zeros((45, 48, 64, 3), np.uint8), 30.0, ramp), str(out), codec="prores",
                overwrite=True)
    with av.open(str(out)) as c:
        a = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)]).astype(np.float64) / 2 ** 31
    assert np.abs(a[48000 - 20:48000 + 20]).max() > 0.45
