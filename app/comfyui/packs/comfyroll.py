"""Comfyroll Studio: its LoRA and ControlNet stacks, the nodes that apply them, CR Aspect Ratio and CR Value."""
from __future__ import annotations

from ..flatten import Ref
from ..out import Out
from .core import comfy_latent_floor


class Comfyroll:
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

    def special_cr_aspect_ratio(self, cn, rule, params, notes):
        """Its width, height, factors and batch size are known at import: the nodes they feed get the numbers. Files
        from before prescale_factor (six outputs) hold batch_size in that widget's place."""
        from ..mapping import CR_ASPECT_RATIOS
        old = len(cn.out_types) == 6
        values = {k: self.resolve(cn.inputs.get(k)) for k in rule.widgets}
        if old:
            values["batch_size"], values["prescale_factor"] = values["prescale_factor"], None
        for k in ("width", "height", "aspect_ratio", "swap_dimensions", "batch_size") + (() if old else
                                                                                         ("prescale_factor",)):
            if isinstance(values[k], Out) or values[k] is None:
                self.not_constant(cn, k)
                return None
        width, height = CR_ASPECT_RATIOS.get(values["aspect_ratio"], (values["width"], values["height"]))
        if values["swap_dimensions"] == "On":
            width, height = height, width
        if not old:
            # Comfyroll scales the size it hands on (and its latent) by prescale_factor, rounding down
            width, height = int(width * values["prescale_factor"]), int(height * values["prescale_factor"])
        slots = (("width", width), ("height", height), ("upscale_factor", values["upscale_factor"]),
                 ("batch_size", values["batch_size"])) if old else \
            (("width", width), ("height", height), ("upscale_factor", values["upscale_factor"]),
             ("prescale_factor", values["prescale_factor"]), ("batch_size", values["batch_size"]))
        for slot, (_, v) in enumerate(slots):
            self.outs[(cn.id, slot)] = Out(None, {"value": v})
        latent = len(slots)
        if not self.slot_read(cn.id, latent):
            return []
        size = {"width": width, "height": height}
        comfy_latent_floor(cn.class_type, size, notes)  # its latent is height // 8 x width // 8, the numbers as they are
        nid = self.add(rule.node, cn, {**size, "frames": values["batch_size"]})
        self.outs[(cn.id, latent)] = Out((nid, "latent"))
        self.pending_vae.append((nid, cn.id))
        return [nid]

    def special_cr_value(self, cn, rule, params, notes):
        """CR Value hands on its number as FLOAT and as INT (Python's int(): toward zero)."""
        v = params.get("value")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return self.not_constant(cn, "value")
        self.outs[(cn.id, 0)] = Out(None, {"value": float(v)})
        self.outs[(cn.id, 1)] = Out(None, {"value": int(v)})
        return []

    def special_cr_controlnet_stack(self, cn, rule, params, notes):
        """CR Multi-ControlNet Stack: each ControlNet switched On, named and given a picture, after those of a stack
        given to it, travels to CR Apply Multi-ControlNet as the control ControlNetApplyAdvanced would make."""
        v = lambda k: self.resolve(cn.inputs.get(k))       # noqa: E731
        before = v("controlnet_stack")
        stack = list(before.attrs.get("controlnet_stack", ())) if isinstance(before, Out) else []
        if isinstance(cn.inputs.get("controlnet_stack"), Ref) and not (isinstance(before, Out)
                                                                       and "controlnet_stack" in before.attrs):
            notes.append("its controlnet_stack comes from a node that did not convert; its ControlNets are left out")
        for i in range(1, 4):
            if v(f"switch_{i}") != "On" or v(f"controlnet_{i}") in (None, "", "None") or f"image_{i}" not in cn.inputs:
                continue
            image = v(f"image_{i}")
            if not (isinstance(image, Out) and image.port):
                notes.append(f"image_{i} comes from a node that did not convert: ControlNet {i} is left out")
                continue
            control = {"path": v(f"controlnet_{i}"), "video": image}
            for comfy, k in ((f"controlnet_strength_{i}", "strength"), (f"start_percent_{i}", "start"),
                             (f"end_percent_{i}", "end")):
                if isinstance(v(comfy), (int, float)):
                    control[k] = v(comfy)
            stack.append(control)
        self.outs[(cn.id, 0)] = Out(None, {"controlnet_stack": tuple(stack)})
        return []

    def special_cr_apply_controlnet_stack(self, cn, rule, params, notes):
        """CR Apply Multi-ControlNet: with its switch On, each ControlNet of the stack rides on both prompts to the
        sampler (ControlNetApplyAdvanced's, one after another); Off hands the prompts on as they are."""
        stack = self.resolve(cn.inputs.get("controlnet_stack"))
        controls = stack.attrs.get("controlnet_stack", ()) if isinstance(stack, Out) else ()
        if self.resolve(cn.inputs.get("switch")) != "On":
            controls = ()
        elif isinstance(cn.inputs.get("controlnet_stack"), Ref) and not (isinstance(stack, Out)
                                                                         and "controlnet_stack" in stack.attrs):
            notes.append("its controlnet_stack comes from a node that did not convert; add control.apply by hand")
        for slot, name in enumerate(("base_positive", "base_negative")):
            v = self.resolve(cn.inputs.get(name))
            base = v if isinstance(v, Out) else Out()
            self.outs[(cn.id, slot)] = Out(base.port, {**base.attrs,
                                                       "controls": base.attrs.get("controls", ()) + tuple(controls)})
        return []
