"""What the last stop noticed and left alone (leftalone41): the record of written files under concurrent writers,
atomic writes that survive a power cut, cached clips past the open-file bound, the chat-template child's cancel."""
import os
import threading

import pytest


def test_an_output_recorded_while_another_process_compacts_the_record_is_kept(tmp_path, monkeypatch):
    """The record of written files is compacted by reading it and writing it again whole: an output recorded by
    another process (a farm's second worker, the editor beside `kinograph run`) between the read and the write was
    lost, and Kinograph later refused to replace that file as someone else's. Compaction and appends take one lock."""
    from graph_engine import atomic
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "old.txt").write_text("kept")
    atomic.record_written(tmp_path / "old.txt")
    ledger = atomic._ledger()
    appended = threading.Event()
    entries = atomic._entries

    def slow_entries(path):
        yield from entries(path)
        appended.wait(0.3)          # the other writer's append lands here, or waits for the lock

    monkeypatch.setattr(atomic, "_entries", slow_entries)
    compacting = threading.Thread(target=atomic._compact, args=(ledger,))
    compacting.start()
    (tmp_path / "new.txt").write_text("also kept")
    other = threading.Thread(target=lambda: (atomic.record_written(tmp_path / "new.txt"), appended.set()))
    other.start()
    compacting.join()
    other.join()
    monkeypatch.setattr(atomic, "_entries", entries)
    assert atomic.written_by_kinograph(tmp_path / "old.txt") and atomic.written_by_kinograph(tmp_path / "new.txt")


def _synced(monkeypatch):
    """os.fsync recording what each call synced: (inode, whether a folder)."""
    import stat
    synced, fsync = [], os.fsync

    def recording(fd):
        st = os.fstat(fd)
        synced.append((st.st_ino, stat.S_ISDIR(st.st_mode)))
        fsync(fd)
    monkeypatch.setattr(os, "fsync", recording)
    return synced


@pytest.mark.skipif(os.name == "nt", reason="a folder cannot be opened to fsync it on Windows")
def test_outputs_and_saves_reach_the_disk_before_and_after_their_rename(tmp_path, monkeypatch):
    """A file is written under a temporary name and renamed onto its own: without an fsync of its data before the
    rename, ext4 and XFS may commit the rename first, and after a power cut the render or the saved workflow is
    there, empty; without one of the folder after it, the rename itself may be lost. An encoder writing by the path
    (ffmpeg) is synced as a save is."""
    from graph_engine.atomic import atomic_output, save_text
    synced = _synced(monkeypatch)
    save_text(tmp_path / "shot.yaml", "nodes: {}\n")
    with atomic_output(tmp_path / "take.mp4", record=False) as tmp:
        tmp.write_bytes(b"encoded")             # as ffmpeg writes it, by its path
    folder = os.stat(tmp_path).st_ino
    assert synced == [(os.stat(tmp_path / "shot.yaml").st_ino, False), (folder, True),
                      (os.stat(tmp_path / "take.mp4").st_ino, False), (folder, True)]


def test_a_cancel_stops_the_child_mid_call():
    """The chat-template and regex child was waited on for its whole time (60 s for a chat template) whatever the
    run's cancel said: a cancel during a rendering that loops in one operation, or a pattern that backtracks, waited
    the minute out. The wait follows the run's cancel: the child is killed and the run stops as cancelled."""
    from graph_engine.context import CancelToken, cancelled_by
    from graph_engine.errors import Cancelled
    from nodes.math.regex_process import RegexChild
    child, token = RegexChild(), CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with cancelled_by(token), pytest.raises(Cancelled):
        child.ask("regex_extract", ["a" * 40 + "b", "(a|aa)+$", "First Match"], 10)
    assert child.proc is None               # killed and reaped


def test_a_chat_template_rendered_inside_a_pipeline_runs_in_the_capped_child():
    """Kinograph's own prompts went through the capped child (nodes.generate.chat_template), but the pipelines it
    calls render their text encoder's chat template themselves (ZImagePipeline._encode_prompt, Flux2KleinPipeline's,
    Flux3TextEncoderStep's, QwenImage21Pipeline's processor, ...): a stranger's Jinja looped uncapped in Kinograph's
    own process. Every rendering transformers does goes through the child: a template looping past the line cap is
    refused there, tokenized or not, and a plain one renders as transformers renders it."""
    import nodes  # noqa: F401 - Kinograph's node library, which routes the renderings
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    from transformers.utils.chat_template_utils import _compile_jinja_template
    from graph_engine import NodeError
    plain = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                  chat_template=plain)
    chat = [{"role": "user", "content": "a fox"}]
    assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == \
        _compile_jinja_template(plain).render(messages=chat, add_generation_prompt=True) == "<user>a fox<a>"
    tok.chat_template = "{% for i in range(2) %}{% for j in range(90000) %}{% endfor %}{% endfor %}{{ messages[0]['content'] }}"
    for tokenize in (False, True):          # as ZImagePipeline asks it, and as Flux2KleinPipeline does
        with pytest.raises(NodeError, match="chat template runs more than 100,000 lines for one prompt"):
            tok.apply_chat_template(chat, tokenize=tokenize, add_generation_prompt=True)


@pytest.mark.skipif(os.name == "nt", reason="Windows reads a clip's file by its name, opened only while read")
def test_a_cached_clip_closed_past_the_open_file_bound_is_read_after_its_entry_is_evicted(tmp_path):
    """A cached clip reads its frames through its file held open, so that the entry may be evicted meanwhile; but
    past OPEN_FRAMES (128) clips the least recently read one is closed and opened again by its name, and once its
    entry was evicted its next chunk failed with FileNotFoundError on the cache's own file. Here 130 clips are
    read, every entry removed (`kinograph cache clear` from another shell), and the first two, closed, read whole."""
    import numpy as np
    from graph_engine import Clip, cache
    from graph_engine.cache import DiskCache
    disk = DiskCache(tmp_path, 1 << 30)
    frames = np.arange(130 * 2 * 2 * 3, dtype=np.uint8).reshape(130, 1, 2, 2, 3) % 251
    clips = []
    for i in range(cache.OPEN_FRAMES + 2):
        key = f"{i:032x}"
        disk.put(key, {"video": Clip(1, 8.0, 2, 2, lambda a, b, i=i: frames[i][a:b])}, {}, "farm.sampled")
        clips.append(disk.get(key)[0]["video"])
        assert np.array_equal(clips[-1].to_array(), frames[i])
    DiskCache(tmp_path, 1 << 30).clear()
    for c in clips:
        c.drop_cache()              # read again from their files, not from the chunks they keep
    assert all(np.array_equal(c.to_array(), f) for c, f in zip(clips, frames))
    assert len(list((tmp_path / "tmp").glob("reading.*"))) == 2      # the two closed past the bound
    del c, clips
    import gc
    gc.collect()
    assert not list((tmp_path / "tmp").glob("reading.*"))      # the links it read through go with the clips


def test_a_cancel_stops_a_diffusers_folder_mid_part(tmp_path):
    """A diffusers folder's part (a transformer of 20 GB in shards) is read by diffusers' from_pretrained, past the
    weights reader whose check stops a file at its next tensor: a cancel was seen only between parts. Kinograph's
    node library routes diffusers' reading of a safetensors file through a reader that checks it at each tensor, so a
    run cancelled while a part loads stops there (here: already cancelled when the part's reading starts)."""
    import nodes  # noqa: F401 - Kinograph's node library, which routes the readings
    from diffusers import AutoencoderKL
    from graph_engine.context import CancelToken, cancelled_by
    from graph_engine.errors import Cancelled
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4, layers_per_block=1,
                  ).save_pretrained(tmp_path / "vae")
    loaded = AutoencoderKL.from_pretrained(tmp_path / "vae", local_files_only=True)     # outside a run: as before
    token = CancelToken()
    token.cancel()
    with cancelled_by(token), pytest.raises(Cancelled):
        AutoencoderKL.from_pretrained(tmp_path / "vae", local_files_only=True)
    assert loaded.encoder.conv_in.weight.shape == (8, 3, 3, 3)
