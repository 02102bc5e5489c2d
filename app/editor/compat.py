"""Refuse Qt bindings known to crash the editor, with the fix in the message.

PySide6 6.12.0's wheels drop a reference to None on every call of a method that returns
nothing (setPen, setPos, update...). Python 3.12+ keeps None immortal and does not notice; on
3.11 the interpreter aborts with "deallocating None" after some thousands of such calls,
which is seconds of painting."""
from __future__ import annotations

import sys

from graph_engine.errors import KinographError

BROKEN = {"6.12.0": (3, 12)}      # version -> first Python where it is harmless


def check_qt_binding() -> None:
    import PySide6
    fixed_in = BROKEN.get(PySide6.__version__)
    if fixed_in and sys.version_info[:2] < fixed_in:
        raise KinographError(
            f"PySide6 {PySide6.__version__} crashes on Python {sys.version_info.major}.{sys.version_info.minor} "
            f"(it corrupts None's reference count); install another version: "
            f"pip install 'PySide6-Essentials>=6.6,!={PySide6.__version__}'")
