"""Comfyroll Studio's LoRA stack and the node that applies it."""
from __future__ import annotations

from ..flatten import Ref
from ..out import Out


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
