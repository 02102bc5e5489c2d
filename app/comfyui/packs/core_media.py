"""ComfyUI's own nodes for pictures, masks and clips: loading, alpha, resizing, batching, upscaling, saving."""
from __future__ import annotations

import dataclasses
import re

from ..mapping import RULES, Approx, Rule
from ..out import Out

# ComfyUI's scale methods (comfy.utils.common_upscale's)
COMFY_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")


class CoreMedia:
    def special_create_video(self, cn, rule, params, notes):
        src = self.resolve(cn.inputs.get("images"))
        base = src if isinstance(src, Out) else Out()
        fps = {"fps": params["fps"]} if params.get("fps") is not None else {}
        self.outs[(cn.id, 0)] = Out(base.port, {**base.attrs, **fps})
        audio = self.resolve(cn.inputs.get("audio"))
        song = self.graph.nodes.get(audio.port[0]) if isinstance(audio, Out) and audio.port else None
        if song is not None and song.type == "io.load_audio" and base.port:
            # a sound file (LoadAudio: S2V's voice) is laid under the frames, as ComfyUI muxes it
            nid = self.add("io.add_audio", cn, {"path": song.params.get("path", ""),
                                                "offset": song.params.get("start", 0.0)})
            self.link(base, nid, "video")
            self.outs[(cn.id, 0)] = Out((nid, "video"), {**base.attrs, **fps})
            return [nid]
        if isinstance(audio, Out) and audio.port and self._type(*audio.port, True) == "AUDIO" and base.port:
            # a sound made by other nodes (AudioConcat's two voices) is laid under the frames as it is
            nid = self.add("io.set_audio", cn, {})
            self.link(base, nid, "video")
            self.link(audio, nid, "audio")
            self.outs[(cn.id, 0)] = Out((nid, "video"), {**base.attrs, **fps})
            return [nid]
        if "audio" in cn.inputs and not (isinstance(audio, Out) and "clip_audio" in audio.attrs and
                                         self.rate_kept(cn, audio.attrs["clip_audio"])):
            # the clip's own sound travels with its frames in Kinograph; any other sound is not joined to them
            notes.append("the audio input is not carried")
        return []

    def special_trim_audio(self, cn, rule, params, notes):
        """TrimAudioDuration of a loaded video's own sound (GetVideoComponents' audio, which Kinograph's clip carries
        rather than hands out): that file's sound, read by io.load_audio, is trimmed."""
        audio = self.resolve(cn.inputs.get("audio"))
        src = self.graph.nodes.get(audio.attrs.get("clip_audio")) if isinstance(audio, Out) else None
        if src is None or src.type != "io.load_video" or src.params.get("start", 0):
            return [self.plain(cn, rule, params, notes)]
        song = self.add("io.load_audio", cn, {"path": src.params.get("path", "")}, "_sound", dy=-120)
        nid = self.plain(cn, dataclasses.replace(rule, inputs={}), params, notes)
        self.link(Out((song, "audio")), nid, "audio")
        return [song, nid]

    def special_batch_clips(self, cn, rule, params, notes):
        """ComfyUI's batch of images is a clip's frames: batching decoded clips plays them one after another."""
        keys = sorted((k for k in cn.inputs if k.startswith("images.")),
                      key=lambda k: int(re.sub(r"\D", "", k) or 0))
        # an input slot left unlinked is no picture (ComfyUI batches only what is linked)
        srcs = [self.resolve(cn.inputs[k]) for k in keys if cn.inputs[k] is not None]
        # ComfyUI brings each picture to the first's size (bilinear, cut at the middle)
        return self.joined(cn, srcs, fit=True)

    def joined(self, cn, srcs, fit: bool):
        """Clips (a single image is a one-frame clip: IMAGE links into VIDEO) played one after another as
        video.concat, each first brought to the first's size where `fit` (video.match_size passes one of that size
        unchanged); one alone is itself, as ComfyUI's batch of one is."""
        if not srcs or not all(isinstance(s, Out) and s.port and self._type(*s.port, True) in ("VIDEO", "IMAGE")
                               for s in srcs):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append("a picture it batches comes from a node that did not convert "
                                                    "(or none is linked)")
            return None
        made, cur = [], srcs[0]
        for k, src in enumerate(srcs[1:], 1):
            dy = 120.0 * (k - len(srcs) + 1)
            if fit:
                nid = self.add("video.match_size", cn, {"method": "bilinear", "crop": True}, f"_size{k}", dy - 180.0)
                self.link(src, nid, "video")
                self.link(srcs[0], nid, "reference")
                made.append(nid)
                src = Out((nid, "video"))
            nid = self.add("video.concat", cn, {}, "" if k == len(srcs) - 1 else f"_{k}", dy=dy)
            self.link(cur, nid, "video")
            self.link(src, nid, "other")
            cur = Out((nid, "video"))
            made.append(nid)
        self.outs[(cn.id, 0)] = cur
        return made

    def special_rebatch(self, cn, rule, params, notes):
        """RebatchImages (comfy_extras/nodes_rebatch.py) joins the batches it is given (a CreateList of clips) and
        hands the frames on in batches of batch_size, each run through the nodes after it on its own. A Kinograph
        clip is one batch of all its frames, so batches of 4096 (the most ComfyUI allows) are the clip itself."""
        v = self.resolve(cn.inputs.get("images"))
        items = v.attrs["list"] if isinstance(v, Out) and "list" in v.attrs else [v]
        size = self.resolve(cn.inputs.get("batch_size"))
        if isinstance(size, int) and size < 4096:
            notes.append(f"ComfyUI runs the nodes after it once per batch of {size} frames (CreateVideo writing a "
                         "file each); Kinograph runs them once on the whole clip, the same where it has at most "
                         f"{size} frames")
        if self.resolve(cn.inputs.get("overlap")) not in (None, 0):
            notes.append("its overlap between batches is not carried (the batches are one clip here)")
        # ComfyUI joins them with torch.cat, which needs one size: video.concat refuses two sizes by name too
        return self.joined(cn, items, fit=False)

    def special_color_transfer(self, cn, rule, params, notes):
        """ColorTransfer: without image_ref ComfyUI passes the frames on unchanged; mkl_lab's 3x3 transform and
        target_frame's chosen baseline frame (whose index sits before strength in the widgets) have no match here."""
        method, stats = cn.inputs.get("method"), cn.inputs.get("source_stats")
        if method == "mkl_lab" or stats == "target_frame":
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"{'method mkl_lab' if method == 'mkl_lab' else 'source_stats target_frame'} is not in Kinograph's "
                "color.match (reinhard or histogram, each frame or the whole clip)")
            return None
        if cn.inputs.get("image_ref") is None:
            src = self.resolve(cn.inputs.get("image_target"))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        return [self.plain(cn, rule, params, notes)]

    def special_video_components(self, cn, rule, params, notes):
        """The frames are the clip itself; its audio and frame rate are not separate values in Kinograph (the
        clip carries them), so a node reading those outputs is told to set them by hand."""
        src = self.resolve(cn.inputs.get("video"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        if isinstance(src, Out) and src.port:
            self.outs[(cn.id, 1)] = Out(None, {"clip_audio": src.port[0]})
            self.outs[(cn.id, 2)] = Out(None, {"clip_fps": (src.port[0], 1.0)})
        return []

    def special_resize_image_mask(self, cn, rule, params, notes):
        """ComfyUI's Resize Image/Mask: its widgets after resize_type depend on the type, the scale method last (read
        as height where the type has one widget, as width where it has none). By width and height (either 0: follow
        the other side) it is video.scale; by the longer or shorter side video.resize_side; by total pixels
        video.resize_pixels; by a multiplier upscale.resize; match size is video.match_size; scale to multiple is
        not mapped. All but the multiplier resample as ComfyUI does."""
        from ..mapping import comfy_scale, resize_method_no_bilinear
        kind = params.pop("resize_type", None)

        def method_of(*keys):
            got = next((v for k in keys for v in [self.resolve(cn.inputs.get(k))] if v in COMFY_METHODS), None)
            try:
                return comfy_scale(got)
            except Approx as a:
                notes.append(a.note)
                return a.value

        def one_widget(key: str):
            # widgets: [type, value, scale_method]: the value was read as width, the method as height
            value = next((v for k in (key, "resize_type.width") for v in [self.resolve(cn.inputs.get(k))]
                          if isinstance(v, (int, float)) and not isinstance(v, bool)), None)
            notes[:] = [n for n in notes if "resize_type." not in n and "scale_method" not in n]
            return value, method_of("scale_method", "resize_type.height")

        if kind in ("scale longer dimension", "scale shorter dimension"):
            side = kind.split()[1]
            size, method = one_widget(f"resize_type.{side}_size")
            return [self.plain(cn, dataclasses.replace(rule, node="video.resize_side"),
                               {"size": size, "side": side, "method": method}, notes)]
        if kind in ("scale total pixels", "scale by multiplier"):
            key = "resize_type.megapixels" if kind == "scale total pixels" else "resize_type.multiplier"
            amount, method = one_widget(key)
            if not isinstance(amount, (int, float)):
                self.placeholder(cn)
                self.report.entries[cn.id].notes.append(f"its {key.split('.')[1]} comes from a node that did not "
                                                        "convert: set it by hand")
                return None
            if kind == "scale total pixels":
                # ComfyUI counts int(megapixels * 2^20) pixels: the same count, as megapixels
                got = {"megapixels": int(amount * 1024 * 1024) / (1024 * 1024), "method": method, "step": 1}
                return [self.plain(cn, dataclasses.replace(rule, node="video.resize_pixels"), got, notes)]
            notes.append("scaled by upscale.resize, which resamples with OpenCV: its area and nearest shrink "
                         "otherwise than ComfyUI's (torch's area and nearest-exact), its lanczos has 4 lobes")
            try:
                method = resize_method_no_bilinear("nearest-exact" if method == "nearest" else method)
            except Approx as a:
                method = a.value
                notes.append(a.note)
            return [self.plain(cn, dataclasses.replace(rule, node="upscale.resize"),
                               {"scale": float(amount), "method": method}, notes)]
        if kind == "match size":
            # widgets: [type, crop, scale_method]: the crop was read as width, the method as height
            ref = self.resolve(cn.inputs.get("resize_type.match"))
            crop = self.resolve(cn.inputs.get("resize_type.crop", cn.inputs.get("resize_type.width")))
            notes[:] = [n for n in notes if "resize_type." not in n and "scale_method" not in n]
            nid = self.plain(cn, dataclasses.replace(rule, node="video.match_size"),
                             {"method": method_of("scale_method", "resize_type.height"), "crop": crop != "disabled"},
                             notes)
            self.link(ref, nid, "reference") or notes.append("its match comes from a node that did not convert; "
                                                            "connect video.match_size's reference by hand")
            return [nid]
        if kind in ("scale width", "scale height"):
            size, params["method"] = one_widget("resize_type.width" if kind == "scale width" else "resize_type.height")
            params.update(width=size if kind == "scale width" else 0, height=size if kind == "scale height" else 0)
            params.pop("crop", None)
        elif kind != "scale dimensions":
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(f"resize_type {kind!r} is not mapped: Kinograph maps scale "
                                                    "dimensions, scale width and scale height (video.scale), "
                                                    "scale longer and shorter dimension (video.resize_side), "
                                                    "scale total pixels (video.resize_pixels), scale by "
                                                    "multiplier (upscale.resize) and match size "
                                                    "(video.match_size)")
            return None
        return self.special_image_scale(cn, rule, params, notes, "input")

    def special_image_scale(self, cn, rule, params, notes, source: str = "image"):
        """ImageScale and Resize Image/Mask with width and height both 0 pass the picture on unchanged in ComfyUI,
        where video.resize asks for a size: the input goes straight on."""
        if params.get("width") == 0 and params.get("height") == 0:
            src = self.resolve(cn.inputs.get(source))
            self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
            return []
        return [self.plain(cn, rule, params, notes)]

    def special_load_image_mask(self, cn, rule, params, notes):
        """alpha: io.load_image's mask (1 - alpha); red, green or blue: that channel of its picture."""
        nid = self.plain(cn, rule, params, notes)
        channel = self.resolve(cn.inputs.get("channel", "alpha"))
        if channel == "alpha":
            return [nid]
        if channel not in ("red", "green", "blue"):
            notes.append(f"channel {channel!r} is not red, green, blue or alpha; red used")
            channel = "red"
        notes.append("a colour channel is read from the picture laid over black where it is transparent (ComfyUI "
                     "reads the colour as stored): the same for an opaque mask picture")
        pick = self.add("mask.from_video", cn, {"channel": channel}, "_channel", dy=120.0)
        self.graph.connect(nid, "image", pick, "video")
        self.outs[(cn.id, 0)] = Out((pick, "mask"))
        return [nid, pick]

    def special_join_alpha(self, cn, rule, params, notes):
        """The MASK (1 = transparent) as a picture, taken as the clip's alpha by its luma, inverted."""
        pic = self.add("mask.to_video", cn, {}, "_picture", dy=-120.0)
        self.link(self.resolve(cn.inputs.get("alpha")), pic, "mask") or notes.append(
            "input alpha comes from a node that did not convert; connect mask.to_video's mask by hand")
        nid = self.add(rule.node, cn, {"mode": "luma", "invert": True})
        self.link(self.resolve(cn.inputs.get("image")), nid, "video") or notes.append(
            "input image comes from a node that did not convert; connect video by hand")
        self.graph.connect(pic, "video", nid, "source")
        self.outs[(cn.id, 0)] = Out((nid, "video"))
        return [pic, nid]

    def special_split_alpha(self, cn, rule, params, notes):
        """The picture passes on as it is (its alpha travels beside it); the mask is its alpha, inverted."""
        src = self.resolve(cn.inputs.get("image"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        nid = self.add(rule.node, cn, {"channel": "alpha"})
        self.link(src, nid, "video") or notes.append("input image comes from a node that did not convert; connect "
                                                     "video by hand")
        inv = self.add("mask.invert", cn, {}, "_invert", dy=120.0)
        self.graph.connect(nid, "mask", inv, "mask")
        self.outs[(cn.id, 1)] = Out((inv, "mask"))
        return [nid, inv]

    def loader_file(self, cn, params, notes, *inputs) -> None:
        """The file of the folded loader on the first of `inputs` that `cn` has becomes params' `model`."""
        name = next((i for i in inputs if cn.inputs.get(i) is not None), inputs[0])
        loader = self.resolve(cn.inputs.get(name))
        model = loader.attrs.get("model") if isinstance(loader, Out) else None
        if isinstance(model, str) and model:
            params["model"] = model
        else:
            notes.append(f"its {name} comes from a node that did not convert; set model by hand")

    def special_upscale_model(self, cn, rule, params, notes):
        """The loader's file becomes upscale.model's `model`; ComfyUI's tiles (512, overlap 32) are its defaults."""
        self.loader_file(cn, params, notes, "upscale_model", "model")
        return [self.plain(cn, rule, params, notes)]

    def special_void_warped_noise(self, cn, rule, params, notes):
        """VOIDWarpedNoise becomes noise.void_warped with its OpticalFlowLoader's file."""
        self.loader_file(cn, params, notes, "optical_flow")
        return [self.plain(cn, rule, params, notes)]

    def special_moge(self, cn, rule, params, notes):
        """MoGeInference becomes depth.moge with its loader's file."""
        self.loader_file(cn, params, notes, "moge_model")
        return [self.plain(cn, rule, params, notes)]

    def special_remove_background(self, cn, rule, params, notes):
        """RemoveBackground becomes mask.remove_background with its loader's file, at ComfyUI's 1024 square."""
        self.loader_file(cn, params, notes, "bg_removal_model")
        return [self.plain(cn, rule, params, notes)]

    def special_frame_interpolate(self, cn, rule, params, notes):
        """RIFE weights run as interpolate.rife; FILM's, which Kinograph has no network for, as FILM VFI's do."""
        loader = self.resolve(cn.inputs.get("interp_model") or cn.inputs.get("model"))
        model = loader.attrs.get("model") if isinstance(loader, Out) else None
        if not isinstance(model, str) or not model:
            notes.append("its interp_model comes from a node that did not convert; set model by hand")
        elif "film" in model.lower():
            film = RULES["FILM VFI"]
            notes.append(film.note)
            return [self.plain(cn, Rule(film.node, outputs=rule.outputs, inputs=rule.inputs),
                               {**film.fixed, "factor": params.get("factor", 2)}, notes)]
        else:
            params["model"] = model
        return [self.plain(cn, rule, params, notes)]

    def special_saved_passes_on(self, cn, rule, params, notes):
        """ComfyUI's SaveVideo (comfy_extras/nodes_video.py: "The input video, unchanged.") and SaveImage (nodes.py:
        `"result": (images,)`) hand on what they save, and templates read it there (Wan Animate 2's side-by-side of
        the saved clip and its driving video): their output is their input's link, a folded CreateVideo's rate with
        it."""
        made = self.plain(cn, rule, params, notes)
        src = self.resolve(cn.inputs.get(next(iter(rule.inputs))))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out()
        return [made]

    def special_save_audio(self, cn, rule, params, notes):
        """The prefix's path with the format's file type; the quality (MP3's V0 or a bit rate, Opus's bit rate) as
        ComfyUI's widget gives it, Opus's default 128k where none is given."""
        fmt = params.pop("format", None) or self.resolve(cn.inputs.get("format"))
        if fmt not in ("flac", "mp3", "opus"):
            notes.append(f"format {fmt!r} is not ComfyUI's; flac used")
            fmt = "flac"
        params["path"] = f"{params.get('path', 'out/audio/ComfyUI')}.{fmt}"
        quality = self.resolve(cn.inputs.get("quality", cn.inputs.get("format.quality")))
        if fmt != "flac":
            params["quality"] = quality if isinstance(quality, str) else "V0" if fmt == "mp3" else "128k"
        return [self.plain(cn, rule, params, notes)]

    def special_webm_codec(self, cn, rule, params, notes):
        codec = self.resolve(cn.inputs.get("codec")) or "vp9"
        if codec == "av1":
            params["codec"] = "av1"
            params["path"] = params.get("path", "out/ComfyUI.webm")[: -len(".webm")] + ".mp4"
            notes.append("AV1 is written in an MP4 container")
        return [self.plain(cn, rule, params, notes)]
