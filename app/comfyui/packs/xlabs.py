"""XLabs' x-flux-comfyui sampler."""
from __future__ import annotations

from ..out import Out


class XLabs:
    def special_xlabs_sampler(self, cn, rule, params, notes):
        """x-flux-comfyui's XlabsSampler: sample with the controls its controlnet_condition wire carries on its model
        (control.apply), FluxGuidance's guidance as cfg (1.0 without one, as XlabsSampler reads it), its true CFG
        where it starts within the steps (guide.true_cfg with the negative prompt), and a note for each of its
        settings that would change the picture and Kinograph does not carry."""
        steps = params.get("steps", 20)
        setting = {k: self.resolve(cn.inputs.get(k)) for k in ("timestep_to_start_cfg", "true_gs",
                                                                "image_to_image_strength", "denoise_strength")}
        start_cfg, true_gs = setting["timestep_to_start_cfg"], setting["true_gs"]
        denoise, i2i = setting["denoise_strength"], setting["image_to_image_strength"]
        if isinstance(denoise, (int, float)) and denoise <= 0.99:
            kept = max(int((steps + 1) * denoise) - 1, 0)
            notes.append(f"denoise_strength {denoise} stops XLabs' schedule after {kept} of its {steps} steps, "
                         "leaving the rest of the noise in the latent; Kinograph runs the whole schedule")
            steps = kept
        true_cfg = isinstance(start_cfg, int) and isinstance(true_gs, (int, float)) and start_cfg < steps \
            and true_gs != 1
        lat = self.resolve(cn.inputs.get("latent_image"))
        if isinstance(i2i, (int, float)) and i2i > 0:
            notes.append(f"image_to_image_strength {i2i} (XLabs starts from a 16-channel latent given, at that "
                         "strength) is not carried: the picture is generated from noise; for image to image use "
                         "sample's denoise")
        pos = self.resolve(cn.inputs.get("conditioning"))
        params["cfg"] = pos.attrs["guidance"] if isinstance(pos, Out) and "guidance" in pos.attrs else 1.0
        model, made = self.control_model(cn, self.resolve(cn.inputs.get("model")),
                                         (self.resolve(cn.inputs.get("controlnet_condition")),))
        wires = [("model", model), ("positive", pos), ("latent", lat)]
        if true_cfg and isinstance(model, Out) and model.port:
            # from step timestep_to_start_cfg on, as XlabsSampler: guide.true_cfg and the negative prompt
            made.append(self.add("guide.true_cfg", cn, {"scale": true_gs, "start": start_cfg}, "_true_cfg", dy=-80))
            self.link(model, made[-1], "model")
            wires += [("model", Out((made[-1], "model"))), ("negative", self.resolve(cn.inputs.get("neg_conditioning")))]
        nid = self.add(rule.node, cn, params)
        for port, v in dict(wires).items():
            if isinstance(v, Out) and v.port:
                self.link(v, nid, port)
            else:
                notes.append(f"input {port} comes from a node that did not convert; connect it by hand")
        self.outs[(cn.id, 0)] = Out((nid, "latent"))
        return made + [nid]
