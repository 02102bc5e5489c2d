"""AnimateDiff-SDXL: an original-format SDXL motion module (mm_sdxl_v10_beta.ckpt in animatediff_models/, three
levels, no mid block, as guoyww publishes it) animates an SDXL single-file checkpoint through load.animatediff, and
gives what diffusers' own AnimateDiffSDXLPipeline gives for the same weights, prompt and seed. The tiny SDXL is
tests/test_sdxl.py's; the motion module is written from a random diffusers MotionAdapter by inverting diffusers'
conversion, so the reference (built from the diffusers folder and that adapter) shares no loading code with
Kinograph's."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from graph_engine import NodeError

sys.path.insert(0, str(Path(__file__).resolve().parent))
CKPT = "sdxl_tiny.safetensors"
MM = "mm_sdxl_v10_beta.ckpt"
HOTSHOT = "hsxl_temporal_layers.safetensors"
FRAMES = 6


def original_motion_module(adapter) -> dict:
    """A diffusers MotionAdapter's tensors under the original AnimateDiff names (the inverse of diffusers'
    convert_animatediff_checkpoint_to_diffusers), with the sinusoidal position tables the original files carry."""
    out = {}
    for k, v in adapter.state_dict().items():
        if "pos_embed" in k:
            k = k.replace("pos_embed.pe", "pos_encoder.pe")
        k = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", k)
        for a, b in ((".norm1", ".norms.0"), (".norm2", ".norms.1"), (".norm3", ".ff_norm"),
                     (".attn1", ".attention_blocks.0"), (".attn2", ".attention_blocks.1")):
            k = k.replace(a, b)
        out[k] = v.contiguous()
    return out


def hotshot_layers(original: dict) -> dict:
    """The same tensors as Hotshot-XL names them (hsxl_temporal_layers.safetensors; AnimateDiff-Evolved's
    convert_hotshot_state_dict renames them back)."""
    return {re.sub(r"motion_modules\.(\d+)\.temporal_transformer\.", r"temporal_attentions.\1.", k)
            .replace("pos_encoder.pe", "pos_encoder.positional_encoding"): v for k, v in original.items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from diffusers import MotionAdapter
    from comfy_layouts import built
    from tiny_models import build_sdxl_single_file
    for root in built(build_sdxl_single_file, tmp_path_factory):
        torch.manual_seed(3)
        # The SDXL beta's settings (three levels there, the tiny SDXL's two here; no mid block) but 8 positions, not
        # 32, so that a 12-frame clip already needs context windows.
        adapter = MotionAdapter(block_out_channels=(32, 128), motion_layers_per_block=2, use_motion_mid_block=False,
                                motion_max_seq_length=8)
        with torch.no_grad():
            for name, p in adapter.named_parameters():
                # Random, not diffusers' init (proj_out starts at zero there: the motion layers would do nothing).
                norm = "norm" in name and name.endswith("weight")
                p.copy_(torch.randn_like(p) * (0.2 if p.ndim > 1 else 0.05) + (1.0 if norm else 0.0))
        mm_dir = root / "models" / "animatediff_models"
        mm_dir.mkdir(parents=True, exist_ok=True)
        torch.save(original_motion_module(adapter), str(mm_dir / MM))
        from safetensors.torch import save_file
        save_file(hotshot_layers(original_motion_module(adapter)), str(mm_dir / HOTSHOT))
        yield root, adapter


@pytest.fixture
def env(models, monkeypatch):
    root, adapter = models
    monkeypatch.setenv("KINOGRAPH_MODELS", str(root / "models"))
    return root, adapter


def test_mm_sdxl_animates_an_sdxl_checkpoint_as_diffusers_does(env):
    """Detected and listed as loading; loaded with the SDXL checkpoint through load.animatediff; sampled frames match
    AnimateDiffSDXLPipeline's latents (both text encoders, pooled text, size conditioning, motion layers); a
    12-frame clip past the module's 8 positions runs through context windows."""
    from diffusers import AnimateDiffSDXLPipeline, StableDiffusionXLPipeline
    from nodes.generate.model_manager import ModelManager, describe_model
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt, encode_sdxl
    from nodes.generate.vae_ops import decode_latent, empty_latent
    root, adapter = env
    got = describe_model(root / "models" / "animatediff_models" / MM)
    assert (got["role"], got["variant"], got["loads"]) == ("motion_module", "sdxl", "yes")
    mm = ModelManager()
    h = mm.load("animatediff", CKPT, motion_adapter=MM)
    assert type(h.pipe).__name__ == "AnimateDiffSDXLPipeline"
    parts = mm.components(h)
    pos = encode_prompt(parts["text_encoder"], "a cat")
    neg = encode_prompt(parts["text_encoder"], "blurry")

    def sample(frames, pos=pos, neg=neg):
        lat = empty_latent(parts["vae"], frames, 16, 16, 8.0)
        return run_sampling(h, pos, neg, lat, steps=2, cfg=5.0, sampler="euler", seed=7)

    ours = sample(FRAMES).samples
    xl = StableDiffusionXLPipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    # The noise levels AnimateDiff-SDXL was trained on (AnimateDiff-Evolved's autoselect): betas up to 0.020.
    assert h.pipe.scheduler.config.beta_end == 0.020 and h.pipe.scheduler.config.beta_schedule == "scaled_linear"
    scheduler = type(xl.scheduler).from_config({**xl.scheduler.config, "beta_end": 0.020})
    ref = AnimateDiffSDXLPipeline(**{k: v for k, v in xl.components.items() if k in (
        "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet")}, scheduler=scheduler,
        motion_adapter=adapter)
    # diffusers' from_unet2d does not copy SDXL's add_embedding (huggingface/diffusers#6721): the reference gets the
    # SDXL UNet's own, as Kinograph's loader gives it.
    ref.unet.add_embedding.load_state_dict(xl.unet.add_embedding.state_dict())
    # The tiny VAE halves once: 16x16 pixels are an 8x8 latent.
    want = ref("a cat", negative_prompt="blurry", num_frames=FRAMES, width=16, height=16, num_inference_steps=2,
               guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="latent").frames
    assert want.shape == ours.shape == (1, 4, FRAMES, 8, 8)
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err
    # encode.sdxl's size conditioning (ComfyUI's CLIPTextEncodeSDXL) reaches the motion UNet as diffusers' original_size.
    sized = [encode_sdxl(parts["text_encoder"], text, "", (32, 48, 0, 0, 0, 0)) for text in ("a cat", "blurry")]
    ours_sized = sample(FRAMES, *sized).samples
    want_sized = ref("a cat", negative_prompt="blurry", num_frames=FRAMES, width=16, height=16, num_inference_steps=2,
                     guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="latent",
                     original_size=(32, 48)).frames
    err = float((want_sized - ours_sized).abs().max() / want_sized.abs().max())
    assert err < 1e-4 and float((want_sized - want).abs().max()) > 1e-3, err
    # The motion layers are in the path: the first frame differs from the SDXL checkpoint's own image.
    still = mm.load("sdxl", CKPT)
    still_parts = mm.components(still)
    alone = run_sampling(still, encode_prompt(still_parts["text_encoder"], "a cat"),
                         encode_prompt(still_parts["text_encoder"], "blurry"),
                         empty_latent(still_parts["vae"], 1, 16, 16, 8.0), steps=2, cfg=5.0, sampler="euler",
                         seed=7).samples
    assert float((alone[:, :, 0] - ours[:, :, 0]).abs().max()) > 1e-2
    # Hotshot-XL's file of the same tensors: the same frames on SDXL's own noise levels.
    assert describe_model(root / "models" / "animatediff_models" / HOTSHOT)["loads"] == "yes"
    hot = mm.load("animatediff", CKPT, motion_adapter=HOTSHOT)
    assert hot.pipe.scheduler.config.beta_end == 0.012
    hot_parts = mm.components(hot)
    ours_hot = run_sampling(hot, encode_prompt(hot_parts["text_encoder"], "a cat"),
                            encode_prompt(hot_parts["text_encoder"], "blurry"),
                            empty_latent(hot_parts["vae"], FRAMES, 16, 16, 8.0), steps=2, cfg=5.0, sampler="euler",
                            seed=7).samples
    ref.scheduler = xl.scheduler
    want_hot = ref("a cat", negative_prompt="blurry", num_frames=FRAMES, width=16, height=16, num_inference_steps=2,
                   guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="latent").frames
    err = float((want_hot - ours_hot).abs().max() / want_hot.abs().max())
    assert err < 1e-4, err
    # Past the module's 8 positions: context windows, then the frames decoded.
    long = sample(12)
    assert long.samples.shape == (1, 4, 12, 8, 8) and bool(torch.isfinite(long.samples).all())
    assert decode_latent(parts["vae"], long).frames(0, 12).shape == (12, 16, 16, 3)


def test_motion_module_for_another_base_is_named(env, tmp_path):
    """An SD 1.5 motion module given with an SDXL checkpoint: both files named, with which goes with which, not
    diffusers' tensor shape error."""
    from nodes.generate.model_manager import ModelManager
    root, _ = env
    from diffusers import MotionAdapter
    torch.manual_seed(0)
    sd15_mm = MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=2, motion_max_seq_length=32)
    path = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save(original_motion_module(sd15_mm), str(path))
    with pytest.raises(NodeError) as e:
        ModelManager().load("animatediff", CKPT, motion_adapter=str(path))
    msg = str(e.value)
    assert f"mm_sd_v15_v2.ckpt does not fit {CKPT}" in msg and "[32, 64]" in msg and "[32, 128]" in msg
    assert "mm_sdxl_v10_beta) with an SDXL checkpoint" in msg


def test_an_sdxl_lora_animates_with_its_checkpoint(env, tmp_path):
    """lora.image with an SDXL kohya LoRA on an AnimateDiff-SDXL model gives what diffusers' load_lora_weights gives
    on AnimateDiffSDXLPipeline (it was refused: "an SDXL LoRA ... and this model is AnimateDiff")."""
    from diffusers import AnimateDiffSDXLPipeline, StableDiffusionXLPipeline
    from nodes.generate.loaders import add_lora, add_text_lora
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    from test_sdxl import _sdxl_lora
    root, adapter = env
    path = tmp_path / "xl_style.safetensors"
    _sdxl_lora(path)
    mm = ModelManager()
    h = mm.load("animatediff", CKPT, motion_adapter=MM)
    parts = mm.components(h)
    h, te = add_lora(h, str(path), 0.7), add_text_lora(parts["text_encoder"], str(path), 0.7)
    ours = run_sampling(h, encode_prompt(te, "a cat"), encode_prompt(te, "blurry"),
                        empty_latent(parts["vae"], FRAMES, 16, 16, 8.0), steps=2, cfg=5.0, sampler="euler",
                        seed=7).samples
    xl = StableDiffusionXLPipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    ref = AnimateDiffSDXLPipeline(**{k: v for k, v in xl.components.items() if k in (
        "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet")},
        scheduler=type(xl.scheduler).from_config({**xl.scheduler.config, "beta_end": 0.020}), motion_adapter=adapter)
    ref.unet.add_embedding.load_state_dict(xl.unet.add_embedding.state_dict())
    kw = dict(num_frames=FRAMES, width=16, height=16, num_inference_steps=2, guidance_scale=5.0, output_type="latent")
    plain = ref("a cat", negative_prompt="blurry", generator=torch.Generator().manual_seed(7), **kw).frames
    ref.load_lora_weights(str(path), adapter_name="style")
    ref.set_adapters(["style"], [0.7])
    want = ref("a cat", negative_prompt="blurry", generator=torch.Generator().manual_seed(7), **kw).frames
    assert float((plain - want).abs().max()) > 1e-2          # the LoRA changes the frames
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err


def _reference(root, adapter):
    """diffusers' AnimateDiffSDXLPipeline on the tiny SDXL's folder and the motion adapter, on mm_sdxl's noise levels."""
    from diffusers import AnimateDiffSDXLPipeline, StableDiffusionXLPipeline
    xl = StableDiffusionXLPipeline.from_pretrained(str(root / "diffusers"), local_files_only=True)
    ref = AnimateDiffSDXLPipeline(**{k: v for k, v in xl.components.items() if k in (
        "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet")},
        scheduler=type(xl.scheduler).from_config({**xl.scheduler.config, "beta_end": 0.020}), motion_adapter=adapter)
    ref.unet.add_embedding.load_state_dict(xl.unet.add_embedding.state_dict())
    return ref


@pytest.fixture(scope="module")
def xl_controlnet(models):
    """A tiny SDXL ControlNet copied from the tiny SDXL's UNet, as one diffusers-layout file in models/controlnet/
    (diffusers_xl_canny_full.safetensors' layout), and the network itself for the reference."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from tiny_models import _seed, random_controlnet
    root, _ = models
    _seed(5)
    net = random_controlnet(UNet2DConditionModel.from_pretrained(str(root / "diffusers" / "unet")), (8, 16))
    path = root / "models" / "controlnet" / "xl_canny_tiny.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, net


def test_an_sdxl_controlnet_steers_each_frame_of_animatediff_sdxl(env, xl_controlnet):
    """control.apply with an SDXL ControlNet on an AnimateDiff-SDXL model (refused until now: "ControlNets do not steer
    AnimateDiff-SDXL"): each frame read by the ControlNet with its own control frame, pooled text and size
    conditioning, its residuals added to the motion UNet's, as diffusers' AnimateDiffControlNetPipeline does for
    SD 1.5. diffusers has no SDXL form of it; the reference is AnimateDiffSDXLPipeline's loop with the ControlNet's
    residuals put into its UNet's call, written here from diffusers' ControlNetModel."""
    from graph_engine import Clip
    from nodes.generate.control import apply_control
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    root, adapter = env
    path, net = xl_controlnet
    rng = np.random.default_rng(4)
    video = np.zeros((FRAMES, 16, 16, 3), np.uint8)
    for k in range(FRAMES):                 # a patch of noise that walks across the frames
        video[k, 4:12, k:k + 8] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    mm = ModelManager()
    h = mm.load("animatediff", CKPT, motion_adapter=MM)
    parts = mm.components(h)
    ctl = apply_control(mm, h, Clip.from_array(video, 8.0), path.name, 0.8, "none", 100, 200)

    def sample(model):
        return run_sampling(model, encode_prompt(parts["text_encoder"], "a cat"),
                            encode_prompt(parts["text_encoder"], "blurry"),
                            empty_latent(parts["vae"], FRAMES, 16, 16, 8.0), steps=2, cfg=5.0, sampler="euler",
                            seed=7).samples
    ours, plain = sample(ctl), sample(h)
    ref = _reference(root, adapter)
    unet_forward = ref.unet.forward
    images = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255

    def steered(sample, t, encoder_hidden_states, added_cond_kwargs, **kw):
        n, f = sample.shape[0], sample.shape[2]
        flat = sample.permute(0, 2, 1, 3, 4).reshape(n * f, *sample.shape[1:2], *sample.shape[3:])
        down, mid = net(flat, t, encoder_hidden_states=encoder_hidden_states, controlnet_cond=images.repeat(n, 1, 1, 1),
                        conditioning_scale=0.8, return_dict=False,
                        added_cond_kwargs={k: v.repeat_interleave(f, 0) for k, v in added_cond_kwargs.items()})
        return unet_forward(sample, t, encoder_hidden_states=encoder_hidden_states,
                            added_cond_kwargs=added_cond_kwargs, down_block_additional_residuals=down,
                            mid_block_additional_residual=mid, **kw)
    ref.unet.forward = steered
    want = ref("a cat", negative_prompt="blurry", num_frames=FRAMES, width=16, height=16, num_inference_steps=2,
               guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="latent").frames
    err = float((want - ours).abs().max() / want.abs().max())
    assert err < 1e-4, err
    assert float((plain - ours).abs().max() / want.abs().max()) > 0.05      # the ControlNet steers
    # An SD 1.5 ControlNet (control_v11p_sd15_canny's folder) on it: both named, and what to use.
    from diffusers import ControlNetModel
    sd15 = ControlNetModel(block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                           layers_per_block=1, cross_attention_dim=16,
                           attention_head_dim=2, norm_num_groups=4, conditioning_embedding_out_channels=(8, 16))
    sd15.save_pretrained(str(path.parent / "control_v11p_sd15_canny"))
    with pytest.raises(NodeError, match=r"control_v11p_sd15_canny is a ControlNet for Stable Diffusion 1.5 models, but "
                       rf"it is applied to an SDXL model \({CKPT}, AnimateDiff-SDXL\): use a ControlNet made for SDXL"):
        apply_control(mm, h, Clip.from_array(video, 8.0), "control_v11p_sd15_canny", 1.0, "none", 100, 200)


def test_animatediff_sdxl_latents_are_sdxl_latents(env):
    """AnimateDiff-SDXL samples and decodes SDXL's latents: sdxl_vae.safetensors (ComfyUI's VAELoader beside an
    AnimateDiff-Evolved SDXL workflow) makes and decodes them as the checkpoint's own VAE does (it was refused: "the
    latent was made for sdxl, but the model is animatediff"). An SD 1.5 VAE's latent is refused naming both (it was
    sampled as if SD 1.5's latents were SDXL's), and so is decoding the frames with it."""
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_vae
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import decode_latent, empty_latent
    from nodes.generate.weights import load_weights
    root, _ = env
    models = root / "models"
    state = load_weights(models / "checkpoints" / CKPT)
    vae_state = {k[len("first_stage_model."):]: v.contiguous() for k, v in state.items()
                 if k.startswith("first_stage_model.")}
    (models / "vae").mkdir(exist_ok=True)
    for name in ("sdxl_vae.safetensors", "vae-ft-mse-840000-ema-pruned.safetensors"):
        save_file(vae_state, str(models / "vae" / name))
    mm = ModelManager()
    h = mm.load("animatediff", CKPT, motion_adapter=MM)
    parts = mm.components(h)
    pos, neg = (encode_prompt(parts["text_encoder"], t) for t in ("a cat", "blurry"))
    xl_vae = load_vae(mm, "sdxl_vae.safetensors", "cpu")
    sd_vae = load_vae(mm, "vae-ft-mse-840000-ema-pruned.safetensors", "cpu")
    lat = run_sampling(h, pos, neg, empty_latent(xl_vae, 2, 16, 16, 8.0), steps=1, cfg=5.0, sampler="euler", seed=7)
    own = decode_latent(parts["vae"], lat).frames(0, 2).astype(int)
    assert abs(decode_latent(xl_vae, lat).frames(0, 2).astype(int) - own).max() <= 1
    with pytest.raises(NodeError) as e:
        run_sampling(h, pos, neg, empty_latent(sd_vae, 2, 16, 16, 8.0), steps=1, cfg=5.0, sampler="euler", seed=7)
    assert ("the latent was made for Stable Diffusion 1.5 (image), but the model is AnimateDiff-SDXL" in str(e.value)
            and "set load.vae's family to sdxl" in str(e.value))
    with pytest.raises(NodeError) as e:
        decode_latent(sd_vae, lat)
    assert "made for Stable Diffusion XL (image); decode it with that family's VAE, not Stable Diffusion 1.5" in str(
        e.value)


@pytest.mark.parametrize("kind", ["plain", "plus"])
def test_sdxl_ipadapters_on_animatediff_sdxl_match_diffusers(env, kind):
    """ip-adapter_sdxl (plain) and ip-adapter-plus_sdxl_vit-h (Resampler) at weight 0.7 on an AnimateDiff-SDXL model:
    the frames diffusers' AnimateDiffSDXLPipeline gives with load_ip_adapter on the same file and the same image
    features; the model sampled without it afterwards is as before. A block-picking weight type counts SDXL's
    transformers (it counted SD 1.5's on any AnimateDiff model)."""
    from test_ipadapter import REF, _diffusers_embeds, _ipadapter_file, _vision
    from nodes.generate.ipadapter import apply_ipadapter, load_ipadapter, reference
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.sampling import run_sampling
    from nodes.generate.split import load_clip_vision
    from nodes.generate.text import encode_prompt
    from nodes.generate.vae_ops import empty_latent
    root, adapter = env
    models = root / "models"
    vision = _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    mm = ModelManager()
    h = mm.load("animatediff", CKPT, motion_adapter=MM)
    parts = mm.components(h)
    name = "ip-adapter_sdxl.safetensors" if kind == "plain" else "ip-adapter-plus_sdxl_vit-h.safetensors"
    ref = _reference(root, adapter)
    from diffusers import UNet2DConditionModel
    # h94's files number the image UNet's cross-attention layers: the SDXL checkpoint's, not the motion modules'.
    _ipadapter_file(models / "ipadapter" / name, UNet2DConditionModel.from_pretrained(str(root / "diffusers" / "unet")),
                    kind, 24 if kind == "plain" else 32)
    encoder = load_clip_vision(mm, "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "auto", "cpu")
    ip = load_ipadapter(mm, name)
    model = apply_ipadapter(h, reference(ip, encoder, [REF], 0.7, 0.0, 1.0))
    pos, neg = encode_prompt(parts["text_encoder"], "a cat"), encode_prompt(parts["text_encoder"], "blurry")

    def sample(m):
        return run_sampling(m, pos, neg, empty_latent(parts["vae"], FRAMES, 16, 16, 8.0), steps=2, cfg=5.0,
                            sampler="euler", seed=7).samples
    plain, got = sample(h), sample(model)
    assert torch.equal(sample(h), plain)
    kw = dict(negative_prompt="blurry", num_frames=FRAMES, width=16, height=16, num_inference_steps=2,
              guidance_scale=5.0, output_type="latent")
    ref.load_ip_adapter(str(models / "ipadapter"), subfolder="", weight_name=name, image_encoder_folder=None)
    ref.set_ip_adapter_scale(0.7)
    embeds = _diffusers_embeds(ref, vision, encoder.pipe.image_processor, kind)
    want = ref("a cat", ip_adapter_image_embeds=embeds, generator=torch.Generator().manual_seed(7), **kw).frames
    assert float((want - plain).abs().max() / want.abs().max()) > 1e-2     # the adapter changes the frames
    err = float((got - want).abs().max() / want.abs().max())
    assert err < 1e-4, err
    with pytest.raises(NodeError, match=r"picks transformers of SDXL's own UNet by number \(11 with"):
        apply_ipadapter(h, reference(ip, encoder, [REF], 0.7, 0.0, 1.0, weight_type="style transfer"))
    if kind == "plain":
        _frame_weights(h, ip, encoder, sample, got)


def _frame_weights(h, ip, encoder, sample, weighted):
    """ipadapter.apply's frame_weights (IPAdapterWeights' list into IPAdapterBatch): frame i's weight in place of the
    weight, the last one past the end. One weight for all frames is the weight (V only, and K+V, which scales the
    image keys and values); "1, 0.5, 0" is what the same weights as a clip of uniform masks give (frame i's mask
    its weight, the equivalence the importer named before), and not the weight 1 on every frame."""
    from test_ipadapter import REF
    from nodes.generate.ipadapter import apply_ipadapter, reference, with_frame_weights

    def run(text, weight=1.0, scaling="V only", mask=None):
        ref = reference(ip, encoder, [REF], weight, 0.0, 1.0, scaling=scaling, mask=mask)
        return sample(apply_ipadapter(h, with_frame_weights(ref, text)))
    assert float((run("0.7") - weighted).abs().max()) < 1e-6
    assert float((run("0.7", weight=0.3) - weighted).abs().max()) < 1e-6      # in place of the weight, not times it
    assert float((run("0.7", scaling="K+V") - run("", 0.7, "K+V")).abs().max()) < 1e-6
    faded = run("1.0,\n 0.5, 0.0")
    masks = torch.tensor([1.0, 0.5] + [0.0] * (FRAMES - 2))[:, None, None].expand(FRAMES, 16, 16)
    assert float((faded - run("", mask=masks)).abs().max()) < 1e-5
    assert float((faded - run("")).abs().max()) > 1e-3
    with pytest.raises(NodeError, match=r"frame_weights '1.0, half' is not a list of numbers"):
        with_frame_weights(reference(ip, encoder, [REF], 1.0, 0.0, 1.0), "1.0, half")


def test_an_animatediff_evolved_sdxl_workflow_imports_and_runs(env, xl_controlnet, tmp_path, monkeypatch):
    """An AnimateDiff-Evolved Gen2 SDXL workflow as animators build it (API format): an SDXL checkpoint,
    sdxl_vae.safetensors through VAELoader, mm_sdxl_v10_beta through ADE_LoadAnimateDiffModel ->
    ADE_ApplyAnimateDiffModelSimple -> ADE_UseEvolvedSampling, the PLUS IP-Adapter preset (SDXL's files) through
    IPAdapterBatch with IPAdapterWeights' fade, an SDXL ControlNet through ControlNetApplyAdvanced on every frame,
    KSampler, VAEDecode, a saved animation. Every node maps exactly and the graph runs to a file."""
    from PIL import Image
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from test_ipadapter import REF, _ipadapter_file, _vision
    from app.comfyui import import_data
    from graph_engine.api import Session, load_workflow
    from nodes.generate.weights import load_weights
    root, _ = env
    models = root / "models"
    state = load_weights(models / "checkpoints" / CKPT)
    (models / "vae").mkdir(exist_ok=True)
    save_file({k[len("first_stage_model."):]: v.contiguous() for k, v in state.items()
               if k.startswith("first_stage_model.")}, str(models / "vae" / "sdxl_vae.safetensors"))
    _vision(models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    _ipadapter_file(models / "ipadapter" / "ip-adapter-plus_sdxl_vit-h.safetensors",
                    UNet2DConditionModel.from_pretrained(str(root / "diffusers" / "unet")), "plus", 32)
    monkeypatch.chdir(tmp_path)
    Image.fromarray(REF).save(tmp_path / "style.png")
    Image.fromarray(REF[::-1].copy()).save(tmp_path / "edges.png")
    api = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": "sdxl_vae.safetensors"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox running through snow", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "5": {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["1", 0], "preset": "PLUS (high strength)"}},
        "6": {"class_type": "LoadImage", "inputs": {"image": "style.png"}},
        "7": {"class_type": "IPAdapterWeights", "inputs": {
            "weights": "1.0, 0.0", "timing": "ease_in_out", "frames": 4, "start_frame": 0, "end_frame": 9999,
            "add_starting_frames": 0, "add_ending_frames": 0, "method": "full batch"}},
        "8": {"class_type": "IPAdapterBatch", "inputs": {
            "model": ["5", 0], "ipadapter": ["5", 1], "image": ["6", 0], "weight": ["7", 0], "weight_type": "linear",
            "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only", "encode_batch_size": 0}},
        "9": {"class_type": "ADE_LoadAnimateDiffModel", "inputs": {"model_name": MM}},
        "10": {"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["9", 0]}},
        "11": {"class_type": "ADE_UseEvolvedSampling", "inputs": {"model": ["8", 0], "m_models": ["10", 0],
                                                                   "beta_schedule": "autoselect"}},
        "12": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": xl_controlnet[0].name}},
        "13": {"class_type": "LoadImage", "inputs": {"image": "edges.png"}},
        "14": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["3", 0], "negative": ["4", 0], "control_net": ["12", 0], "image": ["13", 0],
            "strength": 0.8, "start_percent": 0.0, "end_percent": 1.0}},
        "15": {"class_type": "EmptyLatentImage", "inputs": {"width": 16, "height": 16, "batch_size": 4}},
        "16": {"class_type": "KSampler", "inputs": {
            "seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0,
            "model": ["11", 0], "positive": ["14", 0], "negative": ["14", 1], "latent_image": ["15", 0]}},
        "17": {"class_type": "VAEDecode", "inputs": {"samples": ["16", 0], "vae": ["2", 0]}},
        "18": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["17", 0], "filename_prefix": "fox", "fps": 8.0, "lossless": False, "quality": 80,
            "method": "default"}}}
    res = import_data(api)
    assert {e.status for e in res.report.entries.values()} <= {"exact", "ui"}, res.report.text()
    (apply,) = [n for n in res.graph.nodes.values() if n.type == "ipadapter.apply"]
    fade = [float(w) for w in apply.params["frame_weights"].split(",")]
    assert fade == pytest.approx([1.0, 0.75, 0.25, 0.0])        # ease_in_out from 1 to 0 over 4 frames
    got = Session(device="cpu").run(load_workflow(text=res.yaml), use_cache=False)
    assert got.ok, got.failed
    saved = [r["path"] for r in got.results.values() if r and r.get("path")]
    assert saved and all(Path(p).stat().st_size > 0 for p in saved)
