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
