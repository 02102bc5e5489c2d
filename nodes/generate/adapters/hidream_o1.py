"""HiDream-O1-Image (nodes/generate/hidream_o1_model.py): Qwen3-VL-8B denoising the picture's pixels, from ComfyUI's
all-in-one checkpoint (checkpoints/hidream_o1_image_*.safetensors: the transformer alone, under model.diffusion_model.;
its "text encoder" is Qwen2.5's tokenizer and its "VAE" ComfyUI's pixel_space one, adapters/pixel_space.py).

The latent is the picture itself, [B, 3, 1, H, W] in [-1, 1] (pixel-space latents, as Chroma Radiance's). A prompt's conditioning is its token ids (embeds [1, L,
1], as ComfyUI's tokenizer-only encoder hands them on); reference pictures (condition.hidream_o1_references) ride on
both prompts as extras. The sampler holds x = (1 - sigma) x0 + sigma * noise_scale * n: the noise is drawn at
noise_scale times unit (ModelNoiseScale, model.noise_scale; 8 when unset), which ComfyUI also multiplies the
stochastic samplers' fresh noise by. The model predicts the clean picture and hands back the velocity, so x0 = x -
sigma v as for every flow model."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch

from graph_engine import NodeError
from nodes.generate.adapters.base import Adapter
from nodes.generate.pixel_space_name import NAME as PIXELS

# The authors' pipeline's defaults (DEFAULT_NOISE_SCALE and DEFAULT_SHIFT of its public ports; ComfyUI's own model
# sampling settings were not at hand): noise 8 times unit (the full template's ModelNoiseScale too; dev's: 7.6), and
# the flow shift of its default schedule
NOISE_SCALE = 8.0
SHIFT = 3.0
REFS = "hidream_o1_ref"     # extras "hidream_o1_ref0".. : reference pictures, uint8 [H, W, 3]
SEAMS = "hidream_o1_seams"  # the model option model.hidream_o1_seams sets


def reference_pictures(cond) -> list:
    return [cond.extra[f"{REFS}{i}"].numpy() for i in range(10) if f"{REFS}{i}" in cond.extra]


class HiDreamO1Adapter(Adapter):
    family = "hidream_o1"
    space = "flow"
    prediction = "flow"
    literal_prompts = True      # ComfyUI tokenizes HiDream-O1's prompt with its weights disabled
    single_file = True

    def title(self, pipe) -> str:
        return "HiDream-O1"

    def latents(self, pipe) -> str:
        return PIXELS

    def load(self, path: Path, dtype, device: str, **opts):
        from nodes.generate.detect import detect_file, hidream_o1_prefix
        from nodes.generate.hidream_o1_model import from_state
        from nodes.generate.split import tokenizer
        from nodes.generate.weights import load_weights, strip_prefix
        state = load_weights(path, dtype)
        prefix = hidream_o1_prefix(state)
        if prefix is None:
            raise NodeError(f"{Path(path).name} holds no HiDream-O1 transformer (x_embedder.proj1, t_embedder1, "
                            "final_layer2)")
        try:
            model = from_state(strip_prefix(state, prefix), dtype)
        except (ValueError, KeyError) as exc:
            raise NodeError(f"{Path(path).name} is not a whole HiDream-O1 transformer ({exc}): copy the file again")
        det = detect_file(Path(path))
        tok = tokenizer(Path(path), det, [Path(path).parent / Path(path).stem, Path(path).parent / "qwen25_tokenizer"],
                        of="Qwen2.5's (HiDream-O1 reads its prompt with ComfyUI's comfy/text_encoders/qwen25_tokenizer, "
                           "or Qwen/Qwen2.5-VL-7B-Instruct's tokenizer files)")
        return SimpleNamespace(transformer=model, text_encoder=SimpleNamespace(tokenizer=tok), tokenizer=tok,
                               vae=None, scheduler=None)

    def factors(self, pipe):
        return 1, 1, 3

    def encode_text(self, pipe, prompts, device):
        from nodes.generate.hidream_o1_model import prompt_ids
        rows = [torch.tensor(prompt_ids(pipe.tokenizer, p), dtype=torch.float32) for p in prompts]
        length = max(len(r) for r in rows)
        embeds = torch.zeros(len(rows), length, 1)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            embeds[i, :len(r), 0] = r
            mask[i, :len(r)] = True
        return embeds, mask, None

    def token_offsets(self, pipe, text):
        return None

    def default_sigmas(self, pipe, steps, latent_shape):
        from nodes.generate.samplers import flow_sigmas
        return flow_sigmas(steps, SHIFT).double()

    def flow_shift(self, pipe) -> float:
        return SHIFT

    def run_noise(self, handle, noise):
        return noise * float(handle.option("noise_scale", NOISE_SCALE))

    def conditioning_inputs(self, handle, conds, frames, batch, device, dtype):
        """Each prompt's token ids and reference pictures, and which prompt each row of the batch reads."""
        prompts = []
        for c in conds:
            if c.embeds.shape[-1] != 1:
                raise NodeError("this prompt was encoded by another model's text encoder; HiDream-O1 reads its prompt "
                                "as token ids: encode it with the HiDream-O1 checkpoint's text_encoder")
            ids = c.embeds[0, :, 0] if c.mask is None else c.embeds[0, c.mask[0].bool(), 0]
            prompts.append((ids.round().long().tolist(), reference_pictures(c)))
        return {"prompts": prompts, "rows": [i for i in range(len(conds)) for _ in range(batch)]}

    def forward(self, handle, x_in, t, inputs):
        """The rows of each prompt in one call, with the seam smoothing's shifted passes where it is on."""
        from nodes.generate.hidream_o1_model import sequence
        from nodes.generate.hidream_o1_seams import smoothed
        model = handle.pipe.transformer
        pictures = x_in[:, :, 0].float()
        sigma = (t.float().reshape(-1)[:1] / 1000).expand(x_in.shape[0]).to(pictures.device)
        h, w = pictures.shape[-2:]
        seams = handle.option(SEAMS)
        if seams is not None:
            shift = handle.option("flow_shift")
            seams = dict(seams, top=self.percent_sigma(handle.pipe, seams["start"], shift),
                         bottom=self.percent_sigma(handle.pipe, seams["end"], shift))
        out = torch.empty_like(pictures)
        rows = torch.as_tensor(inputs["rows"])
        for k, (ids, pics) in enumerate(inputs["prompts"]):
            idx = (rows == k).nonzero().flatten().tolist()
            if not idx:
                continue
            refs = self._references(model, pics, h, w)
            seq = sequence(ids, h, w, refs)

            def velocity(x, s, seq=seq, refs=refs):
                return model(x, s, seq, refs)
            out[idx] = smoothed(velocity, pictures[idx], sigma[idx], seams)
        return out[:, :, None]

    def _references(self, model, pictures, h, w):
        """references() of the pictures for an h x w result, kept for the run's later steps with what `model`'s
        vision tower makes of them (the same every step)."""
        from nodes.generate.hidream_o1_model import references
        if not pictures:
            return None
        key = (id(model), h, w, tuple(hash(p.tobytes()) for p in pictures))
        cache = self.__dict__.setdefault("_refs", {})
        if key not in cache:
            cache.clear()
            cache[key] = references(pictures, h, w)
        return cache[key]

    def check_latent(self, handle, latent) -> None:
        s = latent.samples
        if s.shape[1] != 3 or s.shape[-1] % 32 or s.shape[-2] % 32:
            raise NodeError(f"HiDream-O1 samples the picture itself (3 channels, sides multiples of 32); this latent "
                            f"is {list(s.shape)}: make it with latent.empty_hidream_o1")



ADAPTERS = {"hidream_o1": HiDreamO1Adapter()}
