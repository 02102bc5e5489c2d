"""VideoHelperSuite: loading and combining video, and its video info nodes."""
from __future__ import annotations

import re

from ..flatten import Ref
from ..mapping import Approx
from ..out import Out


class VHS:
    def special_vhs_combine(self, cn, rule, params, notes):
        fmt = self.resolve(cn.inputs.get("format")) or "video/h264-mp4"
        from ..mapping import VHS_FORMATS, out_path
        codec, ext = VHS_FORMATS.get(fmt, ("h264", ".mp4"))
        if fmt not in VHS_FORMATS:
            notes.append(f"format {fmt!r} is not in Kinograph; H.264 MP4 written")
        params["codec"] = codec
        try:
            params["path"] = out_path(ext)(self.resolve(cn.inputs.get("filename_prefix")))
        except Approx as a:
            params["path"] = a.value
            notes.append(a.note)
        if isinstance(cn.inputs.get("audio"), Ref):
            notes.append("its audio input is not carried: the file keeps the sound the clip itself carries (from "
                         "io.load_video); to add other sound, mux it afterwards")
        vae = self.resolve(cn.inputs.get("vae"))
        if isinstance(vae, Out) and vae.port:
            # with a VAE connected VHS takes latents and decodes them first: vae.decode does that here
            made = [self.add("vae.decode", cn, {}, "_decode", dy=-160)]
            self.link(vae, made[0], "vae")
            if not self.link(self.resolve(cn.inputs.get("images")), made[0], "latent"):
                notes.append("input images comes from a node that did not convert; connect the decoder's latent "
                             "by hand")
            nid = self.add(rule.node, cn, params)
            self.graph.connect(made[0], "video", nid, "video")
            made.append(nid)
        else:
            nid = self.plain(cn, rule, params, notes)
            made = [nid]
        if self.resolve(cn.inputs.get("pingpong")) is True and self.graph.inputs.get(nid, {}).get("video"):
            # VHS appends the frames backwards, without repeating the turning ones: video.pingpong does the same
            pp = self.add("video.pingpong", cn, {}, "_pingpong", dy=-120)
            self.graph.connect(*self.graph.inputs[nid]["video"], pp, "video")
            self.graph.connect(pp, "video", nid, "video")
            made.insert(-1, pp)
        return made

    def special_vhs_load(self, cn, rule, params, notes):
        size = self.resolve(cn.inputs.get("force_size")) or "Disabled"
        w, h = self.resolve(cn.inputs.get("custom_width")), self.resolve(cn.inputs.get("custom_height"))
        if size in ("Custom", "Custom Width"):
            params["width"] = w
        if size in ("Custom", "Custom Height"):
            params["height"] = h
        fixed = re.fullmatch(r"(\d+|\?)x(\d+|\?)", str(size))       # VHS's presets: "512x?", "?x768", "1024x576"
        if fixed:
            for side, v in (("width", fixed[1]), ("height", fixed[2])):
                if v != "?":
                    params[side] = int(v)
        elif size not in ("Disabled", "Custom", "Custom Width", "Custom Height"):
            notes.append(f"force_size {size!r} is not carried; set width/height")
        nid = self.plain(cn, rule, params, notes)
        vae = self.resolve(cn.inputs.get("vae"))
        if not isinstance(vae, Out) or not vae.port:
            return [nid]
        # with a VAE connected VHS encodes the frames and outputs latents: vae.encode does that here
        enc = self.add("vae.encode", cn, {}, "_encode", dy=160)
        self.graph.connect(nid, "video", enc, "video")
        self.link(vae, enc, "vae")
        self.outs[(cn.id, 0)] = Out((enc, "latent"))
        return [nid, enc]

    def special_video_info(self, cn, rule, params, notes):
        """VHS's facts about a loaded clip. Its frame rate as loaded is the clip's own, which io.save_video keeps by
        default; the source file's rate is the same when the load did not force another. Counts and sizes are only
        known when the workflow runs: a node that reads them is told to set them by hand."""
        src = self.resolve(cn.inputs.get("video_info"))
        load = self.graph.nodes.get(src.port[0]) if isinstance(src, Out) and src.port else None
        forced = bool(load is not None and load.params.get("fps"))
        slots = {"VHS_VideoInfoLoaded": {0: True}, "VHS_VideoInfoSource": {0: not forced},
                 "VHS_VideoInfo": {0: not forced, 5: True}}[cn.class_type]
        for slot, same in slots.items():
            if same and load is not None:
                self.outs[(cn.id, slot)] = Out(None, {"clip_fps": (src.port[0], 1.0)})
        return []
