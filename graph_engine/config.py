"""Where Kinograph keeps things: config, caches, model folders. Overridable by environment."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict


def config_dir() -> Path:
    env = os.environ.get("KINOGRAPH_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "kinograph"


def cache_dir() -> Path:
    env = os.environ.get("KINOGRAPH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "kinograph"


def data_dir() -> Path:
    """Kinograph's data folder (models, outputs, the record of files it wrote)."""
    env = os.environ.get("KINOGRAPH_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "kinograph"


def output_dir() -> Path:
    """The configured output folder: outputs of any workflow may go there (besides the
    workflow's own folder). `--output-dir`, KINOGRAPH_OUTPUT_DIR, `output_dir:` in config.yaml."""
    value = os.environ.get("KINOGRAPH_OUTPUT_DIR") or settings().get("output_dir")
    if isinstance(value, str) and value.strip():
        return Path(os.path.expanduser(value.strip())).absolute()
    return data_dir() / "output"


def allow_outside() -> bool:
    """`--allow-outside` (or KINOGRAPH_ALLOW_OUTSIDE=1, which Ray workers inherit): outputs may
    go anywhere the user can write; the overwrite rules still hold."""
    return os.environ.get("KINOGRAPH_ALLOW_OUTSIDE", "") in ("1", "true", "yes")


@lru_cache(maxsize=1)
def settings() -> Dict[str, Any]:
    """`config.yaml` in the config folder; absent or unreadable means defaults."""
    path = config_dir() / "config.yaml"
    if not path.is_file():
        return {}
    import yaml
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def setting(key: str, default: Any) -> Any:
    env = os.environ.get("KINOGRAPH_" + key.upper())
    if env is not None:
        try:
            return type(default)(env) if default is not None else env
        except ValueError:
            return default
    return settings().get(key, default)


def memory_budget() -> int:
    return int(setting("memory_cache_mb", 2048)) << 20


def disk_cache_cap() -> int:
    return int(setting("disk_cache_gb", 20)) << 30
