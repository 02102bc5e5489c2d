"""cubiq's ComfyUI_IPAdapter_plus: per-frame weights and batches."""
from __future__ import annotations

from ..out import Out


class IPAdapters:
    def special_ipadapter_weights(self, cn, rule, params, notes):
        """IPAdapterWeights: its weights, weights reversed and their count, known now; with an image it repeats them
        once per picture and makes cross-fade batches of the pictures, which only the run knows."""
        from app.comfyui.mapping import ipadapter_frame_weights
        if cn.inputs.get("image") is not None:
            self.not_constant(cn, "weights (repeated once per picture of its image) and cross-fade pictures")
            return None
        if params.get("timing") == "random":
            self.not_constant(cn, "random timing (new weights each run)")
            return None
        try:
            weights = ipadapter_frame_weights(str(params.get("weights", "1.0, 0.0")), params.get("timing", "linear"),
                                              int(params.get("frames", 0)), int(params.get("start_frame", 0)),
                                              int(params.get("end_frame", 9999)))
        except (TypeError, ValueError):
            self.not_constant(cn, f"weights {params.get('weights')!r} with timing {params.get('timing')!r}, which "
                                  "Kinograph does not read,")
            return None
        for slot, value in enumerate((weights, weights[::-1], len(weights))):
            self.outs[(cn.id, slot)] = Out(None, {"value": value})
        return []

    def special_ipadapter_batch(self, cn, rule, params, notes):
        """IPAdapterBatch given a list of weights (IPAdapterWeights): one per frame, ipadapter.apply's frame_weights."""
        if isinstance(params.get("weight"), list):
            params["frame_weights"] = ", ".join(repr(float(w)) for w in params.pop("weight"))
        return [self.plain(cn, rule, params, notes)]
