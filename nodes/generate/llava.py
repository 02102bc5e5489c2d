"""llava-llama-3's image side, as ComfyUI keeps it for HunyuanVideo image-to-video
(clip_vision/llava_llama3_vision.safetensors): a CLIP ViT-L/14 tower at 336 px and llava's two-layer
projector into the language model's embedding space. ComfyUI's CLIPVisionEncode of it gives the
projected image tokens (its `mm_projected`); TextEncodeHunyuanVideo_ImageToVideo puts them where the
prompt template says <image>, as transformers' LlavaForConditionalGeneration does inside diffusers'
HunyuanVideoImageToVideoPipeline. The tower and projector are transformers' own classes; this module
only holds the two, because the file holds them without the language model."""
from __future__ import annotations

from dataclasses import dataclass

import torch


class LlavaVision(torch.nn.Module):
    """CLIPVisionModel + LlavaMultiModalProjector under the key names of ComfyUI's file
    (`vision_model.*`, `multi_modal_projector.linear_{1,2}.*`)."""

    def __init__(self, config):
        from transformers import CLIPVisionModel
        from transformers.models.llava.modeling_llava import LlavaMultiModalProjector
        super().__init__()
        self.config = config
        self.vision_model = CLIPVisionModel(config.vision_config)
        self.multi_modal_projector = LlavaMultiModalProjector(config)

    @classmethod
    def of(cls, llava) -> "LlavaVision":
        """The image side of a whole LlavaForConditionalGeneration (a diffusers folder's text encoder), its
        modules shared, not copied."""
        self = cls.__new__(cls)
        torch.nn.Module.__init__(self)
        self.config = llava.config
        self.vision_model = llava.model.vision_tower
        self.multi_modal_projector = llava.model.multi_modal_projector
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, S, S] (CLIP-normalised) -> image tokens [B, N, text hidden size]."""
        layer = self.config.vision_feature_layer
        hidden = self.vision_model(pixel_values, output_hidden_states=True).hidden_states[layer]
        if self.config.vision_feature_select_strategy == "default":
            hidden = hidden[:, 1:]                  # llava drops the class token
        return self.multi_modal_projector(hidden)


@dataclass(eq=False)
class VisionPipe:
    """What a HunyuanVideo IMAGE_ENCODER handle holds: the llava image side and its preprocessing."""
    image_encoder: LlavaVision
    image_processor: object

    def to(self, device):
        self.image_encoder.to(device)
        return self

    def encode(self, image, device) -> torch.Tensor:
        enc = self.image_encoder
        pixels = self.image_processor(image, return_tensors="pt").pixel_values
        return enc(pixels.to(device, next(enc.parameters()).dtype))
