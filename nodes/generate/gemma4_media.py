"""What Gemma 4 reads beside the prompt, prepared as ComfyUI's Gemma4_Tokenizer prepares it (comfy/text_encoders/
gemma4.py) for transformers' Gemma4ForConditionalGeneration: a picture resized (keeping its shape) to at most 280
soft tokens of 3x3 16-pixel patches, bicubic with antialiasing on its 8-bit pixels; a video's frames, one a second,
at most 70 soft tokens each; a sound as 128-bin log mel frames
at 16 kHz; each placed in the user's turn before the prompt between its begin and end tokens, one placeholder token
per soft token, which the model swaps for the towers' outputs."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from graph_engine import NodeError
from nodes.common.mel import mel_filters

PATCH, POOL = 16, 3                 # the vision tower's patch side and the pooling that makes one soft token of 3x3
IMAGE_TOKENS = 280                  # ComfyUI's soft-token budget for a picture
FRAME_TOKENS = 70                   # and for each of a video's frames
FRAME_STEP = 24                     # ComfyUI takes a video's frames as 24 fps and reads one a second
SOUND_RATE = 16000
# The model config's token ids, by the names the file's tokenizer gives them (the released vocabulary's 258880...)
TOKEN_NAMES = {"image_token_id": "<|image|>", "video_token_id": "<|video|>", "audio_token_id": "<|audio|>",
               "boi_token_id": "<|image>", "eoi_token_id": "<image|>", "boa_token_id": "<|audio>",
               "eoa_token_index": "<audio|>"}


def link_media_tokens(model, tokenizer) -> None:
    """Point the model's placeholder ids at the tokenizer's tokens of those names (ComfyUI writes the released
    ids; a file's own tokenizer names them)."""
    for key, name in TOKEN_NAMES.items():
        i = tokenizer.convert_tokens_to_ids(name)
        if isinstance(i, int) and i != tokenizer.unk_token_id:
            for config in {id(c): c for c in (model.config, model.model.config)}.values():
                setattr(config, key, i)


def picture(frame: np.ndarray, soft_tokens: int = IMAGE_TOKENS) -> Tuple[np.ndarray, np.ndarray, int]:
    """(patches [soft_tokens * 9, 768] in [0, 1], their (x, y) grid places with (-1, -1) for the padding, the number
    of soft tokens the picture makes) for an 8-bit RGB frame: resized to the largest size within the budget whose
    sides are multiples of 48, as ComfyUI does (at least 48 a side)."""
    import torch
    pixels = torch.from_numpy(np.ascontiguousarray(frame[..., :3])).permute(2, 0, 1)
    h, w = pixels.shape[1:]
    side = POOL * PATCH
    factor = (soft_tokens * POOL * POOL * PATCH * PATCH / (h * w)) ** 0.5
    th, tw = max(int(factor * h // side) * side, side), max(int(factor * w // side) * side, side)
    if (th, tw) != (h, w):
        # torchvision's resize of an 8-bit picture (ComfyUI's): antialiased bicubic in floats, rounded back to 8 bits
        pixels = torch.nn.functional.interpolate(pixels[None].float(), size=(th, tw), mode="bicubic",
                                                 align_corners=False, antialias=True)[0]
        pixels = pixels.clamp(0, 255).round().to(torch.uint8)
    x = pixels.float() * (1.0 / 255.0)
    ph, pw = th // PATCH, tw // PATCH
    patches = x.reshape(3, ph, PATCH, pw, PATCH).permute(1, 3, 2, 4, 0).reshape(ph * pw, -1)
    gy, gx = torch.meshgrid(torch.arange(ph), torch.arange(pw), indexing="ij")
    places = torch.stack([gx.flatten(), gy.flatten()], dim=-1)
    room = soft_tokens * POOL * POOL
    if ph * pw > room:      # a picture far wider than tall: its 48-pixel minimum side overflows the budget
        raise NodeError(f"the picture ({w} x {h}) is too long and thin for Gemma 4 to read in {soft_tokens} tokens: "
                        "crop it nearer to square")
    patches = torch.cat([patches, patches.new_zeros(room - ph * pw, patches.shape[1])])
    places = torch.cat([places, places.new_full((room - ph * pw, 2), -1)])
    return patches.numpy(), places.numpy(), ph * pw // (POOL * POOL)


def log_mel(mono: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """([frames, 128] log mel, [frames] real-sound mask) of 16 kHz mono samples, ComfyUI's (and the released
    feature extractor's) way: padded to a multiple of 128 samples and by 160 in front, 20 ms periodic Hann windows
    every 10 ms, a 512-point FFT's magnitudes through an HTK mel bank up to 8 kHz, log(x + 0.001); frames whose last
    sample is padding are zeroed."""
    audio = np.asarray(mono, np.float32)
    n = len(audio)
    audio = np.pad(audio, (0, -n % 128))
    real = np.zeros(len(audio), np.float32)
    real[:n] = 1.0
    audio, real = np.pad(audio, (160, 0)), np.pad(real, (160, 0))
    frames = (len(audio) - 321) // 160 + 1
    if frames < 1:
        raise NodeError(f"the sound is {n / SOUND_RATE * 1000:.0f} ms long: Gemma 4 reads at least 10 ms")
    idx = np.arange(frames)[:, None] * 160 + np.arange(320)[None]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 320)).astype(np.float32)
    magnitude = np.abs(np.fft.rfft(audio[idx] * window, n=512, axis=-1))
    mel = np.log(np.matmul(magnitude, mel_filters(SOUND_RATE, 512, 128)) + np.float64(0.001)).astype(np.float32)
    mask = real[np.arange(frames) * 160 + 320].astype(bool)
    return mel * mask[:, None], mask


def sound_tokens(mask: np.ndarray) -> int:
    """The soft tokens the audio tower keeps: its two stride-2 convolutions halve the frames twice, and those on
    padding are dropped."""
    return int(mask[::2][::2].sum())


def video_frames(video) -> List[np.ndarray]:
    """The frames ComfyUI's Gemma 4 reads of a video: one every 24 (it takes any video as 24 fps, one a second)."""
    return [video.frame(i) for i in range(0, len(video), FRAME_STEP)]


def media(title: str, images: List[np.ndarray], mono: Optional[np.ndarray], lm, frames=()) -> Tuple[str, dict]:
    """(the media text ComfyUI puts before the prompt in the user's turn, the model's inputs for it) for pictures,
    a video's frames (each after its time, mm:ss; ComfyUI reads them in place of the pictures) and a sound. Refused
    by name where the file has no tower for it."""
    import torch
    text, inputs = "", {}
    if len(images) or len(frames):
        if getattr(lm.model, "vision_tower", None) is None:
            what = "`video`" if len(frames) else "`image`"
            raise NodeError(f"this {title} file holds no vision tower (vision_model.*): leave {what} unlinked")
    if len(frames):
        made = [picture(f, FRAME_TOKENS) for f in frames]
        text += "\n\n" + " ".join(f"{i // 60:02d}:{i % 60:02d} <|image>" + "<|video|>" * n + "<image|>"
                                   for i, (_, _, n) in enumerate(made)) + "\n\n"
        inputs["pixel_values_videos"] = torch.from_numpy(np.stack([p for p, _, _ in made]))
        inputs["video_position_ids"] = torch.from_numpy(np.stack([q for _, q, _ in made]))
        inputs["num_frames_per_video"] = torch.tensor([len(made)])
    elif len(images):
        made = [picture(f) for f in images]
        text += "\n\n" + "\n\n\n\n".join("<|image>" + "<|image|>" * n + "<image|>" for _, _, n in made) + "\n\n"
        inputs["pixel_values"] = torch.from_numpy(np.stack([p for p, _, _ in made]))
        inputs["image_position_ids"] = torch.from_numpy(np.stack([q for _, q, _ in made]))
    if mono is not None:
        if getattr(lm.model, "audio_tower", None) is None:
            raise NodeError(f"this {title} file holds no audio tower (audio_model.*: only E2B and E4B hear): leave "
                            "`audio` unlinked")
        mel, mask = log_mel(mono)
        text += "<|audio>" + "<|audio|>" * sound_tokens(mask) + "<audio|>"
        inputs["input_features"] = torch.from_numpy(mel)[None]
        inputs["input_features_mask"] = torch.from_numpy(mask)[None]
    return text, inputs
