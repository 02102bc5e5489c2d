"""What a node is called wherever the editor names it (canvas, panel, Log, run bar, viewer)."""


def node_title(inst, spec) -> str:
    """Its own title, else its type's name (the type itself when this install lacks it). A title of only spaces (a
    rename cleared with spaces left in, a hand-written file) counts as none: it showed as a blank everywhere."""
    return (inst.title or "").strip() and inst.title or (spec.title if spec else inst.type)


def named_in(graph, registry, node_id: str) -> str:
    """`node_id` as the canvas of `graph` names it: its title, with its id where another node has the same title."""
    def title(n):
        inst = graph.nodes[n]
        return node_title(inst, registry.get(inst.type))
    mine = title(node_id)
    return f"{mine} ({node_id})" if any(title(n) == mine for n in graph.nodes if n != node_id) else mine
