"""Which ComfyUI nodes would run: ComfyUI executes only its output nodes and what they need, so a node left on the
canvas that no output needs (a stray loader, a dangling branch) never runs there and is left out of the import.

ComfyUI knows its output nodes from each class's OUTPUT_NODE flag, which the file does not carry. Here an output is
a node whose Kinograph equivalent writes a file, a known preview, or, for a class Kinograph does not know, any node
that feeds no other node but receives a link: its pack may well mark it an output (a saver, a preview), so it is
taken as one rather than guessed away. So is a group node or a subgraph the import cannot open, which may hold one."""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Set

from .flatten import DUPLICATE_ID, Flat, Ref

RULE_TEXT = ("outputs are the nodes that save or preview, group nodes, and any node of a class Kinograph does not "
             "know that feeds no other node but receives a link (the file does not say which nodes its pack marks as "
             "outputs)")


# mapped classes their packs mark OUTPUT_NODE though Kinograph's equivalent saves nothing: efficiency-nodes' sampler
# shows its decoded picture (efficiency_nodes.py, TSC_KSampler), so ComfyUI runs it even where nothing reads it;
# Easy-Use's kSampler shows or saves its picture as image_output says; Inspire's and Easy-Use's global seed and sampler
# (linked to nothing) are kept so that the report says what they did in ComfyUI's editor
PACK_OUTPUTS = {"KSampler (Efficient)", "KSampler Adv. (Efficient)", "KSampler SDXL (Eff.)", "easy kSampler",
                "GlobalSeed //Inspire", "GlobalSampler //Inspire", "easy globalSeed"}

# a subgraph instance whose definition the file lacks is named by the definition's id
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def is_bundle(class_type: str) -> bool:
    """A group node or a subgraph left unexpanded: a bundle of nodes, any of which may save."""
    return class_type.startswith(("workflow>", "workflow/")) or bool(UUID.fullmatch(class_type))


def possible_output(cn, consumers: Dict[str, List[str]], known: bool) -> bool:
    """An unknown class that takes something and hands nothing on: most likely an output node of its pack. A bundle
    of nodes may hold a save however it is linked."""
    return not known and (is_bundle(cn.class_type) or not consumers.get(cn.id) and
                          any(isinstance(v, Ref) for v in cn.inputs.values()))


def what_runs(flat: Flat, consumers: Dict[str, List[str]], is_output: Callable[[str], bool],
              known: Callable[[str], bool]) -> Optional[Set[str]]:
    """The ids of the nodes some output needs, outputs included, and what a second node of one id needs; None when the file has no output at all (ComfyUI
    refuses to queue it, and the import keeps every node so that nothing the author meant is lost)."""
    roots = [nid for nid, cn in flat.nodes.items()
             if is_output(cn.class_type) or possible_output(cn, consumers, known(cn.class_type))]
    if not roots:
        return None
    # a second node of one id gets no links (they go to the first), though the file may have meant them for it
    roots += [nid for nid in flat.nodes if any(r.startswith(DUPLICATE_ID) for r in flat.remarks.get(nid, ()))]
    needed: Set[str] = set()
    todo = list(roots)
    while todo:
        nid = todo.pop()
        if nid in needed or nid not in flat.nodes:
            continue
        needed.add(nid)
        todo += [v.node for v in flat.nodes[nid].inputs.values() if isinstance(v, Ref)]
    return needed
