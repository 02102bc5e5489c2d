"""The one QUndoCommand: a named list of graph operations, done in order and undone in reverse.

Commands pushed with the same `gesture` token merge into one undo step (a slider drag, a
curve-point drag): the first command keeps what was there before, the last one's values win."""
from __future__ import annotations

from typing import List, Optional, Sequence

from PySide6.QtGui import QUndoCommand

from graph_engine.graph import Graph

from .ops import Op

MERGE_ID = 0x4B47


class GraphCommand(QUndoCommand):
    def __init__(self, graph: Graph, text: str, ops: Sequence[Op], gesture: Optional[object] = None):
        super().__init__(text)
        self.graph = graph
        self.ops: List[Op] = list(ops)
        self.gesture = gesture

    def redo(self):
        for op in self.ops:
            op.do(self.graph)

    def undo(self):
        for op in reversed(self.ops):
            op.undo(self.graph)

    def id(self) -> int:
        return MERGE_ID if self.gesture is not None else -1

    def mergeWith(self, other) -> bool:
        if not isinstance(other, GraphCommand) or other.gesture is None or other.gesture != self.gesture:
            return False
        for op in other.ops:
            if not any(mine.absorb(op) for mine in self.ops):
                self.ops.append(op)
        return True
