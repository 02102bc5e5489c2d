"""Where a ComfyUI workflow says its model files come from.

ComfyUI's templates (and workflows saved from them) carry, on each loader, `properties.models`: the file's name,
the address to download it from and the models/ sub-folder it goes in; ComfyUI's frontend offers those downloads
when a file is missing. Kinograph downloads nothing, but the import names the address beside each missing file: a
newcomer was told only that umt5_xxl_fp8_e4m3fn_scaled.safetensors was not there, and looked for it by hand."""
from __future__ import annotations

import re
from typing import Any, Dict, Iterator

# An address printed as it is: https only, and nothing that would be read as a terminal control or split the line
# (a workflow can come from anyone). Its host is the name read first: a user name before an @
# (https://huggingface.co@files.example/...) would pass another server off as the one named.
_URL = re.compile(r"https://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?(?:[/?#][!#-~]{0,2000})?")


def _nodes(data: Dict[str, Any]) -> Iterator[dict]:
    """The UI workflow's nodes and those of its subgraphs (ComfyUI keeps every subgraph under definitions)."""
    definitions = data.get("definitions")
    subgraphs = definitions.get("subgraphs") if isinstance(definitions, dict) else None
    for graph in [data] + (subgraphs if isinstance(subgraphs, list) else []):
        nodes = graph.get("nodes") if isinstance(graph, dict) else None
        yield from nodes if isinstance(nodes, list) else []


def model_links(data: Any) -> Dict[str, str]:
    """file name (lower case, without its sub-folder) -> the https address the workflow gives for it."""
    links: Dict[str, str] = {}
    if not isinstance(data, dict):
        return links
    for node in _nodes(data):
        props = node.get("properties") if isinstance(node, dict) else None
        models = props.get("models") if isinstance(props, dict) else None
        for m in models if isinstance(models, list) else []:
            if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not isinstance(m.get("url"), str):
                continue
            if _URL.fullmatch(m["url"]):
                links.setdefault(file_key(m["name"]), m["url"])
    return links


def file_key(name: str) -> str:
    """A model name as a link is looked up by: ComfyUI's wan\\x.safetensors and wan/x.safetensors are x.safetensors."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].lower()
