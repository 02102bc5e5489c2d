"""Inspire Pack's samplers: ComfyUI's KSampler and KSamplerAdvanced with A1111-style noise, a batch's seeds drawn
picture by picture, and a variation seed blended in (inspire/a1111_compat.py, libs/utils.py prepare_noise)."""
from __future__ import annotations

from typing import Optional

from ..flatten import Ref
from ..out import Out


class Inspire:
    def latent_batch(self, out) -> Optional[int]:
        """How many pictures the latent `out` holds, where the import knows it: an empty latent's batch (a video's
        batch_size, not its length), carried through the nodes that take one latent and hand it on (a sampler, an
        upscale); None otherwise (a picture encoded)."""
        port = out.port if isinstance(out, Out) else None
        for _ in range(64):
            if port is None:
                return None
            node = self.graph.nodes[port[0]]
            if node.type == "latent.empty":
                # a video's empty latent holds its length in frames; its pictures are its batch_size
                made_by = next((self.flat.nodes[c] for n, c in self.pending_vae if n == node.id), None)
                count = self.resolve(made_by.inputs.get("batch_size")) if made_by is not None and \
                    "length" in made_by.inputs else node.params.get("frames", 1)
                return count if isinstance(count, int) else None
            port = self.graph.inputs.get(node.id, {}).get("latent")
        return None

    def special_inspire_sampler(self, cn, rule, params, notes):
        """KSampler's (or KSamplerAdvanced's) sample. batch_seed_mode only changes a batch of more than one
        picture: 'incremental' seeds picture i with seed + i, 'variation str inc:X' raises the variation strength
        by X a picture; with one picture both are 'comfy', which is how Kinograph draws a batch (one seed)."""
        made = self.special_sampler(cn, rule, params, notes)
        for k, what in (("noise_opt", "noise"), ("scheduler_func_opt", "schedule")):
            if isinstance(cn.inputs.get(k), Ref):
                notes.append(f"its {k} input is not carried: sample draws its own {what}")
        from nodes.generate.samplers import STOCHASTIC
        internal = self.resolve(cn.inputs.get("internal_seed"))
        if params.get("sampler") in STOCHASTIC and isinstance(internal, int) and internal != params.get("seed"):
            notes.append(f"internal_seed={internal} is not carried: ComfyUI draws {params['sampler']}'s noise after "
                         f"the first step from it, Kinograph from the seed ({params.get('seed')})")
        mode = self.resolve(cn.inputs.get("batch_seed_mode"))
        if mode in (None, "comfy"):
            return made
        batch = self.latent_batch(self.resolve(cn.inputs.get("latent_image")))
        if batch == 1:
            return made
        count = f"its batch of {batch} pictures" if batch else "a batch of more than one picture"
        how = "seeds picture i with seed + i" if mode == "incremental" else \
            f"raises the variation strength by {str(mode)[18:]} a picture"
        notes.append(f"batch_seed_mode={mode!r} is not carried: ComfyUI {how}, Kinograph draws {count} from the one "
                     "seed (as 'comfy')")
        return made
