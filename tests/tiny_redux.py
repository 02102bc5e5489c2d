"""A tiny random-weight FLUX.1 Redux beside the tiny FLUX.1 (tests/tiny_flux.py), in the layouts users hold it:

  models/style_models/flux1-redux-dev.safetensors      ComfyUI's (the published file's names: redux_up, redux_down)
  models/clip_vision/sigclip_vision_patch14_384.safetensors  SigLIP's vision tower in transformers' names under
                                                       vision_model. (no class token; the attention-pooling head)
  redux/                                              FluxPriorReduxPipeline (image_encoder, feature_extractor,
                                                       image_embedder), as black-forest-labs/FLUX.1-Redux-dev ships

The SigLIP tower reads 32 px pictures in 8 px patches (16 tokens), 144 wide in so400m's 72-wide heads; Redux lifts them to T5's width."""
from __future__ import annotations

from pathlib import Path

from tiny_models import _seed

SIDE = 32


def parts(t5_width: int = 32):
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import SiglipVisionConfig, SiglipVisionModel
    _seed(1)
    vision = SiglipVisionModel(SiglipVisionConfig(hidden_size=144, intermediate_size=64, num_hidden_layers=2,
                                                  num_attention_heads=2, image_size=SIDE, patch_size=8))
    redux = ReduxImageEncoder(redux_dim=144, txt_in_features=t5_width)
    for m in (vision, redux):
        m.half().float()
    return vision, redux


def build_redux(root: Path) -> Path:
    from diffusers import FluxPriorReduxPipeline
    from safetensors.torch import save_file
    from transformers import SiglipImageProcessor
    vision, redux = parts()
    models = root / "models"
    for sub in ("style_models", "clip_vision"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    half = lambda sd: {k: v.half().contiguous() for k, v in sd.items()}  # noqa: E731
    save_file(half(redux.state_dict()), str(models / "style_models" / "flux1-redux-dev.safetensors"))
    tower = {k if k.startswith("vision_model.") else "vision_model." + k: v for k, v in vision.state_dict().items()}
    save_file(half(tower), str(models / "clip_vision" / "sigclip_vision_patch14_384.safetensors"))
    proc = SiglipImageProcessor(size={"height": SIDE, "width": SIDE})
    FluxPriorReduxPipeline(image_encoder=vision, feature_extractor=proc, image_embedder=redux).save_pretrained(
        str(root / "redux"), safe_serialization=True)
    return root
