"""VOID's two passes run end to end on tiny random weights: a CogVideoX inpainting transformer with VOID's 48 input
channels (16 noise + 16 mask + 16 kept picture, V1.5's two-frame patches), RAFT-large in torchvision's layout, and
the nodes the ComfyUI template maps to. The inpaint conditioning is checked against ComfyUI's VOIDInpaintConditioning
written out (on the same VAE)."""
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
                                 latent_channels=16, layers_per_block=1, norm_num_groups=2,
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
    plate = root / "plate.mkv"
    write_video(Clip.from_array(frames, fps=8), str(plate), codec="ffv1")
    return {"folder": folder, "flow": flow, "plate": plate}


@pytest.fixture(scope="module")
def void(tmp_path_factory):
    yield from built(build_void, tmp_path_factory)


def workflow(v) -> str:
    return f"""kinograph: 1
nodes:
  model: {{type: load.cogvideox, params: {{path: '{v['folder']}'}}}}
  plate: {{type: io.load_video, params: {{path: '{v['plate']}'}}}}
  matte: {{type: mask.threshold, inputs: {{mask: red.mask}}, params: {{value: 0.9}}}}
  red: {{type: mask.from_video, inputs: {{video: plate.video}}, params: {{channel: red}}}}
  prompt:
    type: encode.text
    inputs: {{text_encoder: model.text_encoder}}
    params: {{text: "a snowy slope", negative: ""}}
  void:
    type: condition.void_inpaint
    inputs: {{positive: prompt.positive, negative: prompt.negative, vae: model.vae, video: plate.video,
             quadmask: matte.mask}}
    params: {{width: {SIZE}, height: {SIZE}, length: {LENGTH}}}
  pass1:
    type: generate.sample
    inputs: {{model: model.model, positive: void.positive, negative: void.negative, latent: void.latent}}
    params: {{steps: 2, sampler: void_ddim, cfg: 6.0, seed: 43}}
  decode1: {{type: vae.decode, inputs: {{vae: model.vae, latent: pass1.latent}}}}
  warp:
    type: noise.void_warped
    inputs: {{video: decode1.video}}
    params: {{model: '{v['flow']}', width: {SIZE}, height: {SIZE}, length: {LENGTH}, seed: 7}}
  pass2:
    type: generate.sample
    inputs: {{model: model.model, positive: void.positive, negative: void.negative, latent: void.latent, noise: warp.noise}}
    params: {{steps: 2, sampler: void_ddim, cfg: 6.0, seed: 43}}
  decode2: {{type: vae.decode, inputs: {{vae: model.vae, latent: pass2.latent}}}}
"""


def run(text):
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=text, check=True), use_cache=False)
    assert res.ok, res.failed
    return res.outputs


def test_two_passes_run(void, monkeypatch):
    import nodes.motion.raft as raft
    monkeypatch.setattr(raft, "UPDATES", 2)     # RAFT's 12 refinements are test_raft's; two keep this run short
    out = run(workflow(void))
    n = valid_void_length(LENGTH)
    t = (n - 1) // 4 + 1
    first, second = out["pass1"]["latent"].samples, out["pass2"]["latent"].samples
    assert first.shape == second.shape == (1, 16, t, SIZE // 8, SIZE // 8)
    # the two passes differ in their starting noise alone (same seed, same inputs): pass 2 started from the warp's
    assert torch.isfinite(second).all() and not torch.equal(first, second)
    assert out["warp"]["noise"].shape == (1, 16, t, SIZE // 8, SIZE // 8)
    assert out["decode2"]["video"].to_array().shape == ((t - 1) * 4 + 1, SIZE, SIZE, 3)


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
