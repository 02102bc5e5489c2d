"""SAM 3 and kijai's SAM 2 nodes, with KJNodes' PointsEditor that feeds them, and RT-DETR's detector."""
from __future__ import annotations

import math

from ..flatten import Ref
from ..mapping import Approx
from ..out import Out
from ..report import EXACT, Entry


# The nodes that find objects from a text prompt (SAM3_Detect's and SAM3_VideoTrack's)
TEXT_NODES = ("mask.segment", "mask.segment_objects")


class Segmentation:
    def special_sam3_detect(self, cn, rule, params, notes):
        """SAM 3 as ComfyUI wires it: the file from a CheckpointLoaderSimple, the prompt from a CLIPTextEncode on
        that loader's CLIP. Both become mask.segment's model and prompt; the loader and the encoder go where nothing
        else uses them (a load.model of SAM 3's file would not run). Clicks (positive_coords) and no text make it
        mask.track_points on the same folder."""
        from dataclasses import replace
        from ..mapping import SAM3_POINTS_NOTE, sam3_folder
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
            if param == "prompt" and rule.node not in TEXT_NODES:
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
        for port in ("bboxes", "initial_mask") + (("positive_coords", "negative_coords")
                                                  if rule.node in TEXT_NODES else ()):
            if isinstance(cn.inputs.get(port), Ref):
                notes.append(f"{port} is not carried: {rule.node} finds objects from the "
                             f"{'text prompt' if rule.node in TEXT_NODES else 'points'}")
        nid = self.plain(cn, rule, params, notes)
        self._fold_sources(cn, sources, nid, f"folded into {rule.node}: SAM 3's model" + " and prompt" * (
            rule.node in TEXT_NODES))
        return [nid]

    def _fold_sources(self, cn, sources, nid, why):
        """The loaders whose file became a param of `nid` go where nothing else uses them: nothing but this node and
        SAM 3 nodes converted before it, and the prompts folded into those (SCAIL-2's template tracks the driving
        video and the reference with one SAM 3 loader)."""
        def done(cid):
            e = self.report.entries.get(cid)
            return e is not None and (e.class_type in ("SAM3_Detect", "SAM3_VideoTrack")
                                      or any(str(w).startswith("folded into mask.") for w in e.notes))
        for cid in sources:
            if all(c in sources or c == cn.id or done(c) for c in self.consumers.get(cid, ())):
                gone = self.report.entries[cid]
                for made in gone.kinograph:
                    if made in self.graph.nodes:
                        self.graph.remove_node(made)
                        self.graph.ui.pop(made, None)
                self.report.add(Entry(cid, gone.class_type, gone.title, EXACT, [nid], [why]))

    def special_rtdetr_detect(self, cn, rule, params, notes):
        """ComfyUI loads RT-DETR's file with a UNETLoader; that file becomes detect.rtdetr's model (a
        load.diffusion_model of it would not run) and the loader goes where nothing else uses it."""
        ref = cn.inputs.get("model")
        out = self.resolve(ref)
        node = out.port[0] if isinstance(out, Out) and out.port else None
        name = self.graph.nodes[node].params.get("name") if node is not None else None
        if not name:
            notes.append("its model comes from a node Kinograph cannot read a file name from; set model by hand")
            return [self.plain(cn, rule, params, notes)]
        params["model"] = name
        nid = self.plain(cn, rule, params, notes)
        self._fold_sources(cn, {ref.node: node}, nid, f"folded into {rule.node}: RT-DETR's file")
        return [nid]

    def special_points_editor(self, cn, rule, params, notes):
        """KJNodes' PointsEditor: its positive and negative points (JSON strings in its widgets) passed on as the
        values a SAM node's coordinates take, its boxes (drawn corners in its bboxes widget) as mask.track_points'
        box, one per object."""
        for slot, key in ((0, "coordinates"), (1, "neg_coordinates")):
            self.outs[(cn.id, slot)] = Out(None, {"value": str(self.resolve(cn.inputs.get(key)) or "")})
        from ..mapping import points_editor_boxes
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
            from ..mapping import individual_objects
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
