"""efficiency-nodes-comfyui: Efficient Loader, LoRA Stacker, KSampler (Efficient)."""
from __future__ import annotations

from ..flatten import Ref
from ..out import Out


class Efficiency:
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
