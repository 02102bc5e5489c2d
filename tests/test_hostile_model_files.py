"""Damaged model files given to the newer loaders (Stable Audio Open, ACE-Step 1.5, text.generate, any single-file text
encoder): a tensor of another shape, one missing that gives the model's size, whole numbers where the model keeps
fractions, NaN weights. Each must end in a message naming the file, never torch's traceback."""
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from graph_engine import NodeError
from tests.comfy_layouts import models_dir
from tests.test_ace_step import FILES
from tests.test_ace_step import build as ace_build
from tests.test_stable_audio import CKPT
from tests.test_stable_audio import build as sa_build


@pytest.fixture(scope="module")
def sa_tiny(tmp_path_factory):
    yield from models_dir(tmp_path_factory, sa_build, "stable_audio")


@pytest.fixture(scope="module")
def ace_tiny(tmp_path_factory):
    yield from models_dir(tmp_path_factory, ace_build, "ace_step")


def _ace(root, *parts):
    folders = dict(diffusion_model="diffusion_models", text_encoder="text_encoders", lm="text_encoders", vae="vae")
    return [str(root / "models" / folders[p] / FILES[p]) for p in parts]


def _damaged(src, dst, change):
    save_file(change(load_file(str(src))), str(dst))
    return dst


def test_a_stable_audio_tensor_of_another_shape_is_named(sa_tiny, tmp_path):
    """One transformer weight a row wider: torch's 'size mismatch for transformer_blocks.0.ff.net.0.proj.weight'
    RuntimeError came out of load_state_dict as the node's traceback."""
    from nodes.generate import stable_audio as sa
    from nodes.generate.model_manager import ModelManager
    key = "model.model.transformer.layers.0.ff.ff.0.proj.weight"
    f = _damaged(sa_tiny / "models/checkpoints" / CKPT, tmp_path / "wide.safetensors",
                 lambda sd: {**sd, key: torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])})
    with pytest.raises(NodeError) as e:
        sa.load(ModelManager(), str(f), str(sa_tiny / "models/text_encoders/t5-base.safetensors"), "cpu")
    assert str(e.value) == ("wide.safetensors: its StableAudioDiTModel tensors do not match the model's (its "
                            "transformer_blocks.0.ff.net.0.proj.weight is (1025, 128), where the model its other "
                            "tensors describe has (1024, 128)): the file is damaged or another model's")


def test_an_ace_step_file_lacking_a_tensor_that_gives_its_size_is_named(ace_tiny, tmp_path):
    """Without its detokenizer's first query projection the model's sizes could not be read: KeyError
    'layers.0.self_attn.to_q.weight' as the node's message, with a traceback."""
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    f = _damaged(ace_tiny / "models/diffusion_models" / FILES["diffusion_model"], tmp_path / "cut.safetensors",
                 lambda sd: {k: v for k, v in sd.items() if k != "detokenizer.layers.0.self_attn.q_proj.weight"})
    with pytest.raises(NodeError) as e:
        ace.load(ModelManager(), str(f), *_ace(ace_tiny, "text_encoder"), "", *_ace(ace_tiny, "vae"), "cpu")
    assert str(e.value) == ("cut.safetensors lacks layers.0.self_attn.to_q.weight, which gives an ACE-Step 1.5 "
                            "diffusion model's size: the file is cut short or another model's; download it again")


def test_an_ace_step_language_model_of_nan_weights_is_named_as_it_draws(ace_tiny, tmp_path):
    """NaN embeddings in the lm file: torch.multinomial's 'probability tensor contains either inf, nan or element < 0'
    RuntimeError as the node's traceback."""
    from nodes.generate import ace_step as ace
    from nodes.generate.model_manager import ModelManager
    folder = tmp_path / "text_encoders"
    folder.mkdir()
    _damaged(ace_tiny / "models/text_encoders" / FILES["lm"], folder / "nan_lm.safetensors",
             lambda sd: {**sd, "model.embed_tokens.weight": torch.full_like(sd["model.embed_tokens.weight"],
                                                                            float("nan"))})
    model = ace.load(ModelManager(), *_ace(ace_tiny, "diffusion_model", "text_encoder"),
                     str(folder / "nan_lm.safetensors"), *_ace(ace_tiny, "vae"), "cpu")
    song = ace.Song("piano", "", 90, 1.0, "4", "en", "C major")
    with pytest.raises(NodeError, match=r"^ACE-Step's language model \(lm\) gives scores that are not numbers"):
        ace.audio_codes(model, song, ace.Drawing(0, 2.0, 0.85, 0.9, 0))


def test_a_text_encoder_tensor_of_whole_numbers_is_named(sa_tiny, tmp_path):
    """T5's embeddings stored as int8 (a quantisation Kinograph does not read, or a damaged header): torch's 'While
    copying the parameter named shared.weight' RuntimeError out of every single-file load (converters.build)."""
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    te = tmp_path / "t5-base.safetensors"
    _damaged(sa_tiny / "models/text_encoders/t5-base.safetensors", te,
             lambda sd: {**sd, "shared.weight": sd["shared.weight"].to(torch.int8)})
    shutil.copytree(sa_tiny / "models/text_encoders/t5-base", tmp_path / "t5-base")
    with pytest.raises(NodeError, match=r"t5-base.safetensors \(.*\): tensor shared.weight holds torch.int8 values, "
                                        r"where the model keeps torch.float\d+ ones"):
        load_text_encoder(ModelManager(), str(te), "", "auto", "cpu")


def test_text_generate_on_nan_weights_is_named(tmp_path):
    """A Qwen3 file whose weights are NaN: transformers' sampling raised torch's 'probability tensor contains either
    inf, nan' RuntimeError out of text.generate."""
    from transformers import Qwen3Config, Qwen3Model
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_text_encoder
    from nodes.generate.textgen import generate_ids
    from tests.test_textgen import SIZES, SPECIAL
    from tests.tiny_flux2 import QWEN3_CHAT, tokenizer
    torch.manual_seed(0)
    state = {"model." + k: torch.full_like(v, float("nan")) if k.endswith("mlp.down_proj.weight") else v
             for k, v in Qwen3Model(Qwen3Config(**SIZES)).state_dict().items()}
    save_file(state, str(tmp_path / "qwen3_nan.safetensors"))
    tokenizer(tmp_path / "qwen3_nan", QWEN3_CHAT, SPECIAL)
    handle = load_text_encoder(ModelManager(), str(tmp_path / "qwen3_nan.safetensors"), "", "auto", "cpu")
    with pytest.raises(NodeError) as e:
        generate_ids(handle, "a cat", max_length=4)
    assert str(e.value) == ("qwen3_nan.safetensors: its language model gives scores that are not numbers (NaN or inf): "
                            "the file holds damaged tensors; download it again")


LONG = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from graph_engine import NodeError\nfrom nodes.generate import ace_step as ace\n"
        "from nodes.generate.model_manager import ModelManager\n"
        "model = ace.load(ModelManager(), *sys.argv[1:5], 'cpu')\n"
        "for words, how in ((12000, lambda s: ace.audio_codes(model, s, ace.Drawing(0, 1.0, 0.85, 0.9, 0))),\n"
        "                   (14000, lambda s: ace.text_states(model, s))):\n"
        "    try:\n"
        "        how(ace.Song('piano', 'la ' * words, 90, 1000.0, '4', 'en', 'C major'))\n"
        "    except NodeError as e:\n"
        "        print(e)\n")


def test_ace_step_lyrics_longer_than_its_models_read_are_refused(ace_tiny):
    """A stranger's file with lyrics of tens of thousands of tokens: the language model was run on its prompt and
    codes past its 40,960 positions, and the lyric tokens read whole, attention growing with the square of their
    number (in 3 GB: torch's out-of-memory RuntimeError)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", LONG, *_ace(ace_tiny, "diffusion_model", "text_encoder", "lm", "vae")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.splitlines() == [
        "generate.ace_step: the language model's prompt (the tags and lyrics, 36,196 tokens) and the 5,000 audio codes "
        "of 1000 s make 41,196, and it reads at most 40,960: shorten the lyrics or the duration, or turn "
        "generate_audio_codes off",
        "generate.ace_step: the lyrics make 42,026 tokens, and ACE-Step's text encoder reads at most 40,960: shorten "
        "them"]
