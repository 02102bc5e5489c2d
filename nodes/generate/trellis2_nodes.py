"""TRELLIS.2 nodes: the image conditioning (ComfyUI's Trellis2Conditioning), the empty structure latent and its
decode to a VOXEL grid (EmptyTrellis2LatentStructure and VaeDecodeStructureTrellis2). DINOv3 loads with
load.clip_vision, the shape VAE with load.vae. TripoSplat's: its conditioning and its decode to a SPLAT."""
from __future__ import annotations

from graph_engine import Param, node
from graph_engine.types import CONDITIONING, IMAGE, IMAGE_ENCODER, LATENT, SPLAT, VAE, VOXEL
from nodes.generate.hunyuan3d_nodes import one_shape_preflight


@node("latent.empty_trellis2_structure", title="Empty TRELLIS.2 Structure Latent", category="Latent",
      preflight=one_shape_preflight)
def latent_empty_trellis2_structure(ctx, batch: int = Param(1, min=1, max=4096,
                                                            help="shapes made at once (1: decode.trellis2_structure "
                                                                 "makes one shape)")) -> LATENT:
    """A blank TRELLIS.2 structure latent (ComfyUI's EmptyTrellis2LatentStructure): zeros of 32 channels over a
    16 x 16 x 16 grid, whose first 8 channels the structure decoder reads."""
    from nodes.generate.trellis2 import empty_structure_latent
    return empty_structure_latent(batch)


@node("decode.trellis2_structure", title="Decode TRELLIS.2 Structure", category="Latent", device="gpu")
def decode_trellis2_structure(ctx, vae: VAE, latent: LATENT,
                              resolution: str = Param("32", choices=("32", "64"),
                                                      help="cells a side of the grid: the decoder makes 64; at 32 "
                                                           "a cell is set where any of its 8 is")) -> VOXEL:
    """A sampled TRELLIS.2 structure latent as a VOXEL grid (ComfyUI's VaeDecodeStructureTrellis2): the shape VAE's
    structure decoder's occupancy, 1 where its logit is above 0, over -1..1; mesh.from_voxels makes its mesh."""
    from nodes.generate.trellis2 import decode_structure
    return decode_structure(vae, latent, int(resolution))


@node("condition.trellis2", title="TRELLIS.2 Conditioning", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_trellis2(ctx, image_encoder: IMAGE_ENCODER, image: IMAGE):
    """What shape to make, from one picture (ComfyUI's Trellis2Conditioning): DINOv3's tokens of it at 512 and 1024
    pixels a side; the negative is zeros of their shapes. Crop the picture to its subject first (mask.crop_to_mask,
    pad_factor 1.0 for TRELLIS.2); load DINOv3 with load.clip_vision (dino_v3_L_naf_fp32.safetensors)."""
    from nodes.generate.trellis2_dino import conditioning
    positive, negative = conditioning(image_encoder, image)
    return {"positive": positive, "negative": negative}


@node("condition.triposplat", title="TripoSplat Conditioning", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_triposplat(ctx, image_encoder: IMAGE_ENCODER, vae: VAE, image: IMAGE):
    """What splat to make, from one picture (ComfyUI's TripoSplatConditioning): DINOv3 ViT-H's tokens of it and its
    FLUX.2 VAE latent; the negative is zeros of both; the latent is TripoSplat's 8192 shape tokens, zeros. Frame the
    picture first (mask.triposplat_frame); load DINOv3 with load.clip_vision (dino_v3_vit_h.safetensors) and the
    VAE with load.vae (flux2-vae.safetensors)."""
    from nodes.generate.triposplat_condition import conditioning
    positive, negative, latent = conditioning(image_encoder, vae, image)
    return {"positive": positive, "negative": negative, "latent": latent}


@node("decode.triposplat", title="Decode TripoSplat", category="Latent", device="gpu")
def decode_triposplat(ctx, vae: VAE, latent: LATENT,
                      num_gaussians: int = Param(262144, min=32768, max=1048576, step=32,
                                                 help="Gaussians made (rounded to a multiple of 32): 262144 is the "
                                                      "octree's density; more oversample the same points"),
                      seed: int = Param(0, min=0, max=0xFFFFFFFFFFFFFFFF,
                                        help="seeds where the octree puts its points")) -> SPLAT:
    """A sampled TripoSplat latent as 3-D Gaussians (ComfyUI's VAEDecodeTripoSplat): the decoder's octree places
    num_gaussians / 32 points, 32 Gaussians each. Load the decoder with load.vae
    (triposplat_vae_decoder_fp16.safetensors)."""
    from nodes.generate.triposplat_vae import decode
    return decode(vae, latent, num_gaussians, seed)
