"""ComfyUI's own conditioning nodes of the video models: Wan (image-to-video, ATI, WanMove, VACE, Animate, Animate 2, camera), LTX-Video, SVD."""
from __future__ import annotations

import re

from ..flatten import Ref
from ..out import Out


REFERENCE_PORTS = ("image", "image2", "image3", "image4")     # condition.references' pictures, in order


def _slot(name: str):
    """An Autogrow input's order (ref_images.ref_image_10 after ref_image_9)."""
    tail = name.rsplit("_", 1)[-1]
    return (name.rsplit("_", 1)[0], int(tail) if tail.isdecimal() else 0)


class VideoModels:
    def special_ltxv_conditioning(self, cn, rule, params, notes):
        for slot, name in enumerate(("positive", "negative")):
            src = self.resolve(cn.inputs.get(name))
            base = src if isinstance(src, Out) else Out()
            self.outs[(cn.id, slot)] = Out(base.port, {**base.attrs, "fps": params.get("fps")})
        return []

    def special_wan_dancer_segments(self, cn, rule, params, notes):
        """WanDancerPadKeyframesList hands its segments on as lists, the nodes after it run once per segment. A list
        of one is the first segment's video.wan_dancer_keyframes; a longer one known from the file was expanded
        before the walk (app.comfyui.lists), so one reaching here is past the cap or known only as the workflow
        runs."""
        count = self.resolve(cn.inputs.get("num_segments"))
        if isinstance(count, Out) or count is None:
            return self.not_constant(cn, "num_segments")
        if count != 1:
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(
                f"it makes {count} segments, each run through the nodes after it, more than Kinograph copies on "
                "import: give a shorter final duration, or copy the local pass and set each copy's segment in "
                "video.wan_dancer_keyframes")
            return None
        return [self.plain(cn, rule, {**params, "segment": 0}, notes)]

    def special_i2v(self, cn, rule, params, notes):
        lat_params = {k: params[k] for k in ("width", "height", "frames") if k in params}
        lat = self.add("latent.empty", cn, lat_params, "_latent", dy=-160)
        self.link(self.resolve(cn.inputs.get("vae")), lat, "vae")
        images = {port: self.resolve(cn.inputs.get(c)) for c, port in rule.inputs.items()
                  if port in ("first", "last", "camera", "control")}
        if not any(isinstance(v, Out) and v.port for v in images.values()):
            for slot, name in enumerate(("positive", "negative")):      # nothing to pin: conditioning passes through
                v = self.resolve(cn.inputs.get(name))
                self.outs[(cn.id, slot)] = v if isinstance(v, Out) else Out()
            self.outs[(cn.id, 2)] = Out((lat, "latent"))
            for slot in range(3, len(rule.outputs)):        # outputs only an image gives (Kandinsky 5's cond_latent)
                self.outs[(cn.id, slot)] = Out()
            return [lat]
        cond = self.add(rule.node, cn, {})
        for comfy, port in rule.inputs.items():
            v = self.resolve(cn.inputs.get(comfy))
            # A picture from a node that did not convert (a Canny left a placeholder) was dropped without a word
            if comfy in cn.inputs and not self.link(v if isinstance(v, Out) else None, cond, port):
                notes.append(f"input {comfy} comes from a node that did not convert; connect {port} by hand")
        self.graph.connect(lat, "latent", cond, "latent")
        spec = self.registry.get(rule.node) if self.registry is not None else None
        # the latent comes out of the conditioning node where it changes it (Kandinsky 5 keeps the start frame in it)
        source = cond if spec is not None and "latent" in spec.outputs else lat
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        self.outs[(cn.id, 1)] = Out((cond, "negative"))
        self.outs[(cn.id, 2)] = Out((source, "latent"))
        for slot in range(3, len(rule.outputs)):
            self.outs[(cn.id, slot)] = Out((cond, rule.outputs[slot]))
        return [lat, cond]

    def special_minimax_h3_video(self, cn, rule, params, notes):
        """MiniMaxH3ImageToVideo: encode.text on its prompt, and latent.empty of its size and length (snapped up to
        the 17n+5 frames ComfyUI makes), which holds the soundtrack's latent too; its first_frame / last_frame
        (fl2va) pinned by condition.frames on the VAE and that latent, which reads the prompt again after them."""
        keys = {k: self.resolve(cn.inputs.get(c)) for c, k in (("first_frame", "first"), ("last_frame", "last"))}
        return self.minimax_h3_pictures(cn, rule, params, notes, "condition.frames", keys, {})

    def special_minimax_h3_reference(self, cn, rule, params, notes):
        """MiniMaxH3ReferenceToVideo: as MiniMaxH3ImageToVideo, its ref_images (in order) read by
        condition.references on the VAE and that latent, which reads the prompt again after them. Reference videos
        and sounds are not read yet."""
        pictures = [self.resolve(v) for k, v in sorted(cn.inputs.items(), key=lambda kv: _slot(kv[0]))
                    if k.startswith("ref_images.")]
        for k in cn.inputs:
            if k.startswith(("ref_videos.", "ref_video_audios.", "ref_audios.")):
                notes.append(f"{k}: MiniMax H3's reference videos and sounds are not read yet; the video is made "
                             "without it")
        if len(pictures) > len(REFERENCE_PORTS):
            notes.append(f"{len(pictures)} reference pictures: condition.references reads the first "
                         f"{len(REFERENCE_PORTS)}")
        resolution = params.pop("resolution", "match")
        return self.minimax_h3_pictures(cn, rule, params, notes, "condition.references",
                                        dict(zip(REFERENCE_PORTS, pictures)), {"resolution": resolution})

    def special_minimax_h3_guide(self, cn, rule, params, notes):
        """MiniMaxH3AddGuide: condition.frames pinning its image at frame_idx (a clip of 5 frames or more is a guide
        clip in ComfyUI, of which the first picture is pinned here); its audio is not read yet."""
        if "audio" in cn.inputs:
            notes.append("audio: MiniMax H3's guide sound is not read yet; the picture is pinned without it")
        ref = cn.inputs.get("image")
        source = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        if source is not None and source.class_type != "LoadImage":
            notes.append("image: a guide clip (5 frames or more) pins its first picture here, where ComfyUI pins "
                         "the clip")
        return [self.plain(cn, rule, params, notes)]

    def minimax_h3_pictures(self, cn, rule, params, notes, node, pictures, settings):
        """encode.text and latent.empty of MiniMax H3's conditioning node (its length snapped up to the 17n+5 frames
        ComfyUI makes), and `node` on the VAE, that latent and the prompt reading `pictures` where any are given."""
        frames = max(5, int(params.pop("frames", 124)))
        frames += (5 - frames % 17) % 17
        size = {k: params.pop(k) for k in ("width", "height") if k in params}
        text = self.plain(cn, rule, params, notes)
        lat = self.add("latent.empty", cn, {**size, "frames": frames}, "_latent", dy=-160)
        self.link(self.resolve(cn.inputs.get("vae")), lat, "vae")
        self.outs[(cn.id, 1)] = Out((lat, "latent"))
        if not any(pictures.values()):
            return [text, lat]
        cond = self.add(node, cn, settings, "_pictures", dy=160)
        self.link(self.resolve(cn.inputs.get("clip")), cond, "text_encoder")
        self.link(Out((text, "positive")), cond, "positive")
        self.link(Out((lat, "latent")), cond, "latent")
        self.link(self.resolve(cn.inputs.get("vae")), cond, "vae")
        for port, out in pictures.items():
            self.link(out, cond, port)
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        return [text, lat, cond]

    def special_ati(self, cn, rule, params, notes):
        """WanTrackToVideo: ComfyUI's track JSON (121 {x, y} samples per track) as a motion.tracks node of one
        point per frame, feeding condition.frames with the node's temperature and topk. No tracks: plain i2v,
        as ComfyUI falls back to WanImageToVideo."""
        from nodes.motion.wan_tracks import from_comfyui
        text = params.pop("tracks", "[]")
        try:
            tracks = from_comfyui(text, int(params.get("frames", 81)), int(params.get("width", 832)),
                                  int(params.get("height", 480))) if text.strip() not in ("", "[]") else None
        except (ValueError, TypeError) as e:     # json.JSONDecodeError is a ValueError
            tracks = None
            notes.append(f"tracks are not ATI's JSON ({e}); the video is made without them, as ComfyUI does: "
                         "draw them on motion.tracks and connect it to condition.frames' tracks")
        return self.steered_i2v(cn, rule, params, notes, tracks, {"method": "ati"}, ("temperature", "topk"))

    def special_wan_move(self, cn, rule, params, notes):
        """WanMoveTrackToVideo: tracks folded from GenerateTracks / WanMoveConcatTrack become a motion.tracks node
        at the video's size (ComfyUI reads their pixels against it, whatever size they were drawn at)."""
        src = self.resolve(cn.inputs.get("tracks"))
        tracks = src.attrs.get("tracks") if isinstance(src, Out) else None
        if tracks is not None:
            from nodes.motion.tracks import Tracks
            tracks = Tracks(tracks.points, tracks.visible, int(params.get("width", 832)),
                            int(params.get("height", 480)))
        elif isinstance(cn.inputs.get("tracks"), Ref):
            notes.append("input tracks comes from a node that did not convert; connect condition.frames' tracks by "
                         "hand (method wan_move)")
        return self.steered_i2v(cn, rule, params, notes, tracks, {"method": "wan_move"}, ("strength",))

    def steered_i2v(self, cn, rule, params, notes, tracks, fixed, keys):
        made = self.special_i2v(cn, rule, params, notes)
        cond = made[-1]
        if tracks is None or self.graph.nodes[cond].type != rule.node:
            return made
        self.graph.nodes[cond].params.update({**fixed, **{k: params[k] for k in keys if k in params}})
        tr = self.add("motion.tracks", cn, {"points": tracks.to_json(), "frames": tracks.length,
                                            "interpolation": "linear"}, "_tracks", dy=160)
        self.graph.connect(tr, "tracks", cond, "tracks")
        return made + [tr]

    def special_generate_tracks(self, cn, rule, params, notes):
        """GenerateTracks: its settings are constants, so its tracks are drawn here and travel folded to the node
        that reads them."""
        from nodes.motion.wan_tracks import generate_tracks
        need = ("width", "height", "start_x", "start_y", "end_x", "end_y", "num_frames", "num_tracks", "track_spread")
        if any(k not in params for k in need):
            self.not_constant(cn, "settings")
            return None
        if isinstance(cn.inputs.get("track_mask"), Ref):
            notes.append("track_mask is not carried: every track is visible in every frame")
        mid = (params.get("mid_x", 0.5), params.get("mid_y", 0.5)) if params.get("bezier") else None
        try:
            tr = generate_tracks(int(params["width"]), int(params["height"]), (params["start_x"], params["start_y"]),
                                 (params["end_x"], params["end_y"]), int(params["num_frames"]),
                                 int(params["num_tracks"]), float(params["track_spread"]), mid,
                                 params.get("interpolation", "linear"))
        except ValueError as e:
            self.not_constant(cn, f"tracks ({e})")
            return None
        self.outs[(cn.id, 0)] = Out(None, {"tracks": tr})
        self.outs[(cn.id, 1)] = Out(None, {"value": tr.length})
        return []

    def special_concat_tracks(self, cn, rule, params, notes):
        """WanMoveConcatTrack of folded tracks: one bundle of them all (same length needed, as ComfyUI's)."""
        import numpy as np
        from nodes.motion.tracks import Tracks
        parts = [self.resolve(cn.inputs.get(k)) for k in ("tracks_1", "tracks_2") if k in cn.inputs]
        got = [p.attrs["tracks"] for p in parts if isinstance(p, Out) and "tracks" in p.attrs]
        if not got or len(got) != len(parts) or len({t.length for t in got}) > 1:
            self.not_constant(cn, "tracks")
            return None
        self.outs[(cn.id, 0)] = Out(None, {"tracks": Tracks(np.concatenate([t.points for t in got]),
                                                            np.concatenate([t.visible for t in got]),
                                                            got[0].width, got[0].height)})
        return []

    def special_echo_size(self, cn, rule, params, notes):
        """Width, height and length outputs repeat the node's own settings: consumers read them as numbers."""
        nid = self.plain(cn, rule, params, notes)
        for slot, key in ((1, "width"), (2, "height"), (3, "frames")):
            if key in params:
                self.outs[(cn.id, slot)] = Out(None, {"value": params[key]})
        return [nid]

    def special_vace(self, cn, rule, params, notes):
        """ComfyUI's trim_latent output is the number of reference-image latent frames in front: 1 with a
        reference image, else 0. Known at import time, it becomes TrimVideoLatent's amount."""
        nid = self.plain(cn, rule, params, notes)
        self.outs[(cn.id, 3)] = Out(None, {"value": int(isinstance(cn.inputs.get("reference_image"), Ref))})
        return [nid]

    def special_wan_animate(self, cn, rule, params, notes):
        """ComfyUI's trim_latent output counts the reference image's latent frames in front: always one (a black
        picture stands in for a missing reference). Known at import time, it becomes TrimVideoLatent's amount."""
        nid = self.plain(cn, rule, params, notes)
        self.outs[(cn.id, 3)] = Out(None, {"value": 1})
        return [nid]

    def special_animate2_cache(self, cn, rule, params, notes):
        """WanAnimate2Cache: the model passes on; its cache of the pose branch saves ComfyUI time, not a change to
        the picture (bar int8/int4 rounding), and Kinograph reruns that branch each step instead."""
        model = self.resolve(cn.inputs.get("model"))
        self.outs[(cn.id, 0)] = model if isinstance(model, Out) else Out()
        return []

    def special_ltxv_guide(self, cn, rule, params, notes):
        """LTX-2's guides (any frame, any strength, a picture or a clip) are condition.guide_video; LTX-Video's
        picture at frame 0 (or -1) pins the first (or last) frame with condition.frames. The latent passes through,
        since Kinograph's sampler adds the guides' frames for its run rather than the latent carrying them."""
        idx = self.resolve(cn.inputs.get("frame_idx", 0))
        image = self.resolve(cn.inputs.get("image"))
        if self._ltx2_vae(cn):
            return self.ltx2_guide(cn, idx, image, notes)
        if idx not in (0, -1):
            self.placeholder(cn)
            self.report.entries[cn.id].notes.append(f"a guide at frame {idx}: Kinograph pins only the first or "
                                                    "last frame of LTX-Video")
            return None
        cond = self.add("condition.frames", cn, {})
        for comfy, port in (("positive", "positive"), ("negative", "negative"), ("vae", "vae"), ("latent", "latent"),
                            ("image", "first" if idx == 0 else "last")):
            v = self.resolve(cn.inputs.get(comfy))
            if isinstance(v, Out):
                self.link(v, cond, port)
        lat = self.resolve(cn.inputs.get("latent"))
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        self.outs[(cn.id, 1)] = Out((cond, "negative"))
        self.outs[(cn.id, 2)] = lat if isinstance(lat, Out) else Out()
        return [cond]

    def special_iclora_parameters(self, cn, rule, params, notes):
        """GetICLoRAParameters: the reference_downscale_factor of the IC-LoRA its model was given (the last lora.image
        before it), from the file's metadata as ComfyUI reads it (a key ending so, rounded, at least 1; 1 without);
        None where the file cannot be read here."""
        model = self.resolve(cn.inputs.get("iclora_model"))
        node = self.graph.nodes.get(model.port[0]) if isinstance(model, Out) and model.port else None
        factor = None
        if node is not None and node.type == "lora.image":
            try:
                from nodes.generate.detect import read_header
                from nodes.generate.model_manager import resolve_model_path
                path = resolve_model_path(str(node.params.get("path", "")), "loras", "LoRA")
                meta = read_header(path).metadata if path.is_file() else None
            except Exception:  # noqa: BLE001 - a file that is not there or not readable: the guide says so
                meta = None
            if meta is not None:
                found = next((v for k, v in meta.items() if k.endswith("reference_downscale_factor")), 1)
                try:
                    factor = max(1, round(float(found)))
                except (TypeError, ValueError):
                    factor = 1
        self.outs[(cn.id, 0)] = Out(None, {"reference_downscale_factor": factor})
        return []

    def _ltx2_vae(self, cn) -> bool:
        """Whether the node's VAE comes from an LTX-2 file (ltx-2-19b-..., ltx-2.3-22b-..., ltx-2.5-video-vae...)."""
        ref = cn.inputs.get("vae")
        src = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        names = [self.resolve(src.inputs.get(k)) for k in ("ckpt_name", "vae_name")] if src is not None else []
        return any(isinstance(n, str) and re.search(r"ltx-?2", n.lower()) for n in names)

    def ltx2_guide(self, cn, idx, image, notes):
        """LTXVAddGuide on LTX-2 (first / last frames, keyframes, IC-LoRA clips: canny edges, depth maps) is
        condition.guide_video at the same frame_idx and strength; a clip (VIDEO) goes to its video input, a picture
        to its image. The prompts from before the first guide of a chain are remembered for LTXVCropGuides."""
        strength = self.resolve(cn.inputs.get("strength", 1.0))
        if not isinstance(idx, int) or isinstance(strength, Out) or strength is None:
            self.not_constant(cn, "frame_idx or strength")
            return None
        notes[:] = [n for n in notes if not n.startswith("strength=")]
        if isinstance(cn.inputs.get("attention_mask"), Ref):
            notes.append("attention_mask is not carried: Kinograph weighs the guide's attention by its strength alone, "
                         "over the whole picture")
        iclora = self.resolve(cn.inputs.get("iclora_parameters"))
        factor = iclora.attrs.get("reference_downscale_factor") if isinstance(iclora, Out) else None
        if isinstance(cn.inputs.get("iclora_parameters"), Ref) and factor != 1:
            why = f"its IC-LoRA's metadata gives reference_downscale_factor {factor}, so ComfyUI reads the guide at " \
                  f"1/{factor} of the video's size, spread over it" if factor else \
                "its IC-LoRA's file is not in the model folders here to read its reference_downscale_factor (1, " \
                "the same, where its metadata gives none)"
            notes.append(f"iclora_parameters: Kinograph reads the guide at the video's size; {why}")
        cond = self.add("condition.guide_video", cn, {"frame_idx": idx, "strength": float(strength)})
        clip = isinstance(image, Out) and image.port and self._type(*image.port, True) == "VIDEO"
        self.link(image if isinstance(image, Out) else None, cond, "video" if clip else "image")
        for port in ("positive", "negative", "vae", "latent"):
            v = self.resolve(cn.inputs.get(port))
            if isinstance(v, Out):
                self.link(v, cond, port)
        lat = self.resolve(cn.inputs.get("latent"))
        for slot, port in enumerate(("positive", "negative")):
            before = self.resolve(cn.inputs.get(port))
            before = before.attrs.get("unguided", before) if isinstance(before, Out) else Out()
            self.outs[(cn.id, slot)] = Out((cond, port), {"unguided": before})
        self.outs[(cn.id, 2)] = lat if isinstance(lat, Out) else Out()
        return [cond]

    def special_ltx2_audio_latent(self, cn, rule, params, notes):
        """LTXVEmptyLatentAudio: latent.empty on LTX-2's VAE makes the sound's latent with the video's; its length and
        rate are the video's, which LTXVConcatAVLatent checks."""
        self.outs[(cn.id, 0)] = Out(None, {"ltx2_sound": (params.get("frames"), params.get("fps"))})
        return []

    def special_ltx2_audio_encode(self, cn, rule, params, notes):
        """The song goes into the video's latent where LTXVConcatAVLatent joins them (latent.set_sound)."""
        song = self.resolve(cn.inputs.get("audio"))
        self.outs[(cn.id, 0)] = Out(None, {"ltx2_song": song if isinstance(song, Out) else None, "ltx2_keep": False})
        return []

    def special_ltx2_av_concat(self, cn, rule, params, notes):
        video = self.resolve(cn.inputs.get("video_latent"))
        sound = self.resolve(cn.inputs.get("audio_latent"))
        if isinstance(sound, Out) and "ltx2_song" in sound.attrs:
            return self._ltx2_song(cn, video, sound, notes)
        self.outs[(cn.id, 0)] = video if isinstance(video, Out) else Out()
        made = self.graph.nodes.get(video.port[0]) if isinstance(video, Out) and video.port else None
        frames, fps = sound.attrs.get("ltx2_sound", (None, None)) if isinstance(sound, Out) else (None, None)
        if made is not None and made.type == "latent.empty" and fps:
            made.params["fps"] = fps        # the sound's rate is the video's: LTX-2 places both in seconds
            if frames not in (None, made.params.get("frames")):
                notes.append(f"the sound was made for {frames} frames and the video has {made.params.get('frames')}: "
                             "Kinograph's sound latent follows the video's length")
        return []

    def _ltx2_song(self, cn, video, sound, notes):
        """latent.set_sound on the video latent; its VAE (the audio VAE is the same checkpoint's) is the one that
        decodes the result, found as an empty latent's is."""
        if not sound.attrs["ltx2_keep"]:
            notes.append("the encoded song reaches the sampler without SetLatentNoiseMask 0, which ComfyUI would "
                         "denoise from it; Kinograph keeps a given sound as it is")
        nid = self.add("latent.set_sound", cn, {})
        self.pending_vae.append((nid, cn.id))
        for out, port in ((video, "latent"), (sound.attrs["ltx2_song"], "audio")):
            if not self.link(out if isinstance(out, Out) else None, nid, port):
                notes.append(f"the song's {port} comes from a node that did not convert; connect it by hand")
        self.outs[(cn.id, 0)] = Out((nid, "latent"))
        return [nid]

    def special_ltx2_av_separate(self, cn, rule, params, notes):
        av = self.resolve(cn.inputs.get("av_latent"))
        for slot in (0, 1):         # one latent: vae.decode gives its frames and its sound
            self.outs[(cn.id, slot)] = av if isinstance(av, Out) else Out()
        return []

    def special_start_image_inplace(self, cn, rule, params, notes):
        """LTXVImgToVideoInplace with bypass on passes its latent through, as ComfyUI does."""
        if params.pop("bypass", False):
            v = self.resolve(cn.inputs.get("latent"))
            self.outs[(cn.id, 0)] = v if isinstance(v, Out) else Out()
            return []
        return [self.plain(cn, rule, params, notes)]

    def special_ltx2_audio_decode(self, cn, rule, params, notes):
        """The decoded sound is the clip's own (vae.decode of the same latent), which CreateVideo keeps."""
        src = self.resolve(cn.inputs.get("samples"))
        self.outs[(cn.id, 0)] = Out(None, {"clip_audio": src.port[0]} if isinstance(src, Out) and src.port else {})
        return []

    def special_ltx2_reference_voice(self, cn, rule, params, notes):
        """Its audio VAE is the checkpoint's, which load.model's VAE holds: found as an empty latent's VAE is."""
        nid = self.plain(cn, rule, params, notes)
        self.pending_vae.append((nid, cn.id))
        return [nid]

    def special_vae_decode_audio(self, cn, rule, params, notes):
        """VAEDecodeAudio decodes whatever audio VAE it is given (Stable Audio's, ACE-Step's, MiniMax's, LTX-2's):
        of those Kinograph has Stable Audio Open's and 3's, ACE-Step 1.5's and v1's and MiniMax Music 3's
        (packs/sound_models.py; VAEDecodeAudioTiled's tiles carried for the last) and LTX-2's, whose sound
        vae.decode gives
        with the frames: known by its audio VAE (LTXVAudioVAELoader) or its latent (LTXVSeparateAVLatent's).
        Another model's is left for the user."""
        ks = self.stable_audio_sampler(cn, "EmptyMiniMaxMusic3LatentAudio")
        if ks is not None:
            return self.minimax_music3(cn, ks, params, notes)
        # said before the other models' folds too: VAEDecodeAudioTiled on ACE-Step's latent read 'exact'
        if params.get("tile_size") is not None:
            notes.append("the tiles are not carried: Kinograph decodes this sound whole")
        ks = self.stable_audio_sampler(cn)
        if ks is not None:
            return self.stable_audio(cn, ks, notes)
        ks = self.stable_audio_sampler(cn, "EmptyAceStep1.5LatentAudio")
        if ks is not None:
            return self.ace_step(cn, ks, notes)
        ks = self.ace_step1_sampler(cn)
        if ks is not None:
            return self.ace_step1(cn, ks, notes)
        if self.minimax_h3_audio_vae(cn):
            nid = self.add("vae.decode_sound", cn, {})
            for comfy, port in (("vae", "vae"), ("samples", "latent")):
                v = self.resolve(cn.inputs.get(comfy))
                if not self.link(v if isinstance(v, Out) else None, nid, port):
                    notes.append(f"input {comfy} comes from a node that did not convert; connect {port} by hand")
            self.outs[(cn.id, 0)] = Out((nid, "audio"))
            return [nid]
        made_by = {k: self.flat.nodes[v.node].class_type for k, v in cn.inputs.items()
                   if isinstance(v, Ref) and v.node in self.flat.nodes}
        if made_by.get("vae") != "LTXVAudioVAELoader" and made_by.get("samples") != "LTXVSeparateAVLatent":
            self.placeholder(cn)
            sampler = self.flat.nodes[cn.inputs["samples"].node] if "samples" in made_by else None
            empty = sampler.inputs.get("latent_image") if sampler is not None else None
            if isinstance(empty, Ref) and getattr(self.flat.nodes.get(empty.node), "class_type", "") == \
                    "EmptyAceStep1.5LatentAudio":
                why = (f"ACE-Step 1.5's latent, from {sampler.class_type}: generate.ace_step takes the chain with "
                       "KSampler (EmptyAceStep1.5LatentAudio -> KSampler -> VAEDecodeAudio)")
            else:
                why = "VAEDecodeAudio decodes LTX-2's and Stable Audio Open's sound in Kinograph; this latent comes " \
                      "from another model"
            self.report.entries[cn.id].notes.append(why)
            return None
        return self.special_ltx2_audio_decode(cn, rule, params, notes)

    def minimax_h3_audio_vae(self, cn) -> bool:
        """Whether VAEDecodeAudio's VAE is MiniMax H3's audio VAE, told by its file's name (minimax_h3_audio_vae_*)."""
        ref = cn.inputs.get("vae")
        loader = self.flat.nodes.get(ref.node) if isinstance(ref, Ref) else None
        name = str(loader.inputs.get("vae_name", "")).lower() if loader is not None else ""
        return loader is not None and loader.class_type == "VAELoader" and "minimax" in name and "audio" in name

    def special_crop_guides(self, cn, rule, params, notes):
        """The latent passes through (Kinograph's holds no guide frames); prompts that carry guides give way to
        those from before the first condition.guide_video, as ComfyUI's crop clears their keyframes."""
        for slot, name in enumerate(("positive", "negative", "latent")):
            v = self.resolve(cn.inputs.get(name))
            v = v.attrs.get("unguided", v) if isinstance(v, Out) else v
            self.outs[(cn.id, slot)] = v if isinstance(v, Out) else Out()
        return []

    def special_dual_cfg(self, cn, rule, params, notes):
        """LTXVDualCFGGuider: CFGGuider's cfg where video_cfg and audio_cfg agree; the sound is guided at the video's
        cfg where they do not."""
        audio, video = params.pop("audio_cfg", None), params.get("cfg")
        if audio is not None and video is not None and float(audio) != float(video):
            notes.append(f"audio_cfg {audio} is not carried: Kinograph guides the sound at the video's cfg {video}")
        self.fold(cn, rule, params)
        return []

    def special_text_generate(self, cn, rule, params, notes):
        """TextGenerate: text.generate. With sampling_mode off ComfyUI's dynamic combo stores no sampling widgets,
        so the values read as temperature, top_k and top_p are thinking, use_default_template and mtp (greedy). A
        picture goes to text.generate's image (Qwen3-VL, Qwen3.5, Gemma 4 read it), a video's frames to its video
        (Gemma 4 watches it, in the picture's place), a sound to its audio (Gemma 4 E2B / E4B hear it)."""
        if isinstance(cn.inputs.get("video"), Ref) and isinstance(cn.inputs.get("image"), Ref):
            notes.append("its image is not read: with a video linked too, Gemma 4 reads the video's frames in its "
                         "place, as ComfyUI does")
        if cn.inputs.get("sampling_mode") == "off":
            for k in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed"):
                params.pop(k, None)
            # a UI file's widget list moved them up into the sampling widgets' places; an API file names them
            for src, dst in (("temperature", "thinking"), ("top_k", "use_default_template")):
                if isinstance(cn.inputs.get(src), bool):
                    params[dst] = cn.inputs[src]
            params["sampling"] = False
        self.any_type_generates(cn, notes)
        nid = self.plain(cn, rule, params, notes)
        src = self.graph.inputs.get(nid, {}).get("image")
        if src and self.graph.nodes[src[0]].type == "video.frame":
            # a batch (ComfyUI's IMAGE of several pictures) came in: link() took its first as the one picture
            notes.append("its image is a batch of pictures: text.generate reads one picture, the batch's first "
                         f"({src[0]}, video.frame index 0); the others are not read")
        return [nid]

    def any_type_generates(self, cn, notes):
        """A CLIPLoader that only feeds TextGenerate loads its file as what it is: ComfyUI builds the language model
        from the file whatever its type (llm_qwen3_text_gen loads qwen_3_4b as ltxv), where load.text_encoder's type
        pairs the encoder with a model family, which generating text has none of."""
        ref, src = cn.inputs.get("clip"), self.resolve(cn.inputs.get("clip"))
        if not isinstance(ref, Ref) or not isinstance(src, Out) or not src.port:
            return
        loader = self.graph.nodes[src.port[0]]
        if loader.type != "load.text_encoder" or loader.params.get("type", "auto") == "auto":
            return
        if all(self.flat.nodes[c].class_type == "TextGenerate" for c in self.consumers.get(ref.node, [])):
            notes.append(f"its text encoder's type {loader.params['type']} is read as auto: only text generation "
                         "uses it")
            loader.params["type"] = "auto"

    def special_prompt_as_written(self, cn, rule, params, notes):
        """TextGenerateLTX2Prompt hands its prompt on; what only its language model (and its LoRA) or its pictures
        feed is not run, so that nothing loads a file the workflow does not use."""
        self.skipped[cn.id] = {v.node for k, v in cn.inputs.items() if k != "prompt" and isinstance(v, Ref)}
        src = self.resolve(cn.inputs.get("prompt"))
        self.outs[(cn.id, 0)] = src if isinstance(src, Out) else Out(None, {"value": params.get("value")})
        return []

    def special_svd(self, cn, rule, params, notes):
        lat = self.add("latent.empty", cn, {k: params[k] for k in ("width", "height", "frames", "fps") if k in params},
                       "_latent", dy=-160)
        self.link(self.resolve(cn.inputs.get("vae")), lat, "vae")
        enc = self.add("encode.image", cn, {}, "_image", dy=160)
        self.link(self.resolve(cn.inputs.get("clip_vision")), enc, "image_encoder")
        self.link(self.resolve(cn.inputs.get("init_image")), enc, "image")
        cond = self.add("condition.frames", cn, {k: params[k] for k in ("motion", "noise_aug") if k in params})
        self.link(self.resolve(cn.inputs.get("vae")), cond, "vae")
        self.link(self.resolve(cn.inputs.get("init_image")), cond, "first")
        self.graph.connect(enc, "conditioning", cond, "positive")
        self.graph.connect(lat, "latent", cond, "latent")
        self.outs[(cn.id, 0)] = Out((cond, "positive"))
        self.outs[(cn.id, 1)] = Out()           # SVD's negative is the model's own empty image embedding
        self.outs[(cn.id, 2)] = Out((lat, "latent"))
        return [lat, enc, cond]
