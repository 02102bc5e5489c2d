"""A share that reports a size of 0 (sshfs, rclone and some SMB servers answer statvfs with 0 blocks in all, though
they take writes), or a filesystem whose free space cannot be read, is not taken for a full disk by any writer: the
disk cache, work in progress, kept and spilled frames, a picture's write, a batch's jobs, the editor's save. They go ahead, and the log
says once why the room was not checked. A disk that tells its size and is full is still refused."""
from __future__ import annotations

import logging
import shutil
from collections import namedtuple

import numpy as np
import pytest

from graph_engine import free_space

usage = namedtuple("usage", "total used free")


@pytest.fixture
def sizeless(monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(0, 0, 0))
    monkeypatch.setattr(free_space, "_noted", set())


@pytest.fixture
def full(monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 0))


def _every_writer_s_answer(tmp_path) -> dict:
    """What each writer decides about the disk holding tmp_path."""
    from PySide6.QtCore import QSaveFile
    from app.batch import full_disk
    from app.editor.document import _why
    from graph_engine.cache import DiskCache
    from graph_engine.clip import Clip
    from graph_engine.keep import FrameStore
    from graph_engine.partial import keep_work
    from graph_engine.spill import Spill, _Shared
    from nodes.io.images import _disk_says
    try:
        cached = DiskCache(tmp_path / "cache", 1 << 30).put("k" * 16, {"v": 1.0}, {}, "t")
    except OSError:         # the cache says why it kept nothing; the executor logs it
        cached = False
    store = FrameStore(tmp_path / "kept", 1 << 20)
    store._put(0, 0, 1, np.zeros((1, 4, 4, 3), np.uint8))
    return {"cache": cached,
            "partial": keep_work(tmp_path / "work.bin", lambda f: f.write(b"x"), 1),
            "kept": store.bytes > 0,
            "spilled": not _Shared(Spill(tmp_path / "spill"), Clip.from_array(np.zeros((2, 4, 4, 3), np.uint8)), 0).off,
            "picture": _disk_says(tmp_path, "f.png", 100) != "",
            "batch": full_disk([str(tmp_path / "out.mp4")]) is None,
            "editor": "is full" not in _why(QSaveFile(str(tmp_path / "wf.yaml")), tmp_path / "wf.yaml", b"x")}


def test_a_share_that_reports_no_size_is_written_to_by_every_writer(tmp_path, sizeless, caplog):
    with caplog.at_level(logging.WARNING, "kinograph.disk"):
        assert _every_writer_s_answer(tmp_path) == dict.fromkeys(
            ("cache", "partial", "kept", "spilled", "picture", "batch", "editor"), True)
    notes = [r.getMessage() for r in caplog.records if r.name == "kinograph.disk"]
    assert len(notes) == 1 and "reports a size of 0" in notes[0] and "writes go ahead" in notes[0]


def test_a_disk_whose_room_cannot_be_read_is_not_taken_for_full(tmp_path, monkeypatch):
    def unreadable(path):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(shutil, "disk_usage", unreadable)
    monkeypatch.setattr(free_space, "_noted", set())
    assert free_space.disk_room(tmp_path) is None and not free_space.short_of(tmp_path, 1 << 40)


def test_a_full_disk_that_tells_its_size_is_still_refused(tmp_path, full):
    assert _every_writer_s_answer(tmp_path) == dict.fromkeys(
        ("cache", "partial", "kept", "spilled", "picture", "batch", "editor"), False)
