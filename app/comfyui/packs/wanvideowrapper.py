"""kijai's ComfyUI-WanVideoWrapper: its loader, LoRAs, text encoder and sampler."""
from __future__ import annotations

import re

from ..flatten import Ref
from ..mapping import RULES, Rule
from ..out import Out


class WanVideoWrapper:
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
        from ..mapping import WAN_WRAPPER_NEAR, WAN_WRAPPER_SCHEDULERS
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
