"""Flattened ComfyUI nodes -> a Kinograph graph, with a report line for every ComfyUI node."""
from __future__ import annotations

import dataclasses
import graphlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from graph_engine.graph import Graph

from .errors import ComfyImportError
from .flatten import CNode, Flat, Ref
from .mapping import AIO_DEFAULTS, COMFY_UNION_TYPES, INSTEAD, RULES, Approx, Rule
from .outputs import PACK_OUTPUTS, RULE_TEXT, UUID, is_bundle, possible_output, what_runs
from .report import APPROX, EXACT, UI, Entry, Report

LOADERS = ("load.model", "load.sd", "load.animatediff", "load.diffusion_model")


@dataclass
class Out:
    """What a ComfyUI output slot became: a Kinograph output port, and settings that travel with it to
    whoever consumes it (clip skip, distilled guidance, a folded node's whole settings)."""
    port: Optional[Tuple[str, str]] = None
    attrs: Dict[str, Any] = field(default_factory=dict)


class Converter:
    def __init__(self, flat: Flat, registry=None):
        self.flat = flat
        self.registry = registry
        self.graph = Graph()
        self.outs: Dict[Tuple[str, int], Out] = {}
        self.report = Report()
        self.pending_vae: List[Tuple[str, str]] = []        # (kinograph node, ComfyUI node) needing a VAE link
        self.consumers: Dict[str, List[str]] = {}
        self.skipped: Dict[str, set] = {}                    # switch -> ComfyUI nodes feeding only its unpicked input
        self.control_nodes: Dict[Tuple[Tuple[str, str], int], str] = {}   # (model port, control) -> control.apply
        # ComfyUI node -> its widgets that a node's output feeds (Kinograph param, the output, ComfyUI's name)
        self.param_links: Dict[str, List[Tuple[str, Out, str]]] = {}
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
        return nid

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
        return ports[port].type.name if port in ports else None

    def resolve(self, v) -> Any:
        """An input's value: an Out for links (None when its source did not convert), else the literal; a
        number or string passed on by a link (a constant node, a size echoed by another node) is that value."""
        if isinstance(v, Ref):
            out = self.outs.get((v.node, v.slot))
            return out.attrs["value"] if out is not None and out.port is None and "value" in out.attrs else out
        return v

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
                self.report.add(Entry(cn.id, cn.class_type, cn.title, "ui", [], [rule.note]))
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
            starts += [src for src, _ in self.graph.inputs.get(n, {}).values()]
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
        for param, _, comfy in self.param_links.pop(cn.id, ()):
            notes.append(f"{comfy} comes from another node's output, which Kinograph's {param} cannot take through a "
                         f"link; set {param} by hand")
        self.finish(cn, rule, made, notes)

    def link_params(self, cn: CNode, nid: str) -> None:
        """Link the widgets another node's output feeds (a width from GetImageSize) to the params of Kinograph node
        `nid` they became, where the param takes a link of that type; the rest stay for convert to name."""
        spec = self.registry.get(self.graph.nodes[nid].type) if self.registry is not None else None
        left = []
        for param, out, comfy in self.param_links.pop(cn.id, ()):
            src, sport = out.port
            have = self.registry.get(self.graph.nodes[src].type).outputs[sport].type if spec else None
            want = spec.port_type(param) if spec else None
            if want is not None and have is not None and want.can_take(have):
                self.graph.connect(src, sport, nid, param)
            else:
                left.append((param, out, comfy))
        if left:
            self.param_links[cn.id] = left

    def fold(self, cn: CNode, rule: Rule, params: Dict[str, Any]) -> None:
        attrs = dict(params)
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
        nid = nid or self.add(rule.node, cn, params)
        for comfy, port in rule.inputs.items():
            v = self.resolve(cn.inputs.get(comfy))
            if comfy in cn.inputs and not self.link(v if isinstance(v, Out) else None, nid, port):
                notes.append(f"input {comfy} comes from a node that did not convert; connect {port} by hand")
        # FluxGuidance's guidance rides on the conditioning to the sampler, through the nodes that add to it
        # (FLUX.2's template sets it before ReferenceLatent)
        given = self.resolve(cn.inputs.get("conditioning")) if "conditioning" in rule.inputs else None
        carried = {"guidance": given.attrs["guidance"]} if isinstance(given, Out) and "guidance" in given.attrs else {}
        for slot, port in enumerate(rule.outputs):
            if port:
                self.outs[(cn.id, slot)] = Out((nid, port), dict(carried) if port == "conditioning" else {})
        return nid

    def placeholder(self, cn: CNode) -> None:
        wired = {k: (f"ComfyUI node {v.node} output {v.slot}" if isinstance(v, Ref) else v)
                 for k, v in cn.inputs.items()}
        params = {"comfyui_inputs": wired} if wired else {}
        if cn.widgets:
            params["widgets_values"] = cn.widgets
        nid = self.add("comfyui." + re.sub(r"[^A-Za-z0-9_\-]+", "_", cn.class_type), cn, params)
        self.graph.ui.setdefault(nid, {})["placeholder"] = True
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
                                  ["not run: it only feeds the input a switch does not pick"]))
            todo += [v.node for v in cn.inputs.values() if isinstance(v, Ref)]

    def say_if_nothing_is_saved(self) -> None:
        """A workflow that ends in ComfyUI's previews saves nothing: ComfyUI shows them, but `kinograph run` would
        compute every frame and keep none, so the report says so before a long render is lost."""
        if self.registry is None or not self.graph.nodes:
            return
        for inst in self.graph.nodes.values():
            spec = self.registry.get(inst.type)
            if spec is None or spec.output:
                return              # a placeholder (the import is not done) or a node that writes a file
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

    # -- special cases ------------------------------------------------------------------------------------------
    def special_clip_skip(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("clip"))
        base = src if isinstance(src, Out) else Out()
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, "clip_skip": params.get("clip_skip", 1)})
        return []

    def special_t5_options(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("clip"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        return []

    def special_guidance(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("conditioning"))
        base = src if isinstance(src, Out) else Out()
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, "guidance": params.get("cfg")})
        return []

    def special_flux_text(self, cn, rule, params, notes):
        guidance = params.pop("cfg", None)
        nid = self.plain(cn, rule, params, notes)
        self.outs[(cn.id, 0)] = Out((nid, "positive"), {} if guidance is None else {"guidance": guidance})
        return [nid]

    def special_flux_shift(self, cn, rule, params, notes):
        """ModelSamplingFlux's mu for its width and height, as model.flow_shift's shift e^mu."""
        import math
        hi, lo = float(params.pop("shift", 1.15)), float(params.pop("base_shift", 0.5))
        tokens = float(params.pop("width", 1024)) * float(params.pop("height", 1024)) / (8 * 8 * 2 * 2)
        m = (hi - lo) / (4096 - 256)
        params["shift"] = round(math.exp(tokens * m + lo - m * 256), 6)
        return [self.plain(cn, rule, params, notes)]

    def special_ltxv_conditioning(self, cn, rule, params, notes):
        for slot, name in enumerate(("positive", "negative")):
            src = self.resolve(cn.inputs.get(name))
            base = src if isinstance(src, Out) else Out()
            self.outs[(cn.id, slot)] = Out(base.port, {**base.attrs, "fps": params.get("fps")})
        return []

    def special_create_video(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("images"))
        base = src if isinstance(src, Out) else Out()
        fps = {"fps": params["fps"]} if params.get("fps") is not None else {}
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, **fps})
        audio = self.resolve(cn.inputs.get("audio"))
        if "audio" in cn.inputs and not (isinstance(audio, Out) and "clip_audio" in audio.attrs and
                                         self.rate_kept(cn, audio.attrs["clip_audio"])):
            # the clip's own sound travels with its frames in Kinograph; any other sound is not joined to them
            notes.append("the audio input is not carried")
        return []

    def special_constant(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("value"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out(None, {"value": params.get("value")})
        return []

    def special_switch(self, cn, rule, params, notes):
        if not isinstance(params.get("switch"), bool):
            return self.not_constant(cn, "switch")
        pick, other = ("on_true", "on_false") if params["switch"] else ("on_false", "on_true")
        src = self.resolve(cn.inputs.get(pick))
        if src is not None:
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out(None, {"value": src})
        picked = cn.inputs.get(pick)
        unpicked = cn.inputs.get(other)
        if isinstance(unpicked, Ref) and not (isinstance(picked, Ref) and picked.node == unpicked.node):
            self.skipped[cn.id] = {unpicked.node}
        return []

    def special_math(self, cn, rule, params, notes):
        from .expr import ExprError, evaluate
        values = {k.split(".", 1)[1]: self.resolve(v) for k, v in cn.inputs.items() if k.startswith("values.")}
        rates = {k: v.attrs["clip_fps"] for k, v in values.items() if isinstance(v, Out) and "clip_fps" in v.attrs}
        if rates and len({load for load, _ in rates.values()}) == 1:
            return self.rate_math(cn, params, values, rates)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values.values()):
            return self.not_constant(cn, "input values")
        try:
            result = evaluate(params.get("expression", ""), values)
        except ExprError as e:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(str(e))
            return None
        for slot, value in enumerate((float(result), int(result), bool(result))):
            self.outs[(cn.id, slot)] = Out(None, {"value": value})
        return []

    def rate_math(self, cn, params, values, rates):
        """A formula of a clip's frame rate (fps * multiplier, to play interpolated frames at the same speed): when
        it is a fixed multiple of the rate, whatever the rate, its result is that multiple of the clip's rate."""
        from .expr import ExprError, evaluate
        load = next(iter(rates.values()))[0]
        try:
            out = [evaluate(params.get("expression", ""), {**values, **{k: f * m for k, (_, m) in rates.items()}}) / f
                   for f in (24.0, 30.0)]
        except (ExprError, TypeError, ZeroDivisionError):
            out = None
        if out is None or abs(out[0] - out[1]) > 1e-9 or any(isinstance(v, Out) for k, v in values.items()
                                                                if k not in rates):
            return self.not_constant(cn, "input values")
        self.outs[(cn.id, 0)] = Out(None, {"clip_fps": (load, out[0])})
        return []

    def special_batch_clips(self, cn, rule, params, notes):
        """ComfyUI's batch of images is a clip's frames: batching decoded clips plays them one after another."""
        keys = sorted((k for k in cn.inputs if k.startswith("images.")),
                      key=lambda k: int(re.sub(r"\D", "", k) or 0))
        srcs = [self.resolve(cn.inputs[k]) for k in keys]
        # a single image is a one-frame clip (IMAGE links into VIDEO), a still mask made a picture too
        if len(srcs) < 2 or not all(isinstance(s, Out) and s.port and self._type(*s.port, True) in ("VIDEO", "IMAGE")
                                    for s in srcs):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("it batches single images (or a node that did not convert): "
                                                    "Kinograph concatenates clips only")
            return None
        made, cur = [], srcs[0]
        for k, src in enumerate(srcs[1:], 1):
            nid = self.add(rule.node, cn, {}, "" if k == len(srcs) - 1 else f"_{k}", dy=120.0 * (k - len(srcs) + 1))
            self.link(cur, nid, "video")
            self.link(src, nid, "other")
            cur = Out((nid, "video"))
            made.append(nid)
        self.outs[(cn.id, 0)] = cur
        return made

    def special_video_components(self, cn, rule, params, notes):
        """The frames are the clip itself; its audio and frame rate are not separate values in Kinograph (the
        clip carries them), so a node reading those outputs is told to set them by hand."""
        src = self.resolve(cn.inputs.get("video"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        if isinstance(src, Out) and src.port:
            self.outs[(cn.id, 1)] = Out(None, {"clip_audio": src.port[0]})
            self.outs[(cn.id, 2)] = Out(None, {"clip_fps": (src.port[0], 1.0)})
        return []

    def special_motion_apply(self, cn, rule, params, notes):
        attrs = {}
        for comfy in ("motion_model", "motion_lora"):
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                attrs.update({k: x for k, x in v.attrs.items() if not isinstance(x, Out)})
        for k in ("scale_multival", "effect_multival", "ad_keyframes", "per_block"):
            if isinstance(cn.inputs.get(k), Ref):
                notes.append(f"{k} is not carried")
        self.outs[(cn.id, 0)] = Out(None, attrs)
        return []

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

    def special_power_lora(self, cn, rule, params, notes):
        """rgthree's Power Lora Loader: its switched-on LoRAs in order (`lora_1`, `lora_2`, ... in the API format;
        dict widgets in the editor's, which flatten names the same way), each at its model strength."""
        entries = sorted(((int(k[5:]), v) for k, v in cn.inputs.items()
                          if re.fullmatch(r"lora_\d+", k) and isinstance(v, dict)), key=lambda kv: kv[0])
        # strengthTwo (the text encoder's) is set when the node shows separate strengths (null or absent when it
        # does not); else `strength` is both
        loras = [(v["lora"], v.get("strength", 1.0),
                  v["strengthTwo"] if v.get("strengthTwo") is not None else v.get("strength", 1.0))
                 for _, v in entries if v.get("on", True) and v.get("lora") not in (None, "", "None")]
        return self.loras_on_inputs(cn, loras, notes)

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

    def special_lora_stacker(self, cn, rule, params, notes):
        """efficiency-nodes' LoRA Stacker: its first lora_count LoRAs (lora_wt each in simple mode, model_str and
        clip_str in advanced), after those of a stack given to it, travel to the Efficient Loader that takes it."""
        v = lambda k: self.resolve(cn.inputs.get(k))       # noqa: E731
        before = v("lora_stack")
        stack = list(before.attrs.get("lora_stack", ())) if isinstance(before, Out) else []
        advanced = v("input_mode") == "advanced"
        count = v("lora_count") if isinstance(v("lora_count"), int) else 3
        for i in range(1, count + 1):
            if v(f"lora_name_{i}") not in (None, "", "None"):
                model, clip = (v(f"model_str_{i}"), v(f"clip_str_{i}")) if advanced else (v(f"lora_wt_{i}"),) * 2
                stack.append((v(f"lora_name_{i}"), 1.0 if model is None else model, clip))
        self.outs[(cn.id, 0)] = Out(None, {"lora_stack": tuple(stack)})
        return []

    def special_cr_lora_stack(self, cn, rule, params, notes):
        """Comfyroll's CR LoRA Stack: the LoRAs switched On (model_weight, clip_weight each), after those of a stack
        given to it, travel to the node that applies the stack."""
        v = lambda k: self.resolve(cn.inputs.get(k))       # noqa: E731
        before = v("lora_stack")
        stack = list(before.attrs.get("lora_stack", ())) if isinstance(before, Out) else []
        for i in range(1, 4):
            if v(f"switch_{i}") == "On" and v(f"lora_name_{i}") not in (None, "", "None"):
                model, clip = v(f"model_weight_{i}"), v(f"clip_weight_{i}")
                stack.append((v(f"lora_name_{i}"), 1.0 if model is None else model, 1.0 if clip is None else clip))
        self.outs[(cn.id, 0)] = Out(None, {"lora_stack": tuple(stack)})
        return []

    def special_apply_lora_stack(self, cn, rule, params, notes):
        """A LORA_STACK (CR LoRA Stack, LoRA Stacker) applied to a model and its CLIP: a lora.image each."""
        stack = self.resolve(cn.inputs.get("lora_stack"))
        if isinstance(cn.inputs.get("lora_stack"), Ref) and not (isinstance(stack, Out) and "lora_stack" in stack.attrs):
            notes.append("its lora_stack comes from a node that did not convert; add its LoRAs by hand (lora.image)")
        loras = stack.attrs["lora_stack"] if isinstance(stack, Out) and "lora_stack" in stack.attrs else ()
        return self.loras_on_inputs(cn, loras, notes)

    def special_empty_latent(self, cn, rule, params, notes):
        nid = self.plain(cn, rule, params, notes)
        self.pending_vae.append((nid, cn.id))
        return [nid]

    def special_i2v(self, cn, rule, params, notes):
        lat_params = {k: params[k] for k in ("width", "height", "frames") if k in params}
        lat = self.add("latent.empty", cn, lat_params, "_latent", dy=-160)
        self.link(self.resolve(cn.inputs.get("vae")), lat, "vae")
        images = {port: self.resolve(cn.inputs.get(c)) for c, port in rule.inputs.items()
                  if port in ("first", "last", "camera", "control")}
        if not any(isinstance(v, Out) and v.port for v in images.values()):
            for slot, name in enumerate(("positive", "negative")):      # nothing to pin: conditioning passes through
                v = self.resolve(cn.inputs.get(name))
                self.outs[(cn.id, slot)] = v if isinstance(v, Out) else Out()
            self.outs[(cn.id, 2)] = Out((lat, "latent"))
            return [lat]
        cond = self.add(rule.node, cn, {})
        for comfy, port in rule.inputs.items():
            v = self.resolve(cn.inputs.get(comfy))
            # A picture from a node that did not convert (a Canny left a placeholder) was dropped without a word
            if comfy in cn.inputs and not self.link(v if isinstance(v, Out) else None, cond, port):
                notes.append(f"input {comfy} comes from a node that did not convert; connect {port} by hand")
        self.graph.connect(lat, "latent", cond, "latent")
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        self.outs[(cn.id, 1)] = Out((cond, "negative"))
        self.outs[(cn.id, 2)] = Out((lat, "latent"))
        return [lat, cond]

    def special_ati(self, cn, rule, params, notes):
        """WanTrackToVideo: ComfyUI's track JSON (121 {x, y} samples per track) as a motion.tracks node of one
        point per frame, feeding condition.frames with the node's temperature and topk. No tracks: plain i2v,
        as ComfyUI falls back to WanImageToVideo."""
        from nodes.motion.wan_tracks import from_comfyui
        text = params.pop("tracks", "[]")
        try:
            tracks = from_comfyui(text, int(params.get("frames", 81)), int(params.get("width", 832)),
                                  int(params.get("height", 480))) if text.strip() not in ("", "[]") else None
        except (ValueError, TypeError) as e:     # json.JSONDecodeError is a ValueError
            tracks = None
            notes.append(f"tracks are not ATI's JSON ({e}); the video is made without them, as ComfyUI does: "
                         "draw them on motion.tracks and connect it to condition.frames' tracks")
        return self.steered_i2v(cn, rule, params, notes, tracks, {"method": "ati"}, ("temperature", "topk"))

    def special_wan_move(self, cn, rule, params, notes):
        """WanMoveTrackToVideo: tracks folded from GenerateTracks / WanMoveConcatTrack become a motion.tracks node
        at the video's size (ComfyUI reads their pixels against it, whatever size they were drawn at)."""
        src = self.resolve(cn.inputs.get("tracks"))
        tracks = src.attrs.get("tracks") if isinstance(src, Out) else None
        if tracks is not None:
            from nodes.motion.tracks import Tracks
            tracks = Tracks(tracks.points, tracks.visible, int(params.get("width", 832)),
                            int(params.get("height", 480)))
        elif isinstance(cn.inputs.get("tracks"), Ref):
            notes.append("input tracks comes from a node that did not convert; connect condition.frames' tracks by "
                         "hand (method wan_move)")
        return self.steered_i2v(cn, rule, params, notes, tracks, {"method": "wan_move"}, ("strength",))

    def steered_i2v(self, cn, rule, params, notes, tracks, fixed, keys):
        made = self.special_i2v(cn, rule, params, notes)
        cond = made[-1]
        if tracks is None or self.graph.nodes[cond].type != rule.node:
            return made
        self.graph.nodes[cond].params.update({**fixed, **{k: params[k] for k in keys if k in params}})
        tr = self.add("motion.tracks", cn, {"points": tracks.to_json(), "frames": tracks.length,
                                            "interpolation": "linear"}, "_tracks", dy=160)
        self.graph.connect(tr, "tracks", cond, "tracks")
        return made + [tr]

    def special_generate_tracks(self, cn, rule, params, notes):
        """GenerateTracks: its settings are constants, so its tracks are drawn here and travel folded to the node
        that reads them."""
        from nodes.motion.wan_tracks import generate_tracks
        need = ("width", "height", "start_x", "start_y", "end_x", "end_y", "num_frames", "num_tracks", "track_spread")
        if any(k not in params for k in need):
            self.not_constant(cn, "settings")
            return None
        if isinstance(cn.inputs.get("track_mask"), Ref):
            notes.append("track_mask is not carried: every track is visible in every frame")
        mid = (params.get("mid_x", 0.5), params.get("mid_y", 0.5)) if params.get("bezier") else None
        try:
            tr = generate_tracks(int(params["width"]), int(params["height"]), (params["start_x"], params["start_y"]),
                                 (params["end_x"], params["end_y"]), int(params["num_frames"]),
                                 int(params["num_tracks"]), float(params["track_spread"]), mid,
                                 params.get("interpolation", "linear"))
        except ValueError as e:
            self.not_constant(cn, f"tracks ({e})")
            return None
        self.outs[(cn.id, 0)] = Out(None, {"tracks": tr})
        self.outs[(cn.id, 1)] = Out(None, {"value": tr.length})
        return []

    def special_concat_tracks(self, cn, rule, params, notes):
        """WanMoveConcatTrack of folded tracks: one bundle of them all (same length needed, as ComfyUI's)."""
        import numpy as np
        from nodes.motion.tracks import Tracks
        parts = [self.resolve(cn.inputs.get(k)) for k in ("tracks_1", "tracks_2") if k in cn.inputs]
        got = [p.attrs["tracks"] for p in parts if isinstance(p, Out) and "tracks" in p.attrs]
        if not got or len(got) != len(parts) or len({t.length for t in got}) > 1:
            self.not_constant(cn, "tracks")
            return None
        self.outs[(cn.id, 0)] = Out(None, {"tracks": Tracks(np.concatenate([t.points for t in got]),
                                                            np.concatenate([t.visible for t in got]),
                                                            got[0].width, got[0].height)})
        return []

    def special_image_size(self, cn, rule, params, notes):
        """GetImageSize of a picture resized to a set size (ImageScale, ...): that size, known here (nodes drawn at
        import, GenerateTracks, need it). Any other picture's size is measured as the workflow runs (video.size),
        its outputs linked into the settings they feed."""
        size = self.fixed_size(self.resolve(cn.inputs.get("image")))
        if size is None:
            return [self.plain(cn, rule, params, notes)]
        # the picture count (batch_size) is not fixed by the resize: a node reading it still gets video.size's
        made = [self.plain(cn, rule, params, notes)] if self.slot_read(cn.id, 2) else []
        self.outs[(cn.id, 0)] = Out(None, {"value": size[0]})
        self.outs[(cn.id, 1)] = Out(None, {"value": size[1]})
        return made

    def fixed_size(self, src) -> Optional[Tuple[int, int]]:
        """The width and height of a picture resized to a set size (video.resize with both sides), else None."""
        node = self.graph.nodes.get(src.port[0]) if isinstance(src, Out) and src.port else None
        if node is None or node.type != "video.resize" or not (node.params.get("width") and node.params.get("height")):
            return None
        return node.params["width"], node.params["height"]

    def special_image_size_count(self, cn, rule, params, notes):
        """KJNodes' GetImageSizeAndCount: the picture passed on, and its width, height and count as GetImageSize
        gives them (known here after a resize to a set size, else measured by video.size)."""
        src = self.resolve(cn.inputs.get("image"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        size = self.fixed_size(src)
        made = [self.plain(cn, rule, params, notes)] if size is None or self.slot_read(cn.id, 3) else []
        if size:
            self.outs[(cn.id, 1)] = Out(None, {"value": size[0]})
            self.outs[(cn.id, 2)] = Out(None, {"value": size[1]})
        return made

    def special_echo_size(self, cn, rule, params, notes):
        """Width, height and length outputs repeat the node's own settings: consumers read them as numbers."""
        nid = self.plain(cn, rule, params, notes)
        for slot, key in ((1, "width"), (2, "height"), (3, "frames")):
            if key in params:
                self.outs[(cn.id, slot)] = Out(None, {"value": params[key]})
        return [nid]

    def special_vace(self, cn, rule, params, notes):
        """ComfyUI's trim_latent output is the number of reference-image latent frames in front: 1 with a
        reference image, else 0. Known at import time, it becomes TrimVideoLatent's amount."""
        nid = self.plain(cn, rule, params, notes)
        self.outs[(cn.id, 3)] = Out(None, {"value": int(isinstance(cn.inputs.get("reference_image"), Ref))})
        return [nid]

    def special_wan_animate(self, cn, rule, params, notes):
        """ComfyUI's trim_latent output counts the reference image's latent frames in front: always one (a black
        picture stands in for a missing reference). Known at import time, it becomes TrimVideoLatent's amount."""
        nid = self.plain(cn, rule, params, notes)
        self.outs[(cn.id, 3)] = Out(None, {"value": 1})
        return [nid]

    def special_ltxv_guide(self, cn, rule, params, notes):
        """A guide image at frame 0 (or -1) pins the first (or last) frame; the latent passes through, since
        Kinograph conditions on the image instead of appending guide frames to the latent."""
        idx = self.resolve(cn.inputs.get("frame_idx", 0))
        if idx not in (0, -1):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(f"a guide at frame {idx}: Kinograph pins only the first or "
                                                    "last frame")
            return None
        cond = self.add("condition.frames", cn, {})
        for comfy, port in (("positive", "positive"), ("negative", "negative"), ("vae", "vae"), ("latent", "latent"),
                            ("image", "first" if idx == 0 else "last")):
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                self.link(v, cond, port)
        lat = self.resolve(cn.inputs.get("latent"))
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        self.outs[(cn.id, 1)] = Out((cond, "negative"))
        self.outs[(cn.id, 2)] = lat if isinstance(lat, Out) else Out()
        return [cond]

    def special_crop_guides(self, cn, rule, params, notes):
        for slot, name in enumerate(("positive", "negative", "latent")):
            v = self.resolve(cn.inputs.get(name))
            self.outs[(cn.id, slot)] = v if isinstance(v, Out) else Out()
        return []

    def special_svd(self, cn, rule, params, notes):
        lat = self.add("latent.empty", cn, {k: params[k] for k in ("width", "height", "frames", "fps") if k in params},
                       "_latent", dy=-160)
        self.link(self.resolve(cn.inputs.get("vae")), lat, "vae")
        enc = self.add("encode.image", cn, {}, "_image", dy=160)
        self.link(self.resolve(cn.inputs.get("clip_vision")), enc, "image_encoder")
        self.link(self.resolve(cn.inputs.get("init_image")), enc, "image")
        cond = self.add("condition.frames", cn, {k: params[k] for k in ("motion", "noise_aug") if k in params})
        self.link(self.resolve(cn.inputs.get("vae")), cond, "vae")
        self.link(self.resolve(cn.inputs.get("init_image")), cond, "first")
        self.graph.connect(enc, "conditioning", cond, "positive")
        self.graph.connect(lat, "latent", cond, "latent")
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        self.outs[(cn.id, 1)] = Out()           # SVD's negative is the model's own empty image embedding
        self.outs[(cn.id, 2)] = Out((lat, "latent"))
        return [lat, enc, cond]

    def special_sampler(self, cn, rule, params, notes):
        bundles = {}
        for comfy in ("sampler", "sigmas", "noise", "guider"):
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                bundles.update(v.attrs)
            elif comfy in cn.inputs:
                notes.append(f"its {comfy} comes from a node Kinograph does not have; check sample's settings")
        for k in rule.takes:
            if k in bundles and not isinstance(bundles[k], Out):
                params[k] = bundles[k]
        if "guider" in cn.inputs and "cfg" not in params:
            params["cfg"] = 1.0
        wires = {"model": cn.inputs.get("model"), "positive": cn.inputs.get("positive"),
                 "negative": cn.inputs.get("negative")}
        outs = {k: (self.resolve(v) if v is not None else bundles.get(k)) for k, v in wires.items()}
        pos = outs.get("positive")
        if isinstance(pos, Out) and "guidance" in pos.attrs:
            if params.get("cfg", 1.0) in (1, 1.0):
                params["cfg"] = pos.attrs["guidance"]       # distilled guidance: Kinograph's cfg for HunyuanVideo
            else:
                notes.append(f"real CFG {params['cfg']} on top of distilled guidance {pos.attrs['guidance']}: "
                             "Kinograph uses the guidance only")
                params["cfg"] = pos.attrs["guidance"]
        elif params.get("cfg", 1.0) in (1, 1.0) and self._loads_family(outs.get("model")) == "flux":
            # No FluxGuidance: ComfyUI tells FLUX.1 guidance 3.5 (its model's default); Kinograph's cfg is that
            # guidance, so cfg 1 would have sampled a washed-out image. 0 = the family's 3.5.
            params["cfg"] = 0.0
            notes.append("no FluxGuidance before it: FLUX.1's default guidance 3.5, as ComfyUI uses (sample's cfg 0)")
        comfy_denoise(params)
        outs["model"], controls = self.control_model(cn, outs.get("model"), (pos, outs.get("negative")))
        if any(isinstance(c, Out) and c.attrs.get("controls") for c in (pos, outs.get("negative"))) and not controls \
                and not (isinstance(outs["model"], Out) and outs["model"].port):
            notes.append("its conditioning carries a ControlNet, which Kinograph applies to the model: connect the "
                         "model, then put control.apply before it")
        nid = self.add(rule.node, cn, params)
        for port in ("model", "positive", "negative"):
            v = outs.get(port)
            if isinstance(v, Out):
                self.link(v, nid, port)
            elif wires.get(port) is not None:
                notes.append(f"input {port} comes from a node that did not convert; connect it by hand")
        lat = self.resolve(cn.inputs.get("latent_image"))
        if isinstance(lat, Out):
            self.link(lat, nid, "latent")
        fps = pos.attrs.get("fps") if isinstance(pos, Out) else None
        if fps and isinstance(lat, Out) and lat.port and self.graph.nodes[lat.port[0]].type == "latent.empty":
            self.graph.nodes[lat.port[0]].params["fps"] = fps
        self.outs[(cn.id, 0)] = Out((nid, "latent"))
        if rule.outputs[1:2] == (None,) and self.slot_read(cn.id, 1):
            # SamplerCustom's denoised_output: the last step's estimate of the clean latent, which is the step's
            # result itself where the schedule ends at noise 0 (every full schedule does)
            self.outs[(cn.id, 1)] = self.outs[(cn.id, 0)]
            notes.append("denoised_output is read as sample's latent: the same where the schedule runs to noise 0, "
                         "as a full one does")
        return controls + [nid]

    def slot_read(self, nid: str, slot: int) -> bool:
        """Whether any ComfyUI node takes output `slot` of node `nid`."""
        return any(isinstance(v, Ref) and v.node == nid and v.slot == slot
                   for c in self.consumers.get(nid, ()) for v in self.flat.nodes[c].inputs.values())

    def special_ipadapter_weights(self, cn, rule, params, notes):
        """IPAdapterWeights: its weights, weights reversed and their count, known now; with an image it repeats them
        once per picture and makes cross-fade batches of the pictures, which only the run knows."""
        from app.comfyui.mapping import ipadapter_frame_weights
        if cn.inputs.get("image") is not None:
            self.not_constant(cn, "weights (repeated once per picture of its image) and cross-fade pictures")
            return None
        if params.get("timing") == "random":
            self.not_constant(cn, "random timing (new weights each run)")
            return None
        try:
            weights = ipadapter_frame_weights(str(params.get("weights", "1.0, 0.0")), params.get("timing", "linear"),
                                              int(params.get("frames", 0)), int(params.get("start_frame", 0)),
                                              int(params.get("end_frame", 9999)))
        except (TypeError, ValueError):
            self.not_constant(cn, f"weights {params.get('weights')!r} with timing {params.get('timing')!r}, which "
                                  "Kinograph does not read,")
            return None
        for slot, value in enumerate((weights, weights[::-1], len(weights))):
            self.outs[(cn.id, slot)] = Out(None, {"value": value})
        return []

    def special_ipadapter_batch(self, cn, rule, params, notes):
        """IPAdapterBatch given a list of weights (IPAdapterWeights): one per frame, ipadapter.apply's frame_weights."""
        if isinstance(params.get("weight"), list):
            params["frame_weights"] = ", ".join(repr(float(w)) for w in params.pop("weight"))
        return [self.plain(cn, rule, params, notes)]

    def special_animatediff(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("model"))
        loader = self._loader_behind(src)
        bundles = {}
        for comfy in ("m_models", "motion_lora", "context_options"):
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                bundles[comfy] = v.attrs
        motion = params.get("motion_adapter") or bundles.get("m_models", {}).get("motion_adapter")
        lora = bundles.get("motion_lora") or bundles.get("m_models", {})
        self._motion_schedule(cn, motion, notes)
        made = []
        if loader is None:
            notes.append("no checkpoint loader found upstream to turn into an AnimateDiff loader")
        else:
            node = self.graph.nodes[loader]
            node.type = "load.animatediff"
            spec = self.registry.get("load.animatediff") if self.registry is not None else None
            node.version = spec.version if spec else node.version
            if motion:
                node.params["motion_adapter"] = motion
            for k in ("motion_lora", "motion_lora_strength"):
                if k in lora:
                    node.params[k] = lora[k]
            made.append(loader)
        out = src if isinstance(src, Out) else Out()
        ctx = bundles.get("context_options")
        if ctx and out.port:
            cparams = {k: v for k, v in ctx.items() if not isinstance(v, Out)}
            cid = self.add("context.windows", cn, cparams, "_context", dy=160)
            self.link(out, cid, "model")
            out = Out((cid, "model"))
            made.append(cid)
        self.outs[(cn.id, 0)] = out
        return made

    # AnimateDiff-Evolved's beta_schedule that a motion module samples on in Kinograph (load.animatediff picks it
    # from the module, as ADE's autoselect does): SD 1.5 modules the mapping's neutral sqrt_linear, these their own.
    MOTION_SCHEDULES = {"sdxl": "linear (AnimateDiff-SDXL)", "hotshot": "linear (HotshotXL/default)"}

    def _motion_schedule(self, cn, motion, notes) -> None:
        """Say whether the node's beta_schedule is the one the motion module runs on: an SDXL module's own schedule
        is carried (the mapping's neutral values are SD 1.5's), sqrt_linear on an SDXL module is not."""
        kind = self._motion_kind(motion)
        schedule = self.resolve(cn.inputs.get("beta_schedule"))
        if kind is None or not isinstance(schedule, str):
            return
        notes[:] = [n for n in notes if not n.startswith(f"beta_schedule={schedule!r}")]
        if schedule not in ("autoselect", self.MOTION_SCHEDULES[kind]):
            notes.append(f"beta_schedule={schedule!r} is not carried: {motion} samples on "
                         f"{self.MOTION_SCHEDULES[kind]!r}, as AnimateDiff-Evolved's autoselect picks for it")

    @staticmethod
    def _motion_kind(name) -> Optional[str]:
        """"sdxl" (AnimateDiff-SDXL), "hotshot" (Hotshot-XL) or None (an SD 1.5 module, or unknown) for the motion
        module file `name`: by its tensors where it is in the model folders now, else by its name."""
        if not isinstance(name, str) or not name:
            return None
        try:
            from nodes.generate.detect import detect_file
            from nodes.generate.model_manager import resolve_model_path
            path = resolve_model_path(name, "animatediff_models", "motion module")
            if path.is_file():
                det = detect_file(path)
                return ("hotshot" if det.layout == "hotshot" else "sdxl") if det.variant == "sdxl" else None
        except Exception:  # noqa: BLE001 - a file that is not there or not readable: its name tells
            pass
        low = name.lower()
        return "hotshot" if "hsxl" in low or "hotshot" in low else "sdxl" if "sdxl" in low else None

    def _loads_family(self, out) -> Optional[str]:
        """The family of the model file the loader behind `out` names, where it is in the model folders now (the
        importer reads headers only); None when there is none or it cannot be read."""
        loader = self._loader_behind(out)
        if loader is None:
            return None
        params = self.graph.nodes[loader].params
        name = params.get("name") or params.get("path")
        try:
            from nodes.generate.detect import detect_file
            from nodes.generate.model_manager import family_of_file, resolve_model_path
            kind = "diffusion_models" if self.graph.nodes[loader].type == "load.diffusion_model" else "checkpoints"
            path = resolve_model_path(str(name), kind, "model") if name else None
            return family_of_file(detect_file(path)) if path is not None and path.is_file() else None
        except Exception:  # noqa: BLE001 - a file that is not there or not readable: the import goes on without
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

    def special_sam3_detect(self, cn, rule, params, notes):
        """SAM 3 as ComfyUI wires it: the file from a CheckpointLoaderSimple, the prompt from a CLIPTextEncode on
        that loader's CLIP. Both become mask.segment's model and prompt; the loader and the encoder go where nothing
        else uses them (a load.model of SAM 3's file would not run). Clicks (positive_coords) and no text make it
        mask.track_points on the same folder."""
        from dataclasses import replace
        from .mapping import SAM3_POINTS_NOTE, sam3_folder
        sources = {}
        clicks = {param: v for port, param in (("positive_coords", "points"), ("negative_coords", "negative"))
                  for v in [self.resolve(cn.inputs.get(port))] if isinstance(v, str) and v}
        if "conditioning" not in cn.inputs and clicks:
            # Clicks and no text: SAM 3's tracker segments what they pick (ComfyUI's node runs its SAM decoder on
            # them in each frame alone).
            rule = replace(rule, node="mask.track_points")
            params = dict(clicks)       # its threshold and objects are the detector's
            notes.append(SAM3_POINTS_NOTE)
        for port, param, key in (("model", "model", "path"), ("conditioning", "prompt", "text")):
            if param == "prompt" and rule.node != "mask.segment":
                continue
            ref = cn.inputs.get(port)
            out = self.resolve(ref)
            node = out.port[0] if isinstance(out, Out) and out.port else None
            value = self.graph.nodes[node].params.get(key) if node is not None else None
            if value is None:
                notes.append(f"its {port} comes from a node Kinograph cannot read a {param} from; set {param} by hand")
                continue
            sources[ref.node] = node
            try:
                params[param] = sam3_folder(value) if param == "model" else value
            except Approx as a:
                params[param] = a.value
                notes.append(a.note)
        for port in ("bboxes",) + (("positive_coords", "negative_coords") if rule.node == "mask.segment" else ()):
            if isinstance(cn.inputs.get(port), Ref):
                notes.append(f"{port} is not carried: {rule.node} finds objects from the "
                             f"{'text prompt' if rule.node == 'mask.segment' else 'points'}")
        nid = self.plain(cn, rule, params, notes)
        for cid in sources:
            if set(self.consumers.get(cid, ())) <= set(sources) | {cn.id}:
                gone = self.report.entries[cid]
                for made in gone.kinograph:
                    if made in self.graph.nodes:
                        self.graph.remove_node(made)
                        self.graph.ui.pop(made, None)
                self.report.add(Entry(cid, gone.class_type, gone.title, EXACT, [nid],
                                      [f"folded into {rule.node}: SAM 3's model" + " and prompt" * (
                                          rule.node == "mask.segment")]))
        return [nid]

    def special_points_editor(self, cn, rule, params, notes):
        """KJNodes' PointsEditor: its positive and negative points (JSON strings in its widgets) passed on as the
        values a SAM node's coordinates take, its boxes (drawn corners in its bboxes widget) as mask.track_points'
        box, one per object."""
        for slot, key in ((0, "coordinates"), (1, "neg_coordinates")):
            self.outs[(cn.id, slot)] = Out(None, {"value": str(self.resolve(cn.inputs.get(key)) or "")})
        from .mapping import points_editor_boxes
        try:
            boxes = points_editor_boxes(self.resolve(cn.inputs.get("bboxes")))
        except Approx as a:
            boxes = a.value
            notes.append(a.note)
        if boxes and self.resolve(cn.inputs.get("bbox_format")) == "xywh":
            notes.append("its boxes are passed on as drawn (x0,y0,x1,y1): bbox_format xywh would hand kijai's "
                         "Sam2Segmentation their width and height as the far corner")
        self.outs[(cn.id, 2)] = Out(None, {"value": boxes})
        return []

    def special_sam2_segmentation(self, cn, rule, params, notes):
        """kijai's Sam2Segmentation: its model from DownloadAndLoadSAM2Model (folded), its points and boxes from
        PointsEditor (or any node giving the JSON string); individual_objects makes each positive point an object."""
        loader = self.resolve(cn.inputs.get("sam2_model"))
        if isinstance(loader, Out) and "model" in loader.attrs:
            params["model"] = loader.attrs["model"]
            if loader.attrs.get("segmentor", "video") != "video":
                notes.append(f"its model's segmentor {loader.attrs['segmentor']!r} finds the object in each picture "
                             "alone; Kinograph tracks it from the first frame, as the video segmentor does")
        else:
            notes.append("its sam2_model comes from a node Kinograph cannot read a model from; set model by hand")
        for port, param in (("coordinates_positive", "points"), ("coordinates_negative", "negative"),
                            ("bboxes", "box")):
            v = self.resolve(cn.inputs.get(port))
            if isinstance(v, str):
                if v:
                    params[param] = v
            elif v is not None:
                notes.append(f"{port} comes from a node whose values are only known when it runs; set {param} by "
                             "hand")
        if self.resolve(cn.inputs.get("individual_objects")) is True and params.get("points"):
            from .mapping import individual_objects
            try:
                params["points"], params["negative"] = individual_objects(params["points"], params.get("negative"))
            except Approx as a:
                params["points"], params["negative"] = a.value
                notes.append(a.note)
            if not params["negative"]:
                del params["negative"]
        if isinstance(cn.inputs.get("mask"), Ref):
            notes.append("mask is not carried: mask.track_points follows points and boxes")
        return [self.plain(cn, rule, params, notes)]

    def special_sam2_add_points(self, cn, rule, params, notes):
        """kijai's Sam2VideoSegmentationAddPoints: its clicks (on frame_index, for object_index) added to those of
        the chain before it (prev_inference_state); the first one's image is the clip. Its sam2_model passes on."""
        from nodes.mask.segment import parse_points
        from graph_engine import NodeError
        prev = self.resolve(cn.inputs.get("prev_inference_state"))
        state = dict(prev.attrs["sam2_state"]) if isinstance(prev, Out) and "sam2_state" in prev.attrs else {
            "clicks": {}, "video": self.resolve(cn.inputs.get("image"))}
        frame, obj = (self.resolve(cn.inputs.get(k)) for k in ("frame_index", "object_index"))
        try:
            for k, v in (("frame_index", frame), ("object_index", obj)):
                # int() of a received workflow's 1e999 raised OverflowError; a frame below 0 made points the node
                # refuses
                if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise ValueError(f"{k} {v!r} is not a number of 0 or more")
            # The same object on the same frame again replaces its clicks there (add_new_points clears old points).
            state["clicks"] = {**state["clicks"], (int(obj), int(frame)): tuple(
                [(x, y) for g in parse_points(self.resolve(cn.inputs.get(k)) or "", k) for x, y, _ in g]
                for k in ("coordinates_positive", "coordinates_negative"))}
        except (NodeError, TypeError, ValueError) as e:
            notes.append(f"its clicks cannot be read ({e}); set points by hand")
        self.outs[(cn.id, 0)] = self.resolve(cn.inputs.get("sam2_model"))
        self.outs[(cn.id, 1)] = Out(None, {"sam2_state": state})
        return []

    def special_sam2_video_segmentation(self, cn, rule, params, notes):
        """kijai's Sam2VideoSegmentation: the clicks its AddPoints chain gathered, as mask.track_points' objects in
        object_index order, each click x,y@frame; the clip from the chain's first image."""
        state = self.resolve(cn.inputs.get("inference_state"))
        state = state.attrs.get("sam2_state") if isinstance(state, Out) else None
        loader = self.resolve(cn.inputs.get("sam2_model"))
        if isinstance(loader, Out) and "model" in loader.attrs:
            params["model"] = loader.attrs["model"]
        else:
            notes.append("its sam2_model comes from a node Kinograph cannot read a model from; set model by hand")
        if not state or not state["clicks"]:
            notes.append("its inference_state comes from a node Kinograph cannot read clicks from; set points by hand")
            return [self.plain(cn, rule, params, notes)]
        objects = sorted({o for o, _ in state["clicks"]})
        groups = {which: [[f"{x:g},{y:g}" + (f"@{f}" if f else "") for (o, f), clicks in sorted(state["clicks"].items())
                           if o == obj for x, y in clicks[which]] for obj in objects] for which in (0, 1)}
        params["points"] = " | ".join("; ".join(g) for g in groups[0])
        if any(groups[1]):
            params["negative"] = " | ".join("; ".join(g) for g in groups[1])
        nid = self.plain(cn, rule, params, notes)
        if not self.link(state["video"] if isinstance(state["video"], Out) else None, nid, "video"):
            notes.append("the chain's first Sam2VideoSegmentationAddPoints has no image Kinograph can follow; "
                         "connect video by hand")
        return [nid]

    def special_resize_image_mask(self, cn, rule, params, notes):
        """ComfyUI's Resize Image/Mask: its widgets after resize_type depend on the type. By width and height
        (either 0: follow the other side) it is video.resize; the other types are not mapped."""
        kind = params.pop("resize_type", None)
        if kind in ("scale width", "scale height"):
            # widgets: [type, size, scale_method]: the size was read as width, the method as height
            size, method = cn.inputs.get("resize_type.width"), cn.inputs.get("resize_type.height")
            params.update(width=size if kind == "scale width" else 0, height=size if kind == "scale height" else 0)
            params.pop("fit", None)
            from .mapping import resize_method
            try:
                params["method"] = resize_method(method)
            except Approx as a:
                params["method"] = a.value
                notes.append(a.note)
            notes[:] = [n for n in notes if "resize_type.crop" not in n]
        elif kind != "scale dimensions":
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(f"resize_type {kind!r} is not mapped: Kinograph maps scale "
                                                    "dimensions, scale width and scale height (video.resize)")
            return None
        return self.special_image_scale(cn, rule, params, notes, "input")

    def special_image_scale(self, cn, rule, params, notes, source: str = "image"):
        """ImageScale and Resize Image/Mask with width and height both 0 pass the picture on unchanged in ComfyUI,
        where video.resize asks for a size: the input goes straight on."""
        if params.get("width") == 0 and params.get("height") == 0:
            src = self.resolve(cn.inputs.get(source))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        return [self.plain(cn, rule, params, notes)]

    def special_image_resize_kj(self, cn, rule, params, notes):
        """KJNodes' ImageResizeKJ as its resize() computes the size: width_input / height_input (when set) replace
        width / height; keep_proportion fills a 0 side from the picture's shape (else a 0 side keeps the picture's
        own), or with both sides fits the picture inside them; divisible_by rounds each side down; crop center cuts
        the overflow. Its width and height outputs are the size it made."""
        ins = cn.inputs
        old_widgets = "height_input" in ins or isinstance(ins.get("width_input"), Ref)
        # files of the pack since width_input became link-only hold crop in its place (0: center, the pack says)
        crop = ins.get("crop", "disabled") if old_widgets else ins.get("width_input", "disabled")
        params["fit"] = "crop" if crop in ("center", 0) else "stretch"
        for side in ("width", "height"):
            given = ins.get(f"{side}_input") if old_widgets else None
            v = self.resolve(given)
            if isinstance(v, Out) and v.port is not None:
                params.pop(side, None)
                self.param_links.setdefault(cn.id, []).append((side, v, f"{side}_input"))
            elif isinstance(v, Out) or (given is not None and v is None):
                notes.append(f"{side}_input comes from a node that did not convert; set {side} by hand")
            elif v:
                params[side] = v
        if isinstance(ins.get("get_image_size"), Ref):
            notes.append("get_image_size (another picture's size) is not carried: set width and height to its size")
        w, h = params.get("width"), params.get("height")
        keep = self.resolve(ins.get("keep_proportion")) is True
        step = self.resolve(ins.get("divisible_by"))
        step = step if isinstance(step, int) and step > 1 else 1
        fixed = isinstance(w, int) and isinstance(h, int)
        if fixed and keep and w and h:
            params["fit"] = "pad"
            notes.append(f"keep_proportion fits the picture inside {w}x{h} and makes it that smaller size; Kinograph's "
                         f"pad fits it inside too but fills {w}x{h} with black bars")
        elif fixed and not keep and bool(w) != bool(h):
            notes.append(f"{'width' if not w else 'height'} 0 keeps the picture's own {'width' if not w else 'height'} "
                         "in ComfyUI (the picture is stretched); in Kinograph it follows the other side's scale")
        if fixed and step > 1:
            params["width"], params["height"] = w - w % step, h - h % step
            if (keep and w and h) or not (w and h):
                notes.append(f"divisible_by {step} is applied to the size ComfyUI computes from the picture; "
                             "Kinograph's follows the picture exactly: set the sides by hand to round them")
        elif step > 1:
            notes.append(f"divisible_by {step} rounds a linked side down; Kinograph takes it as it is")
        made = self.special_image_scale(cn, rule, params, notes)
        known = fixed and params["width"] and params["height"] and not (keep and params["fit"] == "pad")
        return made + self.size_outputs(cn, (params["width"], params["height"]) if known else None)

    def size_outputs(self, cn, size) -> List[str]:
        """A resize's width and height outputs (slots 1 and 2): the size it makes when the file fixes it, else
        measured from the resized clip by a video.size node (made only when something reads them)."""
        if size:
            self.outs[(cn.id, 1)] = Out(None, {"value": size[0]})
            self.outs[(cn.id, 2)] = Out(None, {"value": size[1]})
            return []
        if not (self.slot_read(cn.id, 1) or self.slot_read(cn.id, 2)):
            return []
        nid = self.add("video.size", cn, {}, "_size", dy=160)
        self.link(self.outs.get((cn.id, 0)), nid, "video")
        self.outs[(cn.id, 1)] = Out((nid, "width"))
        self.outs[(cn.id, 2)] = Out((nid, "height"))
        return [nid]

    def special_image_resize_kjv2(self, cn, rule, params, notes):
        """KJNodes' ImageResizeKJv2 as its resize() computes it: a 0 side is the picture's own; the size is rounded
        down to divisible_by; keep_proportion stretch, crop (the overflow cut at crop_position), pad (fitted inside,
        bars of pad_color around it) or resize (fitted inside, the frame that smaller size)."""
        ins = cn.inputs
        keep = self.choice(cn, "keep_proportion", "stretch", notes)
        step, position, colour = (self.resolve(ins.get(k)) for k in ("divisible_by", "crop_position", "pad_color"))
        step = step if isinstance(step, int) and step > 1 else 1
        w, h = params.get("width"), params.get("height")
        fixed = isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0
        if fixed:
            params["width"], params["height"] = w - w % step, h - h % step
        elif step > 1:
            notes.append(f"divisible_by {step} rounds a side only the run knows; Kinograph takes it as it is")
        if isinstance(w, int) and isinstance(h, int) and (w == 0) != (h == 0):
            notes.append(f"{'width' if w == 0 else 'height'} 0 keeps the picture's own in ComfyUI (stretched to "
                         "the other); in Kinograph it follows the other side's scale")
        fit = {"stretch": "stretch", "crop": "crop"}.get(keep, "pad")
        params["fit"] = fit
        if keep == "resize":
            notes.append("keep_proportion resize fits the picture inside the size and makes the frame that smaller "
                         "size; Kinograph's pad fits it inside too but fills the whole size with black bars")
        elif keep not in ("stretch", "crop", "pad"):
            notes.append(f"keep_proportion {keep} fills the bars with the picture's edge (or a blur of it); "
                         "Kinograph's pad fills them black")
        elif keep == "pad" and str(colour).replace(" ", "") not in ("0,0,0", "black"):
            notes.append(f"pad_color {colour!r} is not carried: Kinograph's bars are black")
        if keep in ("crop", "pad", "resize") and position not in (None, "center"):
            notes.append(f"crop_position {position} is not carried: Kinograph crops and pads centred")
        if keep != "crop" and keep != "stretch" and fixed and step > 1 and (w % step or h % step):
            notes.append(f"the pack pads the frame out to a multiple of divisible_by {step}; Kinograph's frame is "
                         f"{params['width']}x{params['height']}")
        self.untaken(cn, {"image", "width", "height"}, notes)
        made = self.special_image_scale(cn, rule, params, notes)
        known = fixed and keep != "resize"
        return made + self.size_outputs(cn, (params["width"], params["height"]) if known else None)

    def untaken(self, cn, taken, notes) -> None:
        """Name the linked inputs of `cn` that the mapping does not carry (a node whose effect is then missing)."""
        for k, v in cn.inputs.items():
            if isinstance(v, Ref) and k not in taken:
                notes.append(f"its {k} input is not carried: what that node does is missing here")

    def special_wan_wrapper_lora(self, cn, rule, params, notes):
        """WanVideoLoraSelect: its LoRA after those of prev_lora, for the model loader that takes the list."""
        prev = self.resolve(cn.inputs.get("prev_lora"))
        loras = list(prev.attrs.get("loras", [])) if isinstance(prev, Out) else []
        if params.get("path") not in (None, "", "None") and params.get("strength", 1.0) != 0:
            loras.append((params["path"], params.get("strength", 1.0), None))
        self.untaken(cn, {"prev_lora"}, notes)
        self.outs[(cn.id, 0)] = Out(None, {"loras": loras})
        return []

    def special_wan_wrapper_loader(self, cn, rule, params, notes):
        """WanVideoModelLoader: load.diffusion_model, then a lora.image per LoRA its lora input lists."""
        nid = self.plain(cn, rule, params, notes)
        loras = self.resolve(cn.inputs.get("lora"))
        loras = loras.attrs.get("loras", []) if isinstance(loras, Out) else []
        made, model, _ = self.chain_loras(cn, Out((nid, "model")), None, loras, notes)
        self.outs[(cn.id, 0)] = model
        settings = {k for k, v in cn.inputs.items() if isinstance(v, Ref) and v.node in self.flat.nodes
                    and RULES.get(self.flat.nodes[v.node].class_type, Rule(None)).kind == "ui"}
        self.untaken(cn, {"lora"} | settings, notes)
        return [nid] + made

    def special_wan_wrapper_set_loras(self, cn, rule, params, notes):
        """WanVideoSetLoRAs: a lora.image per LoRA of its lora input after its model; WanVideoSetBlockSwap (no lora
        input) passes the model on, Kinograph placing the model in memory itself."""
        model = self.resolve(cn.inputs.get("model"))
        loras = self.resolve(cn.inputs.get("lora"))
        loras = loras.attrs.get("loras", []) if isinstance(loras, Out) else []
        made, model, _ = self.chain_loras(cn, model if isinstance(model, Out) else None, None, loras, notes)
        self.outs[(cn.id, 0)] = model if isinstance(model, Out) else Out()
        return made

    def special_wan_wrapper_text(self, cn, rule, params, notes):
        """WanVideoTextEncode: one encode.text with both prompts; its text_embeds carry both to the sampler. The
        wrapper spreads prompts separated by '|' over its context windows and weighs (text:1.2) its own way."""
        nid = self.plain(cn, rule, params, notes)
        prompts = f"{params.get('text', '')}\n{params.get('negative', '')}"
        if "|" in prompts:
            notes.append("a prompt holds '|', which the wrapper reads as prompts spread over its context windows; "
                         "Kinograph encodes the text as written")
        if re.search(r"\([^()]*:\s*-?[\d.]+\)", prompts):
            notes.append("(text:weight) is read as ComfyUI's own prompts weigh it; the wrapper scales the weighted "
                         "part's whole embedding instead")
        self.untaken(cn, {"t5", "model_to_offload"}, notes)
        self.outs[(cn.id, 0)] = Out(None, {"positive": Out((nid, "positive")), "negative": Out((nid, "negative"))})
        return [nid]

    def special_wan_wrapper_sampler(self, cn, rule, params, notes):
        """WanVideoSampler: model.flow_shift at its shift, then generate.sample on its text embeds' two prompts and
        the latent its image embeds (or samples, for video-to-video) give. denoise_strength below 1 starts at step
        steps - int(steps x denoise) - 1 with fresh noise, as the wrapper does; start_step / end_step split the
        schedule between two samplers (Wan 2.2's two experts), the first's leftover noise going to the second."""
        from .mapping import WAN_WRAPPER_NEAR, WAN_WRAPPER_SCHEDULERS
        name = self.choice(cn, "scheduler", "unipc", notes)
        if name in WAN_WRAPPER_SCHEDULERS:
            params["sampler"], params["scheduler"] = WAN_WRAPPER_SCHEDULERS[name]
        else:
            params["sampler"], params["scheduler"] = WAN_WRAPPER_NEAR.get(name, "euler"), "simple"
            notes.append(f"scheduler {name!r} is not in Kinograph; {params['sampler']} on the simple schedule is the "
                         "nearest" + (" (the wrapper's distilled step list is its own)" if "flowmatch" in str(name)
                                      else ""))
        steps, denoise = params.get("steps", 30), params.pop("denoise", 1.0)
        start = self.resolve(cn.inputs.get("start_step", 0))
        end = self.resolve(cn.inputs.get("end_step", -1))
        if isinstance(cn.inputs.get("steps"), Ref) and "steps" not in params:
            steps = None        # only the run knows them: a start or end step is not measured from 30
            if isinstance(denoise, (int, float)) and denoise < 1.0:
                notes.append(f"denoise_strength {denoise:g} starts at step steps - int(steps x {denoise:g}) - 1 of "
                             "steps that come from a link; set start_step by hand")
        if isinstance(denoise, (int, float)) and denoise < 1.0 and isinstance(steps, int):
            params["start_step"] = max(steps - int(steps * denoise) - 1, 0)
        elif isinstance(start, int) and start > 0:
            params["start_step"] = start
            params["add_noise"] = self.resolve(cn.inputs.get("add_noise_to_samples")) is True
        if isinstance(end, int) and end != -1:
            params["end_step"] = end
            # (steps from a link: an end step set is taken to split the schedule, as it does in the wrapper's graphs)
            params["leftover_noise"] = end < steps if isinstance(steps, int) else True
        shift = self.number_or_link(cn, "shift", 5.0, "shift", notes)
        model = self.resolve(cn.inputs.get("model"))
        shifted = self.add("model.flow_shift", cn, {} if shift is None else {"shift": shift}, "_shift", dy=-160)
        if not self.link(model if isinstance(model, Out) else None, shifted, "model"):
            notes.append("input model comes from a node that did not convert; connect model by hand")
        nid = self.add(rule.node, cn, params)
        self.graph.connect(shifted, "model", nid, "model")
        embeds = self.resolve(cn.inputs.get("text_embeds"))
        for port in ("positive", "negative"):
            if not self.link(embeds.attrs.get(port) if isinstance(embeds, Out) else None, nid, port):
                notes.append(f"its text_embeds come from a node that did not convert; connect {port} by hand")
        source = "samples" if isinstance(cn.inputs.get("samples"), Ref) else "image_embeds"
        if not self.link(self.resolve(cn.inputs.get(source)), nid, "latent"):
            notes.append(f"its {source} come from a node that did not convert; connect latent by hand")
        self.untaken(cn, {"model", "text_embeds", "image_embeds", "samples"}, notes)
        self.outs[(cn.id, 0)] = Out((nid, "latent"))
        if self.slot_read(cn.id, 1):
            self.outs[(cn.id, 1)] = self.outs[(cn.id, 0)]
            notes.append("denoised_samples is read as sample's latent: the same where the schedule runs to noise 0, "
                         "as a full one does")
        return [shifted, nid]

    def special_was_seed(self, cn, rule, params, notes):
        """WAS's Seed: its seed, number, float and int outputs are all the one value."""
        for slot in range(4):
            self.outs[(cn.id, slot)] = Out(None, {"value": params.get("value")})
        return []

    def special_was_image_resize(self, cn, rule, params, notes):
        """WAS's Image Resize: rescale multiplies both sides (upscale.resize's scale); resize goes to the size given,
        each side rounded up to a multiple of 8, stretched. supersample resizes to 8x that size first, then down."""
        mode = self.resolve(cn.inputs.get("mode", "rescale"))
        supersample = self.resolve(cn.inputs.get("supersample", "true")) == "true"
        factor = self.number_or_link(cn, "rescale_factor", 2, "scale", notes) if mode == "rescale" else None
        if mode == "rescale" and factor == 1 and not supersample:
            src = self.resolve(cn.inputs.get("image"))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        if supersample:
            notes.append("supersample resizes to 8 times the size first and then down (a little softer); Kinograph "
                         "resizes once")
        if mode == "rescale":
            if params.get("method") == "bilinear":
                params["method"] = "bicubic"
                notes.append("upscale.resize has no bilinear; bicubic used (a little sharper)")
            nid = self.add("upscale.resize", cn, {**params, **({} if factor is None else {"scale": factor})})
            if not self.link(self.resolve(cn.inputs.get("image")), nid, "video"):
                notes.append("input image comes from a node that did not convert; connect video by hand")
            self.outs[(cn.id, 0)] = Out((nid, "video"))
            return [nid]
        params["fit"] = "stretch"
        for side in ("width", "height"):
            v = self.number_or_link(cn, f"resize_{side}", 1024, side, notes)
            if v is not None:
                params[side] = -(-int(v) // 8) * 8
            elif getattr(self.resolve(cn.inputs.get(f"resize_{side}")), "port", None) is not None:
                notes.append(f"resize_{side} from a link is rounded up to a multiple of 8 by WAS; Kinograph takes "
                             "it as it is")
        return [self.plain(cn, rule, params, notes)]

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

    def special_was_latent_upscale(self, cn, rule, params, notes):
        """WAS's Latent Upscale by Factor: torch's interpolate at `factor` (1 changes nothing: the latent goes on)."""
        if params.get("scale") == 1:
            src = self.resolve(cn.inputs.get("samples"))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        mode = self.choice(cn, "mode", "bilinear", notes)
        params["method"] = {"nearest": "nearest-exact"}.get(mode, mode)
        if mode == "nearest":
            notes.append("torch's nearest is read as nearest-exact (pixel centres): a picked sample can differ")
        if self.resolve(cn.inputs.get("align")) == "true" and mode in ("bilinear", "bicubic"):
            notes.append("align true (corner-aligned interpolation) is not carried: Kinograph interpolates between "
                         "pixel centres, as ComfyUI's LatentUpscaleBy does")
        return [self.plain(cn, rule, params, notes)]

    def special_power_prompt(self, cn, rule, params, notes):
        """rgthree's Power Prompt: the full one applies its prompt's <lora:name:strength> tags (strength 1 when left
        out, 0 skipped; model and clip alike) to its opt_model and opt_clip, a name without an extension read as
        .safetensors as the pack finds it, and encodes the text with the tags cut out; outputs CONDITIONING, (MODEL,
        CLIP,) TEXT. With no CLIP it gives the text alone."""
        from .mapping import RGTHREE_LORA_TAG
        text = str(params.get("text", ""))
        full = cn.class_type == "Power Prompt (rgthree)"
        made, model, clip = [], self.resolve(cn.inputs.get("opt_model")), self.resolve(cn.inputs.get("opt_clip"))
        if full and re.search(RGTHREE_LORA_TAG, text):
            loras = []
            for name, v in re.findall(RGTHREE_LORA_TAG, text):
                try:
                    strength = float(v or 1.0)
                except ValueError:      # '.', '-': rgthree's own float() stops the run on these
                    notes.append(f"<lora:{name}:{v}>'s strength {v!r} is not a number: the LoRA is left out; write "
                                 f"it as <lora:{name}:0.8>")
                    continue
                if strength != 0:
                    loras.append((name if "." in name.rsplit("/", 1)[-1] else name + ".safetensors", strength,
                                  strength))
            made, model, clip = self.chain_loras(cn, model if isinstance(model, Out) else None,
                                                 clip if isinstance(clip, Out) else None, loras, notes)
            params["text"] = text = re.sub(RGTHREE_LORA_TAG, "", text)
        self.outs[(cn.id, 3 if full else 1)] = Out(None, {"value": text})
        if full:
            self.outs[(cn.id, 1)] = model if isinstance(model, Out) else Out()
            self.outs[(cn.id, 2)] = clip if isinstance(clip, Out) else Out()
        if not isinstance(clip, Out) or not clip.port:
            return made
        nid = self.add(rule.node, cn, params)
        self.link(clip, nid, "text_encoder")
        self.outs[(cn.id, 0)] = Out((nid, "positive"))
        return made + [nid]

    def special_latent_range(self, cn, rule, params, notes):
        """KJNodes' GetLatentRangeFromBatch to the end (num_frames -1) drops the first start_index latent frames:
        latent.trim. A range that stops before the end has no Kinograph equivalent yet."""
        count, start = self.resolve(cn.inputs.get("num_frames", 1)), self.resolve(cn.inputs.get("start_index", 0))
        if count != -1 or not isinstance(start, int) or start < 0:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"start_index {start!r} with num_frames {count!r} keeps a range Kinograph has no node for: only "
                "num_frames -1 from a start_index of 0 or more (every frame from there on) maps, to latent.trim")
            return None
        return [self.plain(cn, rule, params, notes)]

    def special_vhs_combine(self, cn, rule, params, notes):
        fmt = self.resolve(cn.inputs.get("format")) or "video/h264-mp4"
        from .mapping import VHS_FORMATS, out_path
        codec, ext = VHS_FORMATS.get(fmt, ("h264", ".mp4"))
        if fmt not in VHS_FORMATS:
            notes.append(f"format {fmt!r} is not in Kinograph; H.264 MP4 written")
        params["codec"] = codec
        try:
            params["path"] = out_path(ext)(self.resolve(cn.inputs.get("filename_prefix")))
        except Approx as a:
            params["path"] = a.value
            notes.append(a.note)
        if isinstance(cn.inputs.get("audio"), Ref):
            notes.append("its audio input is not carried: the file keeps the sound the clip itself carries (from "
                         "io.load_video); to add other sound, mux it afterwards")
        vae = self.resolve(cn.inputs.get("vae"))
        if isinstance(vae, Out) and vae.port:
            # with a VAE connected VHS takes latents and decodes them first: vae.decode does that here
            made = [self.add("vae.decode", cn, {}, "_decode", dy=-160)]
            self.link(vae, made[0], "vae")
            if not self.link(self.resolve(cn.inputs.get("images")), made[0], "latent"):
                notes.append("input images comes from a node that did not convert; connect the decoder's latent "
                             "by hand")
            nid = self.add(rule.node, cn, params)
            self.graph.connect(made[0], "video", nid, "video")
            made.append(nid)
        else:
            nid = self.plain(cn, rule, params, notes)
            made = [nid]
        if self.resolve(cn.inputs.get("pingpong")) is True and self.graph.inputs.get(nid, {}).get("video"):
            # VHS appends the frames backwards, without repeating the turning ones: video.pingpong does the same
            pp = self.add("video.pingpong", cn, {}, "_pingpong", dy=-120)
            self.graph.connect(*self.graph.inputs[nid]["video"], pp, "video")
            self.graph.connect(pp, "video", nid, "video")
            made.insert(-1, pp)
        return made

    def special_load_image_mask(self, cn, rule, params, notes):
        """alpha: io.load_image's mask (1 - alpha); red, green or blue: that channel of its picture."""
        nid = self.plain(cn, rule, params, notes)
        channel = self.resolve(cn.inputs.get("channel", "alpha"))
        if channel == "alpha":
            return [nid]
        if channel not in ("red", "green", "blue"):
            notes.append(f"channel {channel!r} is not red, green, blue or alpha; red used")
            channel = "red"
        notes.append("a colour channel is read from the picture laid over black where it is transparent (ComfyUI "
                     "reads the colour as stored): the same for an opaque mask picture")
        pick = self.add("mask.from_video", cn, {"channel": channel}, "_channel", dy=120.0)
        self.graph.connect(nid, "image", pick, "video")
        self.outs[(cn.id, 0)] = Out((pick, "mask"))
        return [nid, pick]

    def special_join_alpha(self, cn, rule, params, notes):
        """The MASK (1 = transparent) as a picture, taken as the clip's alpha by its luma, inverted."""
        pic = self.add("mask.to_video", cn, {}, "_picture", dy=-120.0)
        self.link(self.resolve(cn.inputs.get("alpha")), pic, "mask") or notes.append(
            "input alpha comes from a node that did not convert; connect mask.to_video's mask by hand")
        nid = self.add(rule.node, cn, {"mode": "luma", "invert": True})
        self.link(self.resolve(cn.inputs.get("image")), nid, "video") or notes.append(
            "input image comes from a node that did not convert; connect video by hand")
        self.graph.connect(pic, "video", nid, "source")
        self.outs[(cn.id, 0)] = Out((nid, "video"))
        return [pic, nid]

    def special_split_alpha(self, cn, rule, params, notes):
        """The picture passes on as it is (its alpha travels beside it); the mask is its alpha, inverted."""
        src = self.resolve(cn.inputs.get("image"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        nid = self.add(rule.node, cn, {"channel": "alpha"})
        self.link(src, nid, "video") or notes.append("input image comes from a node that did not convert; connect "
                                                     "video by hand")
        inv = self.add("mask.invert", cn, {}, "_invert", dy=120.0)
        self.graph.connect(nid, "mask", inv, "mask")
        self.outs[(cn.id, 1)] = Out((inv, "mask"))
        return [nid, inv]

    def special_vhs_load(self, cn, rule, params, notes):
        size = self.resolve(cn.inputs.get("force_size")) or "Disabled"
        w, h = self.resolve(cn.inputs.get("custom_width")), self.resolve(cn.inputs.get("custom_height"))
        if size in ("Custom", "Custom Width"):
            params["width"] = w
        if size in ("Custom", "Custom Height"):
            params["height"] = h
        fixed = re.fullmatch(r"(\d+|\?)x(\d+|\?)", str(size))       # VHS's presets: "512x?", "?x768", "1024x576"
        if fixed:
            for side, v in (("width", fixed[1]), ("height", fixed[2])):
                if v != "?":
                    params[side] = int(v)
        elif size not in ("Disabled", "Custom", "Custom Width", "Custom Height"):
            notes.append(f"force_size {size!r} is not carried; set width/height")
        nid = self.plain(cn, rule, params, notes)
        vae = self.resolve(cn.inputs.get("vae"))
        if not isinstance(vae, Out) or not vae.port:
            return [nid]
        # with a VAE connected VHS encodes the frames and outputs latents: vae.encode does that here
        enc = self.add("vae.encode", cn, {}, "_encode", dy=160)
        self.graph.connect(nid, "video", enc, "video")
        self.link(vae, enc, "vae")
        self.outs[(cn.id, 0)] = Out((enc, "latent"))
        return [nid, enc]

    def special_video_info(self, cn, rule, params, notes):
        """VHS's facts about a loaded clip. Its frame rate as loaded is the clip's own, which io.save_video keeps by
        default; the source file's rate is the same when the load did not force another. Counts and sizes are only
        known when the workflow runs: a node that reads them is told to set them by hand."""
        src = self.resolve(cn.inputs.get("video_info"))
        load = self.graph.nodes.get(src.port[0]) if isinstance(src, Out) and src.port else None
        forced = bool(load is not None and load.params.get("fps"))
        slots = {"VHS_VideoInfoLoaded": {0: True}, "VHS_VideoInfoSource": {0: not forced},
                 "VHS_VideoInfo": {0: not forced, 5: True}}[cn.class_type]
        for slot, same in slots.items():
            if same and load is not None:
                self.outs[(cn.id, slot)] = Out(None, {"clip_fps": (src.port[0], 1.0)})
        return []

    def special_upscale_model(self, cn, rule, params, notes):
        """The loader's file becomes upscale.model's `model`; ComfyUI's tiles (512, overlap 32) are its defaults."""
        loader = self.resolve(cn.inputs.get("upscale_model"))
        model = loader.attrs.get("model") if isinstance(loader, Out) else None
        if isinstance(model, str) and model:
            params["model"] = model
        else:
            notes.append("its upscale_model comes from a node that did not convert; set model by hand")
        return [self.plain(cn, rule, params, notes)]

    def special_frame_interpolate(self, cn, rule, params, notes):
        """RIFE weights run as interpolate.rife; FILM's, which Kinograph has no network for, as FILM VFI's do."""
        loader = self.resolve(cn.inputs.get("interp_model") or cn.inputs.get("model"))
        model = loader.attrs.get("model") if isinstance(loader, Out) else None
        if not isinstance(model, str) or not model:
            notes.append("its interp_model comes from a node that did not convert; set model by hand")
        elif "film" in model.lower():
            film = RULES["FILM VFI"]
            notes.append(film.note)
            return [self.plain(cn, Rule(film.node, outputs=rule.outputs, inputs=rule.inputs),
                               {**film.fixed, "factor": params.get("factor", 2)}, notes)]
        else:
            params["model"] = model
        return [self.plain(cn, rule, params, notes)]

    def special_vfi(self, cn, rule, params, notes):
        if isinstance(cn.inputs.get("optional_interpolation_states"), Ref):
            notes.append("optional_interpolation_states (frames to skip) is not carried: every pair is interpolated")
        return [self.plain(cn, rule, params, notes)]

    def special_xlabs_sampler(self, cn, rule, params, notes):
        """x-flux-comfyui's XlabsSampler: sample with the controls its controlnet_condition wire carries on its model
        (control.apply), FluxGuidance's guidance as cfg (1.0 without one, as XlabsSampler reads it), its true CFG
        where it starts within the steps (guide.true_cfg with the negative prompt), and a note for each of its
        settings that would change the picture and Kinograph does not carry."""
        steps = params.get("steps", 20)
        setting = {k: self.resolve(cn.inputs.get(k)) for k in ("timestep_to_start_cfg", "true_gs",
                                                                "image_to_image_strength", "denoise_strength")}
        start_cfg, true_gs = setting["timestep_to_start_cfg"], setting["true_gs"]
        denoise, i2i = setting["denoise_strength"], setting["image_to_image_strength"]
        if isinstance(denoise, (int, float)) and denoise <= 0.99:
            kept = max(int((steps + 1) * denoise) - 1, 0)
            notes.append(f"denoise_strength {denoise} stops XLabs' schedule after {kept} of its {steps} steps, "
                         "leaving the rest of the noise in the latent; Kinograph runs the whole schedule")
            steps = kept
        true_cfg = isinstance(start_cfg, int) and isinstance(true_gs, (int, float)) and start_cfg < steps \
            and true_gs != 1
        lat = self.resolve(cn.inputs.get("latent_image"))
        if isinstance(i2i, (int, float)) and i2i > 0:
            notes.append(f"image_to_image_strength {i2i} (XLabs starts from a 16-channel latent given, at that "
                         "strength) is not carried: the picture is generated from noise; for image to image use "
                         "sample's denoise")
        pos = self.resolve(cn.inputs.get("conditioning"))
        params["cfg"] = pos.attrs["guidance"] if isinstance(pos, Out) and "guidance" in pos.attrs else 1.0
        model, made = self.control_model(cn, self.resolve(cn.inputs.get("model")),
                                         (self.resolve(cn.inputs.get("controlnet_condition")),))
        wires = [("model", model), ("positive", pos), ("latent", lat)]
        if true_cfg and isinstance(model, Out) and model.port:
            # from step timestep_to_start_cfg on, as XlabsSampler: guide.true_cfg and the negative prompt
            made.append(self.add("guide.true_cfg", cn, {"scale": true_gs, "start": start_cfg}, "_true_cfg", dy=-80))
            self.link(model, made[-1], "model")
            wires += [("model", Out((made[-1], "model"))), ("negative", self.resolve(cn.inputs.get("neg_conditioning")))]
        nid = self.add(rule.node, cn, params)
        for port, v in dict(wires).items():
            if isinstance(v, Out) and v.port:
                self.link(v, nid, port)
            else:
                notes.append(f"input {port} comes from a node that did not convert; connect it by hand")
        self.outs[(cn.id, 0)] = Out((nid, "latent"))
        return made + [nid]

    def special_controlnet(self, cn, rule, params, notes):
        """The control rides on the conditioning (attrs "controls") to the sampler, which puts control.apply on its
        model (special_sampler): ComfyUI's ControlNet is applied while sampling, whatever conditioning carries it."""
        cnet = self.resolve(cn.inputs.get("control_net", cn.inputs.get("controlnet")))
        path = cnet.attrs.get("path") if isinstance(cnet, Out) else None
        image = self.resolve(cn.inputs.get("image"))
        if not isinstance(path, str) or not path or not (isinstance(image, Out) and image.port):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("its control_net or image comes from a node that did not convert")
            return None
        control = {"path": path, "video": image, **{k: params[k] for k in ("strength", "start", "end") if k in params}}
        if cnet.attrs.get("mode"):
            control["mode"] = cnet.attrs["mode"]
        vae = self.resolve(cn.inputs.get("vae"))
        if isinstance(vae, Out) and vae.port:       # what a FLUX.1 ControlNet encodes its pictures with
            control["vae"] = vae
        mask = self.resolve(cn.inputs.get("mask"))
        if isinstance(mask, Out) and mask.port:     # ControlNetInpaintingAliMamaApply's region to redraw
            control["mask"] = mask
        elif "inpaint_mask" in image.attrs:         # InpaintPreprocessor's, riding with its picture
            control["mask"] = image.attrs["inpaint_mask"]
        for k in ("mask_optional", "timestep_kf", "latent_kf_override", "weights_override", "model_optional"):
            if isinstance(cn.inputs.get(k), Ref):
                notes.append(f"{k} is not carried")
        names = {"ControlNetApply": ("conditioning",), "ApplyFluxControlNet": ("controlnet_condition",),
                 "ApplyAdvancedFluxControlNet": ("controlnet_condition",)}.get(cn.class_type, ("positive", "negative"))
        for slot, name in enumerate(names):
            v = self.resolve(cn.inputs.get(name))
            base = v if isinstance(v, Out) else Out()
            self.outs[(cn.id, slot)] = Out(base.port, {**base.attrs,
                                                       "controls": base.attrs.get("controls", ()) + (control,)})
        return []

    def special_inpaint_preprocessor(self, cn, rule, params, notes):
        """comfyui_controlnet_aux's InpaintPreprocessor: its picture (the masked pixels -1) is no picture a video holds,
        so the mask rides with the image to the ControlNet apply, whose control.apply sets those pixels."""
        image, mask = self.resolve(cn.inputs.get("image")), self.resolve(cn.inputs.get("mask"))
        if not (isinstance(image, Out) and image.port and isinstance(mask, Out) and mask.port):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("its image or mask comes from a node that did not convert")
            return None
        self.outs[(cn.id, 0)] = Out(image.port, {**image.attrs, "inpaint_mask": mask})
        notes.append("the mask goes with the picture to control.apply's mask, which gives an SD / SDXL ControlNet the "
                     "masked pixels as -1; anything else fed from this node (a preview) gets the picture unmasked")
        return []

    def special_aio(self, cn, rule, params, notes):
        """comfyui_controlnet_aux's AIO_Preprocessor: the preprocessor it names, converted by that one's own rule with
        the widgets AIO hands it (their defaults, AIO_DEFAULTS) and the AIO's resolution; one Kinograph does not map
        leaves a placeholder that names it."""
        name = self.resolve(cn.inputs.get("preprocessor", "none"))
        if not isinstance(name, str):
            self.not_constant(cn, "preprocessor")
            return None
        if name == "none":      # the image passed on as it is
            image = self.resolve(cn.inputs.get("image"))
            self.outs[(cn.id, 0)] = image if isinstance(image, Out) else Out()
            return []
        target = RULES.get(name)
        if target is None or target.node is None or "image" not in target.inputs:
            self.placeholder(cn)
            why = f": {INSTEAD[name]}" if name in INSTEAD else " has no Kinograph equivalent"
            self.report.entries[cn.id].notes[0] = f"its preprocessor {name}{why}; a placeholder marks its place"
            return None
        said = [f"runs {name}"]
        resolution = cn.inputs.get("resolution", 512)
        if not isinstance(resolution, Ref) and not (type(resolution) is int and resolution >= 64):
            # the pack's common_annotator_call: a resolution that is not a whole number of 64 or more is 512
            said.append(f"resolution {resolution!r} is below 64 or not a whole number: 512 used, as "
                        "comfyui_controlnet_aux does")
            resolution = 512
        inputs = {**AIO_DEFAULTS.get(name, {}), "resolution": resolution}
        if "image" in cn.inputs:        # left unconnected, it stays so (not "from a node that did not convert")
            inputs["image"] = cn.inputs["image"]
        unknown = [w for w in target.widgets if w not in inputs]
        if unknown:
            said.append(f"{', '.join(unknown)}: Kinograph's defaults, which may not be {name}'s own")
        self.convert(dataclasses.replace(cn, class_type=name, inputs=inputs, missing_widgets=()), target)
        entry = self.report.entries[cn.id]
        entry.class_type, entry.notes = cn.class_type, said + entry.notes
        if len(said) > 1 and entry.status == EXACT:
            entry.status = APPROX
        return None

    def special_union_type(self, cn, rule, params, notes):
        """SetUnionControlNetType: ComfyUI hands the net the type's index in xinsir's ControlNet++ order. An SDXL union
        (xinsir's) reads it as that type; a FLUX.1 union reads the index unchanged, so the import keeps that row,
        named as InstantX's union reads it (their "depth" is its tile)."""
        from nodes.generate.control import SDXL_UNION_MODES, UNION_MODES
        cnet = self.resolve(cn.inputs.get("control_net"))
        base = cnet if isinstance(cnet, Out) else Out()
        kind = str(self.resolve(cn.inputs.get("type")) or "auto")
        mode = "auto"
        row = COMFY_UNION_TYPES.index(kind) if kind in COMFY_UNION_TYPES else -1
        flux = self._flux_net(base.attrs.get("path"))
        if flux == "plain":
            if kind != "auto":
                notes.append(f"{base.attrs.get('path')} is a FLUX.1 ControlNet of one kind (no mode rows), which "
                             f"ComfyUI runs without the type: mode auto, {kind!r} not carried")
        elif flux:
            if 0 <= row < len(UNION_MODES):
                mode = UNION_MODES[row]
                if mode not in kind:
                    notes.append(f"ComfyUI gives a union ControlNet row {row} for {kind!r}, which an InstantX / "
                                 f"Shakker-Labs FLUX.1 union reads as {mode}: mode {mode} samples as ComfyUI does "
                                 "(set the mode the picture is, to steer as the net was trained)")
            elif kind != "auto":
                notes.append(f"type {kind!r} is no row a FLUX.1 union was trained on: mode auto (no type told)")
        elif row >= 0:
            mode = SDXL_UNION_MODES[row]
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, "mode": mode})
        return []

    @staticmethod
    def _flux_net(name) -> str:
        """"union" where the ControlNet file `name` is a FLUX.1 union (InstantX's, Shakker-Labs'), "plain" where it is
        a FLUX.1 net without mode rows (XLabs', MistoLine's, a canny or depth one, whose forward ComfyUI hands no
        type), by its tensors where it is in the model folders now, else "union" by a name with flux in it; "" for
        anything else, taken for xinsir's SDXL union, which SetUnionControlNetType was made for."""
        if not isinstance(name, str) or not name:
            return ""
        try:
            from nodes.generate.detect import detect_file
            from nodes.generate.model_manager import resolve_model_path
            path = resolve_model_path(name, "controlnet", "ControlNet")
            if path.is_file():
                det = detect_file(path)
                if det.family != "flux":
                    return ""
                return "union" if det.variant == "instantx-union" else "plain"
        except Exception:  # noqa: BLE001 - a file that is not there or not readable: its name tells
            pass
        return "union" if "flux" in name.lower() else ""

    def control_model(self, cn, model: Out, conds) -> Tuple[Out, List[str]]:
        """`model` through a control.apply for each ControlNet the conditionings carry (each once)."""
        made, seen = [], set()
        for cond in conds:
            for c in (cond.attrs.get("controls", ()) if isinstance(cond, Out) else ()):
                if id(c) in seen or not (isinstance(model, Out) and model.port):
                    continue
                seen.add(id(c))
                key = (model.port, id(c))
                if key not in self.control_nodes:
                    nid = self.add("control.apply", cn, {**{k: v for k, v in c.items()
                                                            if k not in ("video", "vae", "mask")},
                                                         "preprocessor": "none"}, f"_control{len(seen)}", dy=-160)
                    self.link(model, nid, "model")
                    self.link(c["video"], nid, "video")
                    for port in ("vae", "mask"):
                        if port in c:
                            self.link(c[port], nid, port)
                    self.control_nodes[key] = nid
                    made.append(nid)
                model = Out((self.control_nodes[key], "model"))
        return model, made

    def special_prompt_schedule(self, cn, rule, params, notes):
        """FizzNodes' keyframes ("FRAME": "prompt", ... as JSON object members), each with pre_text before it and
        app_text after it, as Kinograph's `FRAME: (prompt)` schedule; its NEG output is the empty prompt."""
        text = str(self.resolve(cn.inputs.get("text")) or "")
        pre, app = (str(self.resolve(cn.inputs.get(k)) or "").strip().rstrip(",").strip()
                    for k in ("pre_text", "app_text"))
        keys = re.findall(r'"\s*(\d+)\s*"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        if not keys:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append('its text has no "FRAME": "prompt" keyframes to read')
            return None
        keys = sorted({int(f): p for f, p in keys}.items())         # FizzNodes keeps the last of a repeated frame
        parts = [", ".join(x for x in (pre, p.replace('\\"', '"').strip().rstrip(",").strip(), app) if x)
                 for _, p in keys]
        params["text"] = ", ".join(f"{f}: ({part})" for (f, _), part in zip(keys, parts))
        if "--neg" in text or re.search(r"\bpw_[abcd]\b", text):
            notes.append("its --neg parts and pw_a..pw_d weights are not carried")
        return [self.plain(cn, rule, params, notes)]

    def special_checkpoint_config(self, cn, rule, params, notes):
        """CheckpointLoader: the layout comes from the file, but a v-parameterization yaml (ComfyUI's
        v2-inference-v.yaml, v1-inference-v.yaml) says what the file does not: model.sampling v_prediction follows
        the loader, or the 768-v model would be sampled as epsilon (grey noise)."""
        loader = self.plain(cn, rule, params, notes)
        if not V_CONFIG.search(str(self.resolve(cn.inputs.get("config_name")) or "")):
            return [loader]
        notes.append(f"{self.resolve(cn.inputs.get('config_name'))} says v-prediction: model.sampling sets it")
        made = self.add("model.sampling", cn, {"prediction": "v_prediction", "zsnr": False}, "_v", dy=120)
        self.link(Out((loader, "model")), made, "model")
        self.outs[(cn.id, 0)] = Out((made, "model"))
        return [loader, made]

    def special_efficient_loader(self, cn, rule, params, notes):
        """One node of efficiency-nodes as the Kinograph nodes it bundles: load.model, load.vae (unless the baked
        VAE), lora.image (unless None), one encode.text for both prompts, latent.empty."""
        v = lambda k: self.resolve(cn.inputs.get(k))       # noqa: E731
        loader = self.add(rule.node, cn, params)
        made, model, vae = [loader], Out((loader, "model")), Out((loader, "vae"))
        if v("vae_name") not in (None, "", "Baked VAE"):
            made.append(self.add("load.vae", cn, {"name": v("vae_name")}, "_vae", dy=120))
            vae = Out((made[-1], "vae"))
        text = Out((loader, "text_encoder"))
        loras = []
        if v("lora_name") not in (None, "", "None"):
            loras.append((v("lora_name"), v("lora_model_strength"), v("lora_clip_strength")))
        stack = v("lora_stack")
        if isinstance(stack, Out) and "lora_stack" in stack.attrs:
            loras += stack.attrs["lora_stack"]
        chained, model, text = self.chain_loras(cn, model, text, loras, notes)
        made += chained
        for k in ("lora_stack", "cnet_stack"):
            if isinstance(cn.inputs.get(k), Ref) and not (k == "lora_stack" and isinstance(stack, Out)
                                                          and "lora_stack" in stack.attrs):
                notes.append(f"its {k} input is not carried")
        skip = v("clip_skip")
        enc = {"text": v("positive") or "", "negative": v("negative") or "", "weighting": "comfy"}
        if isinstance(skip, int) and skip < -1:
            enc["clip_skip"] = -skip
        made.append(self.add("encode.text", cn, enc, "_prompts", dy=360))
        self.link(text, made[-1], "text_encoder")
        size = {"width": v("empty_latent_width"), "height": v("empty_latent_height"), "frames": v("batch_size")}
        made.append(self.add("latent.empty", cn, {k: x for k, x in size.items() if isinstance(x, int)}, "_latent",
                             dy=480))
        self.link(vae, made[-1], "vae")
        self.outs.update({(cn.id, 0): model, (cn.id, 1): Out((made[-2], "positive")),
                          (cn.id, 2): Out((made[-2], "negative")), (cn.id, 3): Out((made[-1], "latent")),
                          (cn.id, 4): vae, (cn.id, 5): text})
        return made

    def special_efficient_sampler(self, cn, rule, params, notes):
        """KSampler, then what efficiency-nodes' sampler passes on; its IMAGE is the latent decoded (vae_decode)."""
        made = self.special_sampler(cn, rule, params, notes)
        latent = self.outs.pop((cn.id, 0))
        self.outs[(cn.id, 3)] = latent
        for slot, k in ((0, "model"), (1, "positive"), (2, "negative"), (4, "optional_vae")):
            v = self.resolve(cn.inputs.get(k))
            if isinstance(v, Out):
                self.outs[(cn.id, slot)] = v
        vae = self.resolve(cn.inputs.get("optional_vae"))
        if str(self.resolve(cn.inputs.get("vae_decode"))).startswith("true") and isinstance(vae, Out) and vae.port:
            made.append(self.add("vae.decode", cn, {}, "_decode", dy=200))
            self.link(latent, made[-1], "latent")
            self.link(vae, made[-1], "vae")
            self.outs[(cn.id, 5)] = Out((made[-1], "video"))
        if isinstance(cn.inputs.get("script"), Ref):
            notes.append("its script input (HighRes-Fix, XY Plot, ...) is not carried")
        return made

    def special_webm_codec(self, cn, rule, params, notes):
        codec = self.resolve(cn.inputs.get("codec")) or "vp9"
        if codec == "av1":
            params["codec"] = "av1"
            params["path"] = params.get("path", "out/ComfyUI.webm")[: -len(".webm")] + ".mp4"
            notes.append("AV1 is written in an MP4 container")
        return [self.plain(cn, rule, params, notes)]


# ComfyUI's v-parameterization configs (v2-inference-v.yaml, v2-inference-v_fp32.yaml, v1-inference-v.yaml).
V_CONFIG = re.compile(r"-v(_fp\d+)?\.ya?ml$", re.I)


def comfy_denoise(params: Dict[str, Any]) -> None:
    """ComfyUI's steps and denoise below 1 in Kinograph's terms. ComfyUI runs all `steps` over the last
    part of a schedule of int(steps / denoise) steps; Kinograph's sample runs the last round(steps * denoise)
    of `steps`. So steps 20, denoise 0.5 becomes steps 40, denoise 0.5, and steps 4, denoise 0.3 (a
    distilled model's video-to-video) steps 13, denoise 4/13: the same noise levels, the same step count."""
    steps, denoise = params.get("steps"), params.get("denoise", 1.0)
    if not isinstance(steps, int) or not isinstance(denoise, (int, float)) or not 0 < denoise <= 0.9999 \
            or "start_step" in params or "end_step" in params:      # those count steps as the file gives them
        return
    total = int(steps / denoise)
    if 0 < steps <= total <= 1000:       # generate.sample's largest step count
        params["steps"], params["denoise"] = total, steps / total


def unmapped_note(cn: CNode) -> str:
    """What the node is and what to do: a group node or a subgraph without its definition is a bundle of
    nodes Kinograph may well have, not a node it lacks; a custom node's pack tells the user where it came from."""
    mark = "a placeholder marks its place"
    if cn.class_type.startswith(("workflow>", "workflow/")):
        return (f"a group node (ComfyUI's older bundle of nodes), which Kinograph does not open: in ComfyUI "
                f"right-click it > Convert to nodes, save, and import again; {mark}")
    if UUID.fullmatch(cn.class_type):
        return (f"a subgraph whose definition is missing from the file (definitions.subgraphs): save the workflow "
                f"again from ComfyUI and import that; {mark}")
    if cn.class_type in INSTEAD:
        return f"{INSTEAD[cn.class_type]}; {mark}"
    if cn.pack and not cn.pack.startswith("comfy-core"):
        return f"no Kinograph equivalent (from the custom node pack {cn.pack}): {mark}"
    return f"no Kinograph equivalent: {mark}"


def convert(flat: Flat, registry=None) -> Tuple[Graph, Report]:
    return Converter(flat, registry).run()
