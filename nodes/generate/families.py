"""The model families Kinograph knows: names, frame rules, how to recognise them on disk.

Pure data (no torch), so nodes can validate frame counts and the CLI can list models fast.
Which family a weights file belongs to is nodes/generate/detect.py's job.
Compression factors here are the released models'; a loaded model's own VAE config wins."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from graph_engine import NodeError


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    pipelines: Tuple[str, ...]          # diffusers pipeline classes in model_index.json
    denoisers: Tuple[str, ...]          # transformer/unet class names
    time_factor: int = 1                # pixel frames per latent frame (causal VAEs: 1 + k*(T-1))
    space_factor: int = 8
    fps: float = 8.0
    flow: bool = False                  # rectified-flow model (x = (1-s) x0 + s noise)
    cfg: float = 7.0
    steps: int = 25
    size: Tuple[int, int] = (512, 512)  # width, height it was trained at
    frames: int = 16
    # Latent pixels per side of the denoiser's grid (its patch size, times its downsampling for
    # kinograph-mini): a latent that does not divide into it fails inside the model with a tensor
    # error, so sizes must be multiples of space_factor * patch.
    patch: int = 1
    # The family whose VAE and latents this one's are (Chroma samples FLUX.1's latents, read by its ae.safetensors)
    latents: str = ""
    # Guidance distilled in: sample's cfg is the guidance the model is told (ComfyUI's FluxGuidance; its model has a
    # guidance input) and there is no negative pass. Detected variants ending in one of guidance_free (FLUX.1 schnell,
    # FLUX.2 [klein]) have no guidance input: ComfyUI ignores FluxGuidance there and its sampler's cfg is a true CFG.
    distilled_guidance: bool = False
    guidance_free: Tuple[str, ...] = ()
    # Detected variants whose usual cfg (sample's cfg left at 0) is not the family's: (variant, cfg) pairs
    variant_cfg: Tuple[Tuple[str, float], ...] = ()
    # A VAE that encodes time in chunks (MiniMax H3's: 17 pixel frames to 5 latent frames, after a first 5 to 2):
    # (pixel frames per chunk, latent frames per chunk, pixel frames of the first, its latent frames); videos take
    # chunk * n + first frames. A picture (1 frame) is one latent frame all the same.
    chunks: Tuple[int, int, int, int] = ()

    def reads_guidance(self, variant: str = "") -> bool:
        """Whether a model of this family (of this detected variant, where known) is told FluxGuidance's value."""
        return self.distilled_guidance and not (variant and variant.endswith(self.guidance_free))

    def usual_cfg(self, variant: str = "") -> float:
        """sample's cfg when it is left at 0 (auto), for a model of this detected variant where known."""
        return dict(self.variant_cfg).get(variant, self.cfg)

    def latent_frames(self, frames: int, time_factor: Optional[int] = None) -> int:
        if self.chunks and frames > 1:
            a, c, b, d = self.chunks
            return (frames - b) // a * c + d if frames >= b else 1     # under a first chunk: the picture below it
        k = time_factor or self.time_factor
        return frames if k == 1 else (frames - 1) // k + 1

    def pixel_frames(self, latent_frames: int, time_factor: Optional[int] = None) -> int:
        if self.chunks and latent_frames >= self.chunks[3]:
            a, c, b, d = self.chunks
            return (latent_frames - d) // c * a + b
        k = time_factor or self.time_factor
        return latent_frames if k == 1 else (latent_frames - 1) * k + 1

    def floor_frames(self, frames: int, time_factor: Optional[int] = None) -> int:
        """The frame count as ComfyUI's empty latents take it ((frames - 1) // k + 1 latent frames): the kn+1 count at
        or below it."""
        return self.pixel_frames(self.latent_frames(frames, time_factor), time_factor) if frames >= 1 else frames

    def frame_rule(self, time_factor: Optional[int] = None) -> str:
        """The frame counts its VAE makes, in words for messages."""
        if self.chunks:
            return f"1 frame or {self.chunks[0]}n+{self.chunks[2]} frames"
        return f"{time_factor or self.time_factor}n+1 frames"

    def check_frames(self, frames: int, time_factor: Optional[int] = None) -> None:
        k = time_factor or self.time_factor
        if frames < 1:
            raise NodeError(f"{self.title} needs at least 1 frame, got {frames}")
        if self.chunks and frames > 1:
            a, _, b, _ = self.chunks
            if frames < b or (frames - b) % a:
                lo = b + max(0, frames - b) // a * a
                near = f"1 or {b}" if frames < b else f"{lo} or {lo + a}"
                raise NodeError(f"{self.title} takes {self.frame_rule()} (its VAE encodes time in chunks of "
                                f"{a}); {frames} is not one of them. The nearest valid frame counts are {near}.")
            return
        if k > 1 and frames % k != 1:
            lo = frames - (frames - 1) % k
            hi = lo + k
            near = f"{lo} or {hi}" if lo >= 1 else f"{hi}"
            raise NodeError(f"{self.title} takes {self.frame_rule(k)} (its VAE compresses time {k}x); {frames} is not "
                            f"one of them. The nearest valid frame counts are {near}.")

    def size_step(self, space_factor: Optional[int] = None) -> int:
        return (space_factor or self.space_factor) * self.patch

    def floor_size(self, width: int, height: int, space_factor: Optional[int] = None) -> Tuple[int, int]:
        """The size as ComfyUI's empty latents take it (height // factor latent pixels): each side the multiple of
        the size step at or below it; a side under one step stays, for check_size to refuse with sizes to try."""
        f = self.size_step(space_factor)
        return tuple(v - v % f if v >= f else v for v in (width, height))

    def check_size(self, width: int, height: int, space_factor: Optional[int] = None) -> None:
        f = self.size_step(space_factor)
        if width % f or height % f or width <= 0 or height <= 0:
            w2, h2 = max(f, round(width / f) * f), max(f, round(height / f) * f)
            raise NodeError(f"{self.title} needs width and height divisible by {f}; {width}x{height} is not. "
                            f"Try {w2}x{h2}.")


FAMILIES: Dict[str, Family] = {f.name: f for f in (
    Family("sd", "Stable Diffusion 1.5 (image)", ("StableDiffusionPipeline", "StableDiffusionInpaintPipeline"),
           ("UNet2DConditionModel",),
           fps=8.0, cfg=7.5, frames=1),
    # SDXL keyframes (1024x1024-class), to animate with the video families' image-to-video. Its denoiser class is
    # SD's too: folders are told apart by model_index.json, files by their tensors (detect.py).
    Family("sdxl", "Stable Diffusion XL (image)", ("StableDiffusionXLPipeline", "StableDiffusionXLInpaintPipeline"), (), fps=8.0, cfg=7.0, steps=30,
           size=(1024, 1024), frames=1),
    # FLUX.1 keyframes (dev: guidance distilled in, a shifted schedule; schnell: 4 steps, no shift): a flow-matching
    # transformer on 2x2 patches of a 16-channel latent, so sizes step by 16.
    Family("flux", "FLUX.1 (image)", ("FluxPipeline",), ("FluxTransformer2DModel",), fps=8.0, flow=True, cfg=3.5,
           steps=20, size=(1024, 1024), frames=1, patch=2, distilled_guidance=True, guidance_free=("schnell",)),
    # Chroma keyframes (Chroma1-HD, chroma-unlocked-v*): FLUX.1 schnell's transformer pruned, T5-XXL alone (its
    # padding masked), true CFG with a negative prompt; FLUX.1's VAE and latents.
    Family("chroma", "Chroma (image)", ("ChromaPipeline",), ("ChromaTransformer2DModel",), fps=8.0, flow=True, cfg=5.0,
           steps=35, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # Pixel space: the pictures themselves as latents (ComfyUI's pixel_space VAE: RGB in [-1, 1], no network), which
    # Chroma Radiance samples in 16x16 pixel patches, so sizes step by 16.
    Family("pixel_space", "pixel space (no VAE)", (), (), space_factor=1, fps=8.0, size=(1024, 1024), frames=1,
           patch=16),
    # FLUX.2 dev keyframes and edits: a flow-matching transformer over the 32-channel latent of its own VAE taken in
    # 2x2 patches, normalised (128 channels at 1/16 of the picture, as ComfyUI's EmptyFlux2LatentImage holds it; each
    # channel one token feature), so sizes step by 16. dev: guidance distilled in, prompts read by Mistral Small 3;
    # [klein]: true CFG (its distilled releases at cfg 1), prompts read by Qwen3.
    Family("flux2", "FLUX.2 (image)", ("Flux2Pipeline", "Flux2KleinPipeline"), ("Flux2Transformer2DModel",),
           space_factor=16, fps=8.0, flow=True, cfg=4.0, steps=50, size=(1024, 1024), frames=1, distilled_guidance=True,
           guidance_free=("klein",)),
    # FLUX.3 [klein] keyframes and edits: FLUX.2's normalised, patched latent (its VAE) read by a transformer with
    # per-mode blocks (picture, reference pictures, prompt) before joint ones; prompts read by 8 of Qwen3-VL-4B's layers.
    # base: 50 steps, true CFG 3.5; the step-distilled file: 16 steps at cfg 1 (no negative pass).
    Family("flux3", "FLUX.3 [klein] (image)", ("Flux3Parts",), ("Flux3Transformer2DModel",), space_factor=16,
           fps=8.0, flow=True, cfg=3.5, steps=50, size=(1024, 1024), frames=1, latents="flux2",
           variant_cfg=(("distilled", 1.0),)),
    # Boogu-Image 0.1 (base, Turbo, Edit) keyframes and edits: OmniGen2's refiners and Lumina 2's blocks with a
    # dual-stream stage, over 2x2 patches of FLUX.1's latent (its ae.safetensors); prompts (and the pictures to edit)
    # read by Qwen3-VL-8B's last layer. Base and Edit: true CFG; Turbo: 4 steps at cfg 1.
    # Anima (anime and illustration) keyframes: Cosmos-Predict2's 2B DiT over 2x2 patches of Qwen-Image's latent (its
    # VAE), the prompt read by Qwen3-0.6B and turned by the DiT's LLM adapter into queries on its T5 token ids; true
    # CFG, its levels shifted by 3.
    Family("anima", "Anima (image)", ("AnimaParts",), ("CosmosTransformer3DModel",), fps=8.0, flow=True, cfg=4.0,
           steps=30, size=(1024, 1024), frames=1, patch=2, latents="qwenimage"),
    Family("boogu", "Boogu-Image (image)", ("BooguParts",), ("BooguTransformer",), fps=8.0, flow=True, cfg=3.5,
           steps=25, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # Lens (Microsoft's base and Turbo) keyframes: a dual-stream MMDiT over FLUX.2's normalised, patched latent (its
    # VAE: 128 channels at 1/16, each latent pixel one token); prompts read by 4 of GPT-OSS-20B's layers. Base: 20 steps,
    # true CFG 5 (ComfyUI's template); Turbo (the same tensors, distilled): 4 steps at cfg 1, as its template sets.
    # Hunyuan3D 2.0 / 2.1 shapes (Tencent's image-to-3D; 2.0's mini, mv and turbo files too): a flow-matching
    # transformer over the ShapeVAE's 64-channel latent of `resolution` tokens (held as one frame 1 x tokens), reading
    # DINOv2's tokens of the picture(s); decoded to a VOXEL grid, not pictures. True CFG 5 or so, 30 steps (ComfyUI's
    # templates: 5 to 8, 20 to 30).
    Family("hunyuan3d", "Hunyuan3D (3-D shape)", ("Hunyuan3DParts",), ("Hunyuan3DDiT", "Hunyuan3DDiT21"),
           space_factor=1, fps=8.0, flow=True, cfg=5.0, steps=30, size=(3072, 1), frames=1),
    # TRELLIS.2 shapes (Microsoft's picture-to-3D, as ComfyUI holds it): so far its sparse-structure stage, a flow
    # transformer over the 32-channel 16^3 structure latent (its depth held as frames) reading DINOv3's tokens of the
    # picture; decoded to a VOXEL grid. ComfyUI's templates: 12 steps, true CFG 7.5, shift 5.
    Family("trellis2", "TRELLIS.2 (3-D shape)", ("Trellis2Parts",), ("StructureFlow",), space_factor=1, fps=8.0,
           flow=True, cfg=7.5, steps=12, size=(16, 16), frames=16),
    # TripoSplat splats (VAST-AI's picture-to-3D-Gaussians, as ComfyUI holds it): a flow transformer over 8192 shape
    # tokens of 16 channels and a camera token (held as one frame 1 x 8192), reading DINOv3 ViT-H's tokens and the
    # FLUX.2 VAE latent of the picture; decoded to Gaussians, not pictures. ComfyUI's template: 20 steps, cfg 3,
    # dpmpp_2m on the simple schedule, shift 3 (the model's own).
    Family("triposplat", "TripoSplat (3-D splat)", ("TripoSplatParts",), ("TripoSplatFlow",), space_factor=1,
           fps=8.0, flow=True, cfg=3.0, steps=20, size=(8192, 1), frames=1),
    Family("lens", "Lens (image)", ("LensParts",), ("LensTransformer",), space_factor=16, fps=8.0, flow=True,
           cfg=5.0, steps=20, size=(1440, 1440), frames=1, latents="flux2"),
    # OmniGen2 keyframes and instruction edits: Boogu's transformer without its dual-stream stage (OmniGen2's refiners
    # and Lumina 2's blocks) over 2x2 patches of FLUX.1's latent; prompts read by Qwen2.5-VL-3B's last layer, the
    # pictures to edit read as reference latents (ReferenceLatent). True CFG, or DualCFGGuider's two in its templates.
    Family("omnigen2", "OmniGen2 (image)", ("OmniGen2Parts",), ("OmniGen2Transformer",), fps=8.0, flow=True,
           cfg=5.0, steps=20, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # JoyImage Edit (JD's JoyAI-Image-Edit) pictures and edits: a dual-stream transformer over 2x2 patches of the Wan
    # 2.1 VAE's latent, the pictures to edit read beside the noise; prompts (and the pictures) read by Qwen3-VL-8B's
    # last layer before its final norm. True CFG (ComfyUI's template adds CFGNorm).
    Family("joyimage", "JoyImage Edit (image)", ("JoyImageParts", "JoyImageEditPipeline"),
           ("JoyImageEditTransformer3DModel",), fps=8.0, flow=True, cfg=4.0, steps=40, size=(1024, 1024), frames=1,
           patch=2, latents="wan"),
    # Bria's FIBO 2 (dev and edit turbo) pictures and edits: Z-Image's blocks over FLUX.2's normalised, patched latent
    # (its VAE), the pictures to edit read beside the noise as clean tokens; JSON prompts read by Qwen3-VL-4B (six
    # bundles of three of its layers), squeezed into gist tokens by a Perceiver. dev: true CFG 5 over 50 steps; edit
    # turbo: 4 steps at cfg 1.
    Family("fibo2", "FIBO 2 (image)", ("Fibo2Parts", "BriaFibo2Pipeline"), ("BriaFibo2Transformer2DModel",),
           space_factor=16, fps=8.0, flow=True, cfg=5.0, steps=50, size=(1024, 1024), frames=1, latents="flux2"),
    # Microsoft's Mage-Flow (base, Turbo, Edit) pictures and edits: Qwen-Image's double-stream blocks over the Mage VAE's
    # 128-channel latent at 16x, one token per latent pixel, the pictures to edit read beside the noise; prompts read
    # by Qwen3-VL-4B (its last layer, normed). Base: 30 steps at cfg 5; Turbo: 4 steps at cfg 1.
    Family("mage_flow", "Mage-Flow (image)", ("MageFlowParts",), ("MageFlowTransformer",), space_factor=16, fps=8.0,
           flow=True, cfg=5.0, steps=30, size=(1024, 1024), frames=1),
    # Z-Image (Tongyi's Turbo and base) keyframes: one single-stream transformer (NextDiT) over 2x2 patches of FLUX.1's
    # latent, read by its ae.safetensors, after small refiners of the picture's and the prompt's tokens; prompts read by
    # Qwen3-4B (its next-to-last layer). Turbo: 8 steps at cfg 1 (no negative pass); base: true CFG.
    Family("zimage", "Z-Image (image)", ("ZImagePipeline",), ("ZImageTransformer2DModel",), fps=8.0, flow=True,
           cfg=1.0, steps=8, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # Krea 2 (Turbo and Raw) keyframes: one single-stream transformer over the prompt's tokens and 2x2 patches of
    # Qwen-Image's latent, read by its VAE; prompts read by 12 of Qwen3-VL-4B's layers, fused by the transformer.
    # Turbo: 8 steps at cfg 1 (no negative pass) on a fixed time shift.
    Family("krea2", "Krea 2 (image)", ("Krea2Pipeline",), ("Krea2Transformer2DModel",), fps=8.0, flow=True, cfg=1.0,
           steps=8, size=(1024, 1024), frames=1, patch=2, latents="qwenimage"),
    # Ideogram 4 keyframes, made for text in pictures (posters, signs): a single-stream transformer over the prompt's
    # tokens (13 of Qwen3-VL-8B's layers each) and FLUX.2's normalised, patched latent (its VAE), each latent pixel's 128
    # channels one token. Asymmetric CFG: a second, unconditional transformer that reads no text makes the negative
    # pass (ComfyUI's DualModelGuider), cfg 7 then 3 for the last steps, on a logit-normal schedule.
    Family("ideogram4", "Ideogram 4 (image)", ("Ideogram4Pipeline",), ("Ideogram4Transformer2DModel",), space_factor=16,
           fps=8.0, flow=True, cfg=7.0, steps=48, size=(1024, 1024), frames=1, latents="flux2"),
    # HiDream-I1 (full, dev, fast) keyframes: a sparse DiT (mixture-of-experts feed-forwards) over 2x2 patches of FLUX.1's
    # latent, reading T5-XXL's states and, in each block, one layer of Llama 3.1 8B's; CLIP-L and CLIP-G pooled. Full:
    # true CFG; dev and fast are distilled to cfg 1.
    Family("hidream", "HiDream-I1 (image)", ("HiDreamImagePipeline",), ("HiDreamImageTransformer2DModel",), fps=8.0,
           flow=True, cfg=5.0, steps=50, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # MiniMax H3: its audio-video transformer making a picture (one latent frame, no sound rows) or a video with its
    # stereo soundtrack (17n+5 frames at 24 fps) of its 24-channel latent (16x smaller per side), prompts read by
    # Qwen3-VL 32B (layer 50); guidance distilled (cfg 1).
    Family("minimax_h3", "MiniMax H3 (image, video with sound)", ("MiniMaxH3Parts",), ("MiniMaxH3Transformer3DModel",),
           space_factor=16, fps=24.0, flow=True, cfg=1.0, steps=30, size=(1024, 1024), frames=1, patch=2,
           chunks=(17, 5, 5, 2)),
    # LongCat-Image (Meituan) keyframes and edits: FLUX.1's double and single blocks told no pooled embedding and no
    # guidance, over 2x2 patches of FLUX.1's latent; prompts read by Qwen2.5-VL 7B (its last layer), true CFG with a
    # negative. LongCat-Image-Edit: the same transformer reading the picture to edit beside the noise.
    Family("longcat", "LongCat-Image (image)", ("LongCatImagePipeline", "LongCatImageEditPipeline"),
           ("LongCatImageTransformer2DModel",), fps=8.0, flow=True, cfg=4.5, steps=50, size=(1024, 1024), frames=1,
           patch=2, latents="flux"),
    # Ovis-Image (AIDC-AI) keyframes, made for text in pictures: FLUX.1's blocks with gated feed-forwards, told no pooled
    # embedding and no guidance, over 2x2 patches of FLUX.1's latent; prompts read by Ovis 2.5's Qwen3 (2B), true CFG.
    Family("ovis", "Ovis-Image (image)", ("OvisImagePipeline",), ("OvisImageTransformer2DModel",), fps=8.0, flow=True,
           cfg=5.0, steps=50, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # Stable Diffusion 3 medium, 3.5 medium / large / large turbo keyframes: an MMDiT over 2x2 patches of a 16-channel
    # latent on a flow schedule shifted by 3, three text encoders (CLIP-L, OpenCLIP-G, T5-XXL).
    Family("sd3", "Stable Diffusion 3 / 3.5 (image)", ("StableDiffusion3Pipeline",), ("SD3Transformer2DModel",),
           fps=8.0, flow=True, cfg=4.5, steps=28, size=(1024, 1024), frames=1, patch=2),
    # Qwen-Image keyframes (and text in pictures): a flow-matching transformer on 2x2 patches of the Wan 2.1 VAE's
    # 16-channel latent (its own weights), prompts read by Qwen2.5-VL's language model; true CFG with a negative.
    # Qwen-Image-Edit (and 2509's Plus): the same transformer, reading the pictures to edit beside the noise.
    Family("qwenimage", "Qwen-Image (image)", ("QwenImagePipeline", "QwenImageEditPipeline", "QwenImageEditPlusPipeline"),
           ("QwenImageTransformer2DModel",), fps=8.0,
           flow=True, cfg=4.0, steps=30, size=(1328, 1328), frames=1, patch=2),
    # Qwen-Image 2.1 keyframes: one single-stream transformer over the prompt's and the picture's tokens (block-causal),
    # reading the 64-channel latent of its own 16x VAE unpatched (each 2x2 of latent pixels one of the text encoder's
    # image slots), prompts read by Qwen3-VL; sampled without guidance.
    Family("qwenimage21", "Qwen-Image 2.1 (image)", ("QwenImage21Pipeline",), ("QwenImage21Transformer2DModel",),
           space_factor=16, fps=8.0, flow=True, cfg=1.0, steps=40, size=(1024, 1024), frames=1, patch=2),
    Family("animatediff", "AnimateDiff", ("AnimateDiffPipeline", "AnimateDiffVideoToVideoPipeline"),
           ("UNetMotionModel",), fps=8.0, cfg=7.5, frames=16),
    Family("svd", "Stable Video Diffusion", ("StableVideoDiffusionPipeline",),
           ("UNetSpatioTemporalConditionModel",), fps=7.0, cfg=3.0, size=(1024, 576), frames=14),
    Family("wan", "Wan 2.1/2.2", ("WanPipeline", "WanImageToVideoPipeline", "WanVideoToVideoPipeline",
                                  "WanVACEPipeline"),
           ("WanTransformer3DModel", "WanVACETransformer3DModel"), time_factor=4, fps=16.0, flow=True, cfg=5.0, steps=30,
           size=(832, 480), frames=81, patch=2),
    Family("ltx", "LTX-Video", ("LTXPipeline", "LTXImageToVideoPipeline", "LTXConditionPipeline"),
           ("LTXVideoTransformer3DModel",), time_factor=8, space_factor=32, fps=24.0, flow=True, cfg=3.0,
           steps=40, size=(704, 480), frames=121),
    # LTX-2 (19B) and LTX-2.3 (22B): one transformer denoising a video latent (LTX-Video's 32x / 8x VAE, 128 channels)
    # and an audio latent (a mel spectrogram's VAE) together, each attending to the other; prompts read by Gemma 3.
    Family("ltx2", "LTX-2", ("LTX2Pipeline", "LTX2ImageToVideoPipeline"), ("LTX2VideoTransformer3DModel",),
           time_factor=8, space_factor=32, fps=24.0, flow=True, cfg=4.0, steps=40, size=(768, 512), frames=121),
    Family("cogvideox", "CogVideoX", ("CogVideoXPipeline", "CogVideoXImageToVideoPipeline"),
           ("CogVideoXTransformer3DModel",), time_factor=4, fps=8.0, cfg=6.0, steps=50, size=(720, 480),
           frames=49, patch=2),
    Family("hunyuan", "HunyuanVideo", ("HunyuanVideoPipeline", "HunyuanVideoImageToVideoPipeline"),
           ("HunyuanVideoTransformer3DModel",),
           time_factor=4, fps=24.0, flow=True, cfg=6.0, steps=30, size=(848, 480), frames=61, patch=2,
           distilled_guidance=True),
    # HunyuanVideo 1.5 (8.3B): one dual-stream transformer over the 32-channel latent of its own 16x VAE (patch 1), a
    # prompt read by Qwen2.5-VL (and quoted text by a glyph ByT5), true CFG with a negative prompt.
    Family("hunyuan15", "HunyuanVideo 1.5", ("HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline"),
           ("HunyuanVideo15Transformer3DModel",), time_factor=4, space_factor=16, fps=24.0, flow=True, cfg=6.0,
           steps=50, size=(848, 480), frames=121),
    # Kandinsky 5 video (Lite 2B): a transformer over 2x2 patches of HunyuanVideo's 16-channel latent (its VAE), the
    # prompt read by Qwen2.5-VL in its chat template and CLIP-L's pooled output, true CFG with a negative prompt.
    Family("kandinsky5", "Kandinsky 5 video", ("Kandinsky5T2VPipeline", "Kandinsky5I2VPipeline"),
           ("Kandinsky5Transformer3DModel",), time_factor=4, fps=24.0, flow=True, cfg=5.0, steps=50, size=(768, 512),
           frames=121, patch=2, latents="hunyuan"),
    # Kandinsky 5 image (Lite 6B) keyframes: the video model's transformer (no start-frame channels) over 2x2 patches
    # of FLUX.1's latent (its ae.safetensors), the prompt read by Qwen2.5-VL in the image chat template and CLIP-L's
    # pooled output, true CFG with a negative prompt.
    Family("kandinsky5image", "Kandinsky 5 (image)", ("Kandinsky5T2IPipeline",), ("Kandinsky5Transformer3DModel",),
           fps=8.0, flow=True, cfg=3.5, steps=50, size=(1024, 1024), frames=1, patch=2, latents="flux"),
    # SeedVR2 (ByteDance's one-step video restorer): its NaDiT over 2x2 patches of the 16-channel latent of its own
    # causal video VAE (8x, 4n+1 frames; nodes/generate/seedvr2_vae.py), the clip to restore read beside the noise.
    Family("seedvr2", "SeedVR2 (restoration)", ("SeedVR2Parts",), ("NaDiT",), time_factor=4, fps=24.0, flow=True,
           cfg=1.0, steps=1, size=(1280, 720), frames=1, patch=2),
    # HiDream-O1-Image (full and dev): Qwen3-VL-8B itself denoising the picture's 32 x 32 RGB patches (no VAE: the
    # latent is the pixels, [-1, 1]) after the prompt's tokens and any reference pictures; flow matching with noise 8
    # times the picture's scale (ModelNoiseScale). Full: 40 steps at cfg 5; dev: 28 steps at cfg 1.
    Family("hidream_o1", "HiDream-O1 (image)", ("HiDreamO1Parts",), ("HiDreamO1",), space_factor=1, fps=8.0,
           flow=True, cfg=5.0, steps=40, size=(2048, 2048), frames=1, patch=32, latents="pixel_space"),
    # PixelDiT (NVIDIA's, 1024px) keyframes: no VAE either (the latent is the picture, [-1, 1]), an MMDiT over 16x16
    # patches read by Gemma-2-2B, then pixel-level blocks; flow matching at ComfyUI's shift 4, 30 steps at cfg 4 in
    # its template.
    Family("pixeldit", "PixelDiT (image)", ("PixelDiTParts",), ("PixelDiTTransformer",), space_factor=1, fps=8.0,
           flow=True, cfg=4.0, steps=30, size=(1024, 1024), frames=1, patch=16, latents="pixel_space"),
    # NewBie-image (NewBie-AI's Exp0.1, anime) keyframes: Lumina-Image 2.0's NextDiT over 2x2 patches of FLUX.1's
    # latent, read by its ae.safetensors; prompts read by Gemma 3 4B (next-to-last layer) with Jina CLIP v2's pooled
    # output in the modulation. Shift 6; 20 steps at cfg 5.5 in its template.
    Family("newbie", "NewBie-image (image)", ("NewBieParts",), ("NewBieTransformer",), fps=8.0, flow=True, cfg=5.5,
           steps=20, size=(1024, 1536), frames=1, patch=2, latents="flux"),
    Family("mini", "kinograph-mini", (), ("KinographMini",), space_factor=1, fps=8.0, flow=True, cfg=2.5,
           steps=20, size=(48, 48), frames=16, patch=16),
)}


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise NodeError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def latent_families(name: str) -> set:
    """The families whose latents a `name` model samples and its VAE decodes: SD 1.5's and AnimateDiff's are one,
    and a family that shares another's VAE (Chroma, FLUX.1's) shares its latents."""
    if name in ("sd", "animatediff"):
        return {"sd", "animatediff"}
    base = FAMILIES[name].latents or name if name in FAMILIES else name
    return {base} | {f.name for f in FAMILIES.values() if f.latents == base}


def family_of_classes(pipeline: str = "", denoiser: str = "") -> Optional[str]:
    for f in FAMILIES.values():
        if pipeline in f.pipelines or denoiser in f.denoisers:
            return f.name
    return None
