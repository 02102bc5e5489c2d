"""rgthree-comfy: Power Lora Loader and Power Prompt."""
from __future__ import annotations

import re

from ..out import Out


class Rgthree:
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

    def special_power_prompt(self, cn, rule, params, notes):
        """rgthree's Power Prompt: the full one applies its prompt's <lora:name:strength> tags (strength 1 when left
        out, 0 skipped; model and clip alike) to its opt_model and opt_clip, a name without an extension read as
        .safetensors as the pack finds it, and encodes the text with the tags cut out; outputs CONDITIONING, (MODEL,
        CLIP,) TEXT. With no CLIP it gives the text alone."""
        from ..mapping import RGTHREE_LORA_TAG
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
