"""WAS Node Suite: seed, image resize and latent upscale."""
from __future__ import annotations

from ..out import Out


class WAS:
    def special_was_seed(self, cn, rule, params, notes):
        """WAS's Seed: its seed, number, float and int outputs are all the one value."""
        for slot in range(4):
            self.outs[(cn.id, slot)] = Out(None, {"value": params.get("value")})
        return []

    def special_was_image_resize(self, cn, rule, params, notes):
        """WAS's Image Resize: rescale multiplies both sides (upscale.resize's scale); resize goes to the size given,
        each side rounded up to a multiple of 8, stretched. supersample resizes to 8x that size first, then down."""
        mode = self.resolve(cn.inputs.get("mode", "rescale"))
        supersample = self.resolve(cn.inputs.get("supersample", "true")) == "true"
        factor = self.number_or_link(cn, "rescale_factor", 2, "scale", notes) if mode == "rescale" else None
        if mode == "rescale" and factor == 1 and not supersample:
            src = self.resolve(cn.inputs.get("image"))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        if supersample:
            notes.append("supersample resizes to 8 times the size first and then down (a little softer); Kinograph "
                         "resizes once")
        if mode == "rescale":
            if params.get("method") == "bilinear":
                params["method"] = "bicubic"
                notes.append("upscale.resize has no bilinear; bicubic used (a little sharper)")
            nid = self.add("upscale.resize", cn, {**params, **({} if factor is None else {"scale": factor})})
            if not self.link(self.resolve(cn.inputs.get("image")), nid, "video"):
                notes.append("input image comes from a node that did not convert; connect video by hand")
            self.outs[(cn.id, 0)] = Out((nid, "video"))
            return [nid]
        params["fit"] = "stretch"
        for side in ("width", "height"):
            v = self.number_or_link(cn, f"resize_{side}", 1024, side, notes)
            if v is not None:
                params[side] = -(-int(v) // 8) * 8
            elif getattr(self.resolve(cn.inputs.get(f"resize_{side}")), "port", None) is not None:
                notes.append(f"resize_{side} from a link is rounded up to a multiple of 8 by WAS; Kinograph takes "
                             "it as it is")
        return [self.plain(cn, rule, params, notes)]

    def special_was_latent_upscale(self, cn, rule, params, notes):
        """WAS's Latent Upscale by Factor: torch's interpolate at `factor` (1 changes nothing: the latent goes on)."""
        if params.get("scale") == 1:
            src = self.resolve(cn.inputs.get("samples"))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        mode = self.choice(cn, "mode", "bilinear", notes)
        params["method"] = {"nearest": "nearest-exact"}.get(mode, mode)
        if mode == "nearest":
            notes.append("torch's nearest is read as nearest-exact (pixel centres): a picked sample can differ")
        if self.resolve(cn.inputs.get("align")) == "true" and mode in ("bilinear", "bicubic"):
            notes.append("align true (corner-aligned interpolation) is not carried: Kinograph interpolates between "
                         "pixel centres, as ComfyUI's LatentUpscaleBy does")
        return [self.plain(cn, rule, params, notes)]
