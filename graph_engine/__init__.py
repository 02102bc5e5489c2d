"""Kinograph's graph engine: node API, graph model, workflow files, executor and caches.

Imports neither Qt nor torch: the CLI's validate/help and the editor's model stay fast. Scripts that build,
load and run workflows import from `graph_engine.api`; node authors from here (`node`, `Param`)."""
from .errors import Cancelled, KinographError, NodeError, WorkflowError
from .node_api import Input, Param, node
from .clip import Audio, Clip, Piece, Timecode

__all__ = ["node", "Param", "Input", "NodeError", "Cancelled", "KinographError", "WorkflowError",
           "Clip", "Audio", "Piece", "Timecode"]
