"""For the editor tests about a node that fails while a run is under way (its badge, its tooltip, the viewer's
out-of-date mark, seeds after a run): the run is let past the up-front check of model and footage files, which would
refuse it before any node ran. That check has its own tests (test_editor_precheck.py)."""


def run_past_the_precheck(monkeypatch):
    from app.editor.document import Document
    monkeypatch.setattr(Document, "missing_files", lambda self, *a, **k: [])
