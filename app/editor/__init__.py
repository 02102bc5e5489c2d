"""Kinograph's desktop node editor (PySide6).

The engine's `Graph` is the model. `scene.GraphScene` draws it and redraws from its change
events; every edit is a `commands.GraphCommand` on the document's QUndoStack whose
operations (`ops`) call the Graph API and nothing else. Runs happen on a worker thread
(`runner`), and files are written atomically with an autosave beside them (`document`,
`autosave`). `kinograph gui` enters through `main.run_editor`."""
