"""What a node is called wherever the editor names it (canvas, panel, Log, run bar, viewer)."""


def node_title(inst, spec) -> str:
    """Its own title, else its type's name (the type itself when this install lacks it). A title of only spaces (a
    rename cleared with spaces left in, a hand-written file) counts as none: it showed as a blank everywhere."""
    return (inst.title or "").strip() and inst.title or (spec.title if spec else inst.type)
