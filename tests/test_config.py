"""config.yaml: a mistake in it is a warning naming the file, line and key, and the default
is used; it never stops a command with a traceback nor is it ignored without a word."""
import logging

import pytest

from app.cli import main
from graph_engine import config


@pytest.fixture
def cfg(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("KINOGRAPH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("KINOGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KINOGRAPH_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "cfg").mkdir()
    caplog.set_level(logging.WARNING, "kinograph.config")
    config.settings.cache_clear()
    yield lambda text: (tmp_path / "cfg" / "config.yaml").write_text(text)
    config.settings.cache_clear()


def test_wrong_types_warn_and_fall_back_to_defaults(cfg, caplog, capsys):
    cfg("output_dir: /tmp/renders\ndisk_cache_gb: lots\nmemory_cache_mb: [1]\nmodel_dirs: 5\n"
        "extra_model_paths: {a: 1}\n")
    assert main(["info"]) == 0          # was a ValueError traceback
    text = caplog.text
    assert "config.yaml:2: disk_cache_gb must be a number of GB" in text and "using 20" in text
    assert "config.yaml:3: memory_cache_mb must be a number of MB" in text
    assert "config.yaml:4: model_dirs must be a folder or a list of folders" in text
    assert "config.yaml:5: extra_model_paths must be a file or a list of files" in text
    assert config.disk_cache_cap() == 20 << 30 and config.memory_budget() == 2048 << 20
    assert str(config.output_dir()) == "/tmp/renders"      # the good key still counts


def test_unknown_keys_and_broken_yaml_are_named(cfg, caplog):
    cfg("model_dir: /models\n")
    assert config.settings() == {}
    assert "config.yaml:1: unknown key 'model_dir' (did you mean 'model_dirs'?)" in caplog.text
    caplog.clear()
    config.settings.cache_clear()
    cfg("output_dir: [unclosed\n")
    assert config.settings() == {}
    assert "config.yaml:2: not valid YAML" in caplog.text and "defaults" in caplog.text


def test_fractions_of_a_gb_and_environment_values(cfg, caplog, monkeypatch):
    cfg("disk_cache_gb: 0.5\n")
    assert config.disk_cache_cap() == 1 << 29              # int(0.5) made it 0: every entry evicted
    monkeypatch.setenv("KINOGRAPH_MEMORY_CACHE_MB", "lots")
    assert config.memory_budget() == 2048 << 20
    assert "KINOGRAPH_MEMORY_CACHE_MB='lots' is not a number" in caplog.text
