"""HunyuanVideo image-to-video from the files ComfyUI's two examples load: the v1 "concat" transformer
(diffusion_models/hunyuan_video_image_to_video_720p_bf16, image latent + mask concatenated) and the v2
"replace" one (the 16-channel layout, first frame replaced by the image), the prompt encoded with
llava_llama3_vision's image tokens. Each gives what the same tiny model gives through diffusers."""
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.comfy_layouts import built, build_hunyuan_i2v

PHOTO = Path(__file__).resolve().parents[1] / "resources" / "samples" / "coffee.png"


@pytest.fixture(scope="module")
def hy(tmp_path_factory):
    yield from built(build_hunyuan_i2v, tmp_path_factory)


def _photo():
    from PIL import Image
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def _workflow(h, model: str, guidance: str, frames: int = 5) -> str:
    m = h["models"]
    return f"""kinograph: 1
nodes:
{model}
  text: {{type: load.text_encoder, params: {{name: '{m}/text_encoders/clip_l.safetensors',
          name2: '{m}/text_encoders/llava_llama3_fp8_scaled.safetensors', type: hunyuan_video}}}}
  vae: {{type: load.vae, params: {{name: '{m}/vae/hunyuan_video_vae_bf16.safetensors'}}}}
  vision: {{type: load.clip_vision, params: {{name: '{m}/clip_vision/llava_llama3_vision.safetensors'}}}}
  photo: {{type: io.load_image, params: {{path: '{PHOTO}'}}}}
  image: {{type: encode.image, inputs: {{image_encoder: vision.image_encoder, image: photo.image}}}}
  prompt:
    type: encode.text_image
    inputs: {{text_encoder: text.text_encoder, image_embeds: image.conditioning}}
    params: {{text: "a cup of coffee steaming", image_interleave: 2}}
  i2v:
    type: condition.hunyuan_i2v
    inputs: {{vae: vae.vae, positive: prompt.positive, start_image: photo.image}}
    params: {{width: 64, height: 64, frames: {frames}, guidance: {guidance}}}
  sample:
    type: generate.sample
    inputs: {{model: {'unet.model' if 'unet:' in model else 'ref.model'}, positive: i2v.positive, latent: i2v.latent}}
    params: {{steps: 2, cfg: 6.0, seed: 42}}
  decode: {{type: vae.decode, inputs: {{vae: vae.vae, latent: sample.latent}}}}
"""


def _run(text):
    from graph_engine.api import Session, load_workflow
    res = Session(device="cpu").run(load_workflow(text=text, check=True), use_cache=False)
    assert res.ok, res.failed
    return res.outputs["sample"]["latent"].samples, res.outputs["decode"]["video"].to_array(), res


@pytest.fixture(scope="module")
def v1_files(hy):
    """ComfyUI's files with the v1 transformer, sampled once for the two tests that compare against it."""
    return _run(_workflow(hy, f"  unet: {{type: load.diffusion_model, params: {{name: '{hy['v1']}'}}}}", "concat"))


def test_v1_transformer_file_runs_like_the_diffusers_folder(hy, v1_files):
    """The 33-channel layout (here 2 x 4 + 1) in Tencent's names loads through load.diffusion_model and
    samples exactly as diffusers' HunyuanVideoImageToVideoPipeline folder's transformer."""
    ref = f"  ref: {{type: load.hunyuan, params: {{path: '{hy['diffusers']}'}}}}"
    got = v1_files
    want = _run(_workflow(hy, ref, "concat"))
    assert got[0].shape == (1, 4, 2, 8, 8) and got[1].shape == (5, 64, 64, 3)
    assert torch.allclose(got[0], want[0], atol=1e-5, rtol=0) and got[0].abs().sum() > 0


def test_diffusers_folder_alone_gives_what_the_comfyui_files_give(hy, v1_files):
    """A diffusers HunyuanVideo-I2V folder on its own (its llava text encoder also gives the image tokens):
    the same video as ComfyUI's six files."""
    files = v1_files
    folder = _workflow(hy, f"  ref: {{type: load.hunyuan, params: {{path: '{hy['diffusers']}'}}}}", "concat")
    folder = folder.replace("text_encoder: text.text_encoder", "text_encoder: ref.text_encoder").replace(
        "image_encoder: vision.image_encoder", "image_encoder: ref.image_encoder").replace(
        "vae: vae.vae", "vae: ref.vae")
    folder = "\n".join(line for line in folder.splitlines() if not line.startswith(("  text:", "  vae:", "  vision:"))
                       and not line.startswith("          name2"))
    got = _run(folder)
    assert torch.allclose(got[0], files[0], atol=1e-5, rtol=0)


def test_v1_model_reads_the_image(hy):
    """The concatenated image latent and mask reach the model: another start image changes the video."""
    from nodes.generate.hunyuan_i2v import image_to_video
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_vae
    vae = load_vae(ModelManager(), str(hy["vae"]), "cpu")
    pos = Conditioning("hunyuan", torch.zeros(1, 3, 128))
    cond, latent = image_to_video(vae, pos, _photo(), 64, 64, 9, "concat")
    concat = cond.extra["concat"]
    assert concat.shape == (1, 5, 3, 8, 8) and latent.samples.shape == (1, 4, 3, 8, 8)
    assert concat[:, :4, 0].abs().sum() > 0 and concat[:, :4, 1:].abs().sum() == 0          # image on frame 0 only
    assert concat[:, 4, 0].eq(1).all() and concat[:, 4, 1:].eq(0).all()                      # and its mask
    _, no_image = image_to_video(vae, pos, None, 64, 64, 9, "concat")
    assert torch.equal(no_image.samples, latent.samples)


def test_v2_token_replace_twin_equals_diffusers_model(hy):
    """The v2 file is the text-to-video layout; guidance replace runs it as diffusers' token_replace model
    (first-frame tokens modulated at time 0), built over the same weights."""
    from diffusers import HunyuanVideoTransformer3DModel
    from nodes.generate.adapters.hunyuan import token_replace_twin
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    model = load_diffusion_model(ModelManager(), str(hy["v2"]), "default", "cpu").pipe.transformer
    assert model.config.image_condition_type is None
    twin = token_replace_twin(model)
    assert twin is token_replace_twin(model)
    assert twin.x_embedder.proj.weight is model.x_embedder.proj.weight                          # shared
    ref = HunyuanVideoTransformer3DModel.from_pretrained(str(hy["v2_diffusers"]))
    g = torch.Generator().manual_seed(0)
    kw = dict(hidden_states=torch.randn(1, 4, 3, 8, 8, generator=g), timestep=torch.tensor([700.0]),
              encoder_hidden_states=torch.randn(1, 6, 128, generator=g), encoder_attention_mask=torch.ones(1, 6),
              pooled_projections=torch.randn(1, 64, generator=g), guidance=torch.tensor([6000.0]), return_dict=False)
    with torch.no_grad():
        want, got, plain = ref(**kw)[0], twin(**kw)[0], model(**kw)[0]
    assert torch.allclose(got, want, atol=1e-5, rtol=0)
    assert (plain - want).abs().max() > 1e-3                    # the text-to-video reading differs


def test_v2_replace_keeps_the_first_frame_and_decodes(hy):
    unet = f"  unet: {{type: load.diffusion_model, params: {{name: '{hy['v2']}'}}}}"
    latent, frames, res = _run(_workflow(hy, unet, "replace"))
    start = res.outputs["i2v"]["latent"]
    assert start.mask[:, :, 0].eq(0).all() and start.mask[:, :, 1:].eq(1).all() and start.samples[:, :, :1].abs().sum() > 0
    assert res.outputs["i2v"]["positive"].meta["guiding_frame"] == 0
    assert latent.shape == (1, 4, 2, 8, 8) and frames.shape == (5, 64, 64, 3)
    assert torch.equal(latent[:, :, :1], start.samples[:, :, :1]) and latent[:, :, 1:].abs().sum() > 0


def test_prompt_with_image_equals_diffusers_encode_prompt(hy):
    """encode.text_image on the split files (llava's text tower in text_encoders/, its vision tower and
    projector in clip_vision/) gives diffusers' HunyuanVideoImageToVideoPipeline.encode_prompt, whole
    LlavaForConditionalGeneration; also for a prompt longer than the 256 tokens kept."""
    from PIL import Image
    from diffusers import HunyuanVideoImageToVideoPipeline
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE
    from nodes.generate.hunyuan_i2v import encode_text_image
    from nodes.generate.image_cond import encode_image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision, load_text_encoder
    mm, m = ModelManager(), hy["models"]
    te = load_text_encoder(mm, str(m / "text_encoders" / "clip_l.safetensors"),
                           str(m / "text_encoders" / "llava_llama3_fp8_scaled.safetensors"), "hunyuan_video", "cpu")
    vision = load_clip_vision(mm, str(m / "clip_vision" / "llava_llama3_vision.safetensors"), "auto", "cpu")
    tokens = encode_image(vision, _photo())
    assert tokens.family == "hunyuan" and tokens.embeds.shape == (1, 4, 128)
    # diffusers' template positions are the real tokenizer's; the tiny tokenizer's are counted the same way
    tok = hy["tokenizer"]
    template = DEFAULT_PROMPT_TEMPLATE["template"]
    head = tok(template.split("{}")[0])["input_ids"]
    at = head.index(tok.convert_tokens_to_ids("<image>"))
    spec = {"template": template, "crop_start": len(head), "image_emb_start": at, "image_emb_end": at + 4,
            "image_emb_len": 4}
    pipe = HunyuanVideoImageToVideoPipeline(text_encoder=hy["llava"], tokenizer=tok, transformer=None, vae=None,
                                            scheduler=None, text_encoder_2=hy["clip"],
                                            tokenizer_2=hy["clip_tokenizer"], image_processor=hy["processor"])
    for prompt, interleave in (("a cup of coffee steaming", 2), ("steam " * 60, 4)):
        got = encode_text_image(te, tokens, prompt, interleave)
        with torch.no_grad():
            embeds, pooled, mask = pipe.encode_prompt(image=Image.fromarray(_photo()), prompt=prompt,
                                                      prompt_template=spec, device="cpu",
                                                      image_embed_interleave=interleave)
        assert torch.equal(got.mask[0], mask[0].bool())
        keep = mask[0].bool()
        assert torch.allclose(got.embeds[0][keep], embeds[0][keep], atol=1e-5, rtol=0)
        assert torch.allclose(got.pooled, pooled, atol=1e-5, rtol=0)


def test_files_are_recognised_and_reported_loadable(hy):
    from nodes.generate.model_manager import describe_model
    for key, family, variant, role in (("v1", "hunyuan", "i2v", "diffusion_model"),
                                       ("v2", "hunyuan", "t2v", "diffusion_model"),
                                       ("clip_vision", "clip_vision", "llava-w128", "clip_vision")):
        got = describe_model(hy[key])
        # (the transformers' guidance suffix is left out: the tiny files use Tencent's guidance_in names)
        assert (got["family"], got["variant"].split("-guidance")[0], got["role"], got["loads"]) == \
            (family, variant, role, "yes"), got


def test_wrong_files_and_wrong_guidance_say_what_to_do(hy, tmp_path):
    from safetensors.torch import load_file, save_file
    from graph_engine import NodeError
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision, load_diffusion_model
    state = load_file(str(hy["v2"]))
    w = state["img_in.proj.weight"]                            # SkyReels' 2 x latent channels
    state["img_in.proj.weight"] = torch.cat([w, w], dim=1)
    path = tmp_path / "skyreels_hunyuan_i2v_bf16.safetensors"
    save_file(state, str(path))
    with pytest.raises(NodeError, match="8 input channels.*SkyReels"):
        load_diffusion_model(ModelManager(), str(path), "default", "cpu")
    from nodes.generate.model_manager import describe_model
    got = describe_model(path)
    assert got["loads"] == "no" and "SkyReels" in got["note"], got
    with pytest.raises(NodeError, match="llava-llama-3's image encoder.*hunyuan or auto"):
        load_clip_vision(ModelManager(), str(hy["clip_vision"]), "wan", "cpu")
    # each model with the other one's guidance
    for model, guidance, why in (("v2", "concat", "needs the HunyuanVideo image-to-video model with 33"),
                                 ("v1", "replace", "needs the start image through condition.hunyuan_i2v")):
        from graph_engine.api import Session, load_workflow
        unet = f"  unet: {{type: load.diffusion_model, params: {{name: '{hy[model]}'}}}}"
        res = Session(device="cpu").run(load_workflow(text=_workflow(hy, unet, guidance), check=True),
                                        use_cache=False)
        assert not res.ok and why in str(res.failed["sample"])


def test_text_node_needs_the_image_tokens(hy):
    from graph_engine import NodeError
    from nodes.generate.hunyuan_i2v import encode_text_image
    from nodes.generate.latent import Conditioning
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    m = hy["models"]
    te = load_text_encoder(ModelManager(), str(m / "text_encoders" / "llava_llama3_fp8_scaled.safetensors"),
                           str(m / "text_encoders" / "clip_l.safetensors"), "hunyuan_video", "cpu")
    with pytest.raises(NodeError, match="encode.image of the image with load.clip_vision of llava_llama3_vision"):
        encode_text_image(te, Conditioning("hunyuan", torch.zeros(1, 3, 128)), "a cat")


@pytest.mark.parametrize("name,guidance,frames", [("hunyuan_i2v", "concat", 5), ("hunyuan_i2v_v2", "replace", 9)])
def test_comfyui_example_runs_on_the_files_it_names(hy, tmp_path, monkeypatch, name, guidance, frames):
    """ComfyUI's published example, imported as is: its loaders find the tiny files under the names it uses
    (models/diffusion_models/hunyuan_video_image_to_video_720p_bf16.safetensors, ...); only the size, the
    step count, the start image and the output folder are changed. v1 drops the first 4 frames, as
    the example's ImageFromBatch does."""
    from PIL import Image
    from app.comfyui import import_workflow
    from graph_engine.api import Session, load_workflow
    monkeypatch.setenv("KINOGRAPH_MODELS", str(hy["models"]))
    result = import_workflow(Path(__file__).parent / "data" / "comfyui" / f"{name}.json")
    for n in result.graph.nodes.values():
        if n.type == "condition.hunyuan_i2v":
            assert n.params.get("guidance", "concat") == guidance
            n.params.update(width=64, height=64, frames=9)
        elif n.type == "generate.sample":
            n.params["steps"] = 2
        elif n.type == "io.load_image":
            n.params["path"] = str(PHOTO)
        elif n.type == "io.save_video":
            n.params["path"] = str(tmp_path / Path(n.params["path"]).name)
    res = Session(device="cpu").run(load_workflow(text=result.yaml), use_cache=False)
    assert res.ok, res.failed
    with Image.open(tmp_path / "ComfyUI.webp") as im:
        assert im.n_frames == frames and im.size == (64, 64)


def test_crop_none_encodes_the_whole_image(hy):
    """CLIPVisionEncode crop=none (both examples): the whole frame squeezed into the encoder's square."""
    from PIL import Image
    from nodes.generate.image_cond import encode_image
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_clip_vision
    vision = load_clip_vision(ModelManager(), str(hy["clip_vision"]), "hunyuan", "cpu")
    wide = _photo()[: 40]                                       # not square: crops differ
    squeezed = np.asarray(Image.fromarray(wide).resize((28, 28), Image.BICUBIC))
    whole, centre = encode_image(vision, wide, "none").embeds, encode_image(vision, wide, "center").embeds
    assert torch.allclose(whole, encode_image(vision, squeezed, "center").embeds, atol=1e-6)
    assert (whole - centre).abs().max() > 1e-3


@pytest.mark.parametrize("model,guidance", [("v1", "concat"), ("v2", "replace")])
def test_shipped_example_runs_from_a_models_folder(hy, tmp_path, model, guidance):
    from tests.comfy_layouts import run_example
    got = run_example("hunyuan_i2v", hy["models"], tmp_path / "i2v.mp4",
                      [f"unet.name={hy[model].name}", f"i2v.guidance={guidance}", "i2v.frames=5", "i2v.width=64",
                       "i2v.height=64", "sample.steps=2"])
    assert got[0].shape == (1, 4, 2, 8, 8) and (tmp_path / "i2v.mp4").stat().st_size > 0
