"""ComfyUI's own nodes for loading, prompts, constants, switches, maths, latents and sampling."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List

from ..flatten import Ref
from ..out import Out


# ComfyUI's own shift of a flow model no ModelSamplingSD3 patches (comfy/supported_models.py sampling_settings: WAN21_T2V
# and the Wan classes after it, Kandinsky5), for the families whose Kinograph default is their diffusers scheduler's
# other one (Wan 3, Kandinsky 5 video 5); HunyuanVideo's and HunyuanVideo 1.5's (7, the SR model 2) are ComfyUI's.
COMFY_SHIFTS = {"wan": 8.0, "kandinsky5": 10.0}

# ComfyUI's v-parameterization configs (v2-inference-v.yaml, v2-inference-v_fp32.yaml, v1-inference-v.yaml).
V_CONFIG = re.compile(r"-v(_fp\d+)?\.ya?ml$", re.I)


class CoreNodes:
    def special_latent_noise_mask(self, cn, rule, params, notes):
        """On LTX-2's encoded song (LTXVAudioVAEEncode), a mask of 0 keeps the sound as given: latent.set_sound
        does so where the streams are joined. Any other latent gets latent.set_mask."""
        song = self.resolve(cn.inputs.get("samples"))
        if not (isinstance(song, Out) and "ltx2_song" in song.attrs):
            return [self.plain(cn, rule, params, notes)]
        mask = self.resolve(cn.inputs.get("mask"))
        made = self.graph.nodes.get(mask.port[0]) if isinstance(mask, Out) and mask.port else None
        if made is None or made.type != "mask.solid" or float(made.params.get("value", 1.0)) != 0.0:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("a noise mask other than SolidMask 0 on the song: Kinograph "
                                                    "keeps a given sound whole (latent.set_sound)")
            return None
        self.outs[(cn.id, 0)] = Out(None, {**song.attrs, "ltx2_keep": True})
        self.finish(cn, dataclasses.replace(rule, note=""), [], notes)     # no mask reaches a latent grid here
        return None

    def special_da3(self, cn, rule, params, notes):
        """DA3Inference reads the network LoadDA3Model loads: its file and weight type become depth.da3's model
        and precision."""
        loader = self.resolve(cn.inputs.get("da3_model"))
        if isinstance(loader, Out) and loader.port is None and "model" in loader.attrs:
            for k in ("model", "precision"):
                if k in loader.attrs:
                    params.setdefault(k, loader.attrs[k])
        else:
            notes.append("its da3_model does not come from LoadDA3Model: set depth.da3's model by hand")
        if params.get("mode") == "multiview":
            from nodes.depth.da3 import REF_VIEWS
            ref = self.resolve(cn.inputs.get("mode.ref_view_strategy"))
            if ref in REF_VIEWS:
                params["ref_view"] = ref
            notes.append("multiview sees the frames in groups of `views` (8 here), ComfyUI the whole batch as one "
                         "scene; the camera poses it also finds there are not made (nothing here reads them)")
        return [self.plain(cn, rule, params, notes)]

    def special_da3_render(self, cn, rule, params, notes):
        """DA3Render's widgets after `output` are that output's: normalization and apply_sky_clip for the depth
        pictures, colored for sky_mask and confidence (stored where normalization is for depth)."""
        if params.get("output") in ("sky_mask", "confidence"):
            if "normalization" in params:
                params.setdefault("colored", bool(params.pop("normalization")))
            params.pop("sky_clip", None)
        elif params.get("normalization", "v2_style") == "v2_style":
            notes.append("v2_style takes each frame's percentiles over all its pixels, ComfyUI over 100,000 drawn at "
                         "random (on a frame larger than that its levels move a little from run to run)")
        elif params.get("normalization") == "raw":
            notes.append("raw depth is shown 0..1 (more is white) in 8-bit pictures, where ComfyUI keeps the float")
        return [self.plain(cn, rule, params, notes)]

    def special_clip_skip(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("clip"))
        base = src if isinstance(src, Out) else Out()
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, "clip_skip": params.get("clip_skip", 1)})
        return []

    def special_through(self, cn, rule, params, notes):
        """A node that changes nothing Kinograph computes (a setting of how ComfyUI runs the model, a wrapper of a
        mesh as a file): the value of its one input passes on unchanged."""
        src = self.resolve(cn.inputs.get(next(iter(rule.inputs))))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        return []

    def special_splat_file(self, cn, rule, params, notes):
        """SplatToFile3D: the splat passes on with the format its saver writes (Kinograph's io.save_splat writes
        .spz and .ply)."""
        src = self.resolve(cn.inputs.get("splat"))
        base = src if isinstance(src, Out) else Out()
        fmt = str(params.get("format", "spz"))
        if fmt not in ("spz", "ply"):
            notes.append(f"format {fmt} is not written here: the splat is saved as .ply (3DGS's layout, which the "
                         f"viewers of .{fmt} files open too)")
            fmt = "ply"
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, "splat_format": fmt})
        return []

    def special_save_3d(self, cn, rule, params, notes):
        """SaveGLB: a mesh to io.save_glb; a splat file (SplatToFile3D's) to io.save_splat under the same name,
        with its format's suffix (ComfyUI saves the file as it is)."""
        src = self.resolve(cn.inputs.get("mesh"))
        fmt = src.attrs.get("splat_format") if isinstance(src, Out) else None
        if fmt is None:
            return [self.plain(cn, rule, params, notes)]
        path = str(params.get("path", "out/ComfyUI.glb"))
        nid = self.add("io.save_splat", cn, {"path": path[:-len(".glb")] + "." + fmt
                                             if path.endswith(".glb") else path})
        if not self.link(src, nid, "splat"):
            notes.append("input mesh comes from a node that did not convert; connect splat by hand")
        return [nid]

    def special_camera_info(self, cn, rule, params, notes):
        """CreateCameraInfo: its camera as the settings of the splat.render it feeds (orbit or look_at; its slots
        after the mode hold yaw, pitch, distance or the eye's x, y, z)."""
        mode = str(params.get("mode", "orbit"))
        a, b, c = (params.get(k) for k in ("yaw", "pitch", "distance"))
        if mode not in ("orbit", "look_at"):
            notes.append(f"camera mode {mode} is not read: the render frames the splat itself (camera auto)")
            self.outs[(cn.id, 0)] = Out(None, {"camera": "auto"})
            return []
        attrs = {"camera": mode, **({"yaw": a, "pitch": b, "distance": c} if mode == "orbit" else
                                    {"eye_x": a, "eye_y": b, "eye_z": c})}
        attrs.update({k: params[k] for k in ("target_x", "target_y", "target_z", "roll", "fov", "zoom", "projection")
                      if k in params})
        self.outs[(cn.id, 0)] = Out(None, attrs)
        return []

    def special_render_splat(self, cn, rule, params, notes):
        """RenderSplat: splat.render, its camera CreateCameraInfo's settings (none: framed automatically)."""
        src = self.resolve(cn.inputs.get("camera_info"))
        if isinstance(src, Out) and "camera" in src.attrs:
            params.update(src.attrs)
        elif cn.inputs.get("camera_info") is not None and not self.none(cn.inputs["camera_info"]):
            notes.append("its camera comes from a node other than CreateCameraInfo (a 3-D viewer's), which is not "
                         "read: the render frames the splat itself (camera auto); set the camera by hand")
        if cn.inputs.get("bg_image") is not None and not self.none(cn.inputs["bg_image"]):
            notes.append("its background picture is not drawn behind the splat: the background colour is")
        return [self.plain(cn, dataclasses.replace(rule, inputs={"splat": "splat"}), params, notes)]

    def special_t5_options(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("clip"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        return []

    def special_guidance(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("conditioning"))
        base = src if isinstance(src, Out) else Out()
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, "guidance": params.get("cfg")})
        return []

    def special_split_sigmas(self, cn, rule, params, notes):
        """ComfyUI's SplitSigmas: its high levels (up to `step`) and low ones (from it), which sample runs as
        end_step / start_step of the same schedule, the first half returning its leftover noise for the second."""
        src = self.resolve(cn.inputs.get("sigmas"))
        base = src.attrs if isinstance(src, Out) else {}
        step = int(params.get("step", 0))
        self.outs[(cn.id, 0)] = Out(None, {**base, "end_step": step, "leftover_noise": True})
        # a SetFirstSigma before the split set the high half's first level, not the low half's
        self.outs[(cn.id, 1)] = Out(None, {**{k: v for k, v in base.items() if k != "first_sigma"}, "start_step": step})
        return []

    def special_sd_turbo(self, cn, rule, params, notes):
        """SDTurboScheduler: its levels of SD's table written out as sample's sigmas (ManualSigmas' way)."""
        from nodes.generate.samplers import sd_table, sd_turbo_sigmas
        levels = sd_turbo_sigmas(sd_table(), int(params.get("steps", 1)), float(params.get("denoise", 1.0)))
        self.outs[(cn.id, 0)] = Out(None, {"sigmas": ", ".join(repr(float(x)) for x in levels)})
        return []

    def special_ideogram4_scheduler(self, cn, rule, params, notes):
        """Ideogram4Scheduler: its levels for the picture size it is given, written out as sample's sigmas."""
        from nodes.generate.samplers import ideogram4_sigmas
        levels = ideogram4_sigmas(int(params.get("steps", 20)), int(params.get("width", 1024)),
                                  int(params.get("height", 1024)), float(params.get("mu", 0.0)),
                                  float(params.get("std", 1.75)))
        self.outs[(cn.id, 0)] = Out(None, {"sigmas": ", ".join(repr(float(x)) for x in levels)})
        return []

    def special_dual_model_guider(self, cn, rule, params, notes):
        """DualModelGuider: guide.negative_model on its two models, then a guider as CFGGuider's."""
        return self._guider_after(cn, rule, params, notes, (("positive", "positive"), ("negative", "negative")))

    def special_first_sigma(self, cn, rule, params, notes):
        """ComfyUI's SetFirstSigma: the schedule folded so far, with sample's first_sigma."""
        src = self.resolve(cn.inputs.get("sigmas"))
        base = src.attrs if isinstance(src, Out) else {}
        self.outs[(cn.id, 0)] = Out(None, {**base, "first_sigma": params.get("first_sigma", 0.0)})
        return []

    def _unshifted(self, out: Out) -> Out:
        """`out` with the model.flow_shift nodes before it stepped over."""
        for _ in range(64):
            if not out.port or self.graph.nodes[out.port[0]].type != "model.flow_shift":
                return out
            src = self.graph.inputs.get(out.port[0], {}).get("model")
            if not src:
                return out
            out = Out(tuple(src))
        return out

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

    def special_constant(self, cn, rule, params, notes):
        # the input the rule reads as the value (PrimitiveInt's value, SeedNode's seed, CR Text's text), which a
        # link may fill with what is known only as the workflow runs
        src = self.resolve(cn.inputs.get(next((p.comfy for p in rule.params if p.param == "value"), "value")))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out(None, {"value": params.get("value")})
        return []

    def special_more_pictures(self, cn, rule, params, notes):
        """A node whose pictures are an Autogrow (TextEncodeBooguEdit's 16, ReferenceMultiLatent's): those beyond the
        ones the Kinograph node takes are named, not dropped unsaid."""
        taken = [k for k in rule.inputs if k.startswith("images.")]
        slots = [k for k in cn.inputs if k.startswith("images.") and k not in rule.inputs
                 and isinstance(self.resolve(cn.inputs[k]), Out)]
        if slots:
            names = ", ".join(sorted(slots, key=lambda k: int(re.sub(r"\D", "", k) or 0)))
            notes.append(f"{names}: {rule.node} reads {len(taken)} pictures ({taken[0]} to {taken[-1]}), so it is "
                         f"made without these; give it the {len(taken)} that matter most")
        return [self.plain(cn, rule, params, notes)]

    def special_qwen21_text(self, cn, rule, params, notes):
        """TextEncodeQwenImage21: with pictures (images.image_1 ...), an encode.qwen_edit for the prompt and one for
        the negative, each reading the pictures (the negative with them, as ComfyUI's); without, one encode.text for
        both. Its latent, where read: an empty one of the first picture's size as read (video.resize_pixels rounds to
        32 as the node does), or resolution square."""
        v = lambda k: self.resolve(cn.inputs.get(k))       # noqa: E731
        slots = sorted((k for k in cn.inputs if k.startswith("images.image_") and isinstance(v(k), Out)),
                       key=lambda k: int(k.rsplit("_", 1)[-1]))
        if len(slots) > 3:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(f"{len(slots)} pictures are connected; encode.qwen_edit reads up "
                                                    "to three (image, image2, image3)")
            return None
        size = params.pop("size", 1024)
        links = self.param_links.pop(cn.id, [])
        text_links = [x for x in links if x[0] == "text"]
        negative_links = [("text", out, comfy) for p, out, comfy in links if p == "negative"]
        text, vae = v("clip"), v("vae")
        if not (params.get("negative") or negative_links):
            notes.append("ComfyUI reads an empty negative prompt as one space; Kinograph reads it empty (the negative "
                         "only counts at cfg above 1)")
        if slots:
            made = []
            for suffix, wording, linked in (("", params.get("text", ""), text_links),
                                            ("_negative", params.get("negative", ""), negative_links)):
                self.param_links[cn.id] = linked
                made.append(self.add("encode.qwen_edit", cn, {"text": wording, "size": size}, suffix,
                                     dy=120 if suffix else 0))
                self.link(text, made[-1], "text_encoder")
                self.link(vae, made[-1], "vae")
                for slot, port in zip(slots, ("image", "image2", "image3")):
                    self.link(v(slot), made[-1], port)
            if not isinstance(vae, Out):
                notes.append("no VAE is connected: ComfyUI then keeps the pictures' vision tokens in the prompt, "
                             "Kinograph's Qwen-Image 2.1 edits need the VAE (connect it)")
            positive, negative = Out((made[0], "conditioning")), Out((made[1], "conditioning"))
        else:
            self.param_links[cn.id] = text_links + [("negative", out, comfy) for _, out, comfy in negative_links]
            made = [self.add("encode.text", cn, {k: params[k] for k in ("text", "negative") if k in params})]
            self.link(text, made[0], "text_encoder")
            positive, negative = Out((made[0], "positive")), Out((made[0], "negative"))
        self.outs.update({(cn.id, 0): positive, (cn.id, 1): negative})
        if self.slot_read(cn.id, 2):
            made += self.qwen21_latent(cn, v(slots[0]) if slots else None, size, vae, notes)
        return made

    def qwen21_latent(self, cn, picture, size, vae, notes) -> List[str]:
        """TextEncodeQwenImage21's empty latent: the first picture's size as the node reads it, or size square."""
        made = []
        if picture is None:
            made.append(self.add("latent.empty", cn, {"width": size or 1024, "height": size or 1024, "frames": 1},
                                 "_latent", dy=240))
        else:
            if size:
                made.append(self.add("video.resize_pixels", cn, {"megapixels": size * size / 2 ** 20, "step": 32,
                                                                 "method": "lanczos"}, "_read", dy=240))
                self.link(picture, made[-1], "video")
                picture = Out((made[-1], "video"))
            else:
                notes.append("resolution 0: the latent is the first picture's size rounded down to multiples of 16 "
                             "where ComfyUI rounds it to the nearest 32 (the same for sides of multiples of 32)")
            made.append(self.add("video.size", cn, {}, "_size", dy=360))
            self.link(picture, made[-1], "video")
            made.append(self.add("latent.empty", cn, {"frames": 1, "size_fit": "floor"}, "_latent", dy=480))
            for side in ("width", "height"):
                self.graph.connect(made[-2], side, made[-1], side)
        if isinstance(vae, Out):
            self.link(vae, made[-1], "vae")
        else:
            self.pending_vae.append((made[-1], cn.id))
        self.outs[(cn.id, 2)] = Out((made[-1], "latent"))
        return made

    def special_switch(self, cn, rule, params, notes):
        if not isinstance(params.get("switch"), bool):
            return self.running_switch(cn)
        pick, other = ("on_true", "on_false") if params["switch"] else ("on_false", "on_true")
        src = self.resolve(cn.inputs.get(pick))
        if src is not None:
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out(None, {"value": src})
        elif cn.inputs.get(pick) is None:
            # ComfyUI hands on None where the side picked has nothing linked (an unrolled loop's first pass has no
            # clip to continue): the nodes after it get nothing there, as an input left unlinked
            self.outs[(cn.id, 0)] = Out(None, {"value": None})
        picked = cn.inputs.get(pick)
        unpicked = cn.inputs.get(other)
        if isinstance(unpicked, Ref) and not (isinstance(picked, Ref) and picked.node == unpicked.node):
            self.skipped[cn.id] = {unpicked.node}
        return []

    def running_switch(self, cn):
        """A switch whose test is only known as the workflow runs (math.expression's bool on a picture's size):
        math.switch, the test and both sides linked in. Like ComfyUI's, it makes only the side it picks (NodeSpec.reads):
        a model or generation feeding only the other does not run. A number on one side (a PrimitiveInt) comes in
        through a math.expression of that number; `refusal` (an unrolled loop's check) is the message a side left
        unlinked stops the run with."""
        test = self.resolve(cn.inputs.get("switch"))
        sides = {k: self.resolve(cn.inputs.get(k)) for k in ("on_false", "on_true") if k in cn.inputs}
        numbers = {k: v for k, v in sides.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not (isinstance(test, Out) and test.port) or any(
                k not in numbers and not (isinstance(v, Out) and v.port) for k, v in sides.items()):
            return self.not_constant(cn, "switch")
        why = cn.inputs.get("refusal")
        nid = self.add("math.switch", cn, {"refusal": why} if isinstance(why, str) else {})
        made = [nid]
        self.graph.connect(*test.port, nid, "switch")
        for k, v in sides.items():
            if k in numbers:
                made.append(self.add("math.expression", cn, {"expression": repr(v)}, f"_{k}", dy=-120.0))
                v = Out((made[-1], "int" if isinstance(v, int) else "float"))
            self.graph.connect(*v.port, nid, k)
        self.outs[(cn.id, 0)] = Out((nid, "value"))
        return made

    def special_math(self, cn, rule, params, notes):
        from nodes.math.expr import ExprError, evaluate
        values = {k.split(".", 1)[1]: self.resolve(v) for k, v in cn.inputs.items() if k.startswith("values.")}
        rates = {k: v.attrs["clip_fps"] for k, v in values.items() if isinstance(v, Out) and "clip_fps" in v.attrs}
        if rates and len({load for load, _ in rates.values()}) == 1:
            return self.rate_math(cn, params, values, rates)
        if any(isinstance(v, Out) and v.port for v in values.values()):
            return self.running_math(cn, params, values)
        if any(not isinstance(v, (int, float)) for v in values.values()):
            return self.not_constant(cn, "input values")
        try:
            result = evaluate(params.get("expression", ""), values)
        except ExprError as e:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(str(e))
            return None
        for slot, value in enumerate((float(result), int(result), bool(result))):
            self.outs[(cn.id, slot)] = Out(None, {"value": value})
        return self.shown_math(cn, params, values)

    def shown_math(self, cn, params, values):
        """A formula of constants that a PreviewAny shows: computed for the settings it feeds, and run as
        math.expression (its values typed in) for math.show, as ComfyUI runs it to show its result. A formula of
        letters past d, or of `values` without all four, is shown as its result alone."""
        from nodes.math.expr import names
        from nodes.math.nodes import LETTERS
        used = names(params.get("expression", ""))
        if not self.is_shown(cn) or not set(values) <= set(LETTERS) or ("values" in used and
                                                                       set(values) != set(LETTERS)):
            return []
        # a value a shown node computes (a Number Convert's int) is linked from it, the chain shown as it runs
        linked = {k: self.shown_ports.get((ref.node, ref.slot)) for k, ref in
                  ((k.split(".", 1)[1], ref) for k, ref in cn.inputs.items() if k.startswith("values."))
                  if isinstance(ref, Ref)}
        linked = {k: p for k, p in linked.items() if p and self.is_number_port(p)}
        nid = self.add("math.expression", cn, {"expression": params.get("expression", ""),
                                               **{k: float(v) for k, v in values.items() if k not in linked}})
        for k, port in linked.items():
            self.graph.connect(*port, nid, k)
        for slot, port in enumerate(("float", "int", "bool")):
            self.shown_ports[(cn.id, slot)] = (nid, port)
        return [nid]

    def rate_math(self, cn, params, values, rates):
        """A formula of a clip's frame rate (fps * multiplier, to play interpolated frames at the same speed): when
        it is a fixed multiple of the rate, whatever the rate, its result is that multiple of the clip's rate."""
        from nodes.math.expr import ExprError, evaluate
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

    def special_empty_latent(self, cn, rule, params, notes):
        comfy_latent_floor(cn.class_type, params, notes)
        nid = self.plain(cn, rule, params, notes)
        self.pending_vae.append((nid, cn.id))
        return [nid]

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

    def special_dual_cfg_guider(self, cn, rule, params, notes):
        """DualCFGGuider: guide.dual_cfg on its model (cond2 the middle prompt), then a guider as CFGGuider's."""
        return self._guider_after(cn, rule, params, notes, (("cond1", "positive"), ("negative", "negative")))

    def _guider_after(self, cn, rule, params, notes, prompts):
        """A model node (rule's) whose output becomes a guider as CFGGuider's: that model, the (ComfyUI input,
        sample port) prompts and the node's cfg, for the sampler to take."""
        cfg = params.pop("cfg", None)
        nid = self.plain(cn, rule, params, notes)
        attrs = {"model": self.outs[(cn.id, 0)], **({} if cfg is None else {"cfg": cfg})}
        for comfy, port in prompts:
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                attrs[port] = v
            elif comfy in cn.inputs:
                notes.append(f"input {comfy} comes from a node that did not convert; connect sample's {port} by hand")
        self.outs[(cn.id, 0)] = Out(None, attrs)
        return [nid]

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
        self.take_seed_modes(cn, bundles, rule.takes)
        if "guider" in cn.inputs and "cfg" not in params:
            params["cfg"] = 1.0
        wires = {"model": cn.inputs.get("model"), "positive": cn.inputs.get("positive"),
                 "negative": cn.inputs.get("negative")}
        outs = {k: (self.resolve(v) if v is not None else bundles.get(k)) for k, v in wires.items()}
        pos = outs.get("positive")
        hunyuan3d = isinstance(pos, Out) and pos.port and self.graph.nodes[pos.port[0]].type == "condition.hunyuan3d"
        if hunyuan3d and "guidance" in pos.attrs:
            # Hunyuan3D 2.0 reads FluxGuidance's value on the positive beside the sampler's true CFG (its negative is
            # told ComfyUI's default 5): the conditioning node carries it, the cfg stays
            self.graph.nodes[pos.port[0]].params["guidance"] = pos.attrs["guidance"]
        elif isinstance(pos, Out) and "guidance" in pos.attrs and not self._reads_guidance(outs.get("model"), pos):
            # a model with no guidance input (Chroma, FLUX.1 schnell, LongCat-Image, ...): ComfyUI's model drops the
            # value and the sampler's cfg is its true CFG
            notes.append(f"FluxGuidance {pos.attrs['guidance']} is not read by this model (it has no guidance input; "
                         "ComfyUI ignores it): sample's cfg is the sampler's")
        elif isinstance(pos, Out) and "guidance" in pos.attrs:
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
        sched = bundles.get("schedule_model")
        pinned = []
        if isinstance(sched, Out) and isinstance(outs.get("model"), Out) and sched.port != outs["model"].port \
                and sched.port == self._unshifted(outs["model"]).port:
            # ComfyUI takes the levels from BasicScheduler's model; on a flow model a ModelSamplingSD3 between it and
            # the guider changes nothing else, so the scheduler's shift is the one sampled (HunyuanVideo 1.5's SR
            # group shifts the guider's model by 2 and schedules on the plain one)
            notes.append("its levels come from BasicScheduler's model, without the guider's ModelSamplingSD3 shift, "
                         "as in ComfyUI: sample takes that model")
            outs["model"] = sched
            family = self._loads_family(sched)
            if family in COMFY_SHIFTS:
                # that model's levels are ComfyUI's shift for it, which Kinograph's default for the family is not
                pinned.append(self.add("model.flow_shift", cn, {"shift": COMFY_SHIFTS[family]}, "_shift", dy=-120))
                self.link(sched, pinned[-1], "model")
                outs["model"] = Out((pinned[-1], "model"))
                notes.append(f"ComfyUI shifts that model's levels by {COMFY_SHIFTS[family]:g} ({family}'s own): a "
                             "model.flow_shift says so")
        if bundles.get("ar_block", 1) != 1 and isinstance(outs.get("model"), Out):
            # SamplerARVideo's blocks of several latent frames (a chunkwise checkpoint): the model's, in Kinograph
            pinned.append(self.add("model.ar_block", cn, {"frames": bundles["ar_block"]}, "_ar_block", dy=-200))
            self.link(outs["model"], pinned[-1], "model")
            outs["model"] = Out((pinned[-1], "model"))
        from ..mapping import SIGMA_FRAME
        if params.get("sampler") in SIGMA_FRAME:
            params["frame"] = "sigma"
        from nodes.generate.samplers import PENULTIMATE_DROPPED
        if cn.class_type in ("SamplerCustom", "SamplerCustomAdvanced") and params.get("sampler") in PENULTIMATE_DROPPED:
            params["ksampler_levels"] = False       # the scheduler's levels as they are: only KSampler drops one
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
        if isinstance(bundles.get("noise"), Out):
            self.link(bundles["noise"], nid, "noise")       # a noise node's own (VOIDWarpedNoiseSource's)
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
        return pinned + controls + [nid]

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


# ComfyUI's empty latents are height // factor by width // factor latent pixels, so a size off the factor (640x360
# into EmptyLTXVLatentVideo, computed by links at run time) is made as the multiple below it; latent.empty's
# size_fit floor does the same with the family's step. Beside the factor, Kinograph's step for the models the node is
# made for: coarser where their 2x2 patches make Kinograph need 16 (ComfyUI pads the latent to the patch instead).
COMFY_LATENT_FLOOR = {
    "EmptyLatentImage": (8, 8), "CR Aspect Ratio": (8, 8), "EmptyMochiLatentVideo": (8, 8),
    "EmptySD3LatentImage": (8, 16), "EmptyHunyuanLatentVideo": (8, 16), "WanVideoEmptyEmbeds": (8, 16),
    "EmptyARVideoLatent": (8, 16),
    "EmptyFlux2LatentImage": (16, 16), "EmptyHunyuanVideo15Latent": (16, 16), "EmptyLTXVLatentVideo": (32, 32),
}


def comfy_latent_floor(class_type: str, params: Dict[str, Any], notes: List[str]) -> None:
    """size_fit floor on a ComfyUI empty latent's latent.empty; a note where Kinograph's step is coarser than
    ComfyUI's factor and the size (a link's, or a constant off the step) may come out smaller than ComfyUI's."""
    if class_type not in COMFY_LATENT_FLOOR:
        return
    params["size_fit"] = "floor"
    comfy, step = COMFY_LATENT_FLOOR[class_type]
    sides = [params.get(k) for k in ("width", "height")]
    if step > comfy and not all(isinstance(v, int) and not v % step for v in sides):
        notes.append(f"ComfyUI makes this latent from the size floored to a multiple of {comfy}; the models it is "
                     f"for need a multiple of {step} in Kinograph, so a size that is not one comes out up to "
                     f"{step - comfy} px smaller than ComfyUI's (the run's log says the size used)")


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
