"""kijai's ComfyUI-KJNodes: image resizes, sizes and latent ranges."""
from __future__ import annotations

from typing import List

from ..flatten import Ref
from ..out import Out


class KJNodes:
    def special_image_size_count(self, cn, rule, params, notes):
        """KJNodes' GetImageSizeAndCount: the picture passed on, and its width, height and count as GetImageSize
        gives them (known here after a resize to a set size, else measured by video.size)."""
        src = self.resolve(cn.inputs.get("image"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        size = self.fixed_size(src)
        made = [self.plain(cn, rule, params, notes)] if size is None or self.slot_read(cn.id, 3) else []
        if size:
            self.outs[(cn.id, 1)] = Out(None, {"value": size[0]})
            self.outs[(cn.id, 2)] = Out(None, {"value": size[1]})
        return made

    def special_image_resize_kj(self, cn, rule, params, notes):
        """KJNodes' ImageResizeKJ as its resize() computes the size: width_input / height_input (when set) replace
        width / height; keep_proportion fills a 0 side from the picture's shape (else a 0 side keeps the picture's
        own), or with both sides fits the picture inside them; divisible_by rounds each side down; crop center cuts
        the overflow. Its width and height outputs are the size it made."""
        ins = cn.inputs
        old_widgets = "height_input" in ins or isinstance(ins.get("width_input"), Ref)
        # files of the pack since width_input became link-only hold crop in its place (0: center, the pack says)
        crop = ins.get("crop", "disabled") if old_widgets else ins.get("width_input", "disabled")
        params["fit"] = "crop" if crop in ("center", 0) else "stretch"
        for side in ("width", "height"):
            given = ins.get(f"{side}_input") if old_widgets else None
            v = self.resolve(given)
            if isinstance(v, Out) and v.port is not None:
                params.pop(side, None)
                self.param_links.setdefault(cn.id, []).append((side, v, f"{side}_input"))
            elif isinstance(v, Out) or (given is not None and v is None):
                notes.append(f"{side}_input comes from a node that did not convert; set {side} by hand")
            elif v:
                params[side] = v
        if isinstance(ins.get("get_image_size"), Ref):
            notes.append("get_image_size (another picture's size) is not carried: set width and height to its size")
        w, h = params.get("width"), params.get("height")
        keep = self.resolve(ins.get("keep_proportion")) is True
        step = self.resolve(ins.get("divisible_by"))
        step = step if isinstance(step, int) and step > 1 else 1
        fixed = isinstance(w, int) and isinstance(h, int)
        if fixed and keep and w and h:
            params["fit"] = "pad"
            notes.append(f"keep_proportion fits the picture inside {w}x{h} and makes it that smaller size; Kinograph's "
                         f"pad fits it inside too but fills {w}x{h} with black bars")
        elif fixed and not keep and bool(w) != bool(h):
            notes.append(f"{'width' if not w else 'height'} 0 keeps the picture's own {'width' if not w else 'height'} "
                         "in ComfyUI (the picture is stretched); in Kinograph it follows the other side's scale")
        if fixed and step > 1:
            params["width"], params["height"] = w - w % step, h - h % step
            if (keep and w and h) or not (w and h):
                notes.append(f"divisible_by {step} is applied to the size ComfyUI computes from the picture; "
                             "Kinograph's follows the picture exactly: set the sides by hand to round them")
        elif step > 1:
            notes.append(f"divisible_by {step} rounds a linked side down; Kinograph takes it as it is")
        made = self.special_image_scale(cn, rule, params, notes)
        known = fixed and params["width"] and params["height"] and not (keep and params["fit"] == "pad")
        return made + self.size_outputs(cn, (params["width"], params["height"]) if known else None)

    def size_outputs(self, cn, size) -> List[str]:
        """A resize's width and height outputs (slots 1 and 2): the size it makes when the file fixes it, else
        measured from the resized clip by a video.size node (made only when something reads them)."""
        if size:
            self.outs[(cn.id, 1)] = Out(None, {"value": size[0]})
            self.outs[(cn.id, 2)] = Out(None, {"value": size[1]})
            return []
        if not (self.slot_read(cn.id, 1) or self.slot_read(cn.id, 2)):
            return []
        nid = self.add("video.size", cn, {}, "_size", dy=160)
        self.link(self.outs.get((cn.id, 0)), nid, "video")
        self.outs[(cn.id, 1)] = Out((nid, "width"))
        self.outs[(cn.id, 2)] = Out((nid, "height"))
        return [nid]

    def special_image_resize_kjv2(self, cn, rule, params, notes):
        """KJNodes' ImageResizeKJv2 as its resize() computes it: a 0 side is the picture's own; the size is rounded
        down to divisible_by; keep_proportion stretch, crop (the overflow cut at crop_position), pad (fitted inside,
        bars of pad_color around it) or resize (fitted inside, the frame that smaller size)."""
        ins = cn.inputs
        keep = self.choice(cn, "keep_proportion", "stretch", notes)
        step, position, colour = (self.resolve(ins.get(k)) for k in ("divisible_by", "crop_position", "pad_color"))
        step = step if isinstance(step, int) and step > 1 else 1
        w, h = params.get("width"), params.get("height")
        fixed = isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0
        if fixed:
            params["width"], params["height"] = w - w % step, h - h % step
        elif step > 1:
            notes.append(f"divisible_by {step} rounds a side only the run knows; Kinograph takes it as it is")
        if isinstance(w, int) and isinstance(h, int) and (w == 0) != (h == 0):
            notes.append(f"{'width' if w == 0 else 'height'} 0 keeps the picture's own in ComfyUI (stretched to "
                         "the other); in Kinograph it follows the other side's scale")
        fit = {"stretch": "stretch", "crop": "crop"}.get(keep, "pad")
        params["fit"] = fit
        if keep == "resize":
            notes.append("keep_proportion resize fits the picture inside the size and makes the frame that smaller "
                         "size; Kinograph's pad fits it inside too but fills the whole size with black bars")
        elif keep not in ("stretch", "crop", "pad"):
            notes.append(f"keep_proportion {keep} fills the bars with the picture's edge (or a blur of it); "
                         "Kinograph's pad fills them black")
        elif keep == "pad" and str(colour).replace(" ", "") not in ("0,0,0", "black"):
            notes.append(f"pad_color {colour!r} is not carried: Kinograph's bars are black")
        if keep in ("crop", "pad", "resize") and position not in (None, "center"):
            notes.append(f"crop_position {position} is not carried: Kinograph crops and pads centred")
        if keep != "crop" and keep != "stretch" and fixed and step > 1 and (w % step or h % step):
            notes.append(f"the pack pads the frame out to a multiple of divisible_by {step}; Kinograph's frame is "
                         f"{params['width']}x{params['height']}")
        self.untaken(cn, {"image", "width", "height"}, notes)
        made = self.special_image_scale(cn, rule, params, notes)
        known = fixed and keep != "resize"
        return made + self.size_outputs(cn, (params["width"], params["height"]) if known else None)

    def special_latent_range(self, cn, rule, params, notes):
        """KJNodes' GetLatentRangeFromBatch to the end (num_frames -1) drops the first start_index latent frames:
        latent.trim. A range that stops before the end has no Kinograph equivalent yet."""
        count, start = self.resolve(cn.inputs.get("num_frames", 1)), self.resolve(cn.inputs.get("start_index", 0))
        if count != -1 or not isinstance(start, int) or start < 0:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"start_index {start!r} with num_frames {count!r} keeps a range Kinograph has no node for: only "
                "num_frames -1 from a start_index of 0 or more (every frame from there on) maps, to latent.trim")
            return None
        return [self.plain(cn, rule, params, notes)]
