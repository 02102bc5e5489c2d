"""Node placement maths without Qt: layered auto-layout, align and distribute.

Positions are top-left corners in scene units; sizes are (width, height)."""
from __future__ import annotations

import heapq
from typing import Dict, Iterable, Tuple

import networkx as nx

Pos = Tuple[float, float]
Size = Tuple[float, float]

H_GAP, V_GAP, COMPONENT_GAP = 80.0, 40.0, 80.0


def auto_layout(nodes: Iterable[str], links: Iterable[Tuple[str, str]], sizes: Dict[str, Size],
                origin: Pos = (0.0, 0.0)) -> Dict[str, Pos]:
    """Left-to-right layers by longest path from the sources, ordered within a layer by the
    barycentre of their neighbours to keep links short and uncrossed; disconnected parts stack."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a, b in links if a in g and b in g)
    out: Dict[str, Pos] = {}
    y0 = origin[1]
    order_index = {n: i for i, n in enumerate(g.nodes)}
    comps = sorted(nx.weakly_connected_components(g), key=lambda c: min(order_index[n] for n in c))
    for comp in comps:
        sub = g.subgraph(comp)
        if not nx.is_directed_acyclic_graph(sub):     # a broken file may loop; keep it readable anyway
            sub = nx.DiGraph(nx.bfs_tree(sub.to_undirected(), min(comp, key=order_index.get)))
        layer: Dict[str, int] = {}
        for n in nx.topological_sort(sub):
            layer[n] = max((layer[p] + 1 for p in sub.predecessors(n)), default=0)
        layers = [[] for _ in range(max(layer.values()) + 1)]
        for n in sorted(comp, key=order_index.get):
            layers[layer[n]].append(n)
        rank: Dict[str, float] = {}
        for sweep in range(4):
            seq = layers if sweep % 2 == 0 else list(reversed(layers))
            for col in seq:
                for i, n in enumerate(col):
                    rank.setdefault(n, i)
                nbrs = (lambda n: list(sub.predecessors(n))) if sweep % 2 == 0 else (lambda n: list(sub.successors(n)))
                keyed = []
                for i, n in enumerate(col):
                    ns = [rank[m] for m in nbrs(n) if m in rank]
                    keyed.append((sum(ns) / len(ns) if ns else rank[n], i, n))
                col[:] = [n for _, _, n in sorted(keyed)]
                for i, n in enumerate(col):
                    rank[n] = i
        heights = [sum(sizes[n][1] for n in col) + V_GAP * (len(col) - 1) for col in layers]
        total = max(heights)
        x = origin[0]
        for col, h in zip(layers, heights):
            y = y0 + (total - h) / 2
            for n in col:
                out[n] = (x, y)
                y += sizes[n][1] + V_GAP
            x += max(sizes[n][0] for n in col) + H_GAP
        y0 += total + COMPONENT_GAP
    return out


def align(pos: Dict[str, Pos], sizes: Dict[str, Size], mode: str) -> Dict[str, Pos]:
    """mode: left, right, top, bottom, hcenter (same vertical axis) or vcenter (same row)."""
    if not pos:
        return {}
    if mode == "left":
        v = min(x for x, _ in pos.values())
        return {n: (v, y) for n, (x, y) in pos.items()}
    if mode == "right":
        v = max(x + sizes[n][0] for n, (x, _) in pos.items())
        return {n: (v - sizes[n][0], y) for n, (x, y) in pos.items()}
    if mode == "top":
        v = min(y for _, y in pos.values())
        return {n: (x, v) for n, (x, y) in pos.items()}
    if mode == "bottom":
        v = max(y + sizes[n][1] for n, (_, y) in pos.items())
        return {n: (x, v - sizes[n][1]) for n, (x, y) in pos.items()}
    if mode == "hcenter":
        v = sum(x + sizes[n][0] / 2 for n, (x, _) in pos.items()) / len(pos)
        return {n: (v - sizes[n][0] / 2, y) for n, (x, y) in pos.items()}
    if mode == "vcenter":
        v = sum(y + sizes[n][1] / 2 for n, (_, y) in pos.items()) / len(pos)
        return {n: (x, v - sizes[n][1] / 2) for n, (x, y) in pos.items()}
    raise ValueError(f"unknown alignment {mode!r}")


def distribute(pos: Dict[str, Pos], sizes: Dict[str, Size], axis: str) -> Dict[str, Pos]:
    """Equal gaps between neighbours along x ("horizontal") or y ("vertical"); the outermost stay put."""
    if len(pos) < 3:
        return dict(pos)
    k = 0 if axis == "horizontal" else 1
    order = sorted(pos, key=lambda n: pos[n][k])
    first, last = order[0], order[-1]
    span = pos[last][k] + sizes[last][k] - pos[first][k]
    gap = (span - sum(sizes[n][k] for n in order)) / (len(order) - 1)
    out, cur = {}, pos[first][k]
    for n in order:
        p = list(pos[n])
        p[k] = cur
        out[n] = (p[0], p[1])
        cur += sizes[n][k] + gap
    return out


def separate(pos: Dict[str, Pos], sizes: Dict[str, Size], gap: float = 20.0) -> Dict[str, Pos]:
    """Nodes that overlap moved down, each just below the one it covered, top to bottom; the
    others stay put. For layouts made for other node sizes (a ComfyUI file's)."""
    placed: Dict[str, Pos] = {}
    for n in sorted(pos, key=lambda n: (pos[n][1], pos[n][0])):
        x, y = pos[n]
        w, h = sizes[n]
        moved = True
        while moved:
            moved = False
            for m, (mx, my) in placed.items():
                mw, mh = sizes[m]
                if x < mx + mw and mx < x + w and y < my + mh and my < y + h:
                    y, moved = my + mh + gap, True
        placed[n] = (x, y)
    return placed


Rect = Tuple[float, float, float, float]


def holds(frame: Rect, rect: Rect) -> bool:
    """Whether `rect` lies wholly inside `frame` (both x, y, w, h): what makes a node one of a group's."""
    fx, fy, fw, fh = frame
    x, y, w, h = rect
    return fx <= x and fy <= y and x + w <= fx + fw and y + h <= fy + fh


def out_of(box: Tuple[float, float, float, float], pos: Dict[str, Pos], sizes: Dict[str, Size],
           gap: float = 15.0) -> Dict[str, Pos]:
    """Each of the nodes lying wholly inside `box` (x0, y0, x1, y1) moved the shortest way to just outside one of
    its edges; the others are left out of the answer."""
    x0, y0, x1, y1 = box
    out: Dict[str, Pos] = {}
    for n, (x, y) in pos.items():
        w, h = sizes[n]
        if holds((x0, y0, x1 - x0, y1 - y0), (x, y, w, h)):
            out[n] = min([(x0 - w - gap, y), (x1 + gap, y), (x, y0 - h - gap), (x, y1 + gap)],
                         key=lambda p: abs(p[0] - x) + abs(p[1] - y))
    return out


def clear_spot(rect: Rect, others: Iterable[Rect], gap: float = 20.0) -> Pos:
    """The top-left nearest to `rect`'s where it overlaps none of `others` by less than `gap`.
    The places tried are its own and those flush against another rect's sides, so a node lands
    beside what it would have covered rather than somewhere on a grid."""
    x, y, w, h = rect
    near = [(ox - gap, oy - gap, ox + ow + gap, oy + oh + gap) for ox, oy, ow, oh in others]

    def free(px: float, py: float) -> bool:
        return not any(px < r and l < px + w and py < b and t < py + h for l, t, r, b in near)

    xs = sorted({x} | {v for l, _, r, _ in near for v in (r, l - w)}, key=lambda v: (v - x) ** 2)
    ys = sorted({y} | {v for _, t, _, b in near for v in (b, t - h)}, key=lambda v: (v - y) ** 2)

    def cost(i: int, j: int) -> float:
        return (xs[i] - x) ** 2 + (ys[j] - y) ** 2

    # Nearest first, walked outwards from (xs[0], ys[0]): sorting all 2N x 2N places first took 0.8 s on
    # 300 nodes and 3 s on 500, at each Tab, paste or note. Of places as near, the highest, then leftmost.
    heap, queued, best = [(cost(0, 0), 0, 0)], {(0, 0)}, None
    while heap and (best is None or heap[0][0] <= best[0]):
        d, i, j = heapq.heappop(heap)
        if free(xs[i], ys[j]) and (best is None or (ys[j], xs[i]) < best[1:]):
            best = (d, ys[j], xs[i])
        for a, b in ((i + 1, j), (i, j + 1)):
            if a < len(xs) and b < len(ys) and (a, b) not in queued:
                queued.add((a, b))
                heapq.heappush(heap, (cost(a, b), a, b))
    return best[2], best[1]
