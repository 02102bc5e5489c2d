"""Nothing in Kinograph touches a model hub: the offline switches, and hub errors made readable."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from graph_engine import NodeError

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "DIFFUSERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def go_offline() -> None:
    """Set the offline switches before diffusers/transformers read them; patch them if already read."""
    os.environ.update(OFFLINE_ENV)
    import sys
    consts = sys.modules.get("huggingface_hub.constants")
    if consts is not None:
        consts.HF_HUB_OFFLINE = True
        consts.HF_HUB_DISABLE_TELEMETRY = True
    quiet_libraries(())


# What a load imports: a diffusers pipeline brings transformers' text encoders too.
LIBRARIES = ("diffusers", "transformers")


def quiet_libraries(libraries=LIBRARIES) -> None:
    """Turn off the MISLEADING warnings below, and the progress bars diffusers, transformers and huggingface_hub
    draw while a model loads ("Loading pipeline components...", "Loading weights"). Kinograph shows each node's own progress, and the
    command's stderr shows control characters as escapes (app.progress.Printable), so every load printed its
    bars as lines of literal \\r and \\x1b[A. transformers and the hub read HF_HUB_DISABLE_PROGRESS_BARS when
    imported; diffusers never reads it, so it is switched off here, just before a load imports it anyway.
    A load imports only the `libraries` it uses (at start-up none; those already imported are quieted all the
    same): SAM, depth and CLIP need transformers alone, and importing diffusers for them (170 modules, requests and
    gguf among them) cost their first run a third of a second of CPU. Imported, their loads are also held to the
    weights a folder holds (config_bound) and transformers' picture sizes to what models take (processor_bound)."""
    import importlib
    import sys
    from nodes.generate import config_bound, processor_bound
    for library in libraries:
        importlib.import_module(f"{library}.utils.logging")
        config_bound.install(library)
    if "transformers" in libraries:
        processor_bound.install()
    for name in ("diffusers.utils.logging", "transformers.utils.logging"):
        module = sys.modules.get(name)
        if module is not None:
            module.disable_progress_bar()
            module.get_logger(name.split(".")[0])     # the library's own stderr handler, made on first use
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        hub.disable_progress_bars()
    for library in ("diffusers", "transformers"):
        for handler in logging.getLogger(library).handlers:
            if not any(isinstance(f, _Misleading) for f in handler.filters):
                handler.addFilter(_Misleading())


# Library warnings that give a Kinograph user wrong advice, or none, on a first load: transformers' fallback to its
# PIL image processors says to install torchvision (pip would bring the torch that torchvision pairs with, replacing
# the CPU or CUDA build installed; the PIL processors are the ones Kinograph uses), and diffusers warns of modules
# "that should be kept in float32: []" on every cast of a model that has none (those it has, Kinograph keeps).
MISLEADING = ("requires torchvision (not installed); falling back to", "that should be kept in float32: [].")


class _Misleading(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(m in text for m in MISLEADING)


def _is_hub_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    hub = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "RepositoryNotFoundError", "HFValidationError",
           "EntryNotFoundError", "RevisionNotFoundError", "GatedRepoError"}
    text = str(exc)
    return bool(names & hub) or "huggingface.co" in text or "local_files_only" in text or "offline mode" in text


@contextmanager
def local_only(what: str, where: str, hint: str = ""):
    """Turn a hub lookup (a component missing from a local folder) into a NodeError naming the folder. Every
    pipeline, motion module and ControlNet load runs inside it, so the libraries' own bars are turned off here."""
    quiet_libraries()
    try:
        yield
    except NodeError:
        raise
    except (OSError, ValueError) as exc:
        # diffusers/transformers report a file missing from a local folder as OSError (EnvironmentError).
        if isinstance(exc, ValueError) and not _is_hub_error(exc):
            raise
        _say_why_unreadable(exc)
        raise NodeError(
            f"{what}: a file is missing from {where} ({_first_line(exc)}). Kinograph never downloads models: "
            f"copy the complete model (diffusers layout: model_index.json and its subfolders) into {where}"
            + (f". {hint}" if hint else "")) from None


def _say_why_unreadable(exc: BaseException) -> None:
    """A weights file the libraries found but could not read was reported as a file missing from the folder, with
    'copy the complete model': a pickle whose records unpack far beyond its size (a zip bomb), or a damaged one,
    is named here by the check every other torch file goes through (detect.read_header)."""
    import re
    from pathlib import Path
    m = re.search(r"Unable to load weights from (?:pytorch )?checkpoint file for '([^']+)'", str(exc))
    if m is None or not Path(m.group(1)).is_file():
        return
    from nodes.generate.detect import read_header
    try:
        read_header(Path(m.group(1)))      # a NodeError saying what is wrong with it
    except (OSError, ValueError):          # unreadable to the check too: the caller's message stands
        return


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__
