"""Review of leftalone41: what its fsyncs, chat-template routing and clip links cost or missed."""
import os

import pytest


@pytest.mark.skipif(os.name == "nt", reason="a folder cannot be opened to fsync it on Windows")
def test_a_frames_folder_syncs_each_frame_before_its_rename_and_the_folder_once_a_block(tmp_path, monkeypatch):
    """atomic_output synced the folder after each rename: a frames folder of 500 small PNGs took 6-8 s where it
    took 0.7 s, half of it in 500 syncs of the same folder. Each frame's data still reaches the disk before its
    rename (a resumed render counts the frames there as whole); the folder is synced once a block of frames."""
    import numpy as np
    from graph_engine.clip import Clip
    from nodes.io.images import write_frames
    from tests.test_leftalone41 import _synced
    synced = _synced(monkeypatch)
    clip = Clip.from_array(np.zeros((40, 2, 2, 3), np.uint8))
    write_frames(clip, str(tmp_path / "f"))
    files = [ino for ino, folder in synced if not folder]
    assert sorted(files) == sorted(os.stat(p).st_ino for p in (tmp_path / "f").iterdir())   # 40 frames, marker
    blocks = -(-clip.length // clip.chunk)
    assert 1 <= sum(folder for _, folder in synced) <= blocks + 1         # the marker's, then one a block
    assert synced[-1] == (os.stat(tmp_path / "f").st_ino, True)           # the last frame's rename too


def test_diffusers_cancel_reader_takes_the_arguments_of_the_diffusers_it_replaces(tmp_path, monkeypatch):
    """The cancel-checking reader replaced diffusers' load_state_dict with one of 0.42's arguments only; diffusers
    0.33 to 0.35 (pyproject allows >=0.32) call it as load_state_dict(shard_file, dduf_entries=..., disable_mmap=...)
    and every from_pretrained failed with a TypeError. It takes what the function it replaces takes, and leaves a
    part inside a DDUF archive (dduf_entries given) to diffusers."""
    import sys
    import types
    import torch
    from safetensors.torch import save_file
    from nodes.generate import diffusers_cancel
    calls = []

    def load_state_dict(checkpoint_file, dduf_entries=None, disable_mmap=False):      # diffusers 0.33's
        calls.append(dduf_entries)
        return {"from": "diffusers"}
    reader, importer = types.ModuleType("reader"), types.ModuleType("importer")
    reader.load_state_dict = importer.load_state_dict = load_state_dict
    monkeypatch.setitem(sys.modules, diffusers_cancel._IMPORTER, importer)
    diffusers_cancel._route(reader)
    save_file({"w": torch.ones(2)}, str(tmp_path / "part.safetensors"))
    read = importer.load_state_dict(str(tmp_path / "part.safetensors"), dduf_entries=None, disable_mmap=False)
    assert torch.equal(read["w"], torch.ones(2)) and calls == []
    assert importer.load_state_dict("part.safetensors", dduf_entries={"part.safetensors": 1}) == {"from": "diffusers"}
    assert calls == [{"part.safetensors": 1}]


@pytest.mark.skipif(os.name == "nt", reason="Windows reads a clip's file by its name: no links are made")
def test_cache_clear_removes_the_clip_links_a_killed_process_left(tmp_path):
    """A clip closed past OPEN_FRAMES is read through a hard link under the cache's tmp/; a process killed outright
    leaves its links, each holding an evicted clip's bytes on the disk. They were swept only when a later process
    of the host closed a clip past the bound in that cache (a few runs ever do), and `kinograph cache clear` left
    them (and tmp/ with them). clear removes those of ended processes, and keeps a running one's."""
    import socket
    import subprocess
    import sys
    from graph_engine.cache import DiskCache
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()
    (tmp_path / "tmp").mkdir()
    dead = tmp_path / "tmp" / f"reading.{socket.gethostname()}.{ended.pid}.{'0' * 32}.npy"
    alive = tmp_path / "tmp" / f"reading.{socket.gethostname()}.{os.getpid()}.{'1' * 32}.npy"
    dead.write_bytes(b"an evicted clip's frames")
    alive.write_bytes(b"a clip this process reads")
    DiskCache(tmp_path, 1 << 30).clear()
    assert not dead.exists() and alive.exists()


def test_a_chat_rendered_in_the_child_sees_what_transformers_would_show_the_template():
    """transformers takes dataclass or pydantic messages and numpy scalars, and shows the template their plain values
    (its _plain_template_data); sent to the child as JSON with anything else as "<TypeName>", a dataclass message
    was refused as no message, np.int64(3) + 1 failed and np.bool_(False) was a true "<bool_>"."""
    import dataclasses
    import numpy as np
    from transformers.utils.chat_template_utils import _compile_jinja_template
    from nodes.generate.chat_template import rendered_in_child

    @dataclasses.dataclass
    class Message:
        role: str
        content: str
    template = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ n + 1 }}{{ 'T' if flag else 'F' }}"
    chat = [Message("user", "a fox"), {"role": "assistant", "content": "ok"}]
    assert rendered_in_child([chat], chat_template=template, n=np.int64(3), flag=np.bool_(False)) == \
        ([_compile_jinja_template(template).render(messages=[{"role": "user", "content": "a fox"}, chat[1]], n=3,
                                                   flag=False)], [])


def test_a_cancel_stops_a_run_waiting_for_another_runs_chat_template(monkeypatch):
    """One child renders the chat templates of every run, one at a time: a run cancelled while another's template
    held the child (up to its 60 s) waited its turn out, then rendered. It stops at the cancel, the child not asked."""
    import threading
    from graph_engine.context import CancelToken, cancelled_by
    from graph_engine.errors import Cancelled
    from nodes.generate import chat_template
    asked = []

    class Child:
        def ask(self, *args):
            asked.append(args)
            return {"value": [["rendered"], [[]]]}
    monkeypatch.setattr(chat_template, "_child", Child())
    token = CancelToken()
    token.cancel()
    chat_template._asking.acquire()         # another run's rendering
    threading.Timer(0.5, chat_template._asking.release).start()
    with cancelled_by(token), pytest.raises(Cancelled):
        chat_template.rendered_in_child([[{"role": "user", "content": "a"}]], chat_template="{{ messages }}")
    assert asked == []


def test_kinograph_refuses_a_chat_template_where_transformers_renders_it_out_of_reach(monkeypatch):
    """Before transformers had render_jinja_template (pyproject allows 4.46, whose apply_chat_template renders the
    template itself), routing that function changed nothing, and Kinograph's own prompts, capped in the child until
    leftalone41, were rendered uncapped in its process with no word said. They are refused, saying what to update."""
    import transformers.tokenization_utils_base as base
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models
    from graph_engine import NodeError
    from nodes.generate.chat_template import apply_chat_template
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, "[UNK]")),
                                  chat_template="{{ messages[0]['content'] }}")
    chat = [{"role": "user", "content": "a fox"}]
    assert apply_chat_template(tok, chat, "Tiny's text encoder") == "a fox"
    monkeypatch.delattr(base, "render_jinja_template")         # as in transformers 4.46
    with pytest.raises(NodeError, match="Tiny's text encoder: .*update transformers"):
        apply_chat_template(tok, chat, "Tiny's text encoder")
