"""torch's initialisers skip meta tensors (nodes/generate/meta_init.py) and initialise real ones as torch documents:
layers made after the switch hold the same values, and a model loaded from a file computes what diffusers' does."""
import math

import torch
from torch import nn

from nodes.generate.meta_init import INITIALISERS, skip_init_on_meta


def test_real_layers_hold_the_values_torch_documents():
    skip_init_on_meta()
    # nn.Linear: weight and bias uniform in +-1/sqrt(in_features) (kaiming_uniform_ with a = sqrt(5)), drawn in turn
    torch.manual_seed(0)
    bound = 1 / math.sqrt(4)
    weight, bias = torch.empty(3, 4).uniform_(-bound, bound), torch.empty(3).uniform_(-bound, bound)
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    assert torch.equal(layer.weight, weight) and torch.equal(layer.bias, bias)
    norm = nn.LayerNorm(5)
    assert torch.equal(norm.weight, torch.ones(5)) and torch.equal(norm.bias, torch.zeros(5))
    torch.manual_seed(1)
    expected = torch.empty(6, 2).normal_(0, 1)
    torch.manual_seed(1)
    assert torch.equal(nn.Embedding(6, 2).weight, expected)


def test_meta_tensors_pass_through_once_wrapped():
    skip_init_on_meta()
    wrapped = [getattr(nn.init, name) for name in INITIALISERS]
    skip_init_on_meta()                                         # a second call wraps nothing again
    assert [getattr(nn.init, name) for name in INITIALISERS] == wrapped
    for name in INITIALISERS:
        t = torch.empty(4, 4, 3, 3, device="meta") if name == "dirac_" else torch.empty(4, 4, device="meta")
        args = (0.5,) if name in ("constant_", "sparse_") else ()
        assert getattr(nn.init, name)(t, *args) is t
    with torch.device("meta"):
        layer = nn.Conv2d(2, 3, 3)
    assert layer.weight.is_meta and layer.weight.shape == (3, 2, 3, 3)


def test_a_wan_file_loads_as_diffusers_computes_it(tmp_path):
    """A Wan 2.1 transformer file in the diffusion_models/ layout, loaded through the checks that now skip the meta
    initialisation, computes what diffusers' WanTransformer3DModel given the same weights computes."""
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file
    from nodes.generate.model_manager import ModelManager
    from nodes.generate.split import load_diffusion_model
    from tiny_models import wan_original_transformer
    torch.manual_seed(0)
    ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=16,
                                out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=1,
                                cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32).eval()
    path = tmp_path / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors"
    path.parent.mkdir()
    save_file({k: v.contiguous() for k, v in wan_original_transformer(ref.state_dict()).items()}, str(path))
    model = load_diffusion_model(ModelManager(), str(path), "fp32", "cpu").denoiser
    x, t, text = torch.randn(1, 16, 1, 4, 4), torch.tensor([500.0]), torch.randn(1, 3, 32)
    with torch.no_grad():
        assert torch.allclose(model(x, t, text, return_dict=False)[0], ref(x, t, text, return_dict=False)[0],
                              atol=1e-5)


def test_transformers_text_encoders_initialise_as_before(monkeypatch):
    """transformers' models initialise through its own copies of torch's initialisers, wrapped too: a CLIP text
    encoder built with them holds what it holds built with torch's own, and builds on the meta device."""
    from transformers import CLIPTextConfig, CLIPTextModel
    from transformers import initialization
    cfg = CLIPTextConfig(vocab_size=50, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=7)
    skip_init_on_meta()
    assert all(getattr(fn, "skips_meta", False) for fn in initialization.TORCH_INIT_FUNCTIONS.values())
    torch.manual_seed(0)
    wrapped = CLIPTextModel(cfg).state_dict()
    for name, fn in list(initialization.TORCH_INIT_FUNCTIONS.items()):
        monkeypatch.setitem(initialization.TORCH_INIT_FUNCTIONS, name, fn.__wrapped__)
    torch.manual_seed(0)
    stock = CLIPTextModel(cfg).state_dict()
    assert stock.keys() == wrapped.keys() and all(torch.equal(stock[k], wrapped[k]) for k in stock)
    monkeypatch.undo()
    with torch.device("meta"):
        built = CLIPTextModel(cfg).state_dict()
    assert built.keys() == stock.keys() and all(t.is_meta and t.shape == stock[k].shape for k, t in built.items())


def test_a_load_swapping_the_initialisers_meanwhile_leaves_no_no_op_behind(monkeypatch):
    """diffusers' no_init_weights puts a no-op into torch.nn.init for the length of a load (transformers' does too)
    and puts its originals back after. A check on another thread that read the no-op before that and wrote its
    wrapping after made the no-op permanent, marked as wrapped: every real layer built later kept torch.empty's
    memory. Here the load ends between the check's read and its write, as a thread switch would have it."""
    from diffusers.models.modeling_utils import no_init_weights
    from nodes.generate import meta_init
    for name in INITIALISERS:       # torch's own in place (this test's changes are undone after it)
        fn = getattr(nn.init, name)
        monkeypatch.setattr(nn.init, name, fn.__wrapped__ if getattr(fn, "skips_meta", False) else fn)
    load = no_init_weights()
    load.__enter__()
    wrap = meta_init._skipping

    def load_ends_meanwhile(fn):
        if not load_ended:
            load.__exit__(None, None, None)
            load_ended.append(True)
        return wrap(fn)
    load_ended = []
    monkeypatch.setattr(meta_init, "_skipping", load_ends_meanwhile)
    skip_init_on_meta()
    monkeypatch.setattr(meta_init, "_skipping", wrap)
    skip_init_on_meta()             # the next check
    assert load_ended
    assert torch.equal(nn.init.constant_(torch.zeros(3), 2.0), torch.full((3,), 2.0))
    bound = 1 / math.sqrt(4)
    torch.manual_seed(0)
    weight = torch.empty(3, 4).uniform_(-bound, bound)
    torch.manual_seed(0)
    assert torch.equal(nn.Linear(4, 3).weight, weight)
