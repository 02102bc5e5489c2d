"""The LATENT and CONDITIONING values that flow between generative nodes.

Both serialise to (tensors, json meta) for the engine's disk tier; model handles never do."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Sequence, Tuple


@dataclass
class Latent:
    """samples: float tensor [B, C, T, h, w] in the denoiser's space (VAE scaling applied).

    frames/width/height are the pixel-space sizes it decodes to; family names the VAE that made it.
    mask (ComfyUI's noise_mask), when set: [1, 1, T, h, w], 1 where the sampler generates, 0 where it keeps
    `samples` as they are (a start image's latent frames for Wan 2.2 TI2V-5B). audio, when set: the sound's latent
    sampled with the video (LTX-2: [B, C, L, mel bins], normalised as the sampler sees it; ComfyUI's AV latent).
    audio_mask, when set: [1, 1, L, 1], the sound's noise mask as mask is the video's (0 keeps a given song).
    runs, when set: a video VAE decodes the frames in runs of this many latent frames, each alone (ComfyUI's
    LatentCutToBatch along t: WanDancer's key frames, one picture per latent frame). camera, when set: TripoSplat's
    camera token [B, 1, 5], sampled with the shape tokens (ComfyUI's nested latent's second stream)."""
    samples: "object"
    family: str
    frames: int
    fps: float
    width: int
    height: int
    mask: "object" = None
    audio: "object" = None
    audio_mask: "object" = None
    runs: int = 0
    camera: "object" = None

    def to_state(self):
        tensors = {k: v for k, v in (("samples", self.samples), ("mask", self.mask), ("audio", self.audio),
                                     ("audio_mask", self.audio_mask), ("camera", self.camera)) if v is not None}
        meta = {"family": self.family, "frames": self.frames, "fps": self.fps, "width": self.width,
                "height": self.height}
        return tensors, {**meta, "runs": self.runs} if self.runs else meta

    @classmethod
    def from_state(cls, tensors, meta):
        return cls(tensors["samples"], meta["family"], int(meta["frames"]), float(meta["fps"]),
                   int(meta["width"]), int(meta["height"]), tensors.get("mask"), tensors.get("audio"),
                   tensors.get("audio_mask"), int(meta.get("runs", 0)), tensors.get("camera"))

    def nbytes_estimate(self) -> int:
        return sum(int(t.element_size() * t.numel()) for t in (self.samples, self.audio, self.camera) if t is not None)

    def with_samples(self, samples) -> "Latent":
        return replace(self, samples=samples)

    def __repr__(self):
        return f"Latent({self.family}, {list(self.samples.shape)}, {self.frames} frames {self.width}x{self.height})"


@dataclass
class Conditioning:
    """Prompt embeddings, one row per keyframe of a prompt schedule, plus family-specific extras.

    embeds [K, L, D], mask [K, L] (bool) or None, pooled [K, P] or None, keyframes: the pixel frame of
    each row. extra holds image conditioning: "image_embeds" (CLIP vision tokens), "concat" (latent
    channels concatenated to the denoiser input, [1, C', T, h, w]), "control" (ControlNet frames),
    each a tensor; meta holds JSON values (control weights, SVD motion bucket, ...).

    parts: the further conditionings a combine added (ComfyUI's CONDITIONING is a list of them): the sampler
    runs each, in its region when one is set (meta["region"], extra["region_mask"]; nodes/generate/regions.py),
    and averages their predictions."""
    family: str
    embeds: "object"
    mask: "object" = None
    pooled: "object" = None
    keyframes: Tuple[int, ...] = (0,)
    prompts: Tuple[str, ...] = ("",)
    extra: Dict[str, "object"] = field(default_factory=dict)
    meta: Dict[str, object] = field(default_factory=dict)
    parts: Tuple["Conditioning", ...] = ()

    def to_state(self):
        tensors = {"embeds": self.embeds}
        if self.mask is not None:
            tensors["mask"] = self.mask
        if self.pooled is not None:
            tensors["pooled"] = self.pooled
        tensors.update({"extra." + k: v for k, v in self.extra.items()})
        state = {"family": self.family, "keyframes": list(self.keyframes), "prompts": list(self.prompts),
                 "meta": self.meta}
        for i, part in enumerate(self.parts):
            t, m = part.to_state()
            tensors.update({f"part{i}.{k}": v for k, v in t.items()})
            state.setdefault("parts", []).append(m)
        return tensors, state

    @classmethod
    def from_state(cls, tensors, meta):
        parts = tuple(cls.from_state({k[len(f"part{i}."):]: v for k, v in tensors.items()
                                      if k.startswith(f"part{i}.")}, m) for i, m in enumerate(meta.get("parts", ())))
        return cls(meta["family"], tensors["embeds"], tensors.get("mask"), tensors.get("pooled"),
                   tuple(meta["keyframes"]), tuple(meta["prompts"]), {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")},
                   dict(meta.get("meta", {})), parts)

    def nbytes_estimate(self) -> int:
        ts = [self.embeds, self.mask, self.pooled, *self.extra.values()]
        return sum(int(t.element_size() * t.numel()) for t in ts if t is not None) + \
            sum(p.nbytes_estimate() for p in self.parts)

    def entries(self) -> Tuple["Conditioning", ...]:
        """Each conditioning of a combined one (itself first), on its own. The image conditioning a later node
        added to the combination (an inpainting model's channels, as ComfyUI adds it to every entry) reaches the
        parts that have none of their own."""
        if not self.parts:
            return (self,)
        head = replace(self, parts=())
        # A region's mask, a Redux attention bias and Qwen-Image 2.1's image slots (sized to its own prompt) belong to
        # their entry alone.
        shared = {k: v for k, v in self.extra.items() if k not in ("region_mask", "attention_bias", "image_slots")}
        return (head,) + tuple(p.with_extra(**{k: v for k, v in shared.items() if k not in p.extra})
                               for p in self.parts)

    def with_extra(self, **tensors) -> "Conditioning":
        return replace(self, extra={**self.extra, **tensors})

    def with_meta(self, **values) -> "Conditioning":
        return replace(self, meta={**self.meta, **values})

    def frame_weights(self, frames: Sequence[int]):
        """[len(frames), K] interpolation weights of the keyframe rows at these pixel frames (torch, float32)."""
        import torch
        from nodes.generate.prompts import interpolation_weights
        return torch.from_numpy(interpolation_weights(self.keyframes, frames)).float()

    def at_frames(self, frames: Sequence[int]):
        """(embeds [n, L, D], mask [n, L] or None, pooled [n, P] or None) interpolated per pixel frame."""
        if len(self.keyframes) == 1:
            n = len(frames)
            rep = lambda t: None if t is None else t[:1].expand(n, *t.shape[1:])  # noqa: E731
            return rep(self.embeds), rep(self.mask), rep(self.pooled)
        w = self.frame_weights(frames).to(self.embeds.device)
        mix = lambda t: None if t is None else torch_mix(w, t)  # noqa: E731
        mask = None if self.mask is None else (w @ self.mask.float().to(w.device) > 0)
        return mix(self.embeds), mask, mix(self.pooled)

    def at_frame(self, frame: int) -> "Conditioning":
        """The schedule at one pixel frame as a conditioning of one keyframe, for a loop that samples a clip one
        frame at a time (generate.feedback): frame 0 of its one-frame latent is this frame of the schedule."""
        e, m, p = self.at_frames([frame])
        last = max([k for k, f in enumerate(self.keyframes) if f <= frame] or [0])
        prompt = self.prompts[last] if last < len(self.prompts) else ""
        return replace(self, embeds=e, mask=m, pooled=p, keyframes=(0,), prompts=(prompt,))

    def averaged(self, frames: Sequence[int]):
        """One (embeds [1, L, D], mask, pooled) for models whose text conditioning is global: the
        schedule's interpolation averaged over these frames (a context window's share of the schedule)."""
        e, m, p = self.at_frames(frames)
        mean = lambda t: None if t is None else t.float().mean(0, keepdim=True).to(t.dtype)  # noqa: E731
        return mean(e), None if m is None else m.any(0, keepdim=True), mean(p)


def torch_mix(w, t):
    flat = t.reshape(t.shape[0], -1).float()
    return (w @ flat).reshape(w.shape[0], *t.shape[1:]).to(t.dtype)


def whole_sample(*latents: Latent, done: str = "cut, joined or resized") -> None:
    """Refuses to change a latent with a camera token (TripoSplat's) in the way `done` says: its 8192 shape tokens
    and the camera are one sample of one object, and any part, pair, resampling, blend or mask of the tokens is no
    latent the model samples (the sampler refused it later, and a join kept the first latent's camera alone)."""
    from graph_engine import NodeError
    if any(lat.camera is not None for lat in latents):
        raise NodeError(f"a TripoSplat latent (8192 shape tokens and a camera token, one object) cannot be {done}: "
                        "give the latent condition.triposplat makes straight to generate.sample")


def upscale_latent(latent: Latent, scale: float, method: str = "nearest-exact",
                   size: Optional[Tuple[int, int]] = None) -> Latent:
    """Resize every frame of a latent by `scale` in both spatial axes (or to `size`, (height, width) in latent
    pixels); the pixel size it decodes to follows (latent pixels times the VAE's spatial factor)."""
    import torch.nn.functional as F
    from graph_engine import NodeError
    whole_sample(latent)
    modes = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area", "bicubic": "bicubic"}
    if method not in modes:
        raise NodeError(f"unknown upscale method {method!r}; choose one of {', '.join(modes)}")
    x = latent.samples
    b, c, t, h, w = x.shape
    nh, nw = size or (max(1, round(h * scale)), max(1, round(w * scale)))
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).float()
    kw = {"align_corners": False} if modes[method] in ("bilinear", "bicubic") else {}
    out = F.interpolate(frames, size=(nh, nw), mode=modes[method], **kw)
    out = out.reshape(b, t, c, nh, nw).permute(0, 2, 1, 3, 4).to(x.dtype).contiguous()
    fy, fx = latent.height // h, latent.width // w
    mask = latent.mask
    if mask is not None:        # kept frames stay kept: the mask follows the new size
        mask = F.interpolate(mask.float(), size=(mask.shape[2], nh, nw), mode="nearest")
    return replace(latent, samples=out, width=nw * fx, height=nh * fy, mask=mask)


def adain_latent(latent: Latent, reference: Latent, factor: float, per_frame: bool = False) -> Latent:
    """Each channel of `latent` moved toward the mean and spread `reference` has in that channel, by `factor`
    (0 leaves it, 1 matches): Lightricks' LTXVAdainLatent, which keeps a second, upscaled pass from drifting in
    colour and contrast from the first. per_frame matches frame by frame (a one-frame reference serves every
    frame). Statistics over the whole channel (or frame) with the sample spread, as there."""
    import torch
    from graph_engine import NodeError
    whole_sample(latent, reference, done="matched to another latent's statistics")
    x, ref = latent.samples.float(), reference.samples.float()
    if ref.shape[1] != x.shape[1]:
        raise NodeError(f"the reference latent has {ref.shape[1]} channels and the latent {x.shape[1]}: take the "
                        "reference from the same model")
    if ref.shape[0] not in (1, x.shape[0]):
        raise NodeError(f"the reference latent has a batch of {ref.shape[0]} for a latent batch of {x.shape[0]}; "
                        "give one reference, or one per batch item")
    ref = ref.expand(x.shape[0], *ref.shape[1:])
    if per_frame:
        if ref.shape[2] not in (1, x.shape[2]):
            raise NodeError(f"per frame needs a reference of 1 or {x.shape[2]} latent frames; it has {ref.shape[2]}")
        flat = lambda t: t.expand(-1, -1, x.shape[2], -1, -1).flatten(3)  # noqa: E731
    else:
        flat = lambda t: t.flatten(2)  # noqa: E731
    r_sd, r_mean = torch.std_mean(flat(ref), dim=-1, keepdim=True)
    i_sd, i_mean = torch.std_mean(flat(x), dim=-1, keepdim=True)
    matched = ((flat(x) - i_mean) / i_sd * r_sd + r_mean).reshape(x.shape)
    return replace(latent, samples=torch.lerp(x, matched, float(factor)).to(latent.samples.dtype))


_AXES = {"x": -1, "y": -2, "t": -3}


def _sized(latent: Latent, samples, mask, audio=None) -> Latent:
    """`latent` holding `samples` (cut or joined along an axis): the pixel size and frames it decodes to follow;
    `audio`, when given, is its new sound stream (LTX-2)."""
    from graph_engine import NodeError
    from nodes.generate.families import family as family_spec
    if audio is not None and latent.audio_mask is not None:
        raise NodeError("this latent keeps a given sound (latent.set_sound), which cutting or joining it would put "
                        "out of step: cut or join the latent first, then set its sound")
    t, h, w = latent.samples.shape[2:]
    nt, nh, nw = samples.shape[2:]
    if latent.runs and nt != t:
        raise NodeError(RUNS_IN_TIME)
    frames = family_spec(latent.family).pixel_frames(nt) if nt != t else latent.frames
    return replace(latent, samples=samples.contiguous(), mask=mask, frames=frames,
                   width=nw * (latent.width // w), height=nh * (latent.height // h),
                   audio=latent.audio if audio is None else audio.contiguous())


# runs marked by cut_to_batch count their own pixel frames; a cut or join in time would keep the mark with a whole
# clip's count (or lose it on one side), and the runs would decode out of step with the frames
RUNS_IN_TIME = ("this latent's frames are runs each decoded alone (latent.cut_to_batch): cut or join the latents "
                "before latent.cut_to_batch, or decode them (vae.decode) and use video.trim / video.concat")


def _whole_in_time(latent: Latent, instead: str) -> None:
    """Refuses to cut or join the frames of a video whose VAE encodes time in chunks (MiniMax H3's, its sound beside
    it as [1, C, stereo, L]): any part of it would decode as a clip's start, to a frame count the VAE cannot make."""
    from graph_engine import NodeError
    from nodes.generate.families import family as family_spec
    spec = family_spec(latent.family)
    if spec.chunks and latent.samples.shape[2] > 1:
        a, _, b, _ = spec.chunks
        raise NodeError(f"{spec.title}'s video latent holds its frames in chunks (the first {b} frames, then {a} at a "
                        f"time) with its soundtrack beside them, so its latent frames cannot be cut or joined: "
                        f"decode it (vae.decode, vae.decode_sound) and use {instead} on the video")


def cut_sound(latent: Latent, index: int, amount: int):
    """The sound stream (LTX-2's [B, C, L, bins]) under latent frames index..index+amount: the span of the clip's
    time that ends where those frames end and lasts as long as they decode to, so the cut clip's sound stays in
    step with its pictures (kept whole, the sound would restart at the clip's start)."""
    from nodes.generate.families import family as family_spec
    spec = family_spec(latent.family)
    steps = latent.audio.shape[2]
    per_frame = steps / float(latent.frames)
    end = spec.pixel_frames(index + amount)
    start = end - spec.pixel_frames(amount)
    return latent.audio[:, :, round(start * per_frame):round(end * per_frame)]


def cut_latent(latent: Latent, axis: str, index: int, amount: int) -> Latent:
    """`amount` latent frames (t), rows (y) or columns (x) from `index` on (negative: from the end), clamped to
    what there is, as ComfyUI's LatentCut cuts them."""
    from graph_engine import NodeError
    if axis not in _AXES:
        raise NodeError(f"axis {axis!r}: choose one of {', '.join(_AXES)}")
    if amount < 1:
        raise NodeError(f"amount must be 1 or more, got {amount}")
    whole_sample(latent)
    if axis == "t":
        _whole_in_time(latent, "video.trim")
    d, n = _AXES[axis], latent.samples.shape[_AXES[axis]]
    if index >= 0:
        index = min(index, n - 1)
        amount = min(n - index, amount)
    else:
        index = max(index, -n)
        amount = min(-index, amount)
        index += n
    mask = latent.mask.narrow(d, index, amount) if latent.mask is not None else None
    audio = cut_sound(latent, index, amount) if axis == "t" and latent.audio is not None else None
    return _sized(latent, latent.samples.narrow(d, index, amount), mask, audio)


def concat_latents(first: Latent, second: Latent, axis: str) -> Latent:
    """`second` joined after `first` along an axis (t: frames, y: rows, x: columns), as ComfyUI's LatentConcat
    joins them; "-t", "-y", "-x" put `second` first. Their other sizes must agree; `second`'s batch is repeated to
    `first`'s."""
    import torch
    from graph_engine import NodeError
    if axis.lstrip("-") not in _AXES:
        raise NodeError(f"axis {axis!r}: choose one of x, -x, y, -y, t, -t")
    if first.family != second.family:
        raise NodeError(f"cannot join a {first.family} latent and a {second.family} latent: they decode with "
                        f"different VAEs")
    whole_sample(first, second)
    d = _AXES[axis.lstrip("-")]
    if first.runs != second.runs:
        raise NodeError(RUNS_IN_TIME)
    if d == -3:
        for lat in (first, second):
            _whole_in_time(lat, "video.concat")
    a, b = first.samples, second.samples
    if b.shape[0] != a.shape[0]:
        b = b.repeat(-(-a.shape[0] // b.shape[0]), 1, 1, 1, 1)[:a.shape[0]]
    others = [i for i in range(1, 5) if i != 5 + d]
    if [a.shape[i] for i in others] != [b.shape[i] for i in others]:
        raise NodeError(f"cannot join latents of {tuple(a.shape[1:])} and {tuple(b.shape[1:])} (channels, frames, "
                        f"height, width) along {axis.lstrip('-')}: their other sizes differ")
    pair = (b, a) if axis.startswith("-") else (a, b)
    masks = None
    if first.mask is not None or second.mask is not None:
        def whole(lat, like):          # no mask: every latent pixel is generated
            return lat.mask if lat.mask is not None else torch.ones_like(like[:1, :1])
        masks = (whole(second, b), whole(first, a)) if axis.startswith("-") else (whole(first, a), whole(second, b))
    audio = None
    if d == -3 and (first.audio is not None or second.audio is not None):
        # LTX-2's sound stream: the two sounds one after the other, as their frames are (first's alone would leave
        # the joined clip's second part silent and its sound ending early)
        if first.audio is None or second.audio is None:
            raise NodeError("one of these latents has a sound stream (LTX-2) and the other none: make both with "
                            "latent.empty on the LTX-2 model's VAE")
        sa, sb = first.audio, second.audio
        if sb.shape[0] != sa.shape[0]:
            sb = sb.repeat(-(-sa.shape[0] // sb.shape[0]), 1, 1, 1)[:sa.shape[0]]
        audio = torch.cat((sb, sa) if axis.startswith("-") else (sa, sb), dim=2)
    return _sized(first, torch.cat(pair, dim=d), torch.cat(masks, dim=d) if masks else None, audio)


def cut_to_batch(latent: Latent, size: int) -> Latent:
    """ComfyUI's LatentCutToBatch along t: the latent's frames in runs of `size` (a remainder past the last whole
    run dropped, as ComfyUI drops it), each run decoded on its own (ComfyUI: a batch item). Kinograph keeps pictures
    as a latent's frames, so where the VAE decodes frame by frame (a picture model's: Qwen-Image-Layered's layers)
    the runs are those frames as they are. A video VAE decodes each run as its own clip (vae.decode joins them)."""
    from graph_engine import NodeError
    from nodes.generate.families import family as family_spec
    if size < 1:
        raise NodeError(f"size must be 1 or more, got {size}")
    t = latent.samples.shape[2]
    if size >= t:
        return latent
    whole = t // size * size
    spec = family_spec(latent.family)
    if spec.time_factor != 1 and latent.audio is not None:
        # the soundtrack beside the frames (LTX-2) would be cut to the runs' few frames
        raise NodeError(f"this {spec.title} latent carries its soundtrack, which runs of its frames each decoded "
                        "alone cannot keep in step: decode it whole (vae.decode) and take frames from the video "
                        "(video.trim), or cut it with latent.cut and decode each part")
    cut = latent if whole == t else cut_latent(latent, "t", 0, whole)
    if spec.time_factor == 1:
        return cut
    return replace(cut, runs=size, frames=whole // size * spec.pixel_frames(size))
