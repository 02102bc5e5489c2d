"""ComfyUI-Frame-Interpolation's RIFE and FILM nodes."""
from __future__ import annotations

from ..flatten import Ref


class FrameInterpolation:
    def special_vfi(self, cn, rule, params, notes):
        if isinstance(cn.inputs.get("optional_interpolation_states"), Ref):
            notes.append("optional_interpolation_states (frames to skip) is not carried: every pair is interpolated")
        return [self.plain(cn, rule, params, notes)]
