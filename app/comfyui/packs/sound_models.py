"""ComfyUI's sound-model nodes: Stable Audio Open's text-to-sound chain, folded into generate.stable_audio."""
from __future__ import annotations

import re

from ..flatten import Ref
from ..out import Out

# ComfyUI's samplers generate.stable_audio has not, and the nearest it has
NEAREST_SAMPLER = {"dpmpp_3m_sde": "dpmpp_2m", "dpmpp_3m_sde_gpu": "dpmpp_2m", "dpmpp_2m_sde": "dpmpp_2m",
                   "dpmpp_2m_sde_gpu": "dpmpp_2m", "dpmpp_sde": "dpmpp_2m", "dpmpp_sde_gpu": "dpmpp_2m"}
# the models whose sound ComfyUI's EmptyLatentAudio and VAEDecodeAudio make, told by their files' names
OTHER_SOUND_MODELS = (("stable_audio_3", "Stable Audio 3"), ("t5gemma", "Stable Audio 3"))


class SoundModels:
    """Stable Audio Open 1.0 as ComfyUI's templates run it (CheckpointLoaderSimple, CLIPLoader type stable_audio,
    CLIPTextEncode, EmptyLatentAudio, KSampler, VAEDecodeAudio): the nodes those became fold into one
    generate.stable_audio, whose sound the save nodes write."""

    def stable_audio_sampler(self, cn):
        """The KSampler whose latent (EmptyLatentAudio's) VAEDecodeAudio `cn` decodes, or None."""
        ref = cn.inputs.get("samples")
        ks = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        if ks is None or ks.class_type != "KSampler":
            return None
        lat = ks.inputs.get("latent_image")
        empty = self.flat.nodes.get(lat.node) if isinstance(lat, Ref) else None
        return ks if empty is not None and empty.class_type == "EmptyLatentAudio" else None

    def special_empty_latent_audio(self, cn, rule, params, notes):
        """Its length is generate.stable_audio's seconds (VAEDecodeAudio folds the chain into it)."""
        self.outs[(cn.id, 0)] = Out(None, {"audio_seconds": params.get("seconds")})
        return []

    def special_stable_audio_seconds(self, cn, rule, params, notes):
        """ConditioningStableAudio: the prompts pass on, with the seconds generate.stable_audio is told."""
        told = {k: params[k] for k in ("seconds_start", "seconds_total") if k in params}
        for slot, port in enumerate(("positive", "negative")):
            v = self.resolve(cn.inputs.get(port))
            self.outs[(cn.id, slot)] = Out(v.port, {**v.attrs, "audio_told": told}) if isinstance(v, Out) else Out()
        return []

    def stable_audio(self, cn, ks, notes):
        """generate.stable_audio in place of the nodes the KSampler's chain became; None (left unmapped, with
        why) where the chain is not the one the templates use."""
        g = self.graph
        sample = self.outs.get((ks.id, 0))
        sample = sample.port[0] if isinstance(sample, Out) and sample.port else None
        why = self._not_stable_audio(sample)
        if why:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(why)
            return None
        ins = g.inputs[sample]
        model, pos, neg = (ins.get(p, (None,))[0] for p in ("model", "positive", "negative"))
        text = g.inputs.get(pos, {}).get("text_encoder", (None,))[0]
        raw = {k: self.resolve(ks.inputs.get(k)) for k in ("sampler_name", "scheduler")}
        sp = g.nodes[sample].params
        params = {"checkpoint": g.nodes[model].params.get("path", ""), "prompt": g.nodes[pos].params.get("text", ""),
                  "negative": g.nodes[neg].params.get("text", "") if neg else "",
                  **{k: sp[k] for k in ("steps", "cfg", "seed") if k in sp}}
        if text in g.nodes:
            params["text_encoder"] = g.nodes[text].params.get("name", "")
        told = self.resolve(ks.inputs.get("positive"))
        params.update(told.attrs.get("audio_told", {}) if isinstance(told, Out) else {})
        seconds = self.resolve(ks.inputs.get("latent_image"))
        seconds = seconds.attrs.get("audio_seconds") if isinstance(seconds, Out) else None
        if seconds is not None:
            params["seconds"] = float(seconds)
        else:
            notes.append("EmptyLatentAudio's seconds did not convert: Kinograph's 47.6 s is used; set it by hand")
        sampler = raw["sampler_name"] if isinstance(raw["sampler_name"], str) else ""
        params["sampler"] = NEAREST_SAMPLER.get(sampler, sampler)
        if sampler in NEAREST_SAMPLER:
            notes.append(f"sampler {sampler} (stochastic) is not in Kinograph: DPM-Solver++(2M) samples it "
                         "(deterministic, the same steps)")
        if float(sp.get("denoise", 1.0)) != 1.0:
            notes.append(f"denoise {sp['denoise']} is not carried: generate.stable_audio makes the sound from noise "
                         "(1.0)")
        if raw["scheduler"] in ("exponential", "karras", "simple"):
            params["scheduler"] = raw["scheduler"]
        else:
            notes.append(f"scheduler {raw['scheduler']} is not one Kinograph has for Stable Audio: exponential")
        # a prompt a language model writes stays linked
        texts = {port: g.inputs.get(enc, {}).get("text") for enc, port in ((pos, "prompt"), (neg, "negative"))}
        made = {n for n in (sample, pos, neg, model, text) if n in g.nodes}
        gone = made - {l.src for l in g.links() if l.src in made and l.dst not in made}
        for n in gone:
            g.remove_node(n)
        nid = self.add("generate.stable_audio", ks, params)
        for port, src in texts.items():
            if src and src[0] in g.nodes:
                g.connect(src[0], src[1], nid, port)
        for entry in self.report.entries.values():
            if set(entry.kinograph) & gone:
                entry.kinograph = [k for k in entry.kinograph if k not in gone] + [nid]
                if entry.comfy_id == ks.id:     # what it said of generate.sample's sampler is said here anew
                    entry.notes = [f"folded into {nid} (generate.stable_audio), with the loaders, prompts, "
                                   "EmptyLatentAudio and VAEDecodeAudio"]
        self.outs[(cn.id, 0)] = Out((nid, "audio"))
        return [nid]

    def _not_stable_audio(self, sample) -> str:
        """Why the nodes the chain became are not Stable Audio Open's as generate.stable_audio takes them."""
        g = self.graph
        if sample is None or g.nodes[sample].type != "generate.sample":
            return "its KSampler did not convert, so the sound cannot be made; see that node"
        ins = g.inputs.get(sample, {})
        got = {p: g.nodes[ins[p][0]] for p in ("model", "positive", "negative") if p in ins}
        if got.get("model") is None or got["model"].type != "load.model":
            return ("the model reaches its KSampler through other nodes: generate.stable_audio takes the checkpoint "
                    "alone (CheckpointLoaderSimple)")
        if got.get("positive") is None or got["positive"].type != "encode.text" or \
                ("negative" in got and got["negative"].type != "encode.text"):
            return "its prompts are not CLIPTextEncode's: generate.stable_audio takes the prompt as text"
        text = g.inputs.get(ins["positive"][0], {}).get("text_encoder", (None,))[0]
        names = " ".join([str(got["model"].params.get("path", "")),
                          str(g.nodes[text].params.get("name", "")) if text in g.nodes else ""]).lower()
        for pattern, title in OTHER_SOUND_MODELS:
            if re.search(pattern, names):
                return (f"this is {title}'s sound, a model Kinograph does not have: generate.stable_audio makes "
                        "Stable Audio Open 1.0's (stable-audio-open-1.0.safetensors with t5-base.safetensors)")
        return ""
