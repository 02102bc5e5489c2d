"""graph_engine.versions: what a save replaces is kept, the newest KEEP of them, per file."""
from graph_engine import versions
from graph_engine.versions import KEEP, keep_previous, previous_versions


def test_each_replaced_version_is_kept_newest_first_and_only_the_newest_keep(tmp_path, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    path = tmp_path / "shot.yaml"
    path.write_text("v0\n")
    for i in range(1, KEEP + 4):
        assert keep_previous(path, f"v{i}\n".encode()) is None
        path.write_text(f"v{i}\n")
    kept = previous_versions(path)
    assert [v.file.read_text() for v in kept] == [f"v{i}\n" for i in range(KEEP + 2, 2, -1)]
    assert [v.saved for v in kept] == sorted((v.saved for v in kept), reverse=True)
    source = kept[0].file.parent / versions.SOURCE
    assert source.read_text().strip() == str(path.resolve())


def test_files_of_one_name_in_two_folders_keep_apart_and_a_missing_file_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    one, two = tmp_path / "a" / "shot.yaml", tmp_path / "b" / "shot.yaml"
    for p in (one, two):
        p.parent.mkdir()
        p.write_text(f"old {p.parent.name}\n")
        assert keep_previous(p, b"new\n") is None
    assert [v.file.read_text() for v in previous_versions(one)] == ["old a\n"]
    assert [v.file.read_text() for v in previous_versions(two)] == ["old b\n"]
    assert keep_previous(tmp_path / "none.yaml", b"x") is None
    assert previous_versions(tmp_path / "none.yaml") == []


def test_a_script_saving_over_its_workflow_keeps_the_one_it_replaced(tmp_path, monkeypatch):
    from graph_engine.api import new_workflow
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    path = tmp_path / "shot.yaml"
    wf = new_workflow("shot", folder=tmp_path)
    wf.add("pat", "generate.test_pattern", params={"frames": 8})
    wf.save(path)
    wf.add("rev", "video.reverse", inputs={"video": "pat.video"})
    wf.save(path)
    kept = previous_versions(path)
    assert len(kept) == 1 and "generate.test_pattern" in kept[0].file.read_text()
    assert "video.reverse" not in kept[0].file.read_text() and "video.reverse" in path.read_text()


def test_pruning_removes_only_the_versions_it_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    path = tmp_path / "shot.yaml"
    path.write_text("v0\n")
    assert keep_previous(path, b"v1\n") is None
    folder = previous_versions(path)[0].file.parent
    mine = folder / "0-notes.yaml"      # sorts before every version: the oldest-looking file there
    mine.write_text("someone's own file\n")
    for i in range(1, KEEP + 3):
        path.write_text(f"v{i}\n")
        assert keep_previous(path, f"v{i + 1}\n".encode()) is None
    assert len(previous_versions(path)) == KEEP
    assert mine.read_text() == "someone's own file\n"


def test_a_script_saving_keeps_the_files_permissions_and_refuses_a_read_only_one(tmp_path, monkeypatch):
    """wf.save wrote a new file and renamed it over the old one: a private workflow (0600) came back readable by
    everyone (0644), and one marked read-only (a template, a locked shot) was replaced, and made writable, without a
    word (the editor's Save refuses it)."""
    import os
    import pytest
    from graph_engine.api import new_workflow
    from graph_engine.errors import KinographError
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "config"))
    private, locked = tmp_path / "private.yaml", tmp_path / "locked.yaml"
    wf = new_workflow("shot", folder=tmp_path)
    wf.add("pat", "generate.test_pattern", params={"frames": 8})
    for path, mode in ((private, 0o600), (locked, 0o444)):
        wf.save(path)
        os.chmod(path, mode)
    before = locked.read_bytes()
    wf.add("rev", "video.reverse", inputs={"video": "pat.video"})
    wf.save(private)
    assert "video.reverse" in private.read_text() and os.stat(private).st_mode & 0o777 == 0o600
    (kept,) = previous_versions(private)
    assert os.stat(kept.file).st_mode & 0o777 == 0o600
    with pytest.raises(KinographError) as e:
        wf.save(locked)
    assert str(e.value) == (f"{locked} is read-only (its permissions): save under another name, or make it writable "
                            f"(chmod u+w) if you mean to change it")
    assert locked.read_bytes() == before and os.stat(locked).st_mode & 0o777 == 0o444
    assert previous_versions(locked) == []
