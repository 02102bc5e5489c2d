"""ControlNet apply nodes (ComfyUI's, Advanced-ControlNet's, FLUX.1's): control.apply on the sampler's model."""
from __future__ import annotations

from typing import List, Tuple

from ..flatten import Ref
from ..mapping import COMFY_UNION_TYPES
from ..out import Out


class ControlNets:
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
