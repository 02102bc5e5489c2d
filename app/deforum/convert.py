"""A Deforum settings dictionary -> a Kinograph graph, with a report line for every setting that matters.

Deforum renders frame by frame: frame 0 from the prompt (or the init image), then each frame is the
previous one moved by one step of the camera schedules and re-diffused with img2img at the strength
schedule. 2D and 3D animations become that loop, generate.feedback, fed by a per-frame camera path and the
prompt schedule, with Deforum's strength, guidance, steps and seed schedules, cadence, colour coherence and hybrid
video; Video Input mode is the same loop fed the video's frames instead of the moved ones. Every setting that is
approximated or has no equivalent is named in the report with why."""
from __future__ import annotations

import math
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Dict, List, Optional, Tuple

from graph_engine.graph import Graph

from ..comfyui.report import APPROX, EXACT, LABELS, UNMAPPED, Entry, Report
from .schedules import (Converted, DeforumValueError, convert_schedule, finite, prompt_keyframes, seed_expression,
                        seed_schedule, split_negative, weight_expressions, weighted_schedule)

MODES = ("2D", "3D", "Video Input", "Interpolation", "None")
TRANSLATION_SCALE = 200.0       # Deforum's 3-D translations are in 1/200 of the picture's distance
WINDOW = 16                     # frames sampled at once (context.windows, batched)
# The longest clip Kinograph's frame counts take (camera.frames, latent.empty's frames). The import evaluates
# every schedule at every frame, so a file claiming 10^9 frames took hours and all memory before the
# converted workflow was refused for it; it is refused here, first.
MAX_FRAMES = 100_000


class DeforumSettingError(ValueError):
    """A setting that cannot be read; the message names the setting."""


class SettingEntry(Entry):
    """A report line about one Deforum setting (the Entry's class_type holds the setting's name)."""

    def line(self) -> str:
        target = f" -> {', '.join(self.kinograph)}" if self.kinograph else ""
        why = f": {'; '.join(n for n in self.notes if n)}" if any(self.notes) else ""
        return f"{LABELS[self.status]:<22} {self.class_type}{target}{why}"


# Settings that change nothing in a render of Kinograph's (Deforum's own UI, files and bookkeeping).
HOUSEKEEPING = {
    "show_info_on_ui", "batch_name", "filename_format", "outdir", "save_samples", "save_settings", "display_samples",
    "save_sample_per_step", "show_sample_per_step", "seed_iter_N", "n_samples", "precision", "C", "f", "timestring",
    "seed_internal", "init_sample", "init_latent", "init_c", "mask_image", "noise_mask", "prompt", "sd_model_hash",
    "deforum_git_commit_id", "skip_video_creation", "delete_imgs", "delete_input_frames", "store_frames_in_ram",
    "save_depth_maps", "motion_preview_mode", "overwrite_extracted_frames", "frame_interpolation_keep_imgs",
    "frame_interpolation_use_upscaled", "frame_interpolation_slow_mo_enabled", "frame_interpolation_slow_mo_amount",
    "r_upscale_keep_imgs", "r_upscale_factor", "r_upscale_model", "soundtrack_path", "resume_timestring",
    "sampling_mode", "near_schedule", "far_schedule", "midas_weight", "depth_algorithm", "legacy_colormatch",
    "aspect_ratio_use_old_formula", "reroll_patience", "strength_0_no_init", "seed_resize_from_w",
    "seed_resize_from_h", "subseed", "subseed_strength", "subseed_schedule", "subseed_strength_schedule",
    "pix2pix_img_cfg_scale_schedule", "sampler_schedule", "checkpoint_schedule", "clipskip_schedule",
    "ddim_eta_schedule", "ancestral_eta_schedule", "noise_multiplier_schedule", "mask_schedule",
    "noise_mask_schedule", "kernel_schedule", "sigma_schedule", "threshold_schedule", "cadence_flow_factor_schedule",
    "redo_flow_factor_schedule", "noise_type", "perlin_w", "perlin_h", "perlin_octaves", "perlin_persistence",
    "color_coherence_video_every_N_frames", "color_coherence_image_path", "mask_file", "invert_mask",
    "mask_contrast_adjust", "mask_brightness_adjust", "overlay_mask", "mask_overlay_blur", "fill", "full_res_mask",
    "full_res_mask_padding", "use_alpha_as_mask", "video_mask_path", "image_strength_schedule", "blendFactorMax",
    "blendFactorSlope", "tweening_frames_schedule", "color_correction_factor", "init_images", "ffmpeg_location",
    "ffmpeg_crf", "ffmpeg_preset", "image_path", "mp4_path", "render_steps", "path_name_modifier",
    "max_video_frames", "ncnn_upscale_model", "ncnn_upscale_factor", "ncnn_upscale_keep_imgs", "n_batch",
    "perspective_flip_theta", "perspective_flip_phi", "perspective_flip_gamma", "perspective_flip_fv",
    "steps_schedule", "parseq_use_deltas", "parseq_non_schedule_overrides", "tiling", "restore_faces",
    "hybrid_comp_alpha_schedule", "hybrid_comp_mask_blend_alpha_schedule", "hybrid_comp_mask_contrast_schedule",
    "hybrid_comp_mask_auto_contrast_cutoff_high_schedule", "hybrid_comp_mask_auto_contrast_cutoff_low_schedule",
    "hybrid_flow_factor_schedule", "hybrid_generate_inputframes", "hybrid_generate_human_masks",
    "hybrid_use_first_frame_as_init_image", "hybrid_motion_use_prev_img", "hybrid_flow_consistency",
    "hybrid_consistency_blur", "hybrid_flow_method", "hybrid_use_init_image", "hybrid_comp_mask_type",
    "hybrid_comp_mask_inverse", "hybrid_comp_mask_equalize", "hybrid_comp_mask_auto_contrast",
    "hybrid_comp_save_extra_frames", "extract_nth_frame", "extract_from_frame", "extract_to_frame",
    "video_init_path", "ddim_eta", "dynamic_threshold", "static_threshold", "prompt_weighting",
    "normalize_prompt_weights", "log_weighted_subprompts", "make_grid", "grid_rows", "seed_enable_extras",
    "animation_prompts", "prompts", "positive_prompts", "negative_prompts", "animation_prompts_positive",
    "animation_prompts_negative", "use_init", "init_image", "strength", "scale", "cfg_scale", "sampler",
    "scheduler", "steps", "seed", "seed_behavior", "seed_schedule", "W", "H", "width", "height", "fps",
    "max_frames", "animation_mode", "border", "padding_mode", "angle", "zoom", "translation_x", "translation_y",
    "translation_z", "transform_center_x", "transform_center_y", "rotation_3d_x", "rotation_3d_y",
    "rotation_3d_z", "fov_schedule", "fov", "near_plane", "far_plane", "use_depth_warping", "noise_schedule",
    "strength_schedule", "contrast_schedule", "cfg_scale_schedule", "color_coherence", "color_force_grayscale",
    "diffusion_cadence", "sd_model_name", "aspect_ratio_schedule", "amount_schedule", "enable_steps_scheduling",
    "enable_clipskip_scheduling", "use_mask_video", "frame_interpolation_engine",
    "interpolate_key_frames", "interpolate_x_frames",
}
# Features that are off unless the setting says otherwise: (is it on?, what the report says when it is)
OPTIONAL = {
    "enable_perspective_flip": (bool, "perspective flip has no Kinograph equivalent; the flip is left out"),
    "flip_2d_perspective": (bool, "perspective flip has no Kinograph equivalent; the flip is left out"),
    "use_mask": (bool, "init masks are not imported; the whole picture is re-diffused (to keep a region as it was, "
                 "lay the render over the source with video.over and the mask, mask.from_video)"),
    "use_noise_mask": (bool, "noise masks are not imported"),
    "use_mask_video": (bool, "the mask video is not imported; the whole picture is re-diffused (to keep a region as "
                       "it was, lay the render over the source with video.over and mask.from_video of the mask video)"),
    "hybrid_motion": (lambda v: v not in ("None", None, ""), "hybrid video is used in 2D and 3D modes only, in "
                      "Deforum too"),
    "hybrid_composite": (lambda v: v not in (False, "None", None, ""), "hybrid video is used in 2D and 3D modes only, "
                         "in Deforum too"),
    "enable_checkpoint_scheduling": (bool, "one checkpoint for the whole clip: model.path"),
    "enable_sampler_scheduling": (bool, "one sampler for the whole clip: sample.sampler"),
    "enable_subseed_scheduling": (bool, "subseeds are not imported"),
    "enable_ddim_eta_scheduling": (bool, "eta schedules are not imported"),
    "enable_ancestral_eta_scheduling": (bool, "eta schedules are not imported"),
    "enable_noise_multiplier_scheduling": (bool, "noise multiplier schedules are not imported"),
    "parseq_manifest": (bool, "Parseq manifests are not read; the file's own schedules are used instead"),
    "optical_flow_cadence": (lambda v: v not in ("None", None, ""), "optical-flow cadence is not imported"),
    "optical_flow_redo_generation": (lambda v: v not in ("None", None, ""), "optical-flow redo is not imported"),
    "diffusion_redo": (lambda v: bool(v) and str(v) != "0", "diffusion redo is not imported"),
    "reroll_blank_frames": (lambda v: v not in ("ignore", None, ""), "blank frames are not rerolled"),
    "resume_from_timestring": (bool, "a render is not resumed from Deforum's frames; the whole clip renders"),
    "add_soundtrack": (lambda v: v not in ("None", None, "", False), "the soundtrack is not added"),
    "r_upscale_video": (bool, "the upscaled copy is not made: add upscale.model or upscale.resize after decode"),
    "make_gif": (bool, "no GIF is written: set save.codec to gif, or add a second io.save_video"),
    "frame_interpolation_x_amount": (lambda v: v not in ("Disabled", None, "", 0, 1, "0", "1"),
                                     "frame interpolation is not added: put interpolate.rife (with RIFE weights) "
                                     "or interpolate.flow between decode and save"),
    "use_looper": (bool, "guided images (the looper) are not imported: the loop starts from the init image alone; "
                   "import each stretch with its guide image as init_image, or steer it with a ControlNet unit"),
    # A1111's own options, which Deforum passes on to every frame
    "tiling": (bool, "seamless tiling (A1111's Tiling) has no Kinograph equivalent: the frames do not tile"),
    "restore_faces": (bool, "faces are not restored (A1111's GFPGAN / CodeFormer): Kinograph has no face-restoration "
                      "node"),
    "seed_resize_from_w": (lambda v: v not in (0, -1, None, "", "0"), "A1111's 'resize seed from' is not imported: "
                           "the noise is drawn at the picture's own size"),
    "seed_resize_from_h": (lambda v: v not in (0, -1, None, "", "0"), "A1111's 'resize seed from' is not imported: "
                           "the noise is drawn at the picture's own size"),
    "motion_preview_mode": (bool, "Deforum's motion preview (the camera move without diffusion) is not imported: "
                            "every frame is diffused"),
}


# Deforum's depth_algorithm -> the Hugging Face folders of that model (depth.estimate reads those).
DEPTH_MODELS = {"midas-3-hybrid": ("dpt-hybrid-midas",), "midas-3.1-beitlarge": ("dpt-beit-large-512",),
                "zoe": ("zoedepth-nyu-kitti",), "depth-anything-v2-small": ("Depth-Anything-V2-Small-hf",)}


def _is_on(test, v) -> bool:
    try:
        return bool(test(v)) if test is not bool else v not in (False, None, "", 0, "false", "False", "None")
    except (TypeError, ValueError):
        return True



class Builder:
    def __init__(self, settings: Dict[str, Any], registry=None):
        self.s = settings
        self.registry = registry
        self.graph = Graph()
        self.report = Report(source="Deforum")
        self.n = 0
        self.color_video_every = 0      # Deforum's 'Video Input' colour coherence, with hybrid video

    # -- reading settings ----------------------------------------------------------------------------
    def get(self, key: str, default=None, *alts):
        for k in (key, *alts):
            if k in self.s and self.s[k] is not None:
                return self.s[k]
        return default

    def number(self, key: str, default: float, *alts, whole: bool = False) -> float:
        v = self.get(key, default, *alts)
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                raise DeforumSettingError(f"{key}: expected a number, got {v!r}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not finite(v):
            raise DeforumSettingError(f"{key}: expected a number, got {str(v)[:40]}")
        if whole:
            if v != int(v):
                raise DeforumSettingError(f"{key}: expected a whole number, got {v!r}")
            return int(v)
        return float(v)

    def schedule(self, key: str, default: str, *alts) -> Converted:
        v = self.get(key, default, *alts)
        try:
            return convert_schedule(v, self.frames, self.seed)
        except DeforumValueError as e:
            raise DeforumSettingError(f"{key}: {e} (the setting is {str(v)[:120]!r})") from None

    def entry(self, key: str, status: str, targets: List[str], *notes: str) -> None:
        self.n += 1
        if not any(k.strip() in self.s for k in re.split(r"[,/]", key)) and key not in ("prompts", "animation_mode"):
            notes = ("not in the file: Deforum's default",) + notes
        self.report.add(SettingEntry(f"{self.n:04d}", key, "", status, list(targets), [n for n in notes if n],
                                     runs=False))

    # -- graph ---------------------------------------------------------------------------------------
    def add(self, type_name: str, nid: str, params: Dict[str, Any], pos: Tuple[int, int]) -> str:
        spec = self.registry.get(type_name) if self.registry is not None else None
        self.graph.add_node(type_name, nid, params, spec.version if spec else 1)
        self.graph.ui[nid] = {"pos": [pos[0], pos[1]]}
        return nid

    def link(self, src: str, port: str, dst: str, dport: str) -> None:
        self.graph.connect(src, port, dst, dport)

    # -- the whole conversion --------------------------------------------------------------------------
    def run(self) -> Tuple[Graph, Report]:
        mode = str(self.get("animation_mode", "2D")).strip()
        match = {m.lower(): m for m in MODES}.get(mode.lower())
        if match is None:
            raise DeforumSettingError(f"animation_mode: {mode!r} is not one of Deforum's modes ({', '.join(MODES)})")
        self.mode = match
        self.frames = self.number("max_frames", 120, whole=True)
        if self.frames < 1:
            raise DeforumSettingError(f"max_frames: {self.frames} frames; a clip needs at least 1")
        if self.frames > MAX_FRAMES:
            raise DeforumSettingError(f"max_frames: {self.frames} frames; Kinograph makes clips of at most "
                                      f"{MAX_FRAMES} frames: set max_frames to {MAX_FRAMES} or fewer")
        seed = self.number("seed", -1, whole=True)
        self.seed = seed if seed >= 0 else 0
        self.entry("animation_mode", EXACT if self.mode in ("2D", "Video Input", "Interpolation", "None") else APPROX,
                   [], self._mode_note())
        self.entry("max_frames", EXACT, ["camera.frames" if self.mode in ("2D", "3D") else "latent.frames"]
                   if self.mode != "Video Input" else [],
                   "" if self.mode != "Video Input" else "the clip has the video's length, as Deforum sets max_frames "
                   "to it in this mode; schedules are read over max_frames frames")
        self.size()
        # Deforum's cadence (2D and 3D): only one frame in n is sampled, so prompts index those frames
        self.n_cadence = self.read_cadence() if self.mode in ("2D", "3D") else 1
        self.model_and_prompts()
        self.sampling_settings(seed)
        build = {"2D": self.animation, "3D": self.animation, "Video Input": self.video_input,
                 "Interpolation": self.interpolation, "None": self.still}[self.mode]
        build()
        self.optional_features()
        self.unknown_settings()
        return self.graph, self.report

    def _mode_note(self) -> str:
        return {"3D": "the picture moves by its estimated depth where a depth model is in the model folders, else "
                      "as a plane (see use_depth_warping)",
                "Interpolation": "", "None": "one still from the first prompt"}.get(self.mode, "")

    def size(self) -> None:
        w = self.number("W", 512, "width", whole=True)
        h = self.number("H", 512, "height", whole=True)
        if w < 64 or h < 64:
            raise DeforumSettingError(f"W, H: {w}x{h} is too small to render (64 pixels at least)")
        # Stable Diffusion's latents are 1/8 of the picture: the size is a multiple of 8, as A1111 rounds it
        self.w, self.h = w - w % 8, h - h % 8
        note = f"{w}x{h} rounded down to {self.w}x{self.h} (a multiple of 8)" if (w, h) != (self.w, self.h) else ""
        self.entry("W, H", APPROX if note else EXACT, ["size"], note)
        self.fps = self.number("fps", 15)
        if self.fps <= 0:
            raise DeforumSettingError(f"fps: {self.fps:g} frames a second; it must be above 0")
        self.entry("fps", EXACT, ["save.fps"])

    def model_and_prompts(self) -> None:
        name = str(self.get("sd_model_name", "") or "").strip()
        note = ""
        if not name:
            note = "the file names no checkpoint: set model.path to your SD 1.5 checkpoint"
        elif not PurePosixPath(name).suffix:
            name += ".safetensors"
            note = f"A1111 names it without its extension: looked up as {name}"
        name = PureWindowsPath(name).as_posix() if "\\" in name else name
        xl = bool(name) and _is_sdxl_checkpoint(name)
        self.add("load.sdxl" if xl else "load.sd", "model", {"path": name}, (0, 0))
        self.entry("sd_model_name", APPROX if note else EXACT, ["model.path"], note,
                   "" if xl else "an SDXL checkpoint is loaded as SDXL (load.sdxl) when the model folders hold it "
                   "as the import runs: put it there and import again")
        prompts = self.get("prompts", None, "animation_prompts")
        if prompts is None:
            raise DeforumSettingError("prompts: the file has no prompts (Deforum saves them as \"prompts\": "
                                      "{\"0\": \"...\"})")
        if isinstance(prompts, str):          # some tools save the dictionary as JSON text
            import json
            try:
                prompts = json.loads(prompts)
            except ValueError:
                raise DeforumSettingError("prompts: expected a dictionary of frame: prompt, such as "
                                          "{\"0\": \"a forest\"}, got text that is not one") from None
        key = "prompts" if "prompts" in self.s else "animation_prompts"
        try:
            keys = prompt_keyframes(prompts, self.frames)
        except DeforumValueError as e:
            raise DeforumSettingError(f"{key}: {e}") from None
        extra_pos = str(self.get("animation_prompts_positive", "", "positive_prompts") or "").strip()
        extra_neg = str(self.get("animation_prompts_negative", "", "negative_prompts") or "").replace("--neg", "").strip()
        pos, neg, notes = [], [], []
        for frame, text in keys:
            p, n = split_negative(text)
            # Deforum joins them with a space: f"{positive} {prompt} --neg {negative}"
            pos.append((frame, " ".join(x for x in (extra_pos, p) if x)))
            neg.append((frame, " ".join(x for x in (n, extra_neg) if x)))

        def at(text: str, frame: int) -> str:
            try:
                return weight_expressions(text, frame, self.frames, self.seed)
            except DeforumValueError as e:
                raise DeforumSettingError(f"{key}: frame {frame}: {e}") from None
        self.blend = self.mode == "Interpolation"
        end = self.frames
        if self.blend:
            text = ", ".join(f"{f}: {at(t, f)}" for f, t in pos) if len(pos) > 1 else at(pos[0][1], 0)
            negative = ", ".join(f"{f}: {at(t, f)}" for f, t in neg) if len({t for _, t in neg}) > 1 else \
                at(neg[0][1], 0)
        else:
            (text, a), (negative, b) = weighted_schedule(pos, end, at), weighted_schedule(neg, end, at)
            if max(a, b) > 1:
                notes.append(f"`...` weights are evaluated every {max(a, b)} frames (at every frame the prompt "
                             "schedule would be too long) and blended between")
        self.add("encode.text", "prompt", {"text": text, "negative": negative}, (0, 260))
        self.link("model", "text_encoder", "prompt", "text_encoder")
        how = "blended between keyframes, as Interpolation mode does" if self.blend else \
            "each keyframe's prompt from its frame on, as Deforum switches them"
        if any("`" in t for _, t in pos + neg):
            how += "; `...` weights evaluated at every frame"
        self.entry(key, APPROX if notes else EXACT, ["prompt.text", "prompt.negative"], how, *notes)
        if extra_pos or extra_neg:
            names = [k for k in ("animation_prompts_positive", "animation_prompts_negative", "positive_prompts",
                                 "negative_prompts") if self.s.get(k)]
            self.entry(", ".join(names), EXACT, ["prompt.text", "prompt.negative"],
                       "joined to every prompt, and negative prompt, with a space as Deforum joins them")
        self.clip_skip()

    def clip_skip(self) -> None:
        if not _is_on(bool, self.get("enable_clipskip_scheduling", False)):
            return
        c = self.schedule("clipskip_schedule", "0:(2)")
        self.graph.nodes["prompt"].params["clip_skip"] = max(1, int(round(c.values[0])))
        self.entry("clipskip_schedule", EXACT if c.constant is not None else APPROX, ["prompt.clip_skip"],
                   "" if c.constant is not None else "one clip skip for the whole clip: its first value")

    def per_frame(self, key: str, default: str, lo: float, hi: float, what: str) -> Converted:
        """A schedule whose every frame must lie within lo..hi (one message naming the frame otherwise)."""
        c = self.schedule(key, default)
        bad = [i for i, v in enumerate(c.values) if not lo <= v <= hi]
        if bad:
            raise DeforumSettingError(f"{key}: {what} {c.values[bad[0]]:g} at frame {bad[0]} is outside {lo:g}..{hi:g}")
        return c

    def sampling_settings(self, seed: int) -> None:
        # 2D, 3D and Video Input run generate.feedback, which takes the schedules frame by frame; the other modes
        # sample once
        self.looping = self.mode in ("2D", "3D", "Video Input")
        node = "loop" if self.looping else "sample"
        one = min(1, self.frames - 1)
        steps = self.number("steps", 25, whole=True)
        if steps < 1:
            raise DeforumSettingError(f"steps: {steps}; at least 1 step is needed")
        self.steps: Any = steps
        if _is_on(bool, self.get("enable_steps_scheduling", False)):
            st = self.per_frame("steps_schedule", "0: (25)", 0.5, 1000, "steps")
            self.steps = st.text if self.looping and st.constant is None else max(1, int(round(st.values[one])))
            self.entry("steps_schedule", EXACT if self.looping or st.constant is not None else APPROX,
                       [f"{node}.steps"], "" if self.looping or st.constant is not None else
                       "one step count for the whole clip: frame 1's")
        else:
            self.entry("steps", EXACT, [f"{node}.steps"])
        if "cfg_scale_schedule" in self.s:
            c = self.per_frame("cfg_scale_schedule", "0: (7)", 1e-6, 50, "guidance")
            self.cfg: Any = c.text if self.looping and c.constant is None else round(c.values[one], 4)
            self.entry("cfg_scale_schedule", EXACT if self.looping or c.constant is not None else APPROX,
                       [f"{node}.cfg"], "" if self.looping or c.constant is not None else
                       f"one guidance for the whole clip: frame 1's ({self.cfg:g})")
        else:
            self.cfg = self.number("scale", 7, "cfg_scale")
            if not 0 < self.cfg <= 50:
                raise DeforumSettingError(f"scale: guidance {self.cfg:g} is outside 0..50")
            self.entry("scale", EXACT, [f"{node}.cfg"])
        self.sampler, self.scheduler, note = sampler_for(str(self.get("sampler", "Euler a")),
                                                         str(self.get("scheduler", "") or ""))
        self.entry("sampler" + (", scheduler" if "scheduler" in self.s else ""), APPROX if note else EXACT,
                   [f"{node}.sampler", f"{node}.scheduler"], note)
        self.entry("seed", EXACT if seed >= 0 else APPROX, [f"{node}.seed"],
                   "" if seed >= 0 else f"-1 (a new random seed every run in Deforum) is seed 0 here, so a run "
                                        f"repeats; change {node}.seed for another")
        behaviour = str(self.get("seed_behavior", "iter")).strip().lower()
        iter_n = self.number("seed_iter_N", 1, whole=True)
        if iter_n < 1:
            raise DeforumSettingError(f"seed_iter_N: {iter_n}; 1 adds 1 to the seed every frame, 2 every second ...")
        self.fixed_seed = behaviour == "fixed"
        self.seed_behaviour, self.seed_schedule = ("fixed" if self.fixed_seed else "iter"), None
        if not self.looping or behaviour not in ("iter", "ladder", "alternate", "schedule") or \
                (behaviour == "iter" and iter_n == 1):
            if behaviour in ("iter", "fixed"):
                target = f"{node}.seed_behaviour" if self.looping else "noise.constant" if self.fixed_seed else \
                    "sample.seed"
                self.entry("seed_behavior", EXACT if self.looping or iter_n == 1 else APPROX, [target],
                           "one more for every diffused frame" if behaviour == "iter" else
                           "the same noise on every frame",
                           "" if iter_n == 1 else f"seed_iter_N {iter_n} is read as 1: one more for every frame")
            else:
                # Deforum draws a random seed for a behaviour it does not know, as for random
                self.entry("seed_behavior", APPROX, [f"{node}.seed"], f"{behaviour!r}: every frame gets its own noise "
                           "from one seed, one more every frame (Deforum draws each frame's seed at random), so a "
                           f"run repeats; change {node}.seed for another")
        elif behaviour in ("iter", "ladder", "alternate"):
            self.seed_behaviour = "schedule"
            self.seed_schedule = seed_expression(behaviour, self.seed, self.n_cadence, iter_n)
            self.entry("seed_behavior" + (", seed_iter_N" if behaviour == "iter" else ""), EXACT,
                       ["loop.seed_behaviour", "loop.seed_schedule"],
                       {"iter": f"one more every {iter_n} diffused frames",
                        "ladder": "seed, +2, +1, +3, +2, ... over the diffused frames",
                        "alternate": "seed, +1, seed, +1, ... over the diffused frames"}[behaviour])
        elif behaviour == "schedule":
            self.seed_behaviour = "schedule"
            c = self.per_frame("seed_schedule", "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)", -2 ** 63,
                               2 ** 63 - 1, "seed")
            # far from the seeds the schedule counts up from, so a random frame does not repeat a scheduled one
            text, seeds, every = seed_schedule(c.values, (self.seed + 2 ** 31) % 2 ** 32, self.n_cadence)
            self.seed_schedule = text
            drawn = [f for f, v in enumerate(c.values) if v < 0]
            self.entry("seed_behavior, seed_schedule", APPROX if drawn or every > 1 else EXACT,
                       ["loop.seed_behaviour", "loop.seed_schedule"],
                       "each frame's value, whole (Deforum truncates it)",
                       f"-1 (a new random seed in Deforum) at {len(drawn)} frame(s) from {drawn[0]}: each gets its own "
                       f"seed from {seeds[drawn[0]]} up, so a run repeats" if drawn else "",
                       f"the seed is exact at every {every}th keyframe and linear between (every one would make the "
                       "schedule too long)" if every > 1 else "")

    def sample_params(self, denoise: float = 1.0) -> Dict[str, Any]:
        p = {"steps": self.steps, "cfg": round(self.cfg, 4), "sampler": self.sampler, "seed": self.seed}
        if self.scheduler != "default":
            p["scheduler"] = self.scheduler
        if denoise < 1:
            p["denoise"] = denoise
        return p

    def sample_chain(self, latent: Tuple[str, str], denoise: float, x: int) -> str:
        """sample -> decode (and the fixed-seed noise), from a latent; returns the decode node."""
        self.add("generate.sample", "sample", self.sample_params(denoise), (x, 0))
        if self.mode != "None":
            # SD draws every frame alone, and sample batches all of them: 120 frames at 512x512 asked for one
            # UNet batch of 240 (with guidance). Batched windows of 16 give the same frames in bounded memory.
            self.add("context.windows", "windows", {"schedule": "batched", "length": WINDOW, "overlap": 0},
                     (x, -400))
            self.link("model", "model", "windows", "model")
            self.link("windows", "model", "sample", "model")
        else:
            self.link("model", "model", "sample", "model")
        self.link("prompt", "positive", "sample", "positive")
        self.link("prompt", "negative", "sample", "negative")
        self.link(latent[0], latent[1], "sample", "latent")
        if self.fixed_seed:
            self.add("noise.constant", "noise", {"seed": self.seed}, (x, -200))
            self.link(latent[0], latent[1], "noise", "latent")
            self.link("noise", "noise", "sample", "noise")
        self.add("vae.decode", "decode", {}, (x + 280, 0))
        self.link("model", "vae", "decode", "vae")
        self.link("sample", "latent", "decode", "latent")
        return "decode"

    def finish(self, src: str, x: int) -> None:
        """Greyscale where the loop does not grey its frames itself, and the saved video."""
        port = "video"
        if _is_on(bool, self.get("color_force_grayscale", False)) and self.mode not in ("2D", "3D"):
            self.add("color.grade", "grey", {"saturation": 0.0}, (x, 0))
            self.link(src, port, "grey", "video")
            src, x = "grey", x + 280
            self.entry("color_force_grayscale", EXACT, ["grey.saturation"])
        name = re.sub(r"\{[^}]*\}", "", str(self.get("batch_name", "") or "")).strip("_- .")
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "deforum"
        self.add("io.save_video", "save", {"path": f"out/{name}.mp4", "fps": self.fps}, (x, 0))
        self.link(src, port, "save", "video")

    # -- the modes -----------------------------------------------------------------------------------
    def init_image(self) -> Optional[Tuple[str, str]]:
        """Frame 0's picture when the file starts from an init image (without one the loop draws frame 0)."""
        init = str(self.get("init_image", "") or "").strip()
        if not (_is_on(bool, self.get("use_init", False)) and init):
            return None
        path, note = local_path(init)
        self.add("io.load_image", "init", {"path": path}, (280, 500))
        self.entry("init_image", APPROX if note else EXACT, ["init.path"], note)
        return "init", "image"

    def animation(self) -> None:
        # Deforum's hybrid video takes the init image's place with the video's first frame
        image = None if self.hybrid_kinds() != ("none", "none") and \
            _is_on(bool, self.get("hybrid_use_first_frame_as_init_image", True)) else self.init_image()
        self.camera()
        p = self.loop_params()
        p.update(border=self.border())
        p.update(self.noise_and_contrast())
        p.update(self.anti_blur())
        if self.mode == "3D":
            p.update(self.depth_warping())
        if _is_on(bool, self.get("color_force_grayscale", False)):
            p["grayscale"] = True
            self.entry("color_force_grayscale", EXACT, ["loop.grayscale"],
                       "each moved picture greyed before it is diffused, and each diffused frame")
        if image is not None:
            strength = self.number("strength", 0.8)
            if not 0 <= strength <= 1:
                raise DeforumSettingError(f"strength: init strength {strength:g} is outside 0..1")
            p["image_denoise"] = round(1 - strength, 6)
            self.entry("strength", EXACT, ["loop.image_denoise"], f"frame 0 is the init image re-diffused at "
                       f"denoise 1 - strength = {1 - strength:.4g}")
        p.update(self.hybrid_video(p))
        self.add_loop(p)
        self.link("camera", "camera", "loop", "camera")
        if "hybrid_video" in self.graph.nodes:
            self.link("hybrid_video", "video", "loop", "hybrid_video")
        if "hybrid_first" in self.graph.nodes:
            image = ("hybrid_first", "image")
        if image is not None:
            self.link(*image, "loop", "image")
        if self.n_cadence > 1:
            self.entry("diffusion_cadence", APPROX if self.cadence_note else EXACT, ["loop.cadence"], self.cadence_note,
                       f"one frame in {self.n_cadence} is diffused; the frames between are the diffused frames "
                       f"around them moved on and crossfaded, as Deforum's cadence makes them")
        self.finish("loop", 1680)

    def hybrid_video(self, p: Dict[str, Any]) -> Dict[str, Any]:
        """Deforum's hybrid video (2D and 3D): the init video's frames blended into the moved pictures
        (hybrid_composite, with its alpha and mask schedules) and its motion between frames added to the camera's
        (hybrid_motion), as the loop's hybrid_* settings on the video's frames."""
        comp, motion = self.hybrid_kinds()
        if comp == "none" and motion == "none":
            return {}
        if comp not in ("none", "normal", "after_generation"):
            raise DeforumSettingError(f"hybrid_composite: {str(self.get('hybrid_composite'))[:40]!r} is not one of "
                                      "Deforum's "
                                      "(None, Normal, Before Motion, After Generation)")
        if motion not in ("none", "optical_flow", "perspective", "affine"):
            raise DeforumSettingError(f"hybrid_motion: {str(self.get('hybrid_motion'))[:40]!r} is not one of Deforum's (None, "
                                      "Optical Flow, Perspective, Affine)")
        path = str(self.get("video_init_path", "") or "").strip()
        if not path:
            raise DeforumSettingError("video_init_path: hybrid video needs a video; the setting is empty")
        path, note = local_path(path)
        start = max(self.number("extract_from_frame", 0, whole=True), 0)
        to = self.number("extract_to_frame", -1, whole=True)
        nth = max(1, self.number("extract_nth_frame", 1, whole=True))
        self.add("io.load_video", "hybrid_video", {"path": path, "start": start, "count": 0 if to < 0 else
                                                   max(1, to - start + 1), "every_nth": nth, "width": self.w,
                                                   "height": self.h}, (1120, 800))
        self.entry("video_init_path, extract_from_frame, extract_to_frame, extract_nth_frame",
                   APPROX if note else EXACT, ["hybrid_video"], "the hybrid video; the clip is cut to its length, as "
                   "Deforum sets max_frames to it", note)
        out: Dict[str, Any] = {}
        if comp != "none":
            out["hybrid_composite"] = comp
            before = str(self.get("hybrid_composite")).strip().lower() == "before motion"
            out["hybrid_alpha"] = self.loop_schedule("hybrid_comp_alpha_schedule", "0:(0.5)", 0, 1)
            mask = str(self.get("hybrid_comp_mask_type", "None")).strip().lower()
            notes = []
            if before and motion != "none":
                notes.append("Before Motion is composited after the video's motion here, not before it")
            if mask in ("blend", "difference"):
                out["hybrid_mask"] = mask
                out["hybrid_mask_blend"] = self.loop_schedule("hybrid_comp_mask_blend_alpha_schedule", "0:(0.5)", 0, 1)
                out["hybrid_mask_contrast"] = self.loop_schedule("hybrid_comp_mask_contrast_schedule", "0:(1)", 0, 10)
                if _is_on(bool, self.get("hybrid_comp_mask_inverse", False)):
                    out["hybrid_mask_inverse"] = True
                eq = str(self.get("hybrid_comp_mask_equalize", "None")).strip().lower()
                if eq in ("before", "after", "both"):
                    out["hybrid_mask_equalize"] = eq
                if _is_on(bool, self.get("hybrid_comp_mask_auto_contrast", False)):
                    out["hybrid_mask_auto_contrast"] = True
                    out["hybrid_mask_cutoff_low"] = self.loop_schedule(
                        "hybrid_comp_mask_auto_contrast_cutoff_low_schedule", "0:(0)", 0, 100)
                    out["hybrid_mask_cutoff_high"] = self.loop_schedule(
                        "hybrid_comp_mask_auto_contrast_cutoff_high_schedule", "0:(100)", 0, 100)
            elif mask not in ("none", ""):
                notes.append(f"the {self.get('hybrid_comp_mask_type')} mask is not imported: the video is blended "
                             "without a mask (for a depth mask, make it with depth.estimate and lay the video over "
                             "the render with video.over)")
            if comp == "after_generation" and p.get("grayscale"):
                notes.append("with color_force_grayscale the frame is greyed before the video is blended in")
            self.entry("hybrid_composite, hybrid_comp_*", APPROX if notes else EXACT,
                       ["loop.hybrid_composite", "loop.hybrid_alpha"] + (["loop.hybrid_mask"] if "hybrid_mask" in out
                                                                         else []),
                       "the video's frame blended into each " + ("diffused frame" if comp == "after_generation" else
                                                                 "moved picture before it is diffused") +
                       " at the alpha schedule", *notes)
        if motion != "none":
            out["hybrid_motion"] = motion
            notes = []
            if motion == "optical_flow":
                method = str(self.get("hybrid_flow_method", "RAFT")).strip().lower()
                flow = {"dis medium": "dis_medium", "dis fine": "dis_fine", "farneback": "farneback"}.get(method)
                if flow is None:
                    flow = "dis_fine"
                    notes.append(f"{self.get('hybrid_flow_method', 'RAFT')} is measured with DIS fine (Kinograph has "
                                 "no RAFT)")
                out["hybrid_flow"] = flow
                out["hybrid_flow_factor"] = self.loop_schedule("hybrid_flow_factor_schedule", "0:(1)", -10, 10)
                if _is_on(bool, self.get("hybrid_flow_consistency", False)):
                    notes.append("the flow's consistency mask is left out")
            if _is_on(bool, self.get("hybrid_motion_use_prev_img", False)):
                notes.append("the motion is measured between the video's own frames (Deforum: from the loop's "
                             "picture to the video's next frame)")
            self.entry("hybrid_motion, hybrid_flow_*", APPROX if notes else EXACT,
                       ["loop.hybrid_motion"] + (["loop.hybrid_flow"] if "hybrid_flow" in out else []),
                       "each moved picture moved on as the video moves from the frame before", *notes)
        if _is_on(bool, self.get("hybrid_use_init_image", False)):
            self.entry("hybrid_use_init_image", UNMAPPED, [], "the init image as the hybrid video is not imported: the "
                       "video's frames are used")
        if _is_on(bool, self.get("hybrid_use_first_frame_as_init_image", True)):
            self.add("video.frame", "hybrid_first", {"index": 0}, (1120, 1000))
            self.link("hybrid_video", "video", "hybrid_first", "video")
            strength = self.number("strength", 0.8)
            if not 0 <= strength <= 1:
                raise DeforumSettingError(f"strength: init strength {strength:g} is outside 0..1")
            out["image_denoise"] = round(1 - strength, 6)
            self.entry("hybrid_use_first_frame_as_init_image, strength", EXACT, ["loop.image", "loop.image_denoise"],
                       f"frame 0 is the video's first frame re-diffused at denoise 1 - strength = {1 - strength:.4g}")
        return out

    def hybrid_kinds(self) -> Tuple[str, str]:
        """Deforum's hybrid_composite and hybrid_motion as the loop's names (an early file's True is Normal)."""
        comp = str(self.get("hybrid_composite", "None")).strip().lower()
        comp = {"true": "normal", "false": "none", "": "none", "before motion": "normal",
                "after generation": "after_generation"}.get(comp, comp)
        motion = str(self.get("hybrid_motion", "None")).strip().lower()
        return comp, {"optical flow": "optical_flow", "": "none"}.get(motion, motion)

    def loop_schedule(self, key: str, default: str, lo: float, hi: float) -> Any:
        c = self.per_frame(key, default, lo, hi, key.replace("_schedule", "").replace("_", " "))
        return c.constant if c.constant is not None else c.text

    def loop_params(self) -> Dict[str, Any]:
        """generate.feedback's settings every mode that runs it shares: the per-frame schedules and seeds, colour
        coherence and the noise multiplier."""
        p: Dict[str, Any] = {"width": self.w, "height": self.h, "denoise": self.denoise_schedule(),
                             "cfg": self.cfg, "steps": self.steps, "sampler": self.sampler, "seed": self.seed,
                             "seed_behaviour": self.seed_behaviour, "cadence": self.n_cadence,
                             "color_coherence": self.coherence(), "fps": self.fps}
        if self.scheduler != "default":
            p["scheduler"] = self.scheduler
        if self.seed_schedule is not None:
            p["seed_schedule"] = self.seed_schedule
        if self.coherence_after:
            p["color_coherence_after"] = True
        if self.color_video_every:
            p["color_video_every"] = self.color_video_every
        p.update(self.noise_multiplier())
        return p

    def add_loop(self, p: Dict[str, Any]) -> None:
        self.add("generate.feedback", "loop", p, (1400, 250))
        from .controlnet import add_controlnets
        self.link(add_controlnets(self), "model", "loop", "model")
        self.link("model", "vae", "loop", "vae")
        self.link("prompt", "positive", "loop", "positive")
        self.link("prompt", "negative", "loop", "negative")
        if "colour_image" in self.graph.nodes:
            self.link("colour_image", "image", "loop", "color_reference")

    def video_input(self) -> None:
        """Deforum's Video Input mode is its animation loop with each frame's init picture the video's frame (not
        the moved frame before it), at that frame's strength, prompt, guidance, steps and seed: generate.feedback
        fed the video. Nothing is moved, noised, sharpened or colour matched before it is diffused, as in Deforum."""
        path = str(self.get("video_init_path", "") or "").strip()
        if not path:
            raise DeforumSettingError("video_init_path: Video Input mode needs a video; the setting is empty")
        path, note = local_path(path)
        start = self.number("extract_from_frame", 0, whole=True)
        to = self.number("extract_to_frame", -1, whole=True)
        nth = max(1, self.number("extract_nth_frame", 1, whole=True))
        count = 0 if to < 0 else max(1, to - max(start, 0) + 1)
        self.add("io.load_video", "video", {"path": path, "start": max(start, 0), "count": count, "every_nth": nth,
                                            "width": self.w, "height": self.h}, (280, 250))
        self.entry("video_init_path", APPROX if note else EXACT, ["video.path"], note)
        self.entry("extract_from_frame, extract_to_frame, extract_nth_frame", EXACT,
                   ["video.start", "video.count", "video.every_nth"])
        self.add_loop(self.loop_params())
        self.link("video", "video", "loop", "video")
        self.finish("loop", 1680)

    def interpolation(self) -> None:
        self.add("latent.empty", "latent", {"frames": self.frames, "width": self.w, "height": self.h}, (280, 250))
        self.link("model", "vae", "latent", "vae")
        self.fixed_seed = True          # Interpolation mode renders every frame from one seed
        dec = self.sample_chain(("latent", "latent"), 1.0, 560)
        self.finish(dec, 1120)

    def still(self) -> None:
        self.add("latent.empty", "latent", {"frames": 1, "width": self.w, "height": self.h}, (280, 250))
        self.link("model", "vae", "latent", "vae")
        dec = self.sample_chain(("latent", "latent"), 1.0, 560)
        self.add("video.frame", "frame", {"index": 0}, (1120, 0))
        self.link(dec, "video", "frame", "video")
        self.add("io.save_image", "save", {"path": "out/deforum.png"}, (1400, 0))
        self.link("frame", "image", "save", "image")

    # -- pieces of the animation modes ------------------------------------------------------------------
    def denoise_schedule(self) -> Any:
        """Deforum's strength schedule (how much of the moved frame is kept) as the loop's denoise: 1 - strength."""
        st = self.per_frame("strength_schedule", "0: (0.65)", 0, 1, "strength")
        self.entry("strength_schedule", EXACT, ["loop.denoise"], "denoise = 1 - strength, frame by frame")
        return round(1 - st.constant, 6) if st.constant is not None else scaled(st.text, -1.0, 1.0)

    def noise_and_contrast(self) -> Dict[str, Any]:
        """Deforum's noise and contrast schedules, applied to the moved picture before img2img."""
        out: Dict[str, Any] = {}
        for key, param, default, hi in (("noise_schedule", "noise", "0: (0.065)", 1), ("contrast_schedule", "contrast",
                                                                                      "0: (1.0)", 10)):
            if key not in self.s:
                continue
            c = self.per_frame(key, default, 0, hi, param)
            if c.constant == (1.0 if param == "contrast" else 0.0):
                continue
            out[param] = c.constant if c.constant is not None else c.text
            perlin = param == "noise" and str(self.get("noise_type", "perlin")).lower() == "perlin"
            if perlin:
                out["noise_type"] = "perlin"
                for name, default in (("perlin_w", 8), ("perlin_h", 8), ("perlin_octaves", 4)):
                    v = self.number(name, default, whole=True)
                    if not 1 <= v <= (7 if name == "perlin_octaves" else 256):
                        raise DeforumSettingError(f"{name}: {v:g} is outside 1..{7 if name == 'perlin_octaves' else 256}")
                    if v != default:
                        out[name] = int(v)
                persistence = self.number("perlin_persistence", 0.5)
                if not 0 <= persistence <= 1:
                    raise DeforumSettingError(f"perlin_persistence: {persistence:g} is outside 0..1")
                if persistence != 0.5:
                    out["perlin_persistence"] = persistence
            self.entry(key + (", noise_type, perlin_*" if perlin else ""), EXACT,
                       [f"loop.{param}"] + (["loop.noise_type"] if perlin else []),
                       ("noise in blobs (white noise scaled by Perlin noise)" if perlin else "white noise") +
                       " mixed into the moved picture before it is diffused"
                       if param == "noise" else "the moved picture's values scaled before it is diffused")
        return out

    def depth_warping(self) -> Dict[str, Any]:
        """Deforum's use_depth_warping as the loop's depth_model: the model Deforum's depth_algorithm names, as its
        Hugging Face folder, where the model folders hold it (Kinograph never downloads one); without it the
        picture moves as a plane, and the report says what to add."""
        if not _is_on(bool, self.get("use_depth_warping", True)):
            return {}
        from nodes.common.models_dirs import find_model
        algorithm = str(self.get("depth_algorithm", "Midas-3-Hybrid") or "")
        wanted = DEPTH_MODELS.get(algorithm.lower(), ()) + DEPTH_MODELS["depth-anything-v2-small"]
        have = next((name for name in wanted if find_model(name, "depth", required=False) is not None), None)
        if have is None:
            self.entry("use_depth_warping, depth_algorithm", APPROX, [], f"no depth model in the model folders: the "
                       f"picture moves as a flat plane, without parallax. Put {wanted[0]} (its Hugging Face folder) "
                       f"in a depth/ model folder and set loop.depth_model to {wanted[0]} for Deforum's parallax")
            return {}
        self.entry("use_depth_warping, depth_algorithm", APPROX, ["loop.depth_model"],
                   f"each frame lifted to 3-D by {have}'s depth before the camera moves it, spread 1 to 2.6 units "
                   f"as Deforum spreads MiDaS's" + ("" if have in DEPTH_MODELS.get(algorithm.lower(), ()) else
                                                   f" ({algorithm} is not in the model folders)"))
        return {"depth_model": have}

    def noise_multiplier(self) -> Dict[str, Any]:
        """A1111's initial noise multiplier for img2img, which Deforum schedules (1.05 by default) when
        enable_noise_multiplier_scheduling is on."""
        if not _is_on(bool, self.get("enable_noise_multiplier_scheduling", False)):
            return {}
        c = self.per_frame("noise_multiplier_schedule", "0: (1.05)", 0, 2, "noise multiplier")
        self.entry("enable_noise_multiplier_scheduling, noise_multiplier_schedule", EXACT, ["loop.noise_multiplier"],
                   "the noise each img2img run starts from, scaled")
        return {} if c.constant == 1.0 else {"noise_multiplier": c.constant if c.constant is not None else c.text}

    def anti_blur(self) -> Dict[str, Any]:
        """Deforum's anti-blur (an unsharp mask on the moved picture before it is diffused) as the loop's sharpen
        schedules; nothing where its amount is 0 throughout."""
        if "amount_schedule" not in self.s:
            return {}
        amount = self.per_frame("amount_schedule", "0: (0.1)", 0, 10, "anti-blur amount")
        if amount.constant == 0:
            return {}
        out: Dict[str, Any] = {"sharpen": amount.constant if amount.constant is not None else amount.text}
        for key, param, default, lo, hi in (("kernel_schedule", "sharpen_kernel", 5, 0, 99),
                                            ("sigma_schedule", "sharpen_sigma", 1.0, 0, 100),
                                            ("threshold_schedule", "sharpen_threshold", 0.0, 0, 255)):
            c = self.per_frame(key, f"0: ({default})", lo, hi, param.replace("sharpen_", "anti-blur "))
            if c.constant != default:
                out[param] = c.constant if c.constant is not None else c.text
        self.entry("amount_schedule, kernel_schedule, sigma_schedule, threshold_schedule", EXACT,
                   [f"loop.{k}" for k in out], "anti-blur: the moved picture unsharp-masked before it is diffused")
        return out

    def coherence(self) -> str:
        """Deforum's colour coherence as the loop's: the moved picture's histograms matched before it is diffused
        (and the diffused frame's after), to frame 0 or to the picture 'Image' names."""
        coherence = str(self.get("color_coherence", "None"))
        low = coherence.lower()
        # Deforum matches 'Image' and 'Video Input' (its maintain_colors' last branch) in LAB
        hybrid = self.mode in ("2D", "3D") and self.hybrid_kinds() != ("none", "none")
        space = {"match frame 0 rgb": "rgb", "rgb": "rgb", "match frame 0 lab": "lab", "lab": "lab",
                 "match frame 0 hsv": "hsv", "hsv": "hsv", "image": "lab",
                 "video input": "lab" if hybrid else None}.get(low)
        # Deforum reads a file without legacy_colormatch (saved before it existed) as legacy, as it was made
        legacy = _is_on(bool, self.get("legacy_colormatch", True))
        self.coherence_after = bool(space) and not legacy
        keys = "color_coherence" + (", legacy_colormatch" if "legacy_colormatch" in self.s else "")
        video = self.mode == "Video Input"
        if space and video and low != "image":
            # render.py keeps a sample only from a frame fed back (never in this mode) or, legacy, one at strength 0
            self.coherence_after = False
            self.entry(keys, EXACT, [], f"{coherence!r} matches nothing in Deforum's Video Input mode (its sample "
                       "is taken from the frames it feeds back, and this mode feeds none back): nothing to import. "
                       "For colours held to frame 0, add color.match (frame 0) after the loop")
            return "none"
        if low == "image":
            path = str(self.get("color_coherence_image_path", "") or "").strip()
            if not path:
                raise DeforumSettingError("color_coherence_image_path: 'Image' colour coherence needs a picture; the "
                                          "setting is empty")
            path, note = local_path(path)
            self.add("io.load_image", "colour_image", {"path": path}, (1120, 650))
            how = ["frame 0's LAB histograms matched to the picture's (resized to W x H) after it is diffused"]
            if not video:
                how.append("each moved frame's before it is diffused")
            how.append("every diffused frame's after it is diffused (legacy_colormatch off)" if self.coherence_after
                       else "legacy_colormatch: no other frame is matched in this mode" if video else
                       "legacy_colormatch: not after")
            self.entry(keys + ", color_coherence_image_path", APPROX if note else EXACT,
                       ["loop.color_coherence", "colour_image.path"] +
                       (["loop.color_coherence_after"] if self.coherence_after else []), "; ".join(how), note)
        elif low == "video input" and space:
            every = self.number("color_coherence_video_every_N_frames", 1, whole=True)
            if every < 1:
                raise DeforumSettingError(f"color_coherence_video_every_N_frames: {every}; 1 takes every frame's "
                                          "colours, 2 every second frame's ...")
            self.color_video_every = every
            self.entry(keys + ", color_coherence_video_every_N_frames", EXACT,
                       ["loop.color_coherence", "loop.color_video_every"] +
                       (["loop.color_coherence_after"] if self.coherence_after else []),
                       f"each moved frame's LAB histograms matched to the hybrid video's frame (taken every {every} "
                       "frames) before it is diffused; frame 0 matched to it after it is diffused" +
                       ("; every diffused frame after (legacy_colormatch off)" if self.coherence_after else ""))
        elif space:
            self.entry(keys, EXACT,
                       ["loop.color_coherence"] + (["loop.color_coherence_after"] if self.coherence_after else []),
                       f"each moved frame's {space.upper()} histograms matched to frame 0's before it is diffused" +
                       (", and each diffused frame's after (legacy_colormatch off)" if self.coherence_after else
                        " (legacy_colormatch)"))
        elif low not in ("none", ""):
            # A Video Input file with hybrid video set was told it has it off (its mode leaves it off)
            set_ = any(OPTIONAL[k][0](self.get(k)) for k in ("hybrid_composite", "hybrid_motion"))
            off = f"which Deforum leaves off in {self.mode} mode (2D and 3D only)" if set_ and \
                self.mode not in ("2D", "3D") else "which this file has off"
            self.entry("color_coherence", UNMAPPED, [], f"{coherence!r} is not imported: Deforum matches to the init "
                       f"video's frames only with hybrid video on (hybrid_composite or hybrid_motion), {off}; 'LAB' "
                       "matches to frame 0, and 'Image' to a picture" if low == "video input" else
                       f"{coherence!r} is not imported (the loop matches frame 0)")
        return space or "none"

    def border(self) -> str:
        if self.mode == "3D":
            mode = str(self.get("padding_mode", "border"))
            out = {"border": "replicate", "reflection": "reflect", "zeros": "black"}.get(mode)
            self.entry("padding_mode", EXACT if out else APPROX, ["loop.border"],
                       "" if out else f"{mode!r} is read as border (replicate)")
            return out or "replicate"
        mode = str(self.get("border", "replicate"))
        out = {"replicate": "replicate", "wrap": "wrap", "zeros": "black"}.get(mode)
        self.entry("border", EXACT if out else APPROX, ["loop.border"],
                   "" if out else f"{mode!r} is read as replicate")
        return out or "replicate"

    def read_cadence(self) -> int:
        c = self.get("diffusion_cadence", 1)
        try:
            n = int(str(c).strip())
        except ValueError:
            raise DeforumSettingError(f"diffusion_cadence: expected a whole number, got {c!r}") from None
        if n < 1:
            raise DeforumSettingError(f"diffusion_cadence: {n}; 1 diffuses every frame, 2 one in two, ...")
        from nodes.generate.feedback import MAX_CADENCE
        self.cadence_note = f"{n} is more than the loop takes: one frame in {MAX_CADENCE}" if n > MAX_CADENCE else ""
        return min(n, MAX_CADENCE, self.frames)

    def camera(self) -> None:
        p: Dict[str, Any] = {"frames": self.frames, "width": self.w, "height": self.h, "schedules": "per_frame"}
        moves: List[Tuple[str, str, str, float, float]] = []  # (deforum key, kinograph param, default, scale, rest)
        if self.mode == "2D":
            moves = [("zoom", "zoom", "0:(1.0)", 1.0, 1.0), ("angle", "rotation_roll", "0:(0)", 1.0, 0.0),
                     ("translation_x", "pan_x", "0:(0)", 1.0, 0.0), ("translation_y", "pan_y", "0:(0)", 1.0, 0.0)]
            unused = ("translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z")
        else:
            # Deforum's 3-D camera: x right, y up (the picture moves down for +y), z forward, in 1/200 units
            moves = [("translation_x", "translation_x", "0:(0)", 1 / TRANSLATION_SCALE, 0.0),
                     ("translation_y", "translation_y", "0:(0)", -1 / TRANSLATION_SCALE, 0.0),
                     ("translation_z", "translation_z", "0:(0)", 1 / TRANSLATION_SCALE, 0.0),
                     ("rotation_3d_x", "rotation_tilt", "0:(0)", 1.0, 0.0),
                     ("rotation_3d_y", "rotation_pan", "0:(0)", 1.0, 0.0),
                     ("rotation_3d_z", "rotation_roll", "0:(0)", 1.0, 0.0)]
            unused = ("zoom", "angle")
        for key, param, default, scale, rest in moves:
            c = self.schedule(key, default)
            if c.constant == rest:
                continue
            p[param] = c.text if scale == 1 else scaled(c.text, scale)
            how = {"zoom": "compounded every frame (1.02 = 2% more each frame)",
                   "angle": "degrees per frame, counter-clockwise",
                   "translation_x": "pixels per frame" if self.mode == "2D" else "camera right, 1/200 unit a frame",
                   "translation_y": "pixels per frame, down" if self.mode == "2D" else "camera up, 1/200 unit a frame",
                   "translation_z": "camera forward, 1/200 unit a frame (the picture is 1 unit away)"}.get(key, "")
            self.entry(key, EXACT if self.mode == "2D" else APPROX, [f"camera.{param}"], how,
                       "" if self.mode == "2D" else "as Deforum moves a picture without depth")
        if self.mode == "3D":
            fov = self.schedule("fov_schedule", "0: (40)", "fov")
            # Deforum's field of view is vertical; Kinograph's is horizontal
            p["fov"] = scaled_fov(fov, self.w / self.h)
            self.entry("fov_schedule", EXACT if fov.constant is not None else APPROX, ["camera.fov"],
                       "vertical field of view made horizontal" +
                       ("" if fov.constant is not None else "; a changing one keeps its keyframes' values"))
        else:
            for key in ("transform_center_x", "transform_center_y"):
                c = self.schedule(key, "0: (0.5)")
                if c.constant != 0.5:
                    self.entry(key, APPROX, [], "zoom and rotation turn about the picture's centre here")
        rest = {"zoom": 1.0}
        moving = [k for k in unused if k in self.s and self.schedule(k, "0:(0)").constant != rest.get(k, 0.0)]
        if moving:
            self.report.remarks.append(f"{', '.join(moving)}: not used in {self.mode} mode, in Deforum either")
        self.add("motion.camera_path", "camera", p, (1120, 250))
        for key, why in (("amount_schedule", "Deforum's anti-blur sharpening is not applied"),
                         ("aspect_ratio_schedule", "the 3-D aspect ratio is not changed")):
            if key not in self.s or (key == "amount_schedule" and self.looping):
                continue
            rest = 1.0 if key == "aspect_ratio_schedule" else 0.0
            c = self.schedule(key, f"0:({rest})")
            if c.constant != rest and (key != "aspect_ratio_schedule" or self.mode == "3D"):
                self.entry(key, UNMAPPED, [], why)

    def optional_features(self) -> None:
        interpolating = str(self.get("frame_interpolation_engine", "None")) not in ("None", "")
        for key, (test, why) in OPTIONAL.items():
            if key == "frame_interpolation_x_amount" and not interpolating:
                continue
            if key == "enable_noise_multiplier_scheduling" and self.looping:
                continue        # the loop's noise_multiplier (noise_multiplier below)
            if key in ("hybrid_motion", "hybrid_composite") and self.mode in ("2D", "3D"):
                continue        # the loop's hybrid_* (hybrid_video)
            if key in self.s and _is_on(test, self.s[key]) and why:
                self.entry(key, UNMAPPED, [], why)
        cn = sorted(k for k, v in self.s.items() if re.fullmatch(r"cn_\d+_enabled", k) and _is_on(bool, v))
        if cn and not self.looping:
            self.entry(", ".join(cn), UNMAPPED, [], "Deforum's ControlNet units are not imported (control.apply "
                       "is Kinograph's ControlNet node)")

    def unknown_settings(self) -> None:
        known = HOUSEKEEPING | set(OPTIONAL) | {"controlnet_args"}
        unknown = sorted(k for k in self.s if k not in known and not re.match(r"cn_\d+_", k))
        if unknown:
            self.report.remarks.append(f"settings this importer does not know, left out: {', '.join(unknown)}")


def scaled(text: str, k: float, offset: float = 0.0) -> str:
    """A schedule times k plus offset, keyframe by keyframe (numbers stay numbers, so their segments stay linear)."""
    from graph_engine.schedule import Keyframe, Schedule, parse_schedule
    s = parse_schedule(text)
    keys = []
    for kf in s.keyframes:
        if kf.number is not None:
            value = repr(round(offset + kf.number * k, 12))
        else:
            value = f"({kf.value})*{k!r}" if not offset else f"{offset!r}+({kf.value})*{k!r}"
        keys.append(Keyframe(kf.frame, value, kf.easing))
    return Schedule(keys, s.interp).to_text()


def scaled_fov(c: Converted, aspect: float) -> Any:
    """Deforum's vertical field of view as Kinograph's horizontal one, keyframe by keyframe."""
    from graph_engine.schedule import Keyframe, Schedule, parse_schedule

    def horiz(v: float) -> float:
        return round(math.degrees(2 * math.atan(aspect * math.tan(math.radians(v) / 2))), 6)
    if c.constant is not None:
        return horiz(c.constant)
    s = parse_schedule(c.text)
    keys = [Keyframe(kf.frame, repr(horiz(kf.number)) if kf.number is not None else repr(horiz(c.values[
        min(kf.frame, len(c.values) - 1)])), kf.easing) for kf in s.keyframes]
    return Schedule(keys, s.interp).to_text()


SAMPLERS = {
    "euler a": "euler_ancestral", "euler_ancestral": "euler_ancestral", "euler_a": "euler_ancestral",
    "euler": "euler", "ddim": "ddim", "dpm++ 2m": "dpmpp_2m", "dpmpp_2m": "dpmpp_2m", "unipc": "unipc",
}
SCHEDULERS = {"automatic": "default", "": "default", "karras": "karras", "simple": "simple",
              "sgm uniform": "sgm_uniform", "sgm_uniform": "sgm_uniform", "beta": "beta", "normal": "normal"}


def sampler_for(name: str, scheduler: str = "") -> Tuple[str, str, str]:
    """A1111's sampler (and scheduler) names as Kinograph's, and a note when one is only close."""
    low = name.strip().lower()
    sched = "default"
    if low.endswith(" karras"):
        low, sched = low[:-len(" karras")], "karras"
    notes = []
    if scheduler:
        s = SCHEDULERS.get(scheduler.strip().lower())
        if s is None:
            notes.append(f"scheduler {scheduler!r} is read as the model's default")
        elif s != "default":
            sched = s
    out = SAMPLERS.get(low)
    if out is None:
        ancestral = low.endswith(" a") or "ancestral" in low or "sde" in low or low.endswith("_a")
        out = "euler_ancestral" if ancestral else ("dpmpp_2m" if low.startswith("dpm++") else "euler")
        notes.insert(0, f"{name!r} has no Kinograph equivalent; the nearest is {out}")
    return out, sched, "; ".join(notes)


def local_path(path: str) -> Tuple[str, str]:
    """A file a setting names, as a path a workflow can read; a URL (Kinograph downloads nothing) becomes the
    file's name beside the workflow, with a note saying to put it there."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", path, re.I):
        name = PurePosixPath(path.split("?")[0].rstrip("/")).name or "init"
        return name, f"{path} is a URL and Kinograph downloads nothing: save it as {name} beside the workflow"
    return (PureWindowsPath(path).as_posix() if "\\" in path else path), ""


def _is_sdxl_checkpoint(name: str) -> bool:
    """Whether the checkpoint Deforum names is an SDXL one the model folders hold (its header says so). Deforum runs
    SDXL checkpoints as it runs SD 1.5 ones; the SD 1.5 loader would refuse the file when the workflow runs."""
    from graph_engine import NodeError
    from nodes.common.models_dirs import find_model
    from nodes.generate.detect import detect_file
    path = find_model(name, "checkpoints", required=False)
    if path is None or not path.is_file():
        return False
    try:
        det = detect_file(path)
    except (NodeError, OSError, ValueError):
        return False        # unreadable here: the loader says what is wrong with it when the workflow runs
    return det.family == "sd" and det.variant == "sdxl"
