"""Hunyuan3D shape nodes: the empty shape latent, the picture conditioning (one picture or Hunyuan3D-2mv's views) and
the decode to a VOXEL grid (ComfyUI's EmptyLatentHunyuan3Dv2, Hunyuan3Dv2Conditioning(MultiView), VAEDecodeHunyuan3D).
The checkpoint loads with load.model, pictures encode with encode.image, the latent samples with generate.sample."""
from __future__ import annotations

from graph_engine import Input, Param, node
from graph_engine.types import CONDITIONING, LATENT, VAE, VOXEL


def one_shape_preflight(params: dict, sources: dict) -> list[tuple[str, str]]:
    """An empty shape latent at validation (latent.empty_hunyuan3d, latent.empty_trellis2_structure): the shape
    decoders make one VOXEL of one shape, so a batch of several would be refused only after sampling them all
    (minutes of the GPU's) for nothing."""
    if params["batch"] > 1:
        return [("batch", f"{params['batch']} shapes at once, but a shape decoder makes one VOXEL of one shape: set "
                          "batch to 1 (for several shapes run the workflow again with other seeds)")]
    return []


@node("latent.empty_hunyuan3d", title="Empty Hunyuan3D Latent", category="Latent", preflight=one_shape_preflight)
def latent_empty_hunyuan3d(ctx, resolution: int = Param(3072, min=1, max=8192,
                                                        help="the shape's latent tokens (ComfyUI's resolution): "
                                                             "3072 for 2.0, 4096 for 2.1 in its templates"),
                           batch: int = Param(1, min=1, max=4096, help="shapes made at once (1: decode.hunyuan3d "
                                                                        "makes one shape)")) -> LATENT:
    """A blank Hunyuan3D shape latent (ComfyUI's EmptyLatentHunyuan3Dv2): zeros of 64 channels by `resolution`
    tokens, for generate.sample with a Hunyuan3D model."""
    from nodes.generate.hunyuan3d import empty_latent
    return empty_latent(resolution, batch)


@node("condition.hunyuan3d", title="Hunyuan3D Conditioning", category="Conditioning",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING})
def condition_hunyuan3d(ctx, image: CONDITIONING = Input(optional=True, help="encode.image of the picture (one "
                                                                             "picture: Hunyuan3D 2.0, 2.1, mini)"),
                        front: CONDITIONING = Input(optional=True, help="Hunyuan3D-2mv: encode.image of the front "
                                                                        "view"),
                        left: CONDITIONING = Input(optional=True, help="Hunyuan3D-2mv: the left view"),
                        back: CONDITIONING = Input(optional=True, help="Hunyuan3D-2mv: the back view"),
                        right: CONDITIONING = Input(optional=True, help="Hunyuan3D-2mv: the right view"),
                        guidance: float = Param(5.0, min=0.0, max=100.0,
                                                help="the guidance a 2.0 model is told with the positive (ComfyUI's "
                                                     "FluxGuidance; 5 without it); 2.1 reads none")):
    """What shape to make, from DINOv2's tokens of a picture (ComfyUI's Hunyuan3Dv2Conditioning) or of up to four
    views, each marked with its view's position (Hunyuan3Dv2ConditioningMultiView); the negative is zeros of the same
    shape, as ComfyUI's. Encode each picture with encode.image (crop none) from the checkpoint's image encoder."""
    from nodes.generate.hunyuan3d import conditioning
    positive, negative = conditioning(image, {"front": front, "left": left, "back": back, "right": right}, guidance)
    return {"positive": positive, "negative": negative}


@node("decode.hunyuan3d", title="Decode Hunyuan3D Shape", category="Latent", device="gpu")
def decode_hunyuan3d(ctx, vae: VAE, latent: LATENT,
                     num_chunks: int = Param(8000, min=1000, max=500000,
                                             help="grid points decoded at once (more: faster, more memory)"),
                     resolution: int = Param(256, min=16, max=512,
                                             help="grid cells a side (ComfyUI's octree_resolution): the grid has "
                                                  "resolution + 1 points a side")) -> VOXEL:
    """A sampled Hunyuan3D latent as a VOXEL grid (ComfyUI's VAEDecodeHunyuan3D): the ShapeVAE's occupancy, 0 to 1,
    at (resolution + 1)^3 points over [-1.01, 1.01]^3; mesh.from_voxels makes the mesh."""
    from nodes.generate.hunyuan3d import decode
    return decode(vae, latent, num_chunks, resolution, lambda i, n: ctx.progress(i, n))
