"""Taking the signals that end a command from outside (Ctrl-C, SIGTERM, SIGHUP) the one way the commands and the
editor take them: never one the process was started ignoring. `nohup kinograph run shot.yaml &` starts it with SIGHUP
ignored so that closing the terminal leaves the render running (as a script's `cmd &` does SIGINT); caught anyway,
the hang-up cancelled the render, or closed the editor, that nohup was there to keep."""
from __future__ import annotations

import signal
from typing import Any, Callable, Dict, Iterable


def catch(signals: Iterable[int], handler: Callable) -> Dict[int, Any]:
    """Set `handler` for each of `signals` not ignored now; returns the handlers it replaced, to put back."""
    return {sig: signal.signal(sig, handler) for sig in signals if signal.getsignal(sig) is not signal.SIG_IGN}
