"""Footage as it comes from phones, screen recorders, action cameras and downloads, and renders as editors
and the web take them. Every fixture is made here with the ffmpeg binary imageio-ffmpeg ships."""
import subprocess

import av
import numpy as np
import pytest

from nodes.io.video_read import load_video
from nodes.io.video_write import ffmpeg_exe, write_video
from nodes.video import edit


def ff(*args):
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def flash_and_beep(path):
    """Seconds at which the first white frame shows and the first loud sample sounds."""
    with av.open(str(path)) as c:
        flash = next(float(f.pts * f.time_base) for f in c.decode(video=0)
                     if f.to_ndarray(format="gray").mean() > 128)
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            a = f.to_ndarray()
            loud = np.nonzero(np.abs(a).max(axis=0) > 0.1)[0]
            if len(loud):
                return flash, float(f.pts * f.time_base) + loud[0] / f.sample_rate
    return flash, None


@pytest.fixture(scope="module")
def late_video(tmp_path_factory):
    """A file whose pictures start 0.5 s after its sound (phones, OBS, stream captures): a white frame at
    the video's 1.0 s and a beep at the same moment of the file (1.5 s)."""
    d = tmp_path_factory.mktemp("phone")
    ff("-f", "lavfi", "-i", "color=c=black:s=64x48:r=30:d=2,drawbox=c=white:t=fill:enable='eq(n,30)'",
       "-c:v", "libx264", "-g", "10", d / "v.mp4")
    ff("-f", "lavfi", "-i", "sine=f=1000:sample_rate=48000:d=3,volume='between(t,1.5,1.6)':eval=frame",
       "-c:a", "pcm_s16le", d / "a.wav")
    ff("-itsoffset", "0.5", "-i", d / "v.mp4", "-i", d / "a.wav", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
       "-c:a", "aac", d / "late.mp4")
    return d / "late.mp4"


def test_a_video_that_starts_after_its_sound_stays_in_sync(late_video, tmp_path):
    # The sound was cut from the file's 0 s, not from the first picture: it ran 0.5 s ahead of the pictures.
    clip = load_video(str(late_video))
    out = tmp_path / "out.mp4"
    write_video(clip, str(out))
    flash, beep = flash_and_beep(out)
    assert flash == pytest.approx(1.0) and beep == pytest.approx(1.0, abs=0.03)
    write_video(edit.trim(clip, 20, 30), str(tmp_path / "trim.mp4"))
    flash, beep = flash_and_beep(tmp_path / "trim.mp4")
    assert flash == pytest.approx(10 / 30) and beep == pytest.approx(10 / 30, abs=0.03)


@pytest.mark.parametrize("codec,suffix", [("h264", ".mp4"), ("h265", ".mp4"), ("prores", ".mov"),
                                          ("vp9", ".webm")])
def test_renders_are_tagged_bt709(codec, suffix, tmp_path):
    # ffmpeg 8+ takes an encoder's colour tags from its frames: output -color_primaries/-color_trc were
    # dropped and every render said bt709/unknown/unknown.
    from tests.test_io import make_clip
    out = tmp_path / f"v{suffix}"
    write_video(make_clip(3, 32, 32), str(out), codec=codec)
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace) == (1, 1, 1)     # BT.709 all three


def test_a_screen_recording_with_a_pause_lasts_as_long_as_it_plays(tmp_path):
    # Frames only while something moves (0-0.5 s and 2-2.5 s), with B-frames: the first picture after the
    # pause carries the pause as its packet duration, and taken as the end it held the last frame a second on.
    out = tmp_path / "screen.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=4", "-vf", "select='lt(mod(t,2),0.5)',setpts=PTS",
       "-fps_mode", "vfr", "-c:v", "libx264", "-bf", "2", out)
    clip = load_video(str(out))
    assert clip.fps == 30 and clip.length == 75        # 2.5 s at 30 fps


@pytest.fixture(scope="module")
def with_sound(tmp_path_factory):
    """Two seconds of 30 fps phone-like footage (H.264, AAC) with a beep all through."""
    path = tmp_path_factory.mktemp("sound") / "phone.mp4"
    ff("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=2", "-f", "lavfi", "-i", "sine=f=440:d=2",
       "-c:v", "libx264", "-c:a", "aac", path)
    return path


@pytest.mark.parametrize("codec,name,sound", [("prores", "edit.mov", "pcm_s24le"), ("ffv1", "edit.mkv", "pcm_s24le"),
                                              ("av1", "web.webm", "opus"), ("h264", "web.mp4", "aac")])
def test_the_sound_goes_out_in_a_codec_the_file_and_its_user_take(with_sound, codec, name, sound, tmp_path):
    # AV1 in WebM with sound failed ('Only ... Vorbis or Opus audio ... are supported for WebM': AAC was
    # chosen for it); a ProRes intermediate for an editor carried AAC, a second lossy generation.
    out = tmp_path / name
    write_video(load_video(str(with_sound)), str(out), codec=codec)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == sound
        assert sum(1 for _ in c.decode(video=0)) == 60


@pytest.mark.parametrize("name", ["web.mp4", "edit.mov"])
def test_mp4_and_mov_put_their_index_first_for_the_web(with_sound, name, tmp_path):
    # +faststart came only with an embedded workflow: without one a browser waited for the whole upload.
    out = tmp_path / name
    write_video(load_video(str(with_sound)), str(out), codec="h264")
    head = out.read_bytes()
    assert 0 < head.find(b"moov") < head.find(b"mdat")


def test_saving_at_another_rate_plays_the_sound_at_the_pictures_speed_and_says_how_to_keep_it(tmp_path):
    # fps 15 on a 30 fps clip plays its frames at half speed; the sound went on at full speed beside them (then
    # was dropped). Now it plays at half speed with them, its beep on its white frame.
    from graph_engine.api import Session, load_workflow
    clap(tmp_path / "take.mp4", 0.5)
    out = tmp_path / "slow.mp4"
    wf = load_workflow(text=f"""
kinograph: 1
nodes:
  load: {{type: io.load_video, params: {{path: '{tmp_path / "take.mp4"}'}}}}
  save: {{type: io.save_video, inputs: {{video: load.video}}, params: {{path: '{out}', fps: 15}}}}
""")
    events = []
    Session(use_disk=False).run(wf, on_event=events.append)
    logs = [e["message"] for e in events if e["event"] == "log" and e["node"] == "save"]
    assert any(m.startswith("fps 15 plays the clip's 30 fps frames at 0.5x speed, and the sound with them") and
               "video.fps (mode resample, fps 15)" in m for m in logs)
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([1.0], abs=1e-3) and beeps == pytest.approx([1.0], abs=0.003)


def clap(path, at, rate=48000, layout=("-ac", "2"), sound=("-c:a", "aac"), fps=30, seconds=1.0):
    """A clip with a white frame and a beep at `at` seconds (a clapperboard), at `fps`."""
    ff("-f", "lavfi", "-i", f"color=c=black:s=64x48:r={fps}:d={seconds},drawbox=c=white:t=fill:"
                            f"enable='eq(n,{round(at * fps)})'",
       "-f", "lavfi", "-i", f"aevalsrc='if(between(t,{at},{at + 0.05}),0.5*sin(2*PI*1000*t),0)':s={rate}:d={seconds}",
       "-c:v", "libx264", "-g", "10", *layout, *sound, path)
    return load_video(str(path))


def claps(path):
    """Seconds of each white frame, and of each beep's onset (1 ms envelope), in a file."""
    with av.open(str(path)) as c:
        flashes = [float(f.pts * f.time_base) for f in c.decode(video=0) if f.to_ndarray(format="gray").mean() > 128]
    with av.open(str(path)) as c:
        mono = av.AudioResampler(format="flt", layout="mono", rate=48000)
        first = c.streams.audio[0].start_time * c.streams.audio[0].time_base
        a = np.concatenate([np.abs(g.to_ndarray().reshape(-1)) for f in c.decode(audio=0) for g in mono.resample(f)])
    loud = a[: len(a) // 48 * 48].reshape(-1, 48).max(1) > 0.05
    return flashes, [float(first) + i / 1000 for i in np.nonzero(loud[1:] & ~loud[:-1])[0] + 1]


def test_joined_clips_keep_each_sound_with_its_pictures(tmp_path):
    # video.concat dropped the sound of both clips: a join of phone takes came out silent.
    a = clap(tmp_path / "a.mp4", 0.5)
    quiet = load_video(str(tmp_path / "a.mp4")).with_(audio=None)        # a take without sound, 1 s
    b = clap(tmp_path / "b.mov", 11 / 30, rate=44100, layout=("-ac", "1"), sound=("-c:a", "pcm_s16le"))
    joined = edit.concat(edit.concat(a, quiet), b)
    out = tmp_path / "joined.mp4"
    write_video(joined, str(out))
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([0.5, 1.5, 2 + 11 / 30], abs=1e-3)
    assert beeps == pytest.approx([0.5, 2 + 11 / 30], abs=0.005)      # the quiet take stays quiet
    # Cut across the joins, then one frame in two from the second on (frames 11, 13, ... at 15 fps): the
    # beeps stay on their frames (15 and 71 of the join).
    write_video(edit.every_nth(edit.trim(joined, 10, 70), 2, 1), str(out), overwrite=True)
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([2 / 15, 17 / 15, 30 / 15], abs=1e-3)
    assert beeps == pytest.approx([2 / 15, 30 / 15], abs=0.005)


def test_a_clip_joined_at_another_rate_plays_its_sound_at_its_pictures_speed(tmp_path):
    # Its frames play at the first clip's rate (60 fps frames at 30: half speed): its sound was dropped, silence
    # under it. Now it plays at half speed too, as a tape (pitch down), its beep on its white frame.
    a = clap(tmp_path / "a.mp4", 0.5)
    fast = clap(tmp_path / "fast.mp4", 0.5, fps=60)
    out = tmp_path / "joined.mkv"
    write_video(edit.concat(a, fast), str(out), codec="ffv1")
    flashes, beeps = claps(out)
    assert flashes == pytest.approx([0.5, 2.0], abs=1e-3) and beeps == pytest.approx([0.5, 2.0], abs=0.005)


def test_a_joined_sound_survives_the_disk_cache_and_the_shard_driver_as_it_was():
    # Both keep a clip's sound as JSON (Audio.__dict__), which gives its pieces back as lists.
    import json
    from graph_engine import Audio
    sound = Audio("a.mp4", 0.5, 1.0, then=(("", 0.0, 1.0), ("b.mov", 0.0, 2.0)))
    again = Audio(**json.loads(json.dumps(sound.__dict__)))
    assert again == sound and [p[:3] for p in again.span(1.25, 1.0).pieces()] == [("", 0.25, 0.75), ("b.mov", 0.0, 0.25)]
    # Played backwards at half speed and mixed under a song at -6 dB, it comes back the same too.
    mixed = Audio.joined(sound.warped([(3.0, 0.0, 6.0)], tape=True).pieces(), [[("song.mp3", 10.0, 6.0, 1.0, False, -6.0)]])
    assert Audio(**json.loads(json.dumps(mixed.__dict__))) == mixed and mixed.mix[0][0].gain == -6.0


def test_a_song_with_cover_art_is_not_taken_for_a_one_frame_video(tmp_path):
    # Its album art is a video stream of one picture: it loaded as a one-frame clip at 90000 fps.
    from graph_engine import NodeError
    ff("-f", "lavfi", "-i", "testsrc2=s=32x32", "-frames:v", "1", tmp_path / "cover.png")
    song = tmp_path / "song.mp3"
    ff("-f", "lavfi", "-i", "sine=d=1", "-i", tmp_path / "cover.png", "-map", "0", "-map", "1", "-c:a", "libmp3lame",
       "-c:v", "mjpeg", "-disposition:v", "attached_pic", song)
    with pytest.raises(NodeError) as e:
        load_video(str(song))
    assert str(e.value) == (f"{song} holds no pictures (no video stream, only a cover picture: a song or data "
                            f"file?): give a video file, or io.load_image for a still picture")


def test_dnxhr_for_editors_with_its_sound_and_a_size_it_takes(with_sound, tmp_path):
    # Avid and Premiere edit DNxHR natively; io.save_video offered ProRes alone for an intermediate.
    from graph_engine import NodeError
    clip = edit.resize(load_video(str(with_sound)), 321, 241)
    out = tmp_path / "edit.mov"
    write_video(clip, str(out), codec="dnxhr")
    with av.open(str(out)) as c:
        v = c.streams.video[0].codec_context
        assert (v.name, v.profile, v.pix_fmt, v.width, v.height) == ("dnxhd", "DNXHR HQ", "yuv422p", 322, 242)
        assert c.streams.audio[0].codec_context.name == "pcm_s24le"
        assert sum(1 for _ in c.decode(video=0)) == 60
    # Smaller than DNxHR takes: said before a frame is computed, where ffmpeg's failure read 'Invalid argument'.
    with pytest.raises(NodeError) as e:
        write_video(load_video(str(with_sound)), str(tmp_path / "small.mov"), codec="dnxhr")
    assert str(e.value) == ("cannot write small.mov as DNxHR: its frames are 64x48 and DNxHR takes 256x120 or larger. "
                            "Enlarge them first (video.resize or upscale) or write codec prores, which takes any size")


def test_a_phone_recording_that_never_finished_says_what_happened_and_what_to_do(with_sound, tmp_path):
    # A phone writes an MP4's index (moov) when the recording stops: one cut off by a flat battery or a full
    # card has its pictures and no index, and read 'cannot open ... (Invalid data found when processing input)'.
    from graph_engine import NodeError
    data = with_sound.read_bytes()
    cut = tmp_path / "IMG_0042.MOV"
    cut.write_bytes(data[: data.find(b"moov") - 4])       # pictures all there, the index not written
    with pytest.raises(NodeError) as e:
        load_video(str(cut))
    assert str(e.value).startswith(f"{cut} holds pictures but not the index an MP4/MOV file ends with (its 'moov'): "
                                   f"a recording that stopped before the phone or camera finished writing it")
    assert "untrunc" in str(e.value)


def test_a_recording_with_two_sound_tracks_says_which_goes_with_the_clip(tmp_path):
    # OBS records a microphone and the desktop as two tracks; the second was left out without a word.
    path = tmp_path / "obs.mkv"
    ff("-f", "lavfi", "-i", "testsrc2=s=64x48:d=1", "-f", "lavfi", "-i", "sine=d=1", "-f", "lavfi", "-i", "sine=f=880:d=1",
       "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-c:a", "aac", "-metadata:s:a:0", "title=Mic",
       "-metadata:s:a:1", "title=Desktop", path)
    logs = []
    load_video(str(path), log=logs.append)
    assert logs == ["obs.mkv: it has 2 sound tracks (Mic, Desktop): the first goes with the clip. For another, make "
                    "it the first: ffmpeg -i IN -map 0:v -map 0:a:1 -c copy OUT"]


def test_dnxhr_in_mxf_for_avid_takes_any_sound_at_48_khz(tmp_path):
    # MXF holds 48 kHz sound only ('only 48khz is implemented'); a phone's 44.1 kHz sound failed the render.
    clip = clap(tmp_path / "phone.mov", 0.5, rate=44100, sound=("-c:a", "pcm_s16le"))
    out = tmp_path / "avid.mxf"
    write_video(edit.resize(clip, 256, 144), str(out), codec="dnxhr")
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "dnxhd"
        assert (c.streams.audio[0].codec_context.name, c.streams.audio[0].sample_rate) == ("pcm_s24le", 48000)
    assert load_video(str(out)).length == 30


def test_a_file_where_the_output_folder_should_be_is_named(tmp_path):
    # save path out/shot/take.mp4 with a file named out/shot: 'cannot write into out/shot: File exists'.
    from graph_engine import NodeError
    from tests.test_io import make_clip
    (tmp_path / "shot").write_text("notes")
    with pytest.raises(NodeError) as e:
        write_video(make_clip(2, 32, 32), str(tmp_path / "shot" / "takes" / "take.mp4"))
    assert str(e.value) == (f"cannot write {tmp_path / 'shot' / 'takes' / 'take.mp4'}: {tmp_path / 'shot'} is a file, "
                            f"not a folder. Give another path, or move that file away")


def test_resize_keeps_a_portrait_or_landscape_shape_by_crop_or_pad():
    # A phone's portrait take joined to landscape ones, or a landscape take cut to 9:16: video.resize could
    # only stretch it to the other shape (faces a third wider), and concat said only 'resize one of them'.
    from graph_engine import Clip, NodeError
    frame = np.zeros((1, 90, 160, 3), np.uint8)
    frame[:, :, :40] = 255                      # a white band down the left quarter of a 16:9 frame
    landscape = Clip.from_array(frame, fps=30)
    portrait = Clip.from_array(np.full((1, 160, 90, 3), 128, np.uint8), fps=30)
    with pytest.raises(NodeError, match=r"cannot join a 160x90 clip with a 90x160 one; resize one of them first "
                                        r"\(video.resize to 160x90, with fit pad or crop to keep its shape\)"):
        edit.concat(landscape, portrait)
    padded = edit.resize(portrait, 160, 90, fit="pad").frame(0)
    assert (padded[:, :, 0] == 128).sum(axis=1).tolist() == [51] * 90       # 90x160 fits as 51x90, centred
    assert padded[:, :54].max() == 0 and padded[:, 54:105].min() == 128 and padded[:, 105:].max() == 0
    cut = edit.resize(landscape, 90, 160, fit="crop").frame(0)               # 160x90 covers 90x160 as 284x160
    assert cut.shape == (160, 90, 3) and cut.max() == 0                      # the centre, the band cut away
    stretched = edit.resize(landscape, 90, 160).frame(0)
    assert (stretched[80, :, 0] > 128).sum() == 22                            # stretch still the default


@pytest.mark.parametrize("fps,frames", [(24, 24), (30, 30), (30, 1)])
def test_a_gif_plays_at_its_own_rate(fps, frames, tmp_path):
    # GIF delays are hundredths: 24 fps is 4, 4, 5, ... and ffmpeg averaged the first few, so a 24 fps GIF
    # read at 25 fps and a 30 fps one at 33.3 (a download played 4-10% fast); one frame read as three.
    from tests.test_io import make_clip
    out = tmp_path / "loop.gif"
    write_video(make_clip(frames, 32, 32).with_(fps=fps), str(out), codec="gif")
    clip = load_video(str(out))
    assert clip.length == frames and (frames == 1 or clip.fps == fps)
