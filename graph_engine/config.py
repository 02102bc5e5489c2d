"""Where Kinograph keeps things: config, caches, model folders. Overridable by environment."""
from __future__ import annotations

import difflib
import logging
import os
import reprlib
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


log = logging.getLogger("kinograph.config")
# A wrong value as its warning shows it: two levels, a few items and characters of each.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 80, 80


def _paths(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and v == v and v != float("inf")


# The keys config.yaml may hold, with what each must be (a value of another kind is named and left out).
KEYS = {
    "output_dir": ("a folder", lambda v: isinstance(v, str)),
    "model_dirs": ("a folder or a list of folders", _paths),
    "extra_model_paths": ("a file or a list of files", _paths),
    "memory_cache_mb": ("a number of MB", _number),
    "disk_cache_gb": ("a number of GB", _number),
    "keep_takes": ("a number of earlier takes to keep per output (0 replaces), or all",
                   lambda v: v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)),
}
DEFAULTS = {"memory_cache_mb": 2048, "disk_cache_gb": 20}


def settings() -> Dict[str, Any]:
    """`config.yaml` in the config folder; absent means defaults. A mistake in it (broken YAML,
    an unknown key, a value of the wrong kind) is a warning naming the file and line, once per
    version of the file, and that part falls back to the default: a typo must not pass unnoticed, nor stop a render.
    Read again when the file changed: a model folder added to it while the editor was open (as the 'not in the model
    folders' message advises) went unseen, the run refused, until the editor was restarted."""
    path = config_dir() / "config.yaml"
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None
    return _read_settings(path, stamp)


@lru_cache(maxsize=4)
def _read_settings(path: Path, stamp) -> Dict[str, Any]:
    if stamp is None or not path.is_file():
        return {}
    import yaml
    try:
        text = path.read_text(encoding="utf-8")
        # Nesting past a settings file's refused before PyYAML, which builds a level a call (RecursionError)
        from .workflow import screen_yaml
        screen_yaml(text, aliases=True)
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError) as e:
        log.warning("%s: cannot read it (%s); Kinograph uses its defaults", path, e)
        return {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        log.warning("%s:%s: not valid YAML (%s); Kinograph uses its defaults until it is fixed",
                    path, mark.line + 1 if mark else 1, what)
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        log.warning("%s:1: config.yaml is a mapping of settings (%s); Kinograph uses its defaults",
                    path, ", ".join(KEYS))
        return {}
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    out = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(str(key), 1)}"
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.6)
            log.warning("%s: unknown key %r%s, ignored; config.yaml knows %s", where, key,
                        f" (did you mean {close[0]!r}?)" if close else "", ", ".join(KEYS))
            continue
        what, ok = KEYS[key]
        if value is None:
            continue
        if not ok(value):
            fallback = f"using {DEFAULTS[key]}" if key in DEFAULTS else "using the default"
            # Shortened: a value of aliases (billion laughs) written out whole is 10**9 items in one log line.
            log.warning("%s: %s must be %s, not %s; %s", where, key, what, _SHORT.repr(value), fallback)
            continue
        out[key] = _beside(path.parent, value) if key in FOLDER_KEYS else value
    return out


# Settings naming files or folders: a relative one is read from config.yaml's own folder. From the folder each command
# ran in, a show's config (KINOGRAPH_CONFIG_DIR=/show/kinograph, `model_dirs: [models]`) found no models on a farm,
# whose tasks each start in a folder of their own.
FOLDER_KEYS = ("output_dir", "model_dirs", "extra_model_paths")
settings.cache_clear = _read_settings.cache_clear       # forgets what was read (tests call it, as before)


def _beside(folder: Path, value: Any) -> Any:
    if isinstance(value, list):
        return [_beside(folder, v) for v in value]
    text = value.strip()
    # Absolute, or expanded where it is read: a Windows variable too (%APPDATA%\ComfyUI\...), absolute once expanded.
    if not text or text.startswith(("~", "$")) or os.path.isabs(os.path.expandvars(text)):
        return value
    return str(folder.absolute() / value.strip())


def _amount(key: str) -> float:
    """A numeric setting: KINOGRAPH_<KEY>, else config.yaml, else the default."""
    env_name = "KINOGRAPH_" + key.upper()
    env = os.environ.get(env_name)
    if env is not None:
        try:
            value = float(env)
            if _number(value):
                return value
        except ValueError:
            pass
        log.warning("%s=%r is not a number of %s; using %s", env_name, env, KEYS[key][0].split()[-1],
                    DEFAULTS[key])
        return DEFAULTS[key]
    return settings().get(key, DEFAULTS[key])


def memory_budget() -> int:
    return int(_amount("memory_cache_mb") * (1 << 20))


def disk_cache_cap() -> int:
    return int(_amount("disk_cache_gb") * (1 << 30))


def models_loaded() -> int:
    """KINOGRAPH_MODELS_LOADED: how many models the model manager keeps loaded at once (default 3). A value that is
    not a whole number from 1 (a farm template's blank variable, '2.5') is named and the default used: it failed
    every model node with int()'s "invalid literal", naming no variable."""
    env = os.environ.get("KINOGRAPH_MODELS_LOADED")
    if env is None:
        return 3
    if env.strip().isdecimal() and int(env) >= 1:      # isdigit passed "²", which int() refuses
        return int(env)
    log.warning("KINOGRAPH_MODELS_LOADED=%r is not a number of models (1 or more); using 3", env)
    return 3
