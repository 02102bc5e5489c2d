"""AnimateDiff-Evolved's loaders and motion modules."""
from __future__ import annotations

from typing import Optional

from ..flatten import Ref
from ..out import Out


class AnimateDiff:
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
