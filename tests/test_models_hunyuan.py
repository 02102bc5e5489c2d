"""HunyuanVideo from the files a ComfyUI user holds (diffusion_models/hunyuan_video_t2v_720p_bf16.safetensors
in Tencent's names, vae/hunyuan_video_vae_bf16.safetensors in ComfyUI's LDM names) gives exactly what
the same model gives from a diffusers folder, through the graph."""
import pytest
import torch

from tests.comfy_layouts import built, build_hunyuan, same_frames, text_to_video


@pytest.fixture(scope="module")
def hunyuan(tmp_path_factory):
    yield from built(build_hunyuan, tmp_path_factory)


def _comfy_loaders(h, model=None) -> str:
    return (f"  load: {{type: load.hunyuan, params: {{path: '{model or h['diffusion_model']}'}}}}\n"
            f"  vae: {{type: load.vae, params: {{name: '{h['vae']}'}}}}\n"
            f"  text: {{type: load.text_encoder, params: {{name: '{h['text_encoder']}', name2: '{h['text_encoder_2']}', "
            "type: hunyuan_video}}")


def test_comfyui_files_run_like_the_diffusers_folder(hunyuan):
    ref = text_to_video(f"  ref: {{type: load.hunyuan, params: {{path: '{hunyuan['diffusers']}'}}}}",
                        "ref.model", "ref.text_encoder", "ref.vae", frames=5)
    got = text_to_video(_comfy_loaders(hunyuan), "load.model", "text.text_encoder", "vae.vae", frames=5)
    assert ref[0].shape == (1, 4, 2, 8, 8) and ref[1].shape == (5, 64, 64, 3)
    assert torch.allclose(ref[0], got[0], atol=1e-5, rtol=0) and ref[0].abs().sum() > 0
    same_frames(ref[1], got[1])


def test_shipped_comfyui_example_runs_from_a_models_folder(hunyuan, tmp_path):
    from tests.comfy_layouts import run_example
    out = tmp_path / "hunyuan.mp4"
    got = run_example("hunyuan", hunyuan["models"], out, ["text.name=llava_llama3_fp16.safetensors", "latent.frames=5",
                                                          "latent.width=64", "latent.height=64", "sample.steps=2"])
    assert got[0].shape == (1, 4, 2, 8, 8) and out.stat().st_size > 0


def test_fp8_scaled_transformer_is_dequantised(hunyuan, tmp_path):
    """hunyuan_video_t2v_720p_fp8_scaled: weights come back as fp8 value x scale_weight (a loader that
    ignores the scales gets weights hundreds of times too large) and the video stays close."""
    from safetensors.torch import load_file, save_file
    from nodes.generate.model_manager import ModelManager
    from tests.comfy_layouts import fp8_scaled
    original = load_file(str(hunyuan["diffusion_model"]))
    path = tmp_path / "hunyuan_video_t2v_720p_fp8_scaled.safetensors"
    save_file(fp8_scaled(original), str(path))
    got = ModelManager().load("hunyuan", str(path)).pipe.transformer
    ref = ModelManager().load("hunyuan", str(hunyuan["diffusers"])).pipe.transformer
    w, w_ref = got.transformer_blocks[0].attn.to_q.weight, ref.transformer_blocks[0].attn.to_q.weight
    assert not torch.equal(w, w_ref)                                   # it really went through fp8
    assert (w - w_ref).abs().max() <= w_ref.abs().max() / 8            # e4m3 keeps 3 mantissa bits
    folder = f"  ref: {{type: load.hunyuan, params: {{path: '{hunyuan['diffusers']}'}}}}"
    a = text_to_video(folder, "ref.model", "ref.text_encoder", "ref.vae", frames=5)[0]
    b = text_to_video(_comfy_loaders(hunyuan, path), "load.model", "text.text_encoder", "vae.vae", frames=5)[0]
    assert (a - b).abs().mean() < 0.1 * a.abs().mean()


def test_files_are_recognised_and_reported_loadable(hunyuan):
    from nodes.generate.model_manager import describe_model
    for key, family, role in (("diffusion_model", "hunyuan", "diffusion_model"), ("vae", "hunyuan", "vae"),
                              ("text_encoder", "llama", "text_encoder"), ("text_encoder_2", "clip", "text_encoder")):
        got = describe_model(hunyuan[key])
        assert (got["family"], got["role"], got["loads"]) == (family, role, "yes"), (key, got)
