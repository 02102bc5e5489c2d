"""`kinograph gui [WORKFLOW] [--screenshot PNG]`: open the editor, or render it to a PNG and exit."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional


def missing_system_libraries() -> List[str]:
    """Debian/Ubuntu packages of the shared libraries Qt's X11 plugin needs and cannot find (a
    plain Debian lacks libxcb-cursor0, among others); [] when all are there or it cannot tell."""
    import importlib.util
    import subprocess
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    plugin = Path(list(spec.submodule_search_locations)[0]) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return []
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    packages = []
    for line in out.splitlines():
        if "not found" in line:
            name = line.split()[0]                      # libxcb-cursor.so.0
            base, _, version = name.partition(".so")
            version = version.lstrip(".").split(".")[0]
            pkg = base.lower() + ("-" if base[-1:].isdigit() else "") + version
            if pkg not in packages:
                packages.append(pkg)
    return packages


def _missing_x11() -> List[str]:
    """The system packages Qt's X11 plugin lacks, when the editor is to open on an X11 desktop; [] otherwise."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    x11 = sys.platform.startswith("linux") and os.environ.get("DISPLAY") and (
        platform.startswith("xcb") or (not platform and not os.environ.get("WAYLAND_DISPLAY")))
    return missing_system_libraries() if x11 else []


def _app():
    from .compat import check_qt_binding
    check_qt_binding()
    from PySide6.QtWidgets import QApplication
    from . import theme
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Kinograph")
        app.setOrganizationName("Kinograph")
        app.setDesktopFileName("kinograph")
    theme.apply(app)
    return app


def run_editor(workflow: Optional[str] = None, screenshot: Optional[str] = None) -> int:
    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
        and not os.environ.get("WAYLAND_DISPLAY")
    from graph_engine.errors import KinographError
    if screenshot and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif headless and not os.environ.get("QT_QPA_PLATFORM"):
        raise KinographError("no display to open the editor on (DISPLAY is not set); run it on a desktop, "
                             "or render a picture of it with --screenshot PNG")
    missing = _missing_x11()
    if missing and screenshot and not os.environ.get("QT_QPA_PLATFORM"):
        # A picture of the window needs no display; Qt's X11 plugin without its libraries would abort
        # the process (a core dump, not a message).
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif missing:
        # On an X11 desktop, name the missing system packages instead of letting Qt abort.
        raise KinographError("the editor needs system libraries that are not installed: "
                             f"{', '.join(missing)}.\nInstall them with:\n    sudo apt-get install {' '.join(missing)}\n"
                             "(package names for Debian and Ubuntu; other systems name them alike)")
    app = _app()
    from .model_notes import hold_early_warnings
    hold_early_warnings()           # a config.yaml mistake said while starting is said again in the window's Log
    from graph_engine.errors import WorkflowError
    from PySide6.QtCore import QTimer
    from app.comfyui import is_comfyui_file
    from .document import Document
    from .window import MainWindow, offer_recovery

    from .comfyui_open import open_comfyui

    doc, failed = None, ""
    # A ComfyUI file opens as it does from File > Open, once the window is up: imported off the UI thread behind
    # its busy dialog, with its report beside it. Imported first, a big template kept the window away for seconds.
    later = bool(workflow) and not screenshot and is_comfyui_file(workflow)
    if workflow and not later:
        try:
            doc = (open_comfyui(workflow, None) or (Document.load(Path(workflow)),))[0]     # YAML, or --screenshot
        except (WorkflowError, KinographError) as e:
            print(f"kinograph: cannot open {workflow}:\n{e}", file=sys.stderr)
            if screenshot:
                return 2
            failed = str(e)
    if screenshot:
        return _screenshot(app, MainWindow(doc), Path(screenshot))
    w = MainWindow(doc)
    w.show()
    if failed:
        # Opened from a file manager or a launcher there is no terminal: the editor quit at once
        # and the only word of why went to a stderr nobody saw. It opens empty and says why.
        from PySide6.QtWidgets import QMessageBox
        w.log.log("error", f"cannot open {workflow}: {failed}")
        QMessageBox.warning(w, "Cannot open workflow", f"Cannot open {Path(workflow).name}:\n\n{failed}")
    offer_recovery(w)
    if later:
        QTimer.singleShot(0, lambda: w.open_path(workflow, warn=True))
    restore = autosave_on_termination(app)
    from .gui_gc import collected_on_gui_thread
    try:
        with collected_on_gui_thread(app):
            return app.exec()
    finally:
        restore()


def autosave_on_termination(app) -> Callable[[], None]:
    """SIGTERM (logging out, a shutdown), SIGHUP (the terminal it was started from closed) and Ctrl+C there
    ended the editor on the spot, with the edits since the last autosave (up to 30 s). Now every window's
    unsaved edits are autosaved first, then the signal ends the process as before: the next start offers
    them back. Python runs a signal handler only when it next has control, and inside Qt's event loop that
    could be never: the wakeup fd, watched by the loop, gives it control at once. Returns what puts the
    handlers before back."""
    import signal
    import socket
    from PySide6.QtCore import QSocketNotifier
    from ..signal_catch import catch
    from .window import WINDOWS
    if not hasattr(signal, "SIGHUP"):       # Windows: no such signals to catch
        return lambda: None
    ours, theirs = socket.socketpair()
    for s in (ours, theirs):
        s.setblocking(False)
    wakeup = signal.set_wakeup_fd(theirs.fileno())
    notifier = QSocketNotifier(ours.fileno(), QSocketNotifier.Read, app)
    notifier.activated.connect(lambda *_: ours.recv(512))

    def autosave_then_end(signum, _frame):
        try:
            for w in list(WINDOWS):
                if w.autosaver is not None:
                    w.commit_pending()
                    w.autosaver.tick()
        finally:        # whatever the autosave met, the signal still ends the editor
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    before = catch((signal.SIGTERM, signal.SIGHUP, signal.SIGINT), autosave_then_end)   # not one nohup ignores

    def restore() -> None:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(wakeup)
        notifier.setEnabled(False)
        notifier.deleteLater()
        ours.close()
        theirs.close()
    return restore


def _settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def _screenshot(app, w, out: Path) -> int:
    """Lay the window out as someone working on it would see it: the graph at its first legible
    view, the output of the node feeding the first writer in the viewer, and the properties of
    the first expensive node on screen (the sampler, in a generating workflow)."""
    w.resize(1600, 1000)          # the README's picture, whatever screen (or none) this runs on
    w.show()
    _settle(app, 0.2)
    g, reg = w.doc.graph, w.doc.registry
    writers = [n for n, i in g.nodes.items() if reg.get(i.type) is not None and reg.get(i.type).output]
    shown = None
    if writers:
        feed = g.inputs.get(writers[0], {})
        shown = next(iter(feed.values()))[0] if feed else None
    shown = shown or next(iter(g.nodes), None)
    if shown is not None:
        w.view_node(shown, "A")
        w.runs.wait_idle(600)
        _settle(app, 0.3)
        w.viewer.seek(min(12, max(0, w.viewer.length - 1)))
        deadline = time.monotonic() + 300
        while w.viewer._waiting and time.monotonic() < deadline:
            _settle(app, 0.05)
    w.view.frame_legible()
    _settle(app, 0.3)
    on_screen = w.view.mapToScene(w.view.viewport().rect()).boundingRect()
    visible = [n for n, item in w.scene.nodes.items() if on_screen.contains(item.sceneBoundingRect())]
    focus = next((n for n in visible if reg.get(g.nodes[n].type) is not None and reg.get(g.nodes[n].type).expensive),
                 shown if shown in visible else next(iter(visible), None))
    if focus is not None:
        w.scene.select_nodes([focus])
    _settle(app, 0.7)
    from PySide6.QtCore import QBuffer, QByteArray
    from graph_engine.atomic import write_bytes
    from graph_engine.errors import NodeError
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QBuffer.WriteOnly)
    ok = w.grab().save(buf, "PNG")
    w.doc.undo.setClean()
    w.close()
    try:
        if not ok:
            raise NodeError("the window could not be drawn as a PNG")
        # As every writer: a picture it did not write (a render named by mistake, a photo) is never replaced.
        write_bytes(out, bytes(data))
    except NodeError as e:
        print(f"kinograph: {str(e).replace(', or set `overwrite: true` on the node', ' or delete it')}",
              file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
