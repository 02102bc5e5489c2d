"""ComfyUI-Easy-Use's pipe nodes: a PIPE_LINE bundles model, prompts, VAE, CLIP, latent, images and the sampler's
settings; here it is an Out without a port whose attrs["pipe"] holds each field's Out, so the nodes that read a field
link to the Kinograph node that made it."""
from __future__ import annotations

import re

from ..flatten import Ref
from ..out import Out
from .core import comfy_denoise

# easy pipeIn's inputs and easy pipeOut's outputs -> the pipe's fields (Easy-Use's own dict keys)
PIPE_FIELDS = {"model": "model", "pos": "positive", "neg": "negative", "latent": "samples", "vae": "vae",
               "clip": "clip", "image": "images"}
PIPE_OUT_SLOTS = ("pipe", "model", "pos", "neg", "latent", "vae", "clip", "image", "seed")


class EasyUse:
    def pipe_of(self, cn, key: str = "pipe") -> dict:
        v = self.resolve(cn.inputs.get(key))
        return dict(v.attrs["pipe"]) if isinstance(v, Out) and isinstance(v.attrs.get("pipe"), dict) else {}

    def special_easy_pipe_in(self, cn, rule, params, notes):
        """Each field its own input where linked, else the given pipe's. A picture given without a latent is the
        pipe's new latent, encoded with the pipe's VAE (pipeIn's image to image)."""
        pipe = self.pipe_of(cn)
        for name, field in PIPE_FIELDS.items():
            v = self.resolve(cn.inputs.get(name))
            if isinstance(v, Out):
                pipe[field] = v
        made = []
        if isinstance(self.resolve(cn.inputs.get("image")), Out) and not isinstance(
                self.resolve(cn.inputs.get("latent")), Out):
            made.append(self.encode_into_pipe(cn, pipe, pipe["images"], notes))
        self.outs[(cn.id, 0)] = Out(None, {"pipe": pipe})
        return made

    def encode_into_pipe(self, cn, pipe: dict, image: Out, notes) -> str:
        """A picture encoded with the pipe's VAE becomes the pipe's latent (pipeIn's and preSampling's image to
        image); ComfyUI repeats it to the loader's batch size."""
        enc = self.add("vae.encode", cn, {}, "_encode")
        self.link(image, enc, "video")
        if not self.link(pipe.get("vae"), enc, "vae"):
            notes.append("the pipe carries no VAE that Kinograph made; connect vae.encode's vae by hand")
        pipe["samples"] = Out((enc, "latent"))
        if pipe.get("batch_size", 1) != 1:
            notes.append(f"ComfyUI repeats the encoded picture {pipe['batch_size']} times (the loader's batch "
                         "size); here it is sampled once")
        return enc

    def special_easy_pipe_out(self, cn, rule, params, notes):
        pipe = self.pipe_of(cn)
        self.outs[(cn.id, 0)] = Out(None, {"pipe": pipe})
        for slot, name in enumerate(PIPE_OUT_SLOTS[1:], 1):
            field = PIPE_FIELDS.get(name)
            if field in pipe:
                self.outs[(cn.id, slot)] = pipe[field]
        if "seed" in pipe.get("settings", {}):
            self.outs[(cn.id, 8)] = Out(None, {"value": pipe["settings"]["seed"]})
        return []

    def special_easy_full_loader(self, cn, rule, params, notes):
        """Efficient Loader's bundle (checkpoint, VAE, LoRA and stack, clip skip, both prompts, empty latent) with
        Easy-Use's resolution presets ('768 x 512'; 'width x height (custom)' takes the two widgets); also
        a1111Loader's and comfyLoader's, which have fewer widgets and outputs."""
        size = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", str(self.resolve(cn.inputs.get("resolution")) or ""))
        if size:
            cn.inputs["empty_latent_width"], cn.inputs["empty_latent_height"] = int(size[1]), int(size[2])
        for easy, eff in (("optional_lora_stack", "lora_stack"), ("optional_controlnet_stack", "cnet_stack")):
            if easy in cn.inputs:
                cn.inputs[eff] = cn.inputs.pop(easy)
        for k in ("model_override", "clip_override", "vae_override"):
            if isinstance(cn.inputs.get(k), Ref):
                notes.append(f"its {k} input is not carried: the checkpoint's own is used")
        for k in ("positive", "negative"):
            how = ("mean", "A1111") if cn.class_type == "easy a1111Loader" else \
                (self.resolve(cn.inputs.get(f"{k}_token_normalization")),
                 self.resolve(cn.inputs.get(f"{k}_weight_interpretation")))
            if how not in ((None, None), ("none", "comfy")):
                notes.append(f"{k} prompt weighting {how[1]} with {how[0]} normalization is read as ComfyUI's own "
                             "(comfy, none)")
        made = self.special_efficient_loader(cn, rule, params, notes)
        model, pos, neg, latent, vae, clip = (self.outs.pop((cn.id, k)) for k in range(6))
        # fullLoader hands out every part; a1111Loader and comfyLoader only the model and the VAE
        self.outs.update({(cn.id, 1): model, (cn.id, 2): vae})
        if len(cn.out_types) >= 7:
            self.outs.update({(cn.id, 3): clip, (cn.id, 4): pos, (cn.id, 5): neg, (cn.id, 6): latent})
        batch = self.resolve(cn.inputs.get("batch_size"))
        self.outs[(cn.id, 0)] = Out(None, {"pipe": {"model": model, "positive": pos, "negative": neg, "vae": vae,
                                                    "clip": clip, "samples": latent,
                                                    "batch_size": batch if isinstance(batch, int) else 1}})
        return made

    def special_easy_pre_sampling(self, cn, rule, params, notes):
        """The sampler's settings ride the pipe to easy kSampler; a picture given as image_to_latent (first) or a
        latent replaces the pipe's latent, the picture encoded with the pipe's VAE."""
        pipe = self.pipe_of(cn)
        image, latent = self.resolve(cn.inputs.get("image_to_latent")), self.resolve(cn.inputs.get("latent"))
        made = []
        if isinstance(image, Out):
            made.append(self.encode_into_pipe(cn, pipe, image, notes))
            pipe["images"] = image
        elif isinstance(cn.inputs.get("image_to_latent"), Ref):
            notes.append("its image_to_latent comes from a node that did not convert; connect vae.encode by hand")
        elif isinstance(latent, Out):
            pipe["samples"] = latent
        pipe["settings"] = dict(params)
        self.outs[(cn.id, 0)] = Out(None, {"pipe": pipe})
        return made

    def special_easy_ksampler(self, cn, rule, params, notes):
        """generate.sample with the pipe's settings, model (its own model input first), prompts and latent, then
        vae.decode with the pipe's VAE; saved as image_output asks."""
        pipe = self.pipe_of(cn)
        settings = dict(pipe.get("settings", {}))
        if not settings:
            notes.append("no easy preSampling before it: ComfyUI's defaults are not known here; set sample's steps, "
                         "cfg, sampler and seed by hand")
        comfy_denoise(settings)
        nid = self.add("generate.sample", cn, settings)
        model = self.resolve(cn.inputs.get("model"))
        # a ControlNet riding on the pipe's prompts (easy controlnetLoader) steers the model, as at KSampler
        model, made = self.control_model(cn, model if isinstance(model, Out) else pipe.get("model"),
                                         (pipe.get("positive"), pipe.get("negative")))
        for port, field in (("model", "model"), ("positive", "positive"), ("negative", "negative"),
                            ("latent", "samples")):
            src = model if port == "model" else pipe.get(field)
            if not self.link(src, nid, port):
                notes.append(f"the pipe carries no {field} that Kinograph made; connect sample's {port} by hand")
        made.append(nid)
        latent = Out((nid, "latent"))
        decode = self.add("vae.decode", cn, {}, "_decode", dy=200)
        made.append(decode)
        self.link(latent, decode, "latent")
        if not self.link(pipe.get("vae"), decode, "vae"):
            notes.append("the pipe carries no VAE that Kinograph made; connect vae.decode's vae by hand")
        image = Out((decode, "video"))
        mode = str(self.resolve(cn.inputs.get("image_output")) or "")
        if "Save" in mode:
            from ..mapping import out_path
            prefix = self.resolve(cn.inputs.get("save_prefix"))
            made.append(self.add("io.save_frames", cn, {"path": out_path("")(prefix)}, "_save", dy=400))
            self.link(image, made[-1], "video")
        self.outs[(cn.id, 0)] = Out(None, {"pipe": dict(pipe, samples=latent, images=image)})
        self.outs[(cn.id, 1)] = image
        return made

    def special_easy_lora_stack(self, cn, rule, params, notes):
        """easy loraStack: its first num_loras LoRAs (simple: one strength for model and CLIP; advanced: each its
        own), after those of a stack given to it, travel to the loader that takes the stack; toggled off, none."""
        v = lambda k: self.resolve(cn.inputs.get(k))       # noqa: E731
        if v("toggle") in (False, None, "False"):
            self.outs[(cn.id, 0)] = Out(None, {"lora_stack": ()})
            return []
        before = v("optional_lora_stack")
        stack = list(before.attrs.get("lora_stack", ())) if isinstance(before, Out) else []
        if isinstance(cn.inputs.get("optional_lora_stack"), Ref) and not (isinstance(before, Out)
                                                                          and "lora_stack" in before.attrs):
            notes.append("its optional_lora_stack comes from a node that did not convert; its LoRAs are left out")
        count = v("num_loras")
        for i in range(1, (count if isinstance(count, int) else 1) + 1):
            name = v(f"lora_{i}_name")
            if name in (None, "", "None"):
                continue
            model, clip = (v(f"lora_{i}_strength"),) * 2 if v("mode") == "simple" else \
                (v(f"lora_{i}_model_strength"), v(f"lora_{i}_clip_strength"))
            stack.append((name, 1.0 if model is None else model, 1.0 if clip is None else clip))
        self.outs[(cn.id, 0)] = Out(None, {"lora_stack": tuple(stack)})
        return []

    def special_easy_show_anything(self, cn, rule, params, notes):
        """Its output is its input (Easy-Use's logic.py returns what it shows): a text shown and passed on to an
        encoder reached it as 'a node that did not convert' and the prompt was lost."""
        src = self.resolve(cn.inputs.get("anything"))
        if src is not None:
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out(None, {"value": src})

    def special_easy_controlnet(self, cn, rule, params, notes):
        """easy controlnetLoader (and its ADV with start and end): ControlNetApplyAdvanced on the pipe's two prompts;
        the pipe and both prompts are handed on with the control riding on them to the sampler."""
        pipe = self.pipe_of(cn)
        given = self.resolve(cn.inputs.get("control_net"))
        path = given.attrs.get("path") if isinstance(given, Out) else self.resolve(cn.inputs.get("control_net_name"))
        image = self.resolve(cn.inputs.get("image"))
        if isinstance(cn.inputs.get("control_net"), Ref) and not isinstance(path, str) or \
                not (isinstance(image, Out) and image.port):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("its control_net or image comes from a node that did not convert")
            return None
        if params.get("strength", 1.0) != 0:
            control = {"path": path, "video": image, **{k: params[k] for k in ("strength", "start", "end")
                                                           if k in params}}
            for field in ("positive", "negative"):
                base = pipe.get(field)
                if isinstance(base, Out):
                    pipe[field] = Out(base.port, {**base.attrs, "controls": base.attrs.get("controls", ()) +
                                                  (control,)})
                else:
                    notes.append(f"the pipe carries no {field} prompt that Kinograph made; its ControlNet is not on it")
        self.outs[(cn.id, 0)] = Out(None, {"pipe": pipe})
        for slot, field in ((1, "positive"), (2, "negative")):
            if field in pipe:
                self.outs[(cn.id, slot)] = pipe[field]
        return []
