"""Wan 2.1/2.2: UMT5 text, causal 3-D VAE (4x time, 8x space), flow-matching transformer.

Image-to-video / first-last-frame models (36 input channels) take a 4-channel frame mask and the
VAE-encoded conditioning frames concatenated to the noise, and CLIP image tokens. Wan Fun camera models
(32 channels: no mask, the start frame's latent only) also take Plücker rays of a camera path, read by the
camera encoder nodes/generate/wan_camera.py attaches to the transformer. Wan 2.2 Animate models (36 channels) read
a reference latent frame ahead of the video, pose latents and face pixels (nodes/generate/wan_animate.py); Wan
Animate 2 models (the i2v transformer) the reference frame and a pose branch (nodes/generate/wan_animate2.py). Wan 2.2
S2V models read a voice's features, a reference image, motion frames and a pose video (nodes/generate/wan_s2v.py);
HuMo models a voice's whisper features and a reference image (nodes/generate/wan_humo.py).

Wan 2.2 TI2V-5B works in the Wan 2.2 VAE's 48-channel latents (16x space) and takes a start image
differently: its encoding is the first latent frame itself, kept clean while sampling, and those
tokens get timestep 0 (diffusers' expand_timesteps, ComfyUI's Wan22ImageToVideoLatent)."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from nodes.generate.adapters.base import Adapter, stack_global
from nodes.generate.wan_camera import NOT_CAMERA, camera_input, is_camera_model
from nodes.generate.rope_scale import scaled_rope
from nodes.generate.wan_bernini import context_input, context_of
from nodes.generate.wan_reference import reference_input
from nodes.generate.wan_humo import is_humo
from nodes.generate.wan_dancer import is_dancer
from nodes.generate.wan_s2v import is_s2v
from nodes.generate.wan_scail import is_scail, is_scail2


TEXT_ONLY = ("this Wan model is text-to-video; first/last frame conditioning needs a Wan image-to-video "
             "(or FLF2V) model")


TI2V_CHANNELS = 48          # the Wan 2.2 VAE's latent channels: TI2V-5B's working space
TI2V_FRAMES = ("this is Wan 2.2 TI2V-5B, which takes its start image in the latent: connect the image to "
               "latent.empty's start_image instead of condition.frames")
NEEDS_IMAGE = ("this Wan 2.1 image-to-video model also takes the frame's CLIP image tokens: connect "
               "encode.image (of the first frame) to condition.frames' image_embeds")


CAMERA_FRAMES = ("a Wan Fun camera model takes its start frame and camera path through condition.camera, not "
                 "condition.frames")


FUN_CONTROL_FRAMES = ("a Wan Fun Control model takes its control video (and start frame) through condition.fun_control, "
                      "not condition.frames")


def is_fun_control(transformer) -> bool:
    """Wan Fun Control: the transformer reading noise, a control video and a start frame (Wan 2.1: the i2v
    transformer, 16 channels each; Wan 2.2: a 4-channel start-frame mask between the last two)."""
    cfg = transformer.config
    return cfg.in_channels == 3 * cfg.out_channels + 4 or cfg.in_channels == 3 * cfg.out_channels \
        and bool(getattr(cfg, "image_dim", None)) and not is_camera_model(transformer)


NOT_S2V = ("condition.s2v (ComfyUI's WanSoundImageToVideo) feeds Wan 2.2 S2V models (wan2.2_s2v_14B_*.safetensors); "
           "this Wan model has no sound layers")
# condition.s2v's inputs, in the order nodes/generate/wan_s2v.forward takes them
S2V_INPUTS = ("s2v_audio", "s2v_reference", "s2v_motion", "s2v_control")
# condition.humo's, in the order nodes/generate/wan_humo.forward takes them
HUMO_INPUTS = ("humo_audio", "humo_reference")
# condition.wan_dancer's: the reference image's CLIP tokens and the music's features, whole-clip
DANCER_INPUTS = ("dancer_reference", "dancer_music")
NOT_DANCER = ("condition.wan_dancer (ComfyUI's WanDancerVideo) feeds WanDancer models "
              "(wan2.2_dancer_14b_*.safetensors); this Wan model has no music layers")
NOT_HUMO = ("condition.humo (ComfyUI's WanHuMoImageToVideo) feeds HuMo models (humo_17B_*.safetensors, 1.7B); this "
            "Wan model has no voice layers")


ROPE_ELSEWHERE = ("model.scale_rope (ComfyUI's ScaleROPE) moves the positions plain Wan transformers read (ChronoEdit's "
                  "picture and edit); S2V, HuMo, WanDancer and Wan-Animate 2 place their frames themselves: remove it")
CONTEXT_ELSEWHERE = ("condition.bernini's pictures and videos are read in context by Bernini-R (Wan 2.2 A14B's "
                     "transformer); S2V, HuMo, WanDancer and Wan-Animate 2 read their own inputs: use a Bernini-R model")
NOT_VACE = ("condition.vace (ComfyUI's WanVaceToVideo) needs a Wan VACE model (wan2.1_vace_*.safetensors); this Wan "
            "model has no VACE blocks")


def zero_latent(shape) -> torch.Tensor:
    """The Wan 2.1 VAE's raw latent of zeros in Kinograph's (normalised) latent space, of `shape` [B, 16, T, h, w]:
    what ComfyUI's Wan conditioning hands a model for "no picture" (zeros, normalised on their way in)."""
    from nodes.generate.converters import model_config
    stats = model_config("wan", "vae_2.1")
    mean, std = (torch.tensor(stats[k]).view(1, -1, 1, 1, 1) for k in ("latents_mean", "latents_std"))
    return (-mean / std).expand(shape).clone()


def vace_inputs(model, x, context, strength: float, layers: int) -> dict:
    """The VACE transformer's control input and per-layer hint scale. Without condition.vace the model gets
    ComfyUI's "no control" context: zero latents (in the raw VAE space) and an all-ones mask."""
    if context is None:
        zero = zero_latent((x.shape[0], 16, *x.shape[2:]))
        masks = model.config.vace_in_channels - 2 * zero.shape[1]
        context = torch.cat([zero, zero, torch.ones(x.shape[0], masks, *x.shape[2:])], dim=1)
    return {"control_hidden_states": context.to(x.device, x.dtype),
            "control_hidden_states_scale": torch.full((layers,), float(strength), device=x.device, dtype=x.dtype)}


class WanAdapter(Adapter):
    family = "wan"
    space = "flow"
    prediction = "flow"
    max_tokens = 512

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        e, _, _ = stack_global(conds, frames, device, dtype, batch, self.factors(handle.pipe)[0])
        inputs = {"encoder_hidden_states": e}
        if "image_embeds" in conds[-1].extra:
            inputs["encoder_hidden_states_image"] = torch.cat(
                [c.extra.get("image_embeds", conds[-1].extra["image_embeds"]) for c in conds
                 for _ in range(batch)]).to(device, dtype)
        if "reference" in conds[-1].extra:
            inputs["reference"] = torch.cat([c.extra.get("reference", conds[-1].extra["reference"]) for c in conds
                                             for _ in range(batch)]).to(device, dtype)
        for key in S2V_INPUTS + HUMO_INPUTS + DANCER_INPUTS:      # Wan 2.2 S2V, HuMo, WanDancer: whole-clip inputs
            if key in conds[-1].extra:
                inputs[key] = torch.cat([c.extra.get(key, conds[-1].extra[key]) for c in conds
                                         for _ in range(batch)]).to(device, dtype)
        idx = torch.as_tensor(list(frames))
        for key in ("concat", "camera", "vace", "fun_mask"):        # per latent frame: a context window takes its frames
            if key in conds[-1].extra:
                each = [c.extra.get(key, conds[-1].extra[key]) for c in conds]
                if key == "camera" and all(t is each[0] for t in each):
                    # one path for the whole batch (condition.camera's positive and negative): encoded once
                    inputs[key] = each[0][:, :, idx].to(device, dtype)
                else:
                    inputs[key] = torch.cat([t[:, :, idx] for t in each for _ in range(batch)]).to(device, dtype)
        if context_of(conds[-1]):       # Bernini-R's streams (condition.bernini), whole latents per conditioning
            each = [context_of(c) or context_of(conds[-1]) for c in conds]
            inputs["context"] = [torch.cat([e[k] for e in each for _ in range(batch)]).to(device, dtype)
                                 for k in range(len(each[-1]))]
        if "dancer_fps" in conds[-1].meta:
            inputs["dancer_rate"] = (float(conds[-1].meta["dancer_fps"]), float(conds[-1].meta.get("dancer_scale", 1.0)))
        if "vace" in inputs:
            inputs["vace_strength"] = float(conds[-1].meta.get("vace_strength", 1.0))
        if conds[-1].meta.get("animate2"):
            from nodes.generate.wan_animate2 import animate2_inputs
            inputs["animate2"] = animate2_inputs(conds, frames, batch, device, dtype)
        if "scail_frames" in conds[-1].meta:
            from nodes.generate.wan_scail_cond import scail_inputs
            inputs["scail"] = scail_inputs(conds, frames, batch, device, dtype)
        if "animate_pose" in conds[-1].extra:
            from nodes.generate.wan_animate import animate_inputs
            inputs.update(animate_inputs(handle.pipe.transformer, conds, frames, batch, device, dtype))
        return inputs

    def forward(self, handle, x_in, t, inputs):
        pipe = handle.pipe
        model = pipe.transformer
        boundary = pipe.config.get("boundary_ratio") if hasattr(pipe, "config") else None
        if getattr(pipe, "transformer_2", None) is not None and boundary is not None \
                and float(t) < boundary * pipe.scheduler.config.num_train_timesteps:
            model = pipe.transformer_2           # Wan 2.2 A14B: the low-noise expert
        x = x_in.to(model.dtype)
        if "concat" in inputs and model.config.in_channels == model.config.out_channels:
            from graph_engine import NodeError
            raise NodeError(TI2V_FRAMES if model.config.out_channels == TI2V_CHANNELS else TEXT_ONLY)
        patch = model.config.patch_size
        if x.shape[-2] % patch[1] or x.shape[-1] % patch[2]:
            from graph_engine import NodeError
            raise NodeError(f"the latent is {x.shape[-1]}x{x.shape[-2]}, which this Wan model's {patch[2]}x{patch[1]} "
                            "patches do not tile: use a width and height divisible by 16 (Wan 2.1, A14B) or by 32 "
                            "(Wan 2.2 TI2V-5B)")
        rope = handle.option("rope_scale")
        if (rope is not None or "context" in inputs) and (is_s2v(model) or is_humo(model) or is_dancer(model)
                                                          or "animate2" in inputs or is_scail(model)):
            from graph_engine import NodeError
            raise NodeError(ROPE_ELSEWHERE if rope is not None else CONTEXT_ELSEWHERE)
        if is_scail(model) or "scail" in inputs:
            return self._scail(handle, model, x, t, inputs)
        if is_s2v(model):
            from nodes.generate.wan_s2v import forward as s2v_forward
            return s2v_forward(model, x, t.to(x.device).expand(x.shape[0]), inputs["encoder_hidden_states"],
                               *(inputs.get(k) for k in S2V_INPUTS))
        if is_humo(model):
            from nodes.generate.wan_humo import forward as humo_forward
            return humo_forward(model, x, t.to(x.device).expand(x.shape[0]), inputs["encoder_hidden_states"],
                                *(inputs.get(k) for k in HUMO_INPUTS))
        if is_dancer(model):
            from nodes.generate.wan_dancer import forward as dancer_forward
            if "concat" in inputs:
                x = torch.cat([x, inputs["concat"]], dim=1)
            return dancer_forward(model, x, t.to(x.device).expand(x.shape[0]), inputs["encoder_hidden_states"],
                                  inputs.get("encoder_hidden_states_image"), *(inputs.get(k) for k in DANCER_INPUTS),
                                  *inputs.get("dancer_rate", (30.0, 1.0)))
        if any(k in inputs for k in DANCER_INPUTS):
            from graph_engine import NodeError
            raise NodeError(NOT_DANCER)
        if any(k in inputs for k in S2V_INPUTS):
            from graph_engine import NodeError
            raise NodeError(NOT_S2V)
        if any(k in inputs for k in HUMO_INPUTS):
            from graph_engine import NodeError
            raise NodeError(NOT_HUMO)
        if hasattr(model, "motion_encoder") and "pose_hidden_states" not in inputs:
            from graph_engine import NodeError
            from nodes.generate.wan_animate import NEEDS_ANIMATE
            raise NodeError(NEEDS_ANIMATE)
        talk = handle.option("infinitetalk")
        if talk is not None:
            # InfiniteTalk: the input starts with the clean motion frames at every step
            drawn, motion = x[:, :, :talk.motion.shape[2]], talk.motion.to(x).expand(x.shape[0], -1, -1, -1, -1)
            x = torch.cat([motion, x[:, :, talk.motion.shape[2]:]], 2)
            if getattr(model.config, "image_dim", None) and "encoder_hidden_states_image" not in inputs:
                # ComfyUI's Wan without CLIP image tokens (InfiniteTalk's template): the image attention reads the
                # text tokens; diffusers takes what precedes the 512 text tokens as the image's
                e = inputs["encoder_hidden_states"]
                e = torch.cat([e, e.new_zeros(e.shape[0], max(0, 512 - e.shape[1]), e.shape[2])], 1)
                inputs = {**inputs, "encoder_hidden_states": torch.cat([e, e], 1), "text_as_image": True}
        if getattr(model.config, "image_dim", None) and "encoder_hidden_states_image" not in inputs \
                and "text_as_image" not in inputs:
            from graph_engine import NodeError
            from nodes.generate.wan_animate2 import NEEDS_TOKENS
            raise NodeError(NEEDS_IMAGE.replace("condition.frames", "condition.camera") if is_camera_model(model)
                            else NEEDS_TOKENS if "animate2" in inputs else NEEDS_IMAGE)
        if "encoder_hidden_states_image" in inputs and not getattr(model.config, "image_dim", None):
            inputs = {k: v for k, v in inputs.items() if k != "encoder_hidden_states_image"}
        if "camera" in inputs and not is_camera_model(model):
            from graph_engine import NodeError
            raise NodeError(NOT_CAMERA)
        if "concat" not in inputs and is_camera_model(model):
            # no start frame: the camera model's image channels stay zero, as in ComfyUI
            inputs = {**inputs, "concat": x.new_zeros(x.shape[0], model.config.in_channels - x.shape[1], *x.shape[2:])}
        if "concat" in inputs:
            concat = inputs["concat"]
            if "fun_mask" in inputs and model.config.in_channels == x.shape[1] + concat.shape[1] + 4:
                # Wan 2.2's Fun models read a start-frame mask: Fun Control between the control video and the start
                # frame, Fun camera before the start frame
                at = concat.shape[1] // 2 if is_fun_control(model) else 0
                concat = torch.cat([concat[:, :at], inputs["fun_mask"], concat[:, at:]], dim=1)
            x = torch.cat([x, concat], dim=1)
        if x.shape[1] != model.config.in_channels:
            from graph_engine import NodeError
            raise NodeError(f"this Wan model reads {model.config.in_channels} channels but its conditioning gives "
                            f"{x.shape[1]}: " + (CAMERA_FRAMES if is_camera_model(model) else FUN_CONTROL_FRAMES
                                                 if is_fun_control(model) else
                                                 "connect the conditioning node made for this model"))
        if "animate2" in inputs:
            from nodes.generate import wan_animate2
            if not wan_animate2.is_animate2(model):
                from graph_engine import NodeError
                raise NodeError(wan_animate2.NOT_ANIMATE2)
            kw = wan_animate2.posed(inputs["animate2"], float(t.flatten()[0]) / 1000.0, lambda p: self.percent_sigma(
                handle.pipe, p, handle.option("flow_shift")))
            return wan_animate2.forward(model, x, t.to(x.device).expand(x.shape[0]), inputs["encoder_hidden_states"],
                                        inputs.get("encoder_hidden_states_image"), **kw)
        kw = {k: inputs[k] for k in ("encoder_hidden_states_image", "pose_hidden_states", "face_pixel_values")
              if k in inputs}
        layers = getattr(model.config, "vace_layers", None)
        if layers is not None:
            kw.update(vace_inputs(model, x, inputs.get("vace"), inputs.get("vace_strength", 1.0), len(layers)))
        elif "vace" in inputs:
            from graph_engine import NodeError
            raise NodeError(NOT_VACE)
        t = t.to(x.device)
        if "noise_mask" in inputs and self.keeps_clean(handle):
            # One timestep per token: kept (clean) frames at 0, the rest at t, on the patch grid.
            grid = inputs["noise_mask"][:, 0, ::patch[0], ::patch[1], ::patch[2]].flatten(1)
            t = (grid.to(x.device, torch.float32) * t).expand(x.shape[0], -1)
        else:
            t = t.expand(x.shape[0])
        camera = camera_input(model, inputs["camera"]) if "camera" in inputs else nullcontext()
        reference = reference_input(model, inputs["reference"]) if "reference" in inputs else nullcontext()
        from nodes.generate.infinitetalk import patched
        talking = patched(model, talk.patch, talk.tokens, talk.masks, talk.scale) if talk is not None else nullcontext()
        scaled = scaled_rope(model, rope) if rope is not None else nullcontext()
        # after scaled: its table of the video's positions first, the streams' appended to it
        context = context_input(model, inputs["context"], rope) if "context" in inputs else nullcontext()
        with camera, reference, talking, scaled, context:
            out = model(hidden_states=x, timestep=t, encoder_hidden_states=inputs["encoder_hidden_states"],
                        return_dict=False, **kw)[0]
        if talk is None:
            return out
        # ComfyUI writes the motion frames into the sampler's own input, so their x0 is taken from the clean frames
        # (motion - sigma * v), whatever the sampler holds there; the sampler here takes x0 from what it drew
        # (drawn - sigma * out): the difference goes into the prediction (flow: t is sigma * 1000)
        sigma = t.float().view(-1, 1, 1, 1, 1) / 1000.0
        m = drawn.shape[2]
        return torch.cat([out[:, :, :m].float() + (drawn - motion).float() / sigma, out[:, :, m:].float()], 2)

    def _scail(self, handle, model, x, t, inputs):
        """SCAIL's prediction: the history mask (SCAIL-2: 1 on frames held from a previous clip, ComfyUI's concat of
        1 - noise_mask) joins the noise; the pose steers only inside its share of the way (pose_start, pose_end)."""
        from graph_engine import NodeError
        from nodes.generate import wan_scail
        if not is_scail(model):
            raise NodeError(wan_scail.NOT_SCAIL)
        if "scail" not in inputs:
            raise NodeError(wan_scail.NEEDS_SCAIL)
        if "encoder_hidden_states_image" not in inputs:
            raise NodeError(wan_scail.NEEDS_TOKENS)
        kw = dict(inputs["scail"])
        start, end = kw.pop("pose_window")
        sigma = float(t.flatten()[0]) / 1000.0

        def to_sigma(p):
            return self.percent_sigma(handle.pipe, p, handle.option("flow_shift"))
        if not to_sigma(end) <= sigma <= to_sigma(start):
            kw.pop("pose", None)
        held = inputs.get("noise_mask")
        # SCAIL-Preview reads zeros there whatever is held (ComfyUI's WAN21_SCAIL has no history concat)
        history = x.new_zeros(x.shape[0], 4, *x.shape[2:]) if held is None or not is_scail2(model) else \
            (1 - held.to(x.device, x.dtype)).expand(x.shape[0], 4, *x.shape[2:])
        return wan_scail.forward(model, torch.cat([x, history], 1), t.to(x.device).expand(x.shape[0]),
                                 inputs["encoder_hidden_states"], inputs["encoder_hidden_states_image"], **kw)

    def check_latent(self, handle, latent):
        if latent.samples.shape[1] == TI2V_CHANNELS and self.factors(handle.pipe)[2] != TI2V_CHANNELS:
            from graph_engine import NodeError
            raise NodeError("this latent was made by Wan 2.2 TI2V-5B's VAE (48 channels; with a start image, its "
                            "first frame kept), which only Wan 2.2 TI2V-5B continues; this Wan model is not it: make "
                            "the latent with this model's VAE, and pin a first frame with condition.frames and a Wan "
                            "image-to-video model")

    def keeps_clean(self, handle):
        # TI2V-5B reads its start frame clean at timestep 0 (forward's per-token timesteps); other Wan models
        # take a masked latent as any model does, the kept part noised to each step's level.
        # SCAIL-2 likewise holds a previous clip's frames clean (ComfyUI's scale_latent_inpaint), its timestep whole;
        # SCAIL-Preview does not (WAN21_SCAIL keeps the base model's)
        return self.factors(handle.pipe)[2] == TI2V_CHANNELS or is_scail2(getattr(handle.pipe, "transformer", None))

    def start_pixels(self, pipe, latent, image):
        """The start image, resized to cover the latent's size and centre-cropped (ComfyUI crops it to the centre
        too), as the first latent frame's one pixel frame (TI2V-5B's VAE only: other Wan models take it through
        condition.frames)."""
        from graph_engine import NodeError
        from PIL import Image
        if self.factors(pipe)[2] != TI2V_CHANNELS:
            raise NodeError("a start image on latent.empty is for Wan 2.2 TI2V-5B and its VAE (wan2.2_vae, 48 "
                            "latent channels); this is a Wan 2.1 VAE: pin the first frame with condition.frames "
                            "and a Wan image-to-video model instead")
        px = pipe.video_processor.preprocess(Image.fromarray(np.ascontiguousarray(image)), height=latent.height,
                                             width=latent.width, resize_mode="crop")
        return px[:, :, None]

    def encode_image(self, pipe, image, device):
        return pipe.encode_image(image, device)

    def frame_condition(self, pipe, latent, first, last, image_embeds, **_):
        """The i2v model's extra input: a 4-channel mask of pinned frames and the VAE latents of a clip
        holding the pinned frames (zeros elsewhere); plus CLIP image tokens where the model takes them."""
        from graph_engine import NodeError
        # A VAE loaded from its own file knows no transformer: the sampler checks the model instead (the Wan 2.2
        # VAE serves TI2V-5B, which takes no frames this way, and Wan 2.2 Fun InP 5B, which does).
        den = getattr(pipe, "transformer", None)
        if den is not None and den.config.in_channels == den.config.out_channels:
            raise NodeError(TI2V_FRAMES if den.config.out_channels == TI2V_CHANNELS else TEXT_ONLY)
        if first is None:
            raise NodeError("Wan image-to-video needs the first frame")
        h, w, n = latent.height, latent.width, latent.frames
        from nodes.generate.vae_ops import check_fits
        check_fits(f"Wan image-to-video's {n} frames at {w}x{h} as pictures", (n, h, w, 3))
        proc = pipe.video_processor
        frames = [proc.preprocess(first, height=h, width=w)]
        mid = n - 1 - (last is not None)
        frames.append(frames[0].new_zeros(mid, *frames[0].shape[1:]))
        if last is not None:
            frames.append(proc.preprocess(last, height=h, width=w))
        video = torch.cat(frames).permute(1, 0, 2, 3)[None]          # [1, 3, n, H, W]
        z = self.vae_encode(pipe, video)
        tf = int(pipe.vae_scale_factor_temporal)
        mask = torch.zeros(1, 1, n, z.shape[3], z.shape[4])
        mask[:, :, 0] = 1
        if last is not None:
            mask[:, :, -1] = 1
        mask = torch.cat([mask[:, :, :1].repeat_interleave(tf, dim=2), mask[:, :, 1:]], dim=2)
        mask = mask.view(1, -1, tf, z.shape[3], z.shape[4]).transpose(1, 2)
        extra = {"concat": torch.cat([mask, z], dim=1)}
        if den is None and image_embeds is not None:
            extra["image_embeds"] = image_embeds.embeds
        elif den is not None and getattr(den.config, "image_dim", None):
            if image_embeds is None:
                raise NodeError(NEEDS_IMAGE)
            extra["image_embeds"] = image_embeds.embeds
        return extra, {}

    def camera_condition(self, pipe, latent, first, image_embeds, rays):
        """Wan Fun camera models: the start frame's latent in the first of 16 image channels (zeros after it) and
        the camera's Plücker rays; plus CLIP image tokens where the model takes them (Wan 2.1's), and the
        start-frame mask that Wan 2.2's read (1 on the start frame's latent frame, as ComfyUI's
        WanCameraImageToVideo)."""
        from graph_engine import NodeError
        den = getattr(pipe, "transformer", None)
        if den is not None and not is_camera_model(den):
            raise NodeError("condition.camera is for Wan Fun camera-control models; this Wan model has no camera "
                            "encoder (use condition.frames for image-to-video)")
        n, h, w = latent.samples.shape[2:]
        concat = torch.zeros(1, latent.samples.shape[1], n, h, w)
        if first is not None:
            # covering the size and centre-cropped, as ComfyUI's WanCameraImageToVideo takes it
            frame = pipe.video_processor.preprocess(first, height=latent.height, width=latent.width,
                                                    resize_mode="crop")
            concat[:, :, :1] = self.vae_encode(pipe, frame.permute(1, 0, 2, 3)[None])[:, :, :1]
        mask = torch.zeros(1, 4, n, h, w)
        mask[:, :, :1] = float(first is not None)
        extra = {"concat": concat, "fun_mask": mask}
        if rays is not None:
            extra["camera"] = rays
        if image_embeds is not None:
            extra["image_embeds"] = image_embeds.embeds
        return extra

    def fun_control_condition(self, pipe, latent, control, first, image_embeds, reference=None):
        """Wan Fun Control models, as ComfyUI's WanFunControlToVideo and Wan22FunControlToVideo lay them: the control
        video's latents in the first latent-width extra channels (as many latent frames as it has, zeros after), the
        start frame's latent in the first latent frame of the next (zeros elsewhere); each picture resized to cover
        the latent's size and centre-cropped. Plus CLIP image tokens, which Wan 2.1's models read; the start-frame
        mask (1 on the start frame's latent frame) and the reference image's latent frame, which Wan 2.2's read."""
        from graph_engine import NodeError
        # Another Wan model given this is named by the sampler, which sees the model (a split-loaded VAE knows none).
        den = getattr(pipe, "transformer", None)
        n, h, w = latent.samples.shape[2:]
        c = latent.samples.shape[1]
        concat = torch.zeros(1, 2 * c, n, h, w)
        proc = pipe.video_processor
        if control is not None:
            pixels = proc.preprocess(control, height=latent.height, width=latent.width, resize_mode="crop")
            z = self.vae_encode(pipe, pixels.permute(1, 0, 2, 3)[None])[:, :, :n]
            concat[:, :c, :z.shape[2]] = z
        if first is not None:
            pixels = proc.preprocess(first, height=latent.height, width=latent.width, resize_mode="crop")
            concat[:, c:, :1] = self.vae_encode(pipe, pixels.permute(1, 0, 2, 3)[None])[:, :, :1]
        mask = torch.zeros(1, 4, n, h, w)
        mask[:, :, :1] = float(first is not None)
        extra = {"concat": concat, "fun_mask": mask}
        if reference is not None:
            pixels = proc.preprocess(reference, height=latent.height, width=latent.width, resize_mode="crop")
            extra["reference"] = self.vae_encode(pipe, pixels.permute(1, 0, 2, 3)[None])[:, :, 0]
        if image_embeds is not None:
            extra["image_embeds"] = image_embeds.embeds
        elif den is not None and getattr(den.config, "image_dim", None):
            raise NodeError(NEEDS_IMAGE.replace("condition.frames", "condition.fun_control"))
        return extra

    def _stats(self, vae, like):
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(like.device, like.dtype)
        return mean, std

    def vae_encode(self, pipe, pixels, generator=None):
        vae = pipe.vae
        z = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        mean, std = self._stats(vae, z)
        return ((z - mean) / std).float()

    def vae_decode(self, pipe, latent):
        vae = pipe.vae
        z = latent.to(vae.device, vae.dtype)
        mean, std = self._stats(vae, z)
        return vae.decode(z * std + mean, return_dict=False)[0].float()


ADAPTERS = {"wan": WanAdapter()}
