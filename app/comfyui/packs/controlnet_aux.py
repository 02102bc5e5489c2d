"""comfyui_controlnet_aux's nodes that need more than their rule: the inpaint preprocessor and AIO_Preprocessor."""
from __future__ import annotations

import dataclasses

from ..flatten import Ref
from ..mapping import AIO_DEFAULTS, INSTEAD, RULES
from ..out import Out
from ..report import APPROX, EXACT


class ControlnetAux:
    def special_inpaint_preprocessor(self, cn, rule, params, notes):
        """comfyui_controlnet_aux's InpaintPreprocessor: its picture (the masked pixels -1) is no picture a video holds,
        so the mask rides with the image to the ControlNet apply, whose control.apply sets those pixels."""
        image, mask = self.resolve(cn.inputs.get("image")), self.resolve(cn.inputs.get("mask"))
        if not (isinstance(image, Out) and image.port and isinstance(mask, Out) and mask.port):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("its image or mask comes from a node that did not convert")
            return None
        self.outs[(cn.id, 0)] = Out(image.port, {**image.attrs, "inpaint_mask": mask})
        notes.append("the mask goes with the picture to control.apply's mask, which gives an SD / SDXL ControlNet the "
                     "masked pixels as -1; anything else fed from this node (a preview) gets the picture unmasked")
        return []

    def special_aio(self, cn, rule, params, notes):
        """comfyui_controlnet_aux's AIO_Preprocessor: the preprocessor it names, converted by that one's own rule with
        the widgets AIO hands it (their defaults, AIO_DEFAULTS) and the AIO's resolution; one Kinograph does not map
        leaves a placeholder that names it."""
        name = self.resolve(cn.inputs.get("preprocessor", "none"))
        if not isinstance(name, str):
            self.not_constant(cn, "preprocessor")
            return None
        if name == "none":      # the image passed on as it is
            image = self.resolve(cn.inputs.get("image"))
            self.outs[(cn.id, 0)] = image if isinstance(image, Out) else Out()
            return []
        target = RULES.get(name)
        if target is None or target.node is None or "image" not in target.inputs:
            self.placeholder(cn)
            why = f": {INSTEAD[name]}" if name in INSTEAD else " has no Kinograph equivalent"
            self.report.entries[cn.id].notes[0] = f"its preprocessor {name}{why}; a placeholder marks its place"
            return None
        said = [f"runs {name}"]
        resolution = cn.inputs.get("resolution", 512)
        if not isinstance(resolution, Ref) and not (type(resolution) is int and resolution >= 64):
            # the pack's common_annotator_call: a resolution that is not a whole number of 64 or more is 512
            said.append(f"resolution {resolution!r} is below 64 or not a whole number: 512 used, as "
                        "comfyui_controlnet_aux does")
            resolution = 512
        inputs = {**AIO_DEFAULTS.get(name, {}), "resolution": resolution}
        if "image" in cn.inputs:        # left unconnected, it stays so (not "from a node that did not convert")
            inputs["image"] = cn.inputs["image"]
        unknown = [w for w in target.widgets if w not in inputs]
        if unknown:
            said.append(f"{', '.join(unknown)}: Kinograph's defaults, which may not be {name}'s own")
        self.convert(dataclasses.replace(cn, class_type=name, inputs=inputs, missing_widgets=()), target)
        entry = self.report.entries[cn.id]
        entry.class_type, entry.notes = cn.class_type, said + entry.notes
        if len(said) > 1 and entry.status == EXACT:
            entry.status = APPROX
        return None
