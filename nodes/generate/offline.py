"""Nothing in Kinograph touches a model hub: the offline switches, and hub errors made readable."""
from __future__ import annotations

import os
from contextlib import contextmanager

from graph_engine import NodeError

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "DIFFUSERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DISABLE_TELEMETRY": "1"}


def go_offline() -> None:
    """Set the offline switches before diffusers/transformers read them; patch them if already read."""
    os.environ.update(OFFLINE_ENV)
    import sys
    consts = sys.modules.get("huggingface_hub.constants")
    if consts is not None:
        consts.HF_HUB_OFFLINE = True
        consts.HF_HUB_DISABLE_TELEMETRY = True


def _is_hub_error(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    hub = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "RepositoryNotFoundError", "HFValidationError",
           "EntryNotFoundError", "RevisionNotFoundError", "GatedRepoError"}
    text = str(exc)
    return bool(names & hub) or "huggingface.co" in text or "local_files_only" in text or "offline mode" in text


@contextmanager
def local_only(what: str, where: str, hint: str = ""):
    """Turn a hub lookup (a component missing from a local folder) into a NodeError naming the folder."""
    try:
        yield
    except NodeError:
        raise
    except (OSError, ValueError) as exc:
        # diffusers/transformers report a file missing from a local folder as OSError (EnvironmentError).
        if isinstance(exc, ValueError) and not _is_hub_error(exc):
            raise
        raise NodeError(
            f"{what}: a file is missing from {where} ({_first_line(exc)}). Kinograph never downloads models: "
            f"copy the complete model (diffusers layout: model_index.json and its subfolders) into {where}"
            + (f". {hint}" if hint else "")) from None


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__
