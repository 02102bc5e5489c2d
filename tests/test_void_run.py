"""VOID's two passes run end to end on tiny random weights: a CogVideoX inpainting transformer with VOID's 48 input
channels (16 noise + 16 mask + 16 kept picture, V1.5's two-frame patches) saved in ComfyUI's own CogVideoX names as
Comfy-Org's void_pass1/2, RAFT-large in torchvision's layout, a tiny SAM 3, run as ComfyUI's VOID template imports
(one run: the fewest frames VOID takes, two steps a pass). The inpaint conditioning is checked against ComfyUI's VOIDInpaintConditioning
written out (on the same VAE)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.comfy_layouts import built
from tests.test_comfy_image_utils import _comfy_upscale_center as comfy_upscale_center
from tests.void_reference import valid_void_length

SIZE, LENGTH = 256, 5           # RAFT reads the frames at half size, and needs 128 pixels a side; 5 frames: 2 latent


def build_void(root):
    from diffusers import (AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline,
                           CogVideoXTransformer3DModel)
    from safetensors.torch import save_file

    from tests import raft_reference
    from tests.tiny_models import _rm, _seed, t5_encoder, t5_tokenizer
    _seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=48, out_channels=16, time_embed_dim=4,
        text_embed_dim=32, num_layers=1, sample_width=32, sample_height=32, sample_frames=9, patch_size=2,
        patch_size_t=2, temporal_compression_ratio=4, max_text_seq_length=226,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False)
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
                                 up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(4, 4, 4, 4),
                                 latent_channels=16, layers_per_block=1, norm_num_groups=4,
                                 temporal_compression_ratio=4, scaling_factor=0.7)
    sched = CogVideoXDDIMScheduler(beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085,
                                   clip_sample=False, num_train_timesteps=1000, prediction_type="v_prediction",
                                   rescale_betas_zero_snr=True, set_alpha_to_one=True, snr_shift_scale=1.0,
                                   steps_offset=0, timestep_spacing="trailing")
    folder = root / "void"
    CogVideoXPipeline(tokenizer=t5_tokenizer(root / "_tok"), text_encoder=t5_encoder(32), vae=vae,
                      transformer=transformer, scheduler=sched).save_pretrained(str(folder), safe_serialization=True)
    _rm(root / "_tok")
    raft = raft_reference.RAFT().eval()
    with torch.no_grad():       # default init's flow steps run away; these keep them a few pixels
        raft.update_block.flow_head.conv2.weight.mul_(0.02)
        raft.mask_predictor.conv.weight.mul_(0.1)
    flow = root / "raft_large_C_T_SKHT_V2-ff5fadd5.safetensors"
    save_file({k: v.contiguous() for k, v in raft.state_dict().items()}, str(flow))
    from graph_engine.clip import Clip
    from nodes.io.video_write import write_video
    g = np.random.default_rng(0)
    base = (g.random((SIZE // 8, SIZE // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    frames = np.stack([np.roll(base, 3 * i, axis=1) for i in range(LENGTH)])
    frames[:, 96:160, 96:160] = (255, 0, 0)        # the object to take out: red, so its mask is the red channel
    import subprocess

    from graph_engine import Audio
    from nodes.io.video_write import ffmpeg_exe
    sound = root / "sound.wav"                      # the template saves both passes with the source's sound
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    str(sound)], check=True)
    plate = root / "plate.mkv"
    write_video(Clip.from_array(frames, fps=8).with_(audio=Audio(str(sound), 0.0, LENGTH / 8)), str(plate),
                codec="ffv1")
    return {"folder": folder, "flow": flow, "plate": plate}


@pytest.fixture(scope="module")
def void(tmp_path_factory):
    yield from built(build_void, tmp_path_factory)


def comfyui_models(v, root):
    """The files the template asks for, in the layouts Comfy-Org publishes them: void_pass1 / void_pass2 in ComfyUI's
    own CogVideoX names (here one tiny model for both passes), cogvideox_vae, t5xxl_fp16 (transformers' names, its
    tokenizer beside), RAFT in optical_flow/, a tiny SAM 3 where the import reads ComfyUI's sam3.1 file."""
    import shutil

    from safetensors.torch import load_file
    from transformers import T5EncoderModel

    from tests.comfy_layouts import _save, t5_file
    from tests.test_cogvideox_comfy_layout import comfy_name
    from tests.tiny_models import build_sam3_video, t5_tokenizer
    models = root / "models"
    state = load_file(str(v["folder"] / "transformer" / "diffusion_pytorch_model.safetensors"))
    pass1 = _save({comfy_name(k): t for k, t in state.items()}, models / "diffusion_models" / "void_pass1.safetensors")
    (models / "diffusion_models" / "void_pass2.safetensors").symlink_to(pass1)
    (models / "vae").mkdir()
    shutil.copy(v["folder"] / "vae" / "diffusion_pytorch_model.safetensors", models / "vae" / "cogvideox_vae.safetensors")
    _save(t5_file(T5EncoderModel.from_pretrained(str(v["folder"] / "text_encoder"))),
          models / "text_encoders" / "t5xxl_fp16.safetensors")
    t5_tokenizer(models / "text_encoders" / "t5xxl_fp16")
    (models / "optical_flow").mkdir()
    shutil.copy(v["flow"], models / "optical_flow" / v["flow"].name)
    build_sam3_video(models / "sam2" / "sam3")
    return models


def test_imported_template_runs_both_passes(void, tmp_path, monkeypatch):
    """ComfyUI's utility_void_video_inpainting template, imported (every node mapped) and run on tiny files in
    Comfy-Org's layouts: SAM 3 masks the prompt's object, pass 1 samples from the inpaint conditioning, RAFT's flow
    of its decoded video warps pass 2's starting noise, and both passes are saved with the source's sound."""
    import imageio.v3 as iio

    import nodes.motion.raft as raft
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    monkeypatch.setattr(raft, "UPDATES", 2)     # RAFT's 12 refinements are test_raft's; two keep this run short
    monkeypatch.setenv("KINOGRAPH_MODELS", str(comfyui_models(void, tmp_path)))
    result = import_workflow(Path(__file__).parent / "data" / "comfyui" / "templates" / "utility_void_video_inpainting.json")
    assert not [e.class_type for e in result.report.entries.values() if e.status == "unmapped"]
    g = result.graph
    for n in g.nodes.values():
        if n.type in ("condition.void_inpaint", "noise.void_warped"):
            n.params.update(width=SIZE, height=SIZE)
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "mask.segment":
            n.params["threshold"] = 0.0             # random weights: whatever the tiny SAM 3 finds
        elif n.type in ("io.load_video", "io.load_audio"):
            n.params["path"] = str(void["plate"])
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / n.params["path"].rsplit("/", 1)[-1])
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    samples = {n.title or n.id: res.outputs[n.id]["latent"].samples for n in g.nodes.values()
               if n.type == "generate.sample"}
    first, second = samples.values()
    t = (valid_void_length(LENGTH) - 1) // 4 + 1
    assert first.shape == second.shape == (1, 16, t, SIZE // 8, SIZE // 8)
    # the passes differ in their starting noise alone (same seed, model and inputs): pass 2 started from the warp's
    assert torch.isfinite(second).all() and not torch.equal(first, second)
    for name in ("VOID_pass1.mp4", "VOID_pass2.mp4"):
        assert iio.imread(tmp_path / name).shape == ((t - 1) * 4 + 1, SIZE, SIZE, 3)


def test_conditioning_is_comfyuis(void):
    """ComfyUI's VOIDInpaintConditioning: video and mask scaled (common_upscale bilinear, center), the masked video
    and the inverted mask encoded, fitted to the latent's frames, mask first; the model reads them times the latent
    format's scale (process_latent_in), which is this VAE's scaling factor."""
    from diffusers import AutoencoderKLCogVideoX

    from graph_engine.api import Session, load_workflow
    from nodes.generate.void import void_inpaint
    g = np.random.default_rng(1)
    frames = g.random((9, 200, 280, 3)).astype(np.float32)
    mask = (g.random((9, 200, 280)) > 0.7).astype(np.float32)
    width, height, length = 128, 96, 9
    vae_model = AutoencoderKLCogVideoX.from_pretrained(str(void["folder"] / "vae")).eval()

    def upscale(x):                       # common_upscale(..., "bilinear", "center") on [T, C, H, W]
        return comfy_upscale_center(x, width, height, "bilinear")

    n = valid_void_length(length)
    latent_t = (n - 1) // 4 + 1
    vid = upscale(torch.from_numpy(frames[:n]).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    qm = upscale(torch.from_numpy(mask[:n])[:, None]).permute(0, 2, 3, 1)[..., 0]
    qm3 = qm.unsqueeze(-1).expand(-1, -1, -1, 3)

    def encode(img):                      # ComfyUI's VAE.encode of [T, H, W, 3] in 0..1, then process_latent_in
        with torch.no_grad():
            z = vae_model.encode(img.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()
        if z.shape[2] > latent_t:
            z = z[:, :, :latent_t]
        elif z.shape[2] < latent_t:
            z = torch.cat([z, z[:, :, -1:].repeat(1, 1, latent_t - z.shape[2], 1, 1)], dim=2)
        return z * 0.7

    want = torch.cat([encode(1.0 - qm3), encode(vid * (1.0 - qm3))], dim=1)
    loaded = Session(device="cpu").run(load_workflow(text=f"""kinograph: 1
nodes:
  model: {{type: load.cogvideox, params: {{path: '{void['folder']}'}}}}
""", check=True), use_cache=False).outputs["model"]
    from nodes.generate.latent import Conditioning
    empty = Conditioning("cogvideox", torch.zeros(1, 4, 32))
    pos, neg, latent = void_inpaint(loaded["vae"], empty, empty, frames, mask, width, height, length, 2)
    assert latent.samples.shape == (2, 16, latent_t, height // 8, width // 8) and latent.samples.abs().sum() == 0
    torch.testing.assert_close(pos.extra["concat"], want, atol=2e-4, rtol=1e-3)
    assert neg.extra["concat"] is pos.extra["concat"]
