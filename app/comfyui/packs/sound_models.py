"""ComfyUI's sound-model nodes: Stable Audio Open's and Stable Audio 3's text-to-sound chain, folded into
generate.stable_audio or generate.stable_audio3, ACE-Step 1.5's song chain, folded into generate.ace_step, and
ACE-Step v1's, folded into generate.ace_step1."""
from __future__ import annotations

import re

from ..flatten import Ref
from ..out import Out

# ComfyUI's samplers generate.ace_step takes as they are
SAMPLERS_KEPT = ("euler", "euler_ancestral", "dpmpp_2m", "ddim", "unipc", "res_multistep")
# Stable Audio 3's sound, which ComfyUI's EmptyLatentAudio and VAEDecodeAudio make as Stable Audio Open's, told by
# its files' names (stable_audio_3_*, with T5Gemma): it folds into generate.stable_audio3
STABLE_AUDIO3 = re.compile(r"stable_audio_3|t5gemma")
# ComfyUI's schedulers generate.stable_audio3 takes as they are (the flow tables'); lcm is its own sampler too
SA3_SCHEDULERS = ("simple", "sgm_uniform", "beta")


def ace_sampling(raw: dict, notes: list, samplers=SAMPLERS_KEPT, model: str = "ACE-Step") -> dict:
    """KSampler's sampler and scheduler as generate.ace_step / ace_step1 (or another song node taking `samplers`)
    take them (those they have not: named, their defaults used)."""
    out = {}
    if raw["sampler_name"] in samplers:
        out["sampler"] = raw["sampler_name"]
    else:
        notes.append(f"sampler {raw['sampler_name']} is not one Kinograph has: euler")
    if raw["scheduler"] in ("simple", "sgm_uniform", "beta"):
        out["scheduler"] = raw["scheduler"]
    else:
        notes.append(f"scheduler {raw['scheduler']} is not one Kinograph has for {model}: simple")
    return out


class SoundModels:
    """Stable Audio Open 1.0 and Stable Audio 3 as ComfyUI's templates run them (CheckpointLoaderSimple, CLIPLoader
    type stable_audio, CLIPTextEncode, EmptyLatentAudio, KSampler, VAEDecodeAudio): the nodes those became fold into
    one generate.stable_audio (or generate.stable_audio3, told by the files' names), whose sound the save nodes
    write."""

    def stable_audio_sampler(self, cn, empty_type: str = "EmptyLatentAudio"):
        """The KSampler whose latent (`empty_type`'s) VAEDecodeAudio `cn` decodes, or None."""
        ref = cn.inputs.get("samples")
        ks = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        if ks is None or ks.class_type != "KSampler":
            return None
        lat = ks.inputs.get("latent_image")
        empty = self.flat.nodes.get(lat.node) if isinstance(lat, Ref) else None
        return ks if empty is not None and empty.class_type == empty_type else None

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
        sa3 = bool(STABLE_AUDIO3.search(f"{params['checkpoint']} {params.get('text_encoder', '')}".lower()))
        kind = "generate.stable_audio3" if sa3 else "generate.stable_audio"
        told = self.resolve(ks.inputs.get("positive"))
        told = told.attrs.get("audio_told", {}) if isinstance(told, Out) else {}
        if sa3 and told:
            notes.append("ConditioningStableAudio's seconds are not carried: Stable Audio 3 is told the sound's own "
                         "length")
        elif told:
            params.update(told)
        seconds = self.resolve(ks.inputs.get("latent_image"))
        seconds = seconds.attrs.get("audio_seconds") if isinstance(seconds, Out) else None
        if seconds is not None:
            params["seconds"] = float(seconds)
        else:
            notes.append(f"EmptyLatentAudio's seconds did not convert: {kind}'s default is used; set it by hand")
        sampler = raw["sampler_name"] if isinstance(raw["sampler_name"], str) else ""
        # the node's own samplers (Stable Audio 3's lcm besides generate.sample's); another was written in as it was
        # and the imported workflow failed to load
        from nodes.generate.audio_nodes import SOUND_SAMPLERS
        has = list(SOUND_SAMPLERS)
        params["sampler"] = sampler if sampler in has else "euler"
        if sampler not in has:
            notes.append(f"sampler {sampler} is not one {kind} has: euler")
        if float(sp.get("denoise", 1.0)) != 1.0:
            notes.append(f"denoise {sp['denoise']} is not carried: {kind} makes the sound from noise (1.0)")
        kept = SA3_SCHEDULERS if sa3 else ("exponential", "karras", "simple")
        if raw["scheduler"] in kept:
            params["scheduler"] = raw["scheduler"]
        else:
            notes.append(f"scheduler {raw['scheduler']} is not one Kinograph has for Stable Audio: {kept[0]}")
        # the KSampler's own mapping said whether generate.sample had its sampler: said here anew
        sampled = sampler in has and raw["scheduler"] in kept and float(sp.get("denoise", 1.0)) == 1.0
        # a prompt a language model writes stays linked
        texts = {port: g.inputs.get(enc, {}).get("text") for enc, port in ((pos, "prompt"), (neg, "negative"))}
        made = {n for n in (sample, pos, neg, model, text) if n in g.nodes}
        gone = made - {l.src for l in g.links() if l.src in made and l.dst not in made}
        for n in gone:
            g.remove_node(n)
        nid = self.add(kind, ks, params)
        for port, src in texts.items():
            if src and src[0] in g.nodes:
                g.connect(src[0], src[1], nid, port)
        for entry in self.report.entries.values():
            if set(entry.kinograph) & gone:
                entry.kinograph = [k for k in entry.kinograph if k not in gone] + [nid]
                if entry.comfy_id == ks.id:
                    entry.status = "exact" if sampled else "approx"
                    entry.notes = [f"folded into {nid} ({kind}), with the loaders, prompts, EmptyLatentAudio and "
                                   "VAEDecodeAudio"]
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
        return ""

    def special_ace_step_song(self, cn, rule, params, notes):
        """TextEncodeAceStepAudio1.5: its widgets are generate.ace_step's (VAEDecodeAudio folds the chain into it)."""
        self.outs[(cn.id, 0)] = Out(None, {"ace_song": params})
        return []

    def _upstream(self, cn, port: str, through=()):
        """The ComfyUI node feeding `port` of `cn`, past any of the class types `through` (their nodes listed)."""
        passed = []
        ref = cn.inputs.get(port)
        node = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        while node is not None and node.class_type in through:
            passed.append(node)
            ref = node.inputs.get("model")
            node = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        return node, passed

    def ace_step(self, cn, ks, notes):
        """generate.ace_step in place of the nodes the chain (UNETLoader, DualCLIPLoader type ace, VAELoader,
        TextEncodeAceStepAudio1.5, ConditioningZeroOut, EmptyAceStep1.5LatentAudio, ModelSamplingAuraFlow, KSampler,
        or CheckpointLoaderSimple in the three loaders' place) became; None (left unmapped, with why) where the chain is another."""
        model, shifts = self._upstream(ks, "model", ("ModelSamplingAuraFlow",))
        pos, _ = self._upstream(ks, "positive")
        neg, _ = self._upstream(ks, "negative")
        clip = self._upstream(pos, "clip")[0] if pos is not None else None
        vae = self._upstream(cn, "vae")[0]
        # the all-in-one checkpoint: CheckpointLoaderSimple gives the model, both Qwen3s and the VAE
        aio = model is not None and model.class_type == "CheckpointLoaderSimple" and clip is model and vae is model
        why = ""
        if model is None or model.class_type != "UNETLoader" and not aio:
            why = ("generate.ace_step takes ACE-Step 1.5's split files (UNETLoader, DualCLIPLoader, VAELoader) or its "
                   "all-in-one checkpoint (CheckpointLoaderSimple) with only ModelSamplingAuraFlow between: "
                   f"{getattr(model, 'class_type', 'nothing')} on the model's way is not read")
        elif pos is None or pos.class_type != "TextEncodeAceStepAudio1.5" or not aio and (
                clip is None or clip.class_type != "DualCLIPLoader" or vae is None or vae.class_type != "VAELoader"):
            why = ("generate.ace_step takes the prompt from TextEncodeAceStepAudio1.5 on DualCLIPLoader's encoders "
                   "and the VAE from VAELoader, or both from the all-in-one checkpoint's CheckpointLoaderSimple")
        if why:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(why)
            return None
        song = self.resolve(ks.inputs.get("positive"))
        song = dict(song.attrs.get("ace_song", {})) if isinstance(song, Out) else {}
        raw = {k: self.resolve(ks.inputs.get(k)) for k in ("seed", "steps", "cfg", "sampler_name", "scheduler",
                                                           "denoise")}
        files = {"checkpoint": self.resolve(model.inputs.get("ckpt_name")), "diffusion_model": "",
                 "text_encoder": "", "lm": "", "vae": ""} if aio else \
            {"diffusion_model": self.resolve(model.inputs.get("unet_name")),
             "text_encoder": self.resolve(clip.inputs.get("clip_name1")),
             "lm": self.resolve(clip.inputs.get("clip_name2")), "vae": self.resolve(vae.inputs.get("vae_name"))}
        params = {**files, **{k: v for k, v in song.items() if k != "duration"},
                  **{k: raw[k] for k in ("seed", "steps", "cfg") if raw[k] is not None}}
        if shifts:
            params["shift"] = float(self.resolve(shifts[0].inputs.get("shift")))
        seconds = self.resolve(ks.inputs.get("latent_image"))
        seconds = seconds.attrs.get("audio_seconds") if isinstance(seconds, Out) else None
        if seconds is not None:
            params["seconds"] = float(seconds)
        if song.get("duration") is not None and (seconds is None or float(song["duration"]) != float(seconds)):
            params["duration"] = float(song["duration"])
        params.update(ace_sampling(raw, notes))
        if raw["denoise"] is not None and float(raw["denoise"]) != 1.0:
            notes.append(f"denoise {raw['denoise']} is not carried: generate.ace_step makes the song from noise (1.0)")
        carried = [model, *shifts, pos] + ([] if aio else [clip, vae])
        # the negative's nodes fold away whole (none is left dangling on the folded loaders)
        negative = self._feeding(neg, {n.id for n in carried if n is not None})
        dropped = set()
        if neg is None or neg.class_type != "ConditioningZeroOut":
            notes.append("the negative is not ConditioningZeroOut's: generate.ace_step guides against the model's "
                         "null embedding, as ComfyUI does for a zeroed one")
            dropped = {n.id for n in negative}
        return self._fold_song("generate.ace_step", "the loaders, prompt, EmptyAceStep1.5LatentAudio and VAEDecodeAudio",
                               "the model's null embedding", cn, ks, params, [*carried, *negative], dropped)

    def special_latent_operation_cfg(self, cn, rule, params, notes):
        """LatentApplyOperationCFG: the model passes on (generate.ace_step1 reads the operation from the workflow)."""
        model = self.resolve(cn.inputs.get("model"))
        self.outs[(cn.id, 0)] = model if isinstance(model, Out) else Out()
        return []

    def ace_step1_sampler(self, cn):
        """The KSampler VAEDecodeAudio `cn` decodes when its prompt is TextEncodeAceStepAudio's (ACE-Step v1), or
        None."""
        ks, _ = self._upstream(cn, "samples")
        if ks is None or ks.class_type != "KSampler":
            return None
        pos, _ = self._upstream(ks, "positive")
        return ks if pos is not None and pos.class_type == "TextEncodeAceStepAudio" else None

    def ace_step1(self, cn, ks, notes):
        """generate.ace_step1 in place of the nodes ACE-Step v1's chain (CheckpointLoaderSimple, ModelSamplingSD3,
        LatentApplyOperationCFG with LatentOperationTonemapReinhard, TextEncodeAceStepAudio, ConditioningZeroOut,
        EmptyAceStepLatentAudio or VAEEncodeAudio, KSampler) became; None (left unmapped, with why) where the chain
        is another."""
        # not ModelSamplingAuraFlow: its multiplier 1 tells the DiT sigma, not the 1000 x sigma generate.ace_step1 does
        through = ("ModelSamplingSD3", "LatentApplyOperationCFG")
        model, passed = self._upstream(ks, "model", through)
        pos, _ = self._upstream(ks, "positive")
        neg, _ = self._upstream(ks, "negative")
        latent, _ = self._upstream(ks, "latent_image")
        clip = self._upstream(pos, "clip")[0]
        vae = self._upstream(cn, "vae")[0]
        why = ""
        if model is None or model.class_type != "CheckpointLoaderSimple" or clip is not model or vae is not model:
            why = ("generate.ace_step1 takes ACE-Step v1's checkpoint (CheckpointLoaderSimple) as the model, text "
                   "encoder and VAE, with only ModelSamplingSD3 and LatentApplyOperationCFG between: "
                   f"{getattr(model, 'class_type', 'nothing')} gives the model here")
        elif latent is None or latent.class_type not in ("EmptyAceStepLatentAudio", "VAEEncodeAudio"):
            why = ("generate.ace_step1 makes the song from EmptyAceStepLatentAudio's length or VAEEncodeAudio's song: "
                   f"{getattr(latent, 'class_type', 'nothing')} gives the latent here")
        if why:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(why)
            return None
        raw = {k: self.resolve(ks.inputs.get(k)) for k in ("seed", "steps", "cfg", "sampler_name", "scheduler",
                                                           "denoise")}
        params = {"checkpoint": self.resolve(model.inputs.get("ckpt_name")),
                  **{k: self.resolve(pos.inputs.get(k)) for k in ("tags", "lyrics", "lyrics_strength")},
                  **{k: raw[k] for k in ("seed", "steps", "cfg") if raw[k] is not None}}
        params = {k: v for k, v in params.items() if v is not None and not isinstance(v, Out)}
        shifts = [n for n in passed if n.class_type != "LatentApplyOperationCFG"]
        if shifts:
            params["shift"] = float(self.resolve(shifts[0].inputs.get("shift")))
        dropped = set()
        for op_node in (n for n in passed if n.class_type == "LatentApplyOperationCFG"):
            op, _ = self._upstream(op_node, "operation")
            if op is not None and op.class_type == "LatentOperationTonemapReinhard":
                params["tonemap"] = float(self.resolve(op.inputs.get("multiplier")))
            else:
                notes.append(f"the guidance's operation ({getattr(op, 'class_type', 'none')}) is not carried: "
                             "generate.ace_step1 applies LatentOperationTonemapReinhard only")
                dropped.add(op_node.id)
        extra = [n for n in passed if n.class_type == "LatentApplyOperationCFG"]
        extra += [self._upstream(n, "operation")[0] for n in extra]
        if latent.class_type == "EmptyAceStepLatentAudio":
            params["seconds"] = float(self.resolve(latent.inputs.get("seconds")))
        params.update(ace_sampling(raw, notes))
        if raw["denoise"] is not None:
            if latent.class_type == "VAEEncodeAudio":
                params["denoise"] = float(raw["denoise"])
            elif float(raw["denoise"]) != 1.0:
                notes.append(f"denoise {raw['denoise']} is not carried: without a song to edit generate.ace_step1 "
                             "makes the song from noise (1.0)")
        carried = [model, *passed, *[n for n in extra if n is not None], pos, latent]
        negative = self._feeding(neg, {n.id for n in carried})
        if neg is None or neg.class_type != "ConditioningZeroOut":
            notes.append("the negative is not ConditioningZeroOut's: generate.ace_step1 guides against the zeroed "
                         "prompt and lyrics, as ComfyUI's ConditioningZeroOut gives them")
            dropped |= {n.id for n in negative}
        song = self.resolve(latent.inputs.get("audio")) if latent.class_type == "VAEEncodeAudio" else None
        nid = self._fold_song("generate.ace_step1", "the loaders, prompt, EmptyAceStepLatentAudio (or VAEEncodeAudio) "
                              "and VAEDecodeAudio", "the model's null embedding", cn, ks, params,
                              [*carried, *negative], dropped)[0]
        # the nodes that became no Kinograph node of their own (their settings ride into this one)
        for n in [*extra, latent]:
            entry = self.report.entries.get(getattr(n, "id", None))
            if entry is not None and not entry.kinograph:
                entry.status, entry.notes = ("approx", [f"not carried by {nid} (generate.ace_step1)"]) \
                    if n.id in dropped else ("exact", [f"folded into {nid} (generate.ace_step1)"])
        if isinstance(song, Out) and not self.link(song, nid, "audio"):
            notes.append("the song to edit comes from a node that did not convert; connect audio by hand")
        return [nid]

    def _feeding(self, node, stop):
        """`node` and every ComfyUI node upstream of it, short of the nodes `stop` (ids) and what feeds them."""
        seen, todo = {}, [node]
        while todo:
            n = todo.pop()
            if n is not None and n.id not in seen and n.id not in stop:
                seen[n.id] = n
                todo += [self.flat.nodes.get(v.node) for v in n.inputs.values() if isinstance(v, Ref)]
        return list(seen.values())

    def _fold_song(self, kind: str, parts: str, against: str, cn, ks, params, folded, dropped):
        """`kind` in place of the Kinograph nodes the chain (`ks`, `folded`) became, its audio what decoder `cn`
        gives; `parts` names what folded into it. A chain two decoders read (a switch between VAEDecodeAudio and
        VAEDecodeAudioTiled) becomes one node per decoder: the first's node is kept for it, not folded again, and the
        chain's nodes name both."""
        g = self.graph
        made = {k for n in [ks, *folded] if n is not None and n.id in self.report.entries
                for k in self.report.entries[n.id].kinograph if k in g.nodes and g.nodes[k].type != kind}
        gone = made - {link.src for link in g.links() if link.src in made and link.dst not in made}
        for n in gone:
            g.remove_node(n)
        entry = self.report.entries.get(ks.id)
        twin = entry is not None and any(k in g.nodes and g.nodes[k].type == kind for k in entry.kinograph)
        nid = self.add(kind, ks, params, suffix="_for_" + re.sub(r"[^A-Za-z0-9]+", "_", cn.id) if twin else "")
        chain = {n.id for n in [ks, *folded] if n is not None}
        for entry in self.report.entries.values():
            if set(entry.kinograph) & gone or twin and entry.comfy_id in chain:
                entry.kinograph = [k for k in entry.kinograph if k not in gone] + [nid]
                entry.status = "approx" if entry.comfy_id in dropped else "exact"
                entry.notes = [f"folded into {nid} ({kind}), with {parts}"] if entry.comfy_id == ks.id else \
                    [f"part of the negative, not carried: {nid} ({kind}) guides against {against}"] \
                    if entry.comfy_id in dropped else [f"folded into {nid} ({kind})"]
        self.outs[(cn.id, 0)] = Out((nid, "audio"))
        return [nid]

    def special_music3_song(self, cn, rule, params, notes):
        """MiniMaxMusic3TextEncode: its widgets are generate.minimax_music3's; its seconds (the length the language
        model ends the song at, known as it runs) is that node's seconds 0, auto (VAEDecodeAudio folds the chain)."""
        self.outs[(cn.id, 0)] = Out(None, {"music3_song": params})
        self.outs[(cn.id, 1)] = Out(None, {"value": 0.0})
        return []

    def minimax_music3(self, cn, ks, params, notes):
        """generate.minimax_music3 in place of the nodes the chain (UNETLoader, CLIPLoader, VAELoader,
        MiniMaxMusic3TextEncode, ConditioningZeroOut, EmptyMiniMaxMusic3LatentAudio, KSampler) became, with the
        decoder's tiles (VAEDecodeAudioTiled's); None (left unmapped, with why) where the chain is another."""
        model, _ = self._upstream(ks, "model")
        pos, _ = self._upstream(ks, "positive")
        neg, _ = self._upstream(ks, "negative")
        clip = self._upstream(pos, "clip")[0] if pos is not None else None
        vae = self._upstream(cn, "vae")[0]
        kinds = [getattr(n, "class_type", None) for n in (model, pos, clip, vae)]
        if kinds != ["UNETLoader", "MiniMaxMusic3TextEncode", "CLIPLoader", "VAELoader"]:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                "generate.minimax_music3 takes the model from UNETLoader, the conditioning from MiniMaxMusic3TextEncode "
                "on CLIPLoader and the DAV from VAELoader, with nothing between: here they come from "
                f"{', '.join(str(k) for k in kinds)}")
            return None
        song = self.resolve(ks.inputs.get("positive"))
        song = dict(song.attrs.get("music3_song", {})) if isinstance(song, Out) else {}
        raw = {k: self.resolve(ks.inputs.get(k)) for k in ("seed", "steps", "cfg", "sampler_name", "scheduler",
                                                           "denoise")}
        out = {"diffusion_model": self.resolve(model.inputs.get("unet_name")),
               "text_encoder": self.resolve(clip.inputs.get("clip_name")),
               "vae": self.resolve(vae.inputs.get("vae_name")), **song,
               **{k: raw[k] for k in ("seed", "steps", "cfg") if raw[k] is not None}}
        seconds = self.resolve(ks.inputs.get("latent_image"))
        seconds = seconds.attrs.get("audio_seconds") if isinstance(seconds, Out) else None
        if seconds is not None:
            out["seconds"] = float(seconds)
        if params.get("tile_size") is not None:
            out.update(tile_size=int(params["tile_size"]), overlap=int(params.get("overlap", 64)))
        from nodes.generate.samplers import SAMPLERS
        out.update(ace_sampling(raw, notes, [s for s in SAMPLERS if s != "ar_video"], "MiniMax Music 3"))
        if raw["denoise"] is not None and float(raw["denoise"]) != 1.0:
            notes.append(f"denoise {raw['denoise']} is not carried: generate.minimax_music3 makes the song from "
                         "noise (1.0)")
        carried = [model, pos, clip, vae]
        negative = self._feeding(neg, {n.id for n in carried})
        dropped = set()
        if neg is None or neg.class_type != "ConditioningZeroOut":
            notes.append("the negative is not ConditioningZeroOut's: generate.minimax_music3 guides against no "
                         "conditioning, as ComfyUI does for a zeroed one")
            dropped = {n.id for n in negative}
        return self._fold_song("generate.minimax_music3", "the loaders, MiniMaxMusic3TextEncode, "
                               "EmptyMiniMaxMusic3LatentAudio and the decoder", "no conditioning", cn, ks, out,
                               [*carried, *negative], dropped)
