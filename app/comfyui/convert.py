"""Flattened ComfyUI nodes -> a Kinograph graph, with a report line for every ComfyUI node."""
from __future__ import annotations

import graphlib
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from graph_engine.graph import Graph

from .errors import ComfyImportError
from .flatten import CNode, Flat, Ref
from .api_nodes import API_NODE, is_api_node
from .mapping import INSTEAD, RULES, Approx, Rule
from .outputs import PACK_OUTPUTS, RULE_TEXT, UUID, is_bundle, possible_output, what_runs
from .report import APPROX, EXACT, UI, Entry, Report
from .out import LOADERS, Out
from .packs import (VHS, WAS, AnimateDiff, Comfyroll, ControlnetAux, ControlNets, CoreMedia, CoreNodes, EasyUse,
                    Efficiency, FizzNodes, FrameInterpolation, Inspire, IPAdapters, KJNodes, LogicNodes, Rgthree,
                    Segmentation, SoundModels, VideoModels, WanVideoWrapper, XLabs)

# ComfyUI's "control after generate" as the editor's seed modes (it draws new seeds before each run);
# ComfyUI's decrement has no Kinograph mode and stays fixed
SEED_MODES = {"randomize": "random", "increment": "increment"}
CONDITIONINGS = ("conditioning", "positive", "negative")


def grown_past(cn: CNode, rule: Rule) -> List[str]:
    """Notes for the linked inputs of a ComfyUI autogrow list (images.image_1, image_2, ..) past the ones the rule
    maps: the Kinograph node has fewer sockets than ComfyUI grew, and the picture would otherwise be dropped unsaid."""
    notes = []
    for k, v in cn.inputs.items():
        group = k.split(".", 1)[0] + "."
        taken = [m for m in rule.inputs if m.startswith(group)]
        if isinstance(v, Ref) and "." in k and taken and k not in rule.inputs:
            notes.append(f"input {k} is not read: {rule.node} has sockets for {len(taken)} of ComfyUI's {group[:-1]} "
                         "only; link it in place of another, or leave it out")
    return notes


# each pack's handlers are a mixin: convert() finds rule.special's handler as the method special_<name>
class Converter(CoreNodes, CoreMedia, VideoModels, SoundModels, ControlNets, ControlnetAux, AnimateDiff, IPAdapters,
                Segmentation, KJNodes, WanVideoWrapper, WAS, Rgthree, Efficiency, Comfyroll, VHS, FrameInterpolation, XLabs, FizzNodes,
                EasyUse, Inspire, LogicNodes):
    def __init__(self, flat: Flat, registry=None):
        self.flat = flat
        self.registry = registry
        self.graph = Graph()
        self.outs: Dict[Tuple[str, int], Out] = {}
        self.report = Report()
        self.pending_vae: List[Tuple[str, str]] = []        # (kinograph node, ComfyUI node) needing a VAE link
        self.consumers: Dict[str, List[str]] = {}
        # (ComfyUI node, slot) -> the port of the Kinograph node that computes, for PreviewAny to show, a value
        # folded into a constant for the settings it feeds
        self.shown_ports: Dict[Tuple[str, int], Tuple[str, str]] = {}
        self.skipped: Dict[str, set] = {}                    # node -> ComfyUI nodes it does not use (a switch's unpicked input)
        self.control_nodes: Dict[Tuple[Tuple[str, str], int], str] = {}   # (model port, control) -> control.apply
        # ComfyUI node -> its widgets that a node's output feeds (Kinograph param, the output, ComfyUI's name)
        self.param_links: Dict[str, List[Tuple[str, Out, str]]] = {}
        # ComfyUI node -> {Kinograph param: the "control after generate" of the seed widget it came from}
        self.seed_modes: Dict[str, Dict[str, str]] = {}
        for cn in flat.nodes.values():
            for v in cn.inputs.values():
                if isinstance(v, Ref):
                    self.consumers.setdefault(v.node, []).append(cn.id)

    # -- helpers --------------------------------------------------------------------------------------------
    def node_id(self, cn: CNode, suffix: str = "") -> str:
        base = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cn.class_type)
        base = re.sub(r"[^A-Za-z0-9]+", "_", base).strip("_").lower() or "node"
        if not base[0].isalpha():
            base = "n_" + base
        nid = f"{base}_{re.sub(r'[^A-Za-z0-9]+', '_', cn.id)}{suffix}"
        k = 2
        while nid in self.graph.nodes:
            nid = f"{base}_{cn.id}{suffix}_{k}"
            k += 1
        return nid

    def add(self, type_name: str, cn: CNode, params: Dict[str, Any], suffix: str = "", dy: float = 0.0) -> str:
        nid = self.node_id(cn, suffix)
        spec = self.registry.get(type_name) if self.registry is not None else None
        title = cn.title if not suffix else ""
        self.graph.add_node(type_name, nid, params, spec.version if spec else 1, title=title)
        self.link_params(cn, nid)
        if cn.pos is not None:
            self.graph.ui[nid] = {"pos": [round(cn.pos[0]), round(cn.pos[1] + dy)]}
        # ComfyUI draws a new seed at each queue for randomize (its KSampler's default): left fixed, every run gave
        # the picture before again (from the cache, at once)
        modes = {k: SEED_MODES[m] for k, m in self.seed_modes.get(cn.id, {}).items()
                 if m in SEED_MODES and spec is not None and k in spec.params and spec.params[k].kind == "seed"}
        if modes:
            self.graph.ui.setdefault(nid, {})["seed"] = modes
        return nid

    def take_seed_modes(self, cn: CNode, attrs: Dict[str, Any], taken) -> None:
        """The seed modes of folded nodes (RandomNoise) whose settings `cn` takes from `attrs`."""
        for k, mode in (attrs.get("seed_modes") or {}).items():
            if k in taken:
                self.seed_modes.setdefault(cn.id, {})[k] = mode

    def link(self, out: Optional[Out], dst: str, port: str) -> bool:
        if out is None or out.port is None:
            return False
        src, sport = out.port
        if self._type(src, sport, True) == "VIDEO" and self._type(dst, port, False) == "IMAGE":
            # ComfyUI's IMAGE is a batch of frames; where one image is wanted its first frame is meant
            still = f"{src}_frame"
            if still not in self.graph.nodes:
                self.graph.add_node("video.frame", still, {"index": 0})
                self.graph.connect(src, sport, still, "video")
                pos = (self.graph.ui.get(src) or {}).get("pos")
                if pos:
                    self.graph.ui[still] = {"pos": [pos[0], pos[1] + 120]}
            src, sport = still, "image"
        self.graph.connect(src, sport, dst, port)
        return True

    def _type(self, node: str, port: str, output: bool) -> Optional[str]:
        spec = self.registry.get(self.graph.nodes[node].type) if self.registry is not None else None
        ports = (spec.outputs if output else spec.inputs) if spec else {}
        if output and self.graph.nodes[node].type == "math.switch":
            # a running switch hands on one of its sides: their type where they give one (a loop's passes' clips)
            sides = {self._type(*src, True) for k, src in self.graph.inputs.get(node, {}).items() if k != "switch"}
            if len(sides) == 2 and sides <= {"IMAGE", "VIDEO"}:
                return "VIDEO"          # a picture is a clip of one frame
            return sides.pop() if len(sides) == 1 else None
        return ports[port].type.name if port in ports else None

    def resolve(self, v) -> Any:
        """An input's value: an Out for links (None when its source did not convert), else the literal; a
        number or string passed on by a link (a constant node, a size echoed by another node) is that value."""
        if isinstance(v, Ref):
            out = self.outs.get((v.node, v.slot))
            return out.attrs["value"] if out is not None and out.port is None and "value" in out.attrs else out
        return v

    def none(self, v) -> bool:
        """Whether a link brings ComfyUI's None (a switch picking a side with nothing linked)."""
        out = self.outs.get((v.node, v.slot)) if isinstance(v, Ref) else None
        return out is not None and out.port is None and "value" in out.attrs and out.attrs["value"] is None

    # -- the walk -----------------------------------------------------------------------------------------
    def run(self) -> Tuple[Graph, Report]:
        # sorted, so that the same file always gives the same workflow (set order changes from run to run)
        deps = {nid: sorted({v.node for v in cn.inputs.values() if isinstance(v, Ref) and v.node in self.flat.nodes})
                for nid, cn in self.flat.nodes.items()}
        try:
            order = list(graphlib.TopologicalSorter(deps).static_order())
        except graphlib.CycleError as e:
            raise ComfyImportError(f"the workflow's links form a loop through nodes {e.args[1]}; "
                                   "ComfyUI cannot run it either") from None
        needed = self.what_runs()
        for nid in order:
            cn = self.flat.nodes[nid]
            rule = RULES.get(cn.class_type)
            if needed is not None and nid not in needed:
                self.report.add(Entry(cn.id, cn.class_type, cn.title, "ui", [], [
                    "not run: no output node needs it (ComfyUI runs only what its outputs need), so it is left out"]))
            elif rule is None:
                self.placeholder(cn)
            elif rule.kind == "ui":
                # a preview that also hands its input on (easy showAnything); PreviewAny of a value becomes math.show
                made = getattr(self, "special_" + rule.special)(cn, rule, {}, []) if rule.special else None
                self.report.add(Entry(cn.id, cn.class_type, cn.title, "exact", made, []) if made else
                                Entry(cn.id, cn.class_type, cn.title, "ui", [], [rule.note]))
            else:
                self.convert(cn, rule)
        for nid, cls, title, why in self.flat.dropped:
            self.report.add(Entry(nid, cls, title, "ui", [], [why]))
        for nid, cls, title, types in self.flat.bypassed:
            self.report.add(Entry(nid, cls, title, APPROX, [], [
                f"no Kinograph equivalent: bypassed as you asked (--bypass-unmapped), its {types} input passed "
                "straight on, so what it did is missing"]))
        self.drop_unpicked()
        self.connect_vaes()
        self.layout_extras()
        self.add_remarks()
        self.name_dropped_links()
        self.part_shared_outputs()
        self.name_unknown_text_types()
        self.say_if_nothing_is_saved()
        return self.graph, self.report

    def is_output(self, class_type: str) -> bool:
        rule = RULES.get(class_type)
        if rule is None or class_type in PACK_OUTPUTS:
            return rule is not None
        if rule.kind == "ui":
            return rule.note.startswith("previews show")
        spec = self.registry.get(rule.node) if rule.node else None
        return spec is not None and bool(spec.output)

    def what_runs(self) -> Optional[set]:
        """The nodes an output needs (None: keep all); the rest are left out, the rule said once in the report, and
        who reads what is counted among those only."""
        if self.registry is None:
            return None
        needed = what_runs(self.flat, self.consumers, self.is_output, lambda c: c in RULES)
        if needed is None or len(needed) == len(self.flat.nodes):
            return needed
        self.report.remarks.append(
            f"{len(self.flat.nodes) - len(needed)} node(s) that no output needs are left out, as ComfyUI never runs "
            f"them: {RULE_TEXT}")
        self.consumers = {k: [c for c in v if c in needed] for k, v in self.consumers.items() if k in needed}
        return needed

    def params_of(self, cn: CNode, rule: Rule, notes: List[str]) -> Dict[str, Any]:
        params = dict(rule.fixed)
        for p in rule.params:
            if p.comfy not in cn.inputs:
                if p.comfy in cn.missing_widgets and p.param not in params:
                    notes.append(self.missing_widget(rule, p))
                continue
            v = self.resolve(cn.inputs[p.comfy])
            if cn.inputs[p.comfy] is None:
                # null in the file itself (a hand edit, an empty primitive): no node is to blame
                notes.append(f"{p.comfy} is empty (null) in the file: {self.default_of(rule, p)}; check it")
                continue
            if isinstance(v, Out) and "clip_fps" in v.attrs and p.param == "fps":
                # a multiple of the rate a clip was loaded at: Kinograph's clips carry their rate, and its
                # interpolators and frame droppers change it with the frames, so leaving fps unset is the same
                # when the frames here are at that multiple (fps * 2 after a 2x interpolation)
                load, k = v.attrs["clip_fps"]
                here = self.rate_factor(cn, load)
                if here is None or abs(here - k) > 1e-6:
                    notes.append(f"{p.comfy} is the loaded clip's frame rate" + (f" x {k:g}" if k != 1 else "") +
                                 ", and the frames here are not at that rate (a node between changes it): the "
                                 f"clip's own rate is kept; set {p.param} by hand to play them at another")
                continue
            if isinstance(v, Out) and v.port is not None and p.convert is None:
                self.param_links.setdefault(cn.id, []).append((p.param, v, p.comfy))    # linked once it is made
                continue
            if isinstance(v, Out) or v is None:
                notes.append(f"{p.comfy} comes from a node that did not convert; set {p.param} by hand")
                continue
            if p.comfy in cn.controls:
                self.seed_modes.setdefault(cn.id, {})[p.param] = cn.controls[p.comfy]
            try:
                params[p.param] = p.convert(v) if p.convert else v
            except Approx as a:
                params[p.param] = a.value
                notes.append(a.note)
            except (TypeError, ValueError):
                notes.append(f"{p.comfy}={v!r} is not a value Kinograph can use; left at its default")
        for k, neutral in rule.ignore.items():
            if k in cn.inputs and neutral is not None:
                v = self.resolve(cn.inputs[k])
                ok = neutral if isinstance(neutral, tuple) else (neutral,)
                if v not in ok:
                    notes.append(f"{k}={v!r} is not carried")
        return params

    # the nodes that do not keep a clip's sound (interpolators and rate changers keep it: the duration stays)
    SOUND_DROPPERS = ("video.reverse", "video.pingpong", "video.concat", "video.trim")

    def rate_kept(self, cn: CNode, load: str, changers=SOUND_DROPPERS) -> bool:
        """Whether the frames `cn` takes come from Kinograph node `load` through nodes that keep its sound."""
        starts = [v.port[0] for k in ("images", "video", "frames") for v in [self.resolve(cn.inputs.get(k))]
                  if isinstance(v, Out) and v.port]
        seen: set = set()
        while starts:
            n = starts.pop()
            if n == load:
                return True
            if n in seen or self.graph.nodes[n].type in changers:
                continue
            seen.add(n)
            # the frames' own line only (through a latent: LTX-2's sound rides on it): a sampler whose conditioning
            # was made from the clip (Wan Animate 2's pose) decodes frames of its own, without the clip's sound
            ins = self.graph.inputs.get(n, {})
            line = [ins[k] for k in ("video", "frames", "images", "latent") if k in ins]
            if not line and len(ins) == 1:
                line = list(ins.values())
            starts += [src for src, _ in line]
        return False

    def rate_factor(self, cn: CNode, load: str) -> Optional[float]:
        """The frames `cn` takes are at this multiple of Kinograph node `load`'s rate (None: not from it, or through
        a node that sets a rate of its own)."""
        src = next((v.port for k in ("images", "video", "frames") for v in [self.resolve(cn.inputs.get(k))]
                    if isinstance(v, Out) and v.port), None)
        k = 1.0
        for _ in range(256):
            if src is None:
                return None
            n = self.graph.nodes[src[0]]
            if n.id == load:
                return k
            if n.type in ("interpolate.rife", "interpolate.flow"):
                if n.params.get("fps"):
                    return None
                k *= n.params.get("factor", 2)
            elif n.type == "video.every_nth":
                k /= n.params.get("n", 2)
            elif n.type == "video.fps":
                return None
            ins = self.graph.inputs.get(n.id, {})
            src = ins.get("video") or (next(iter(ins.values())) if len(ins) == 1 else None)
        return None

    def missing_widget(self, rule: Rule, p) -> str:
        """A widget the file has no value for (saved before ComfyUI had it, or cut short): ComfyUI would fill in its
        own default, which Kinograph's may not equal, so the one used is named."""
        return f"{p.comfy} is not in the file (its widgets_values ends early): {self.default_of(rule, p)}; check it"

    def default_of(self, rule: Rule, p) -> str:
        spec = self.registry.get(rule.node) if self.registry is not None and rule.node else None
        param = spec.params.get(p.param) if spec is not None else None
        if param is not None and param.default is not None:
            return f"Kinograph's default {p.param}={param.default!r} is used"
        return f"{p.param} is left unset"

    def finish(self, cn: CNode, rule: Rule, made: List[str], notes: List[str]) -> None:
        notes = ([rule.note] if rule.note else []) + notes
        self.report.add(Entry(cn.id, cn.class_type, cn.title, "approx" if notes else "exact", made, notes))

    def convert(self, cn: CNode, rule: Rule) -> None:
        notes: List[str] = []
        params = self.params_of(cn, rule, notes)
        handler = getattr(self, "special_" + rule.special, None) if rule.special else None
        if handler is not None:
            made = handler(cn, rule, params, notes)
            if made is None:
                return
        elif rule.fold:
            self.fold(cn, rule, params)
            made = []
        else:
            made = [self.plain(cn, rule, params, notes)]
        left = self.param_links.pop(cn.id, ())
        generated = [comfy for _, out, comfy in left if self.graph.nodes[out.port[0]].type == "text.generate"]
        if generated:
            self.unmake(cn, made)
            self.report.entries[cn.id].notes[0] = (
                f"its {', '.join(generated)} is the text a language model writes as the workflow runs "
                f"(text.generate), which this node's setting cannot take through a link: set by hand, the words "
                f"ComfyUI generates would be missing")
            return
        for param, _, comfy in left:
            notes.append(f"{comfy} comes from another node's output, which Kinograph's {param} cannot take through a "
                         f"link; set {param} by hand")
        self.finish(cn, rule, made, notes)

    def unmake(self, cn: CNode, made: List[str]) -> None:
        """Take back the nodes `cn` became, leaving it not mapped (a placeholder)."""
        for nid in made:
            if nid in self.graph.nodes:
                self.graph.remove_node(nid)
                self.graph.ui.pop(nid, None)
        for key in [k for k in self.outs if k[0] == cn.id]:
            del self.outs[key]
        self.placeholder(cn)

    def link_params(self, cn: CNode, nid: str) -> None:
        """Link the widgets another node's output feeds (a width from GetImageSize) to the params of Kinograph node
        `nid` they became, where the param takes a link of that type; the rest stay for convert to name."""
        spec = self.registry.get(self.graph.nodes[nid].type) if self.registry is not None else None
        left = []
        for param, out, comfy in self.param_links.pop(cn.id, ()):
            src, sport = out.port
            source = self.registry.get(self.graph.nodes[src].type) if spec else None     # None: a placeholder's
            have = source.outputs[sport].type if source else None
            want = spec.port_type(param) if spec else None
            if want is not None and have is not None and want.can_take(have):
                self.graph.connect(src, sport, nid, param)
            else:
                left.append((param, out, comfy))
        if left:
            self.param_links[cn.id] = left

    def fold(self, cn: CNode, rule: Rule, params: Dict[str, Any]) -> None:
        attrs = dict(params)
        if cn.id in self.seed_modes:
            attrs["seed_modes"] = self.seed_modes[cn.id]
        for comfy, port in rule.inputs.items():
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                attrs[port] = v
        self.outs[(cn.id, 0)] = Out(None, attrs)

    def plain(self, cn: CNode, rule: Rule, params: Dict[str, Any], notes: List[str], nid: Optional[str] = None) -> str:
        for comfy in rule.inputs:
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                for k in rule.takes:
                    if k in v.attrs and not isinstance(v.attrs[k], Out):
                        params.setdefault(k, v.attrs[k])
                self.take_seed_modes(cn, v.attrs, rule.takes)
        nid = nid or self.add(rule.node, cn, params)
        for comfy, port in rule.inputs.items():
            v = self.resolve(cn.inputs.get(comfy))
            if comfy in cn.inputs and not self.link(v if isinstance(v, Out) else None, nid, port) and \
                    not self.none(cn.inputs[comfy]):
                notes.append(f"input {comfy} comes from a node that did not convert; connect {port} by hand")
        notes += grown_past(cn, rule)
        # FluxGuidance's guidance rides on the conditioning to the sampler, through the nodes that add to it
        # (FLUX.2's template sets it before ReferenceLatent; FLUX.1 Canny / Depth / Fill's before
        # InstructPixToPixConditioning / InpaintModelConditioning, each prompt's on its own output)
        for slot, port in enumerate(rule.outputs):
            if port:
                given = self.resolve(cn.inputs.get(port)) if port in CONDITIONINGS and port in rule.inputs else None
                carried = {"guidance": given.attrs["guidance"]} if isinstance(given, Out) and "guidance" in given.attrs \
                    else {}
                self.outs[(cn.id, slot)] = Out((nid, port), carried)
        return nid

    def placeholder(self, cn: CNode) -> None:
        wired = {k: (f"ComfyUI node {v.node} output {v.slot}" if isinstance(v, Ref) else v)
                 for k, v in cn.inputs.items()}
        params = {"comfyui_inputs": wired} if wired else {}
        if cn.widgets:
            params["widgets_values"] = cn.widgets
        nid = self.add("comfyui." + re.sub(r"[^A-Za-z0-9_\-]+", "_", cn.class_type), cn, params)
        self.graph.ui.setdefault(nid, {})["placeholder"] = True
        # Its links are links, on sockets named as in ComfyUI, so that the graph reads as it did there (it still
        # does not run: its type is unknown). They showed only in its properties, the nodes it fed unlinked.
        for k, v in cn.inputs.items():
            out = self.resolve(v)
            if isinstance(out, Out) and out.port is not None:
                self.graph.connect(*out.port, nid, _socket(k))
        names = [_socket((cn.out_names[k:k + 1] or [""])[0] or kind) for k, kind in enumerate(cn.out_types)]
        for slot, name in enumerate(names):
            self.outs.setdefault((cn.id, slot), Out((nid, f"{name}_{slot}" if names.count(name) > 1 else name), {}))
        notes = [unmapped_note(cn)]
        if cn.mode == 0 and not is_bundle(cn.class_type) and possible_output(cn, self.consumers, False):
            notes.append("it feeds no other node, so it is taken as an output node of its pack (ComfyUI runs those; "
                         "the file does not say which nodes are): if it only shows something, delete it in ComfyUI "
                         "and import again")
        if cn.id in self.flat.bypassable:
            types = self.flat.bypassable[cn.id]
            notes.append(f"it passes its {types} input on, so it can be bypassed as ComfyUI bypasses a node (`kinograph "
                         f"import --bypass-unmapped`, or delete it and link its {types} input on): the rest then runs, "
                         "without what it does")
        self.report.add(Entry(cn.id, cn.class_type, cn.title, "unmapped", [nid], notes, runs=cn.mode == 0,
                              bypassable=cn.id in self.flat.bypassable))

    def not_constant(self, cn: CNode, what: str) -> None:
        self.placeholder(cn)
        self.report.entries[cn.id].notes.append(f"its {what} is only known when the workflow runs")

    # -- after the walk -------------------------------------------------------------------------------------------
    def drop_unpicked(self) -> None:
        """Nodes that only feed a switch's unpicked input never run in ComfyUI (its inputs are lazy): their
        Kinograph nodes go, so that nothing loads a file the workflow does not use."""
        dead: set = set()
        todo = [n for nodes in self.skipped.values() for n in nodes]
        while todo:
            x = todo.pop()
            if x in dead or x not in self.flat.nodes:
                continue
            if any(c not in dead and x not in self.skipped.get(c, ()) for c in self.consumers.get(x, [])):
                continue
            dead.add(x)
            entry = self.report.entries.get(x)
            for nid in (entry.kinograph if entry else []):
                if nid in self.graph.nodes:
                    self.graph.remove_node(nid)
                    self.graph.ui.pop(nid, None)
            cn = self.flat.nodes[x]
            self.report.add(Entry(x, cn.class_type, cn.title, "ui", [],
                                  ["not run: it only feeds what does not run (a switch's unpicked input, a prompt "
                                   "enhancer's language model)"]))
            todo += [v.node for v in cn.inputs.values() if isinstance(v, Ref)]

    def name_dropped_links(self) -> None:
        """A placeholder's output link that became a setting in Kinograph (BetaSamplingScheduler's SIGMAS to a
        sampler's sigmas) has no socket to land on: it was lost without a word. The report names it on both
        nodes, and the placeholder's properties list it beside its inputs."""
        for c in self.flat.nodes.values():
            reader = self.report.entries.get(c.id)
            if reader is None or reader.status == UI:
                continue
            for k, v in c.inputs.items():
                entry = self.report.entries.get(v.node) if isinstance(v, Ref) else None
                if entry is None or entry.status != "unmapped" or not entry.kinograph:
                    continue
                nid, src = entry.kinograph[0], self.flat.nodes[v.node]
                out = self.outs.get((v.node, v.slot))
                port = out.port[1] if out is not None and out.port and out.port[0] == nid else None
                targets = [n for n in reader.kinograph if n in self.graph.nodes]
                if port and any(link.src_port == port and (not targets or link.dst in targets)
                                for link in self.graph.links_from(nid)):
                    continue
                name = (src.out_names[v.slot:v.slot + 1] or src.out_types[v.slot:v.slot + 1] or [""])[0] \
                    or f"output {v.slot}"
                into = f" ({', '.join(targets)})" if targets else ""
                # next to "no Kinograph equivalent": the hints after it (bypass, what it reads) stay last
                entry.notes.insert(1, f"its {name} link to {c.class_type} #{c.id}'s {k}{into} is not linked in "
                                      f"Kinograph (no input takes it there): that link is dropped")
                if not any(k in n for n in reader.notes):       # unless the reader already said its input is lost
                    reader.notes.append(f"its {k} input from {src.class_type} #{src.id}'s {name} is dropped (not "
                                        f"linked in Kinograph); set what it gave by hand")
                if reader.status == EXACT:
                    reader.status = APPROX
                if nid in self.graph.nodes:
                    self.graph.nodes[nid].params.setdefault("comfyui_outputs", {})[name] = \
                        f"ComfyUI node {c.id} input {k}: not linked (dropped)"

    def part_shared_outputs(self) -> None:
        """Two saves of one filename_prefix (InfiniteTalk's first pass and its whole clip, both video/ComfyUI): ComfyUI
        numbers each file it writes, Kinograph wrote both to one path, the first kept only as the second's earlier
        take. The second and later get _2, _3 ... on their name, and their report line says so."""
        if self.registry is None:
            return
        saves = [(nid, inst) for nid, inst in self.graph.nodes.items()
                 if getattr(self.registry.get(inst.type), "output", False)
                 and isinstance(inst.params.get("path"), str) and inst.params["path"]]
        taken, kept = {inst.params["path"].lower() for _, inst in saves}, set()
        for nid, inst in saves:
            path = inst.params["path"]
            if path.lower() not in kept:
                kept.add(path.lower())
                continue
            stem, ext, n = *os.path.splitext(path), 2
            while f"{stem}_{n}{ext}".lower() in taken:
                n += 1
            inst.params["path"] = f"{stem}_{n}{ext}"
            taken.add(inst.params["path"].lower())
            entry = next((e for e in self.report.entries.values() if nid in e.kinograph), None)
            if entry is not None:
                entry.notes.append(f"writes {inst.params['path']}: an earlier save of this workflow writes {path} (ComfyUI "
                                   f"numbers each file of one filename_prefix)")

    def name_unknown_text_types(self) -> None:
        """A CLIPLoader of a type Kinograph loads no model of (FLUX.3 klein's flux3 before it loaded) failed validation
        with "(did you mean 'flux'?)", sending a newcomer to FLUX.1's: its report line says what the type is instead."""
        from nodes.generate.split_nodes import TEXT_TYPES
        for nid, inst in self.graph.nodes.items():
            kind = inst.params.get("type")
            if inst.type != "load.text_encoder" or not isinstance(kind, str) or kind in TEXT_TYPES:
                continue
            entry = next((e for e in self.report.entries.values() if nid in e.kinograph), None)
            if entry is not None:
                entry.notes.append(f"type {kind!r}: Kinograph loads no text encoder, and no model, of ComfyUI's {kind} "
                                   "family yet (README, 'What runs', lists those it loads); another type does not "
                                   "make it run")
                entry.status = APPROX if entry.status == EXACT else entry.status

    def say_if_nothing_is_saved(self) -> None:
        """A workflow that ends in ComfyUI's previews saves nothing: ComfyUI shows them, but `kinograph run` would
        compute every frame and keep none, so the report says so before a long render is lost."""
        if self.registry is None or not self.graph.nodes:
            return
        for inst in self.graph.nodes.values():
            spec = self.registry.get(inst.type)
            if spec is None or spec.output or inst.type == "text.generate":
                return              # a placeholder (the import is not done), a node that writes a file, or text
                                    # generation, whose text the run's log shows (ComfyUI's PreviewAny of it)
        previews = [f"{e.class_type} #{e.comfy_id}" for e in self.report.entries.values()
                    if e.class_type in ("PreviewImage", "PreviewAny") or "previews show" in " ".join(e.notes)]
        shown = (f" ({', '.join(previews)} only show{'s' if len(previews) == 1 else ''} frames, in the editor's "
                 "viewer)") if previews else ""
        self.report.remarks.append(f"nothing in this workflow saves a file{shown}: `kinograph run` would compute it "
                                   "and keep nothing; add io.save_video (or io.save_frames) where you want a file")

    def add_remarks(self) -> None:
        """A linked input that receives nothing changes what runs (an image-to-video without its image), a node
        sharing its id with another may be wired wrong: the node's report line says so, and it no longer counts
        as mapped exactly."""
        for nid, notes in self.flat.remarks.items():
            entry = self.report.entries.get(nid)
            if entry is None or entry.status == UI:
                continue
            entry.notes += notes
            if entry.status == EXACT:
                entry.status = APPROX

    def connect_vaes(self) -> None:
        """ComfyUI's empty latents need no VAE; Kinograph's size theirs from one: take the VAE that decodes
        (or otherwise meets) this latent downstream, else the only VAE in the graph."""
        for nid, cid in [(n, c) for n, c in self.pending_vae if n in self.graph.nodes]:
            seen, todo, found = set(), list(self.consumers.get(cid, [])), None
            while todo and found is None:
                c = todo.pop(0)
                if c in seen:
                    continue
                seen.add(c)
                v = self.flat.nodes[c].inputs.get("vae")
                out = self.resolve(v) if isinstance(v, Ref) else None
                if isinstance(out, Out) and out.port:
                    found = out
                todo += self.consumers.get(c, [])
            if found is None:
                vaes = {o.port for o in self.outs.values() if o.port and o.port[1] == "vae"}
                found = Out(vaes.pop()) if len(vaes) == 1 else None
            if not self.link(found, nid, "vae"):
                self.report.note_on(nid, "no VAE found to size this latent; connect its vae input")

    def layout_extras(self) -> None:
        notes = {}
        for n in self.flat.notes:
            key = "note_" + re.sub(r"[^A-Za-z0-9]+", "_", n["id"])
            pos = n.get("pos") or [0, 0]
            size = n.get("size") or [220, 120]
            if isinstance(pos, dict):
                pos = [pos.get("0", 0), pos.get("1", 0)]
            if isinstance(size, dict):
                size = [size.get("0", 220), size.get("1", 120)]
            notes[key] = {"text": n["text"], "pos": [round(pos[0]), round(pos[1])],
                          "size": [round(size[0]), round(size[1])]}
            self.report.add(Entry(n["id"], "Note", n.get("title") or "", "ui", [], ["kept as a note"]))
        if notes:
            self.graph.ui["_notes"] = notes
        groups = {}
        for k, g in enumerate(self.flat.groups):
            b = g.get("bounding") or [0, 0, 400, 300]
            groups[f"group_{k + 1}"] = {"title": str(g.get("title") or "Group"), "color": g.get("color") or "#3f789e",
                                        "rect": [round(v) for v in b[:4]]}
        if groups:
            self.graph.ui["_groups"] = groups

    def chain_loras(self, cn, model, text, loras, notes) -> Tuple[List[str], Any, Any]:
        """A lora.image per (name, model strength, clip strength) after `model` and text encoder `text` (an Out
        or None): (nodes made, the last model, the last text encoder)."""
        made = []
        for name, strength, clip in loras:
            params = {"path": name, "strength": strength}
            if isinstance(clip, (int, float)) and clip != 1.0:
                params["clip_strength"] = clip
            made.append(self.add("lora.image", cn, params, f"_lora{len(made) + 1}", dy=120 * len(made)))
            if not self.link(model, made[-1], "model"):
                notes.append("input model comes from a node that did not convert; connect model by hand")
            model = Out((made[-1], "model"))
            if self.link(text, made[-1], "text_encoder"):
                text = Out((made[-1], "text_encoder"))
        return made, model, text

    def loras_on_inputs(self, cn, loras, notes) -> List[str]:
        """chain_loras after the node's own model and clip inputs; the chain's ends are the node's outputs (model,
        clip), as for a node that applies LoRAs in place."""
        model, clip = self.resolve(cn.inputs.get("model")), self.resolve(cn.inputs.get("clip"))
        made, model, clip = self.chain_loras(cn, model if isinstance(model, Out) else None,
                                             clip if isinstance(clip, Out) else None, loras, notes)
        self.outs[(cn.id, 0)] = model if isinstance(model, Out) else Out()
        if isinstance(clip, Out):
            self.outs[(cn.id, 1)] = clip
        return made

    def fixed_size(self, src) -> Optional[Tuple[int, int]]:
        """The width and height of a picture resized to a set size (video.resize, video.scale or video.resize_pad with
        both sides), else None."""
        node = self.graph.nodes.get(src.port[0]) if isinstance(src, Out) and src.port else None
        if node is None or node.type not in ("video.resize", "video.scale", "video.resize_pad") or \
                not (node.params.get("width") and node.params.get("height")):
            return None
        return node.params["width"], node.params["height"]

    def slot_read(self, nid: str, slot: int) -> bool:
        """Whether any ComfyUI node takes output `slot` of node `nid`."""
        return any(isinstance(v, Ref) and v.node == nid and v.slot == slot
                   for c in self.consumers.get(nid, ()) for v in self.flat.nodes[c].inputs.values())

    def _loads_family(self, out) -> Optional[str]:
        """The family of the model file the loader behind `out` names, where it is in the model folders now (the
        importer reads headers only); None when there is none or it cannot be read."""
        return self._loads_kind(out)[0]

    def _loads_kind(self, out) -> Tuple[Optional[str], str]:
        """(family, detected variant) of the model file the loader behind `out` names; (None, "") as _loads_family."""
        loader = self._loader_behind(out)
        if loader is None:
            return None, ""
        params = self.graph.nodes[loader].params
        name = params.get("name") or params.get("path")
        try:
            from nodes.generate.detect import detect_file
            from nodes.generate.model_manager import family_of_file, resolve_model_path
            kind = "diffusion_models" if self.graph.nodes[loader].type == "load.diffusion_model" else "checkpoints"
            path = resolve_model_path(str(name), kind, "model") if name else None
            det = detect_file(path) if path is not None and path.is_file() else None
            return (family_of_file(det), det.variant or "") if det is not None else (None, "")
        except Exception:  # noqa: BLE001 - a file that is not there or not readable: the import goes on without
            return None, ""

    def _reads_guidance(self, model, positive) -> bool:
        """Whether the model sampled is told FluxGuidance's value (its family's fact, the file's variant where the file
        is in the folders, else the family its prompt's text encoder type names). Unknown: the FLUX.1 dev reading,
        FluxGuidance's model."""
        from nodes.generate.families import FAMILIES
        from nodes.generate.split import TEXT_TYPES
        family, variant = self._loads_kind(model)
        family = family or TEXT_TYPES.get(self._text_type_behind(positive) or "")
        return family not in FAMILIES or FAMILIES[family].reads_guidance(variant)

    def _text_type_behind(self, out) -> Optional[str]:
        """The type of the load.text_encoder whose prompt `out` carries, through the nodes that add to a
        conditioning; None where there is none."""
        node = out.port[0] if isinstance(out, Out) and out.port else None
        for _ in range(64):
            if node is None:
                return None
            ins = self.graph.inputs.get(node, {})
            if "text_encoder" in ins:
                return self.graph.nodes[ins["text_encoder"][0]].params.get("type")
            src = ins.get("conditioning") or ins.get("positive")
            node = src[0] if src else None
        return None

    def _loader_behind(self, out) -> Optional[str]:
        node = out.port[0] if isinstance(out, Out) and out.port else None
        for _ in range(64):
            if node is None:
                return None
            if self.graph.nodes[node].type in LOADERS:
                return node
            src = self.graph.inputs.get(node, {}).get("model")
            node = src[0] if src else None
        return None

    def untaken(self, cn, taken, notes) -> None:
        """Name the linked inputs of `cn` that the mapping does not carry (a node whose effect is then missing)."""
        for k, v in cn.inputs.items():
            if isinstance(v, Ref) and k not in taken:
                notes.append(f"its {k} input is not carried: what that node does is missing here")

    def choice(self, cn, key: str, default: str, notes) -> str:
        """Combo widget `key` of `cn` as its text; `default` (named) where another node's output feeds it, which only
        the run would know."""
        given = cn.inputs.get(key, default)
        v = self.resolve(given)
        if isinstance(v, str):
            return v
        source = "comes from another node's output" if isinstance(given, Ref) else f"is {v!r} in the file"
        notes.append(f"{key} {source}: {default} is used; set it by hand")
        return default

    def number_or_link(self, cn, key: str, default, param: str, notes) -> Optional[float]:
        """Widget `key` of `cn` as a number; None where another node's output feeds it (kept to link to `param`
        when the node is made, or named) or where it is not a number (named)."""
        v = self.resolve(cn.inputs.get(key, default))
        if isinstance(v, Out) and v.port is not None:
            self.param_links.setdefault(cn.id, []).append((param, v, key))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        else:
            notes.append(f"{key} comes from a node that did not convert or is not a number; set {param} by hand")
        return None



def unmapped_note(cn: CNode) -> str:
    """What the node is and what to do: a group node or a subgraph without its definition is a bundle of
    nodes Kinograph may well have, not a node it lacks; a custom node's pack tells the user where it came from."""
    mark = "a placeholder marks its place"
    if cn.class_type.startswith(("workflow>", "workflow/")):
        return (f"a group node (ComfyUI's older bundle of nodes) whose definition is missing from the file "
                f"(extra.groupNodes): in ComfyUI right-click it > Convert to nodes, save, and import again; {mark}")
    if UUID.fullmatch(cn.class_type):
        return (f"a subgraph whose definition is missing from the file (definitions.subgraphs): save the workflow "
                f"again from ComfyUI and import that; {mark}")
    if cn.class_type in INSTEAD:
        return f"{INSTEAD[cn.class_type]}; {mark}"
    # a node ComfyUI records as a custom pack's is that pack's, whatever its name (API nodes are comfy-core's)
    if cn.pack and not cn.pack.startswith("comfy-core"):
        return f"no Kinograph equivalent (from the custom node pack {cn.pack}): {mark}"
    if is_api_node(cn.class_type):
        return f"{API_NODE}; {mark}"
    return f"no Kinograph equivalent: {mark}"


def convert(flat: Flat, registry=None) -> Tuple[Graph, Report]:
    from .lists import expand
    from .loops import unroll
    unroll(flat)
    expand(flat)
    converter = Converter(flat, registry)
    try:
        return converter.run()
    finally:
        converter.close_regex()


def _socket(name: str) -> str:
    """A placeholder's socket for a ComfyUI input or output type: a name a link (`node.socket`) can hold."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_").lower() or "value"
