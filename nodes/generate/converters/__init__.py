"""The converter registry: one function per (family, role) that turns a file's state dict (any layout
it comes in) into a ready module with diffusers/transformers weights and a config.

A converter is `fn(state, det) -> Built`: `state` holds the file's dequantised tensors (the key
prefix of `det` already removed for single-part files), `det` is its Detection (family, variant,
layout). It picks the diffusers config from the JSON files shipped in resources/model_configs/
(one per known variant) and overrides what the tensor shapes state (widths, depths, channels),
so a file loads without any hub and without a config folder. Families register in their own
module here (wan.py, sd.py, text.py, ...), imported on first use."""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from graph_engine import NodeError
from graph_engine.shipped import resource

CONFIG_DIR = resource("model_configs")
# family (or encoder name) -> module under nodes.generate.converters that registers it.
MODULES = {"wan": "wan", "sd": "sd", "sdxl": "sdxl", "flux": "flux", "sd3": "sd3", "sd3_clip": "sd3", "animatediff": "sd", "umt5": "text", "t5": "text", "clip_l": "text",
           "clip_g": "text", "clip": "text", "llama": "hunyuan", "clip_vision": "text", "ltx": "ltx", "ltx2": "ltx2", "gemma3": "ltx2",
           "hunyuan": "hunyuan", "hunyuan15": "hunyuan15", "kandinsky5": "kandinsky5", "kandinsky5image": "kandinsky5", "svd": "svd", "cogvideox": "cogvideox",
           "qwenimage": "qwenimage", "qwenimage21": "qwenimage21", "qwen3vl": "qwenimage21", "qwen25vl": "qwenimage", "chroma": "chroma", "flux2": "flux2", "mistral3": "flux2",
           "qwen3": "flux2", "qwen35": "qwen35", "gemma4": "gemma4", "zimage": "zimage", "hidream": "hidream", "longcat": "longcat", "ovis": "ovis", "krea2": "krea2", "ideogram4": "ideogram4", "minimax_h3": "minimax_h3", "flux3": "flux3", "boogu": "boogu", "joyimage": "joyimage", "fibo2": "fibo2", "mage_flow": "mage_flow", "omnigen2": "boogu", "anima": "anima", "seedvr2": "seedvr2", "lens": "lens", "gpt_oss": "lens", "pixeldit": "pixeldit", "gemma2": "pixeldit", "newbie": "newbie", "jina_clip2": "newbie"}


@dataclass
class Built:
    make: Callable[[], "object"]           # builds the module with empty (meta) weights
    state_dict: Dict[str, "object"]        # its tensors, in the module's own key names
    config: Optional[dict] = None


_REGISTRY: Dict[Tuple[str, str], Callable] = {}


def register(family: str, role: str):
    def deco(fn):
        _REGISTRY[(family, role)] = fn
        return fn
    return deco


def converter(family: Optional[str], role: Optional[str]) -> Optional[Callable]:
    if not family or not role:
        return None
    if (family, role) not in _REGISTRY and family in MODULES:
        try:
            importlib.import_module(f"{__name__}.{MODULES[family]}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{MODULES[family]}":
                raise
    return _REGISTRY.get((family, role))


def supported(det) -> bool:
    return converter(det.family, det.role) is not None


def model_config(family: str, name: str) -> dict:
    """A shipped diffusers/transformers config (resources/model_configs/<family>/<name>.json)."""
    path = CONFIG_DIR / family / f"{name}.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NodeError(f"the shipped model config {path} is missing or broken ({exc}); reinstall Kinograph") from None
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def converted(state: Dict[str, object], marker: str, convert: Callable, cls, config: Callable) -> Built:
    """A denoiser from a file in its authors' or ComfyUI's names, through diffusers' own single-file converter (which
    empties the dict it is given), or already in diffusers' names (`marker` is one of them): `cls` built from
    config(the converted tensors)."""
    conv = dict(state) if marker in state else convert(dict(state))
    cfg = config(conv)
    return Built(lambda: cls.from_config(cfg), conv, cfg)


def split_single_block(key: str, value, width: int) -> Optional[dict]:
    """A single-stream block's fused `single_blocks.N.linear1` (FLUX.1, HunyuanVideo: q, k, v of `width` rows each,
    then the MLP's rows) as diffusers' four tensors; None for any other key."""
    import re
    m = re.match(r"single_blocks\.(\d+)\.linear1\.(weight|bias)$", key)
    if m is None:
        return None
    n, kind = m.groups()
    q, k, v, mlp = value.split([width, width, width, value.shape[0] - 3 * width], dim=0)
    base = f"single_transformer_blocks.{n}"
    return {f"{base}.attn.to_q.{kind}": q, f"{base}.attn.to_k.{kind}": k, f"{base}.attn.to_v.{kind}": v,
            f"{base}.proj_mlp.{kind}": mlp}


def decoder_sizes(state: Dict[str, object], head: int) -> dict:
    """A decoder language model's sizes (Llama's, Qwen2's names without their `model.` prefix) from its tensors, for
    heads `head` wide: the config values a text encoder file states."""
    emb = state["embed_tokens.weight"]
    return dict(vocab_size=int(emb.shape[0]), hidden_size=int(emb.shape[1]),
                intermediate_size=int(state["layers.0.mlp.gate_proj.weight"].shape[0]),
                num_hidden_layers=count(state, "layers.{}."),
                num_attention_heads=int(state["layers.0.self_attn.q_proj.weight"].shape[0]) // head,
                num_key_value_heads=int(state["layers.0.self_attn.k_proj.weight"].shape[0]) // head)


# Numbered blocks of one kind a file may name: published models have at most a few hundred (text encoders' layers
# included). The network is built with that many before its weights are matched: a file naming 20,000 HunyuanVideo
# 1.5 blocks by empty tensors (a few hundred KB) took 22 s a thousand on the meta device, minutes before any message.
MAX_BLOCKS = 512


def count(state: Dict[str, object], pattern: str) -> int:
    """How many distinct indices fill `{}` in a key pattern (e.g. number of blocks); NodeError past MAX_BLOCKS."""
    import re
    rx = re.compile("^" + re.escape(pattern).replace(r"\{\}", r"(\d+)"))
    found = len({m.group(1) for k in state for m in [rx.match(k)] if m})
    if found > MAX_BLOCKS:
        raise NodeError(f"its tensor names number {found:,} blocks of {pattern.replace('{}', 'N').rstrip('.')}; published models "
                        f"have at most a few hundred (Kinograph reads at most {MAX_BLOCKS}): the file is damaged or made to hang "
                        "the loader. Get it again from where it was published")
    return found


def build(det, state: Dict[str, object], dtype, where: str):
    """The module for a detected file's (dequantised) tensors, in `dtype` on the CPU."""
    from accelerate import init_empty_weights
    from huggingface_hub.errors import StrictDataclassClassValidationError
    from nodes.generate.weights import strip_prefix
    fn = converter(det.family, det.role)
    if fn is None:
        raise NodeError(f"{where} is {det.describe()}: Kinograph cannot load that kind of file yet")
    if det.role != "checkpoint" and det.prefix:
        state = strip_prefix(state, det.prefix)
    unknown = "The file may be damaged or a variant Kinograph does not know."
    try:
        built = fn(state, det)
        check_claim(built.make, state, where)
        with init_empty_weights():
            module = built.make()
    except NodeError as exc:
        if where in str(exc):
            raise
        raise NodeError(f"{where}: {exc}") from None   # converters know the tensors, not the file
    # Converters read the model's sizes from named tensors: a file without one (a cut or edited LTX-2 checkpoint
    # lacking audio_proj_in) was a bare KeyError as the node's message, a tensor of too few dimensions a ValueError.
    except KeyError as exc:
        raise NodeError(f"{where} ({det.describe()}) lacks the tensor {exc.args[0]} (as diffusers names it), which "
                        f"gives the model's size. {unknown}") from None
    except (IndexError, ValueError, ZeroDivisionError, AssertionError, StrictDataclassClassValidationError) as exc:
        # the libraries check the sizes read too: diffusers asserts Qwen-Image's rotary width even, transformers'
        # strict configs (Qwen3-VL) refuse an odd head width; both were tracebacks out of the loader
        raise NodeError(f"{where} ({det.describe()}) holds tensors of shapes no such model has "
                        f"({str(exc.__cause__ or exc) or type(exc).__name__}). {unknown}") from None
    wanted = module.state_dict()
    # diffusers' convert_ldm_vae_checkpoint reads the file's tensors with .get(): one the file lacks (a VAE's
    # downsampler bias) came back as None and stopped the shape check below with an AttributeError traceback
    built.state_dict = _align_prefix({k: v for k, v in built.state_dict.items() if v is not None}, wanted)
    missing = [k for k in wanted if k not in built.state_dict]
    unexpected = [k for k in built.state_dict if k not in wanted]
    tied = set(getattr(module, "_tied_weights_keys", None) or ())
    missing = [k for k in missing if k not in tied and not _is_tied(k)]
    if missing or unexpected:
        raise NodeError(f"{where} ({det.describe()}) does not match the expected {type(module).__name__}: "
                        f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}, unexpected "
                        f"{unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}. {unknown}")
    bad = [k for k, v in built.state_dict.items() if k in wanted and tuple(v.shape) != tuple(wanted[k].shape)]
    if bad:
        k = bad[0]
        raise NodeError(f"{where} ({det.describe()}): tensor {k} has shape {tuple(built.state_dict[k].shape)}, "
                        f"expected {tuple(wanted[k].shape)}. {unknown}")
    # A tensor of whole numbers where the model keeps fractions (an int8 layer of a quantisation Kinograph does not
    # read, or a damaged header) was torch's RuntimeError 'While copying the parameter' with a traceback.
    k = next((k for k, v in built.state_dict.items() if k in wanted and v.is_floating_point() !=
              wanted[k].is_floating_point()), None)
    if k is not None:
        raise NodeError(f"{where} ({det.describe()}): tensor {k} holds {built.state_dict[k].dtype} values, where the "
                        f"model keeps {wanted[k].dtype} ones. {unknown}")
    module.load_state_dict(built.state_dict, strict=False, assign=True)
    _tie(module)
    if dtype is not None:
        _cast(module, dtype)
    return module.eval()


# Values a network may have beyond the file's own: its buffers (rotary tables) and a few tied or computed tensors.
# A file whose shapes make more is damaged or made to fill memory.
_CLAIM_SLACK = 1 << 24


def check_claim(make, state: Dict[str, object], where: str) -> None:
    """Refuse a file whose tensor shapes make a network far larger than the values it holds, from `make()` run on
    the meta device (nothing allocated): the sizes converters (and the depth models' loaders) read from shapes, a
    tensor of shape (4,000,000, 0) holding no byte among them, built for real under init_empty_weights, which moves
    parameters to the meta device only after making them (a Kandinsky 5 file of empty tensors asked the allocator
    for 64 TB, a RuntimeError traceback) and keeps buffers real (a rotary table 1,024 times its head's width)."""
    import itertools
    import torch
    from nodes.generate.meta_init import skip_init_on_meta
    skip_init_on_meta()     # this build and the real one after it initialise meta tensors only
    held = sum(int(t.numel()) for t in state.values() if hasattr(t, "numel"))
    try:
        with torch.device("meta"):
            dry = make()
    except NodeError:
        raise
    except Exception as exc:    # a constructor reading values back (.item()) cannot build there; the real build will say
        # but a layer too large for torch to count (an Anima LLLite FiLM 2e9 wide made a 2e9 x 2e9 matrix) is a claim
        # far past any file: built for real, its first layers asked the allocator for gigabytes before torch gave up
        if "overflow" not in str(exc):
            return
        raise NodeError(f"{where}: its tensor shapes make a network too large to count, far more than the file's "
                        f"{held:,} values: the file is damaged or made to fill memory. Get it again from where it was "
                        "published") from None
    made = sum(int(t.numel()) for t in itertools.chain(dry.parameters(), dry.buffers()))
    if made > 2 * held + _CLAIM_SLACK:
        raise NodeError(f"{where}: its tensor shapes make a network of {made:,} values, far more than the file's "
                        f"{held:,}: the file is damaged or made to fill memory. Get it again from where it was "
                        "published")


def fitted(make, state: Dict[str, object], where: str, what: str):
    """`make()`, checked first by check_claim, with `state` loaded into it (in eval mode); `what` (the model, named
    for the user) refused as a damaged file where its tensors do not fit the network their shapes describe."""
    from nodes.generate.weights import misfit
    check_claim(make, state, where)
    try:
        model = make()
    except ZeroDivisionError:       # a head count or group read from a size of 0 (check_claim leaves it to here)
        raise NodeError(f"{what} does not fit its own layout (a size its tensors give, such as its heads, is 0): the "
                        "file is incomplete or damaged; get it again") from None
    why = misfit(model, state)
    if why:
        raise NodeError(f"{what} does not fit its own layout ({why}): the file is incomplete or damaged; get it "
                        "again")
    return model.eval()


def _cast(module, dtype) -> None:
    """Cast to `dtype`, keeping the modules the class wants in float32 (as from_pretrained does)."""
    import torch
    keep = set(getattr(module, "_keep_in_fp32_modules", None) or ()) if dtype != torch.float32 else set()
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point():
            t.data = t.data.to(torch.float32 if keep & set(name.split(".")) else dtype)


def _align_prefix(given: dict, wanted: dict) -> dict:
    """The same tensors under the module's naming when the two differ by one leading prefix
    (transformers 4 vs 5 name CLIP's towers `text_model.`/`vision_model.` or not)."""
    if all(k in wanted for k in given):
        return given
    best, hits = given, sum(k in wanted for k in given)
    heads = {k.split(".", 1)[0] + "." for k in list(given)[:50] + list(wanted)[:50]}
    for p in heads:
        for cand in ({(k[len(p):] if k.startswith(p) else k): v for k, v in given.items()},
                     {p + k: v for k, v in given.items()}):
            n = sum(k in wanted for k in cand)
            if n > hits:
                best, hits = cand, n
    return best


def _is_tied(key: str) -> bool:
    # transformers ties these to the shared embedding; files omit them.
    return key in ("encoder.embed_tokens.weight", "lm_head.weight")


def _tie(module) -> None:
    tie = getattr(module, "tie_weights", None)
    if tie is not None:
        tie()
