"""A quantised layer's weight kept as the file stores it, expanded only for the operation that reads it.

ComfyUI's quantised files (fp8_scaled, int8_convrot, NVFP4, MXFP8) hold a model in a half to an eighth of its
bf16 size. Expanded to bf16 (or float32) at load, as Kinograph did, a 16 GB card held the bf16 model: GPT-OSS-20B's
NVFP4 text encoder took about 42 GB where ComfyUI needs about 12. A PackedWeight keeps the stored tensors (the
packed values, their scales) and presents itself as the plain matrix of the compute dtype: a model built with it
(load_state_dict(..., assign=True)) holds the stored bytes, and each operation on it (the matmul of F.linear, a
convolution, an index) runs on the matrix expanded for that operation alone and then dropped, as ComfyUI's
comfy/ops.py and comfy/quant_ops.py (QuantizedTensor) do. The expansion is the loader's own
(block_quant.block_weight, weights.convrot_weight, weight * scale), so the values are those the expanded load gave.

Kept packed through: detach (a Parameter, state_dict), .to(device) and .to(dtype) (the stored tensors move; a cast
is remembered and applied to the expanded matrix, so the values are those of the expanded weight cast alike), a transpose of the last two dimensions (GPT-OSS's expert banks are stored transposed) and
one expert taken from a bank (only that expert is expanded; a grouped matmul or an index over a bank expands only the
experts routed to). An in-place change (a LoRA fused into the weight,
load_state_dict copying into it) turns the weight into the plain matrix first, shared by every view of it: exact,
at the plain matrix's memory. A LoRA loaded as diffusers / PEFT do it, a low-rank path beside the layer, leaves the
weight packed. torch.compile traces through it (__tensor_flatten__ names the stored tensors while it compiles), the
expansion in the compiled graph."""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch.utils._pytree import tree_map

aten = torch.ops.aten
_INNER = "_stored_"


class Stored:
    """One layer's stored tensors and how they expand (kind: "block" NVFP4/MXFP8, "convrot", "scaled" fp8 times
    its scale, "cast" plain fp8, "gguf" GGUF's quantised blocks, "plain" an already expanded matrix); shared by the views of one weight so that an
    in-place change reaches them all."""

    def __init__(self, kind: str, layer: str, tensors: Dict[str, torch.Tensor], fmt: Optional[str] = None,
                 cfg: Optional[dict] = None):
        self.kind, self.layer, self.tensors, self.fmt, self.cfg = kind, layer, tensors, fmt, cfg

    def moved(self, device) -> "Stored":
        return Stored(self.kind, self.layer, {k: v.to(device) for k, v in self.tensors.items()}, self.fmt, self.cfg)

    def apart(self) -> "Stored":
        """The same tensors, not shared: an in-place change makes one's tensors plain (_plain replaces them), not
        the other's; for a copy (a cast) that holds no new bytes until then."""
        return Stored(self.kind, self.layer, dict(self.tensors), self.fmt, self.cfg)

    def copied(self) -> "Stored":
        return Stored(self.kind, self.layer, {k: v.clone() for k, v in self.tensors.items()}, self.fmt, self.cfg)

    def rows(self, index) -> "Stored":
        """The stored tensors of a matrix's rows `index` alone: the scales of kinds block, scaled and cast are per
        row (a block format's per row and block, [1, rows, blocks]) or for the whole matrix."""
        t, n = self.tensors, self.tensors["q"].shape[0]
        per_row = {k: v.ndim == t["q"].ndim and v.shape[0] == n for k, v in t.items()}
        picked = {k: v[:, index] if k == "blocks" else v[index] if per_row[k] else v for k, v in t.items()}
        return Stored(self.kind, self.layer, picked, self.fmt, self.cfg)

    def nbytes(self) -> int:
        """The stored tensors' bytes, each its own (the parts of a split matrix share the whole's storage, and
        together hold it)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def expand(self, expert, dtype) -> torch.Tensor:
        """The plain matrix (of a bank, expert `expert`'s alone, or the experts a 1-D index tensor names, stacked),
        in `dtype`, in the stored orientation."""
        t = self.tensors
        one = isinstance(expert, int)
        if self.kind == "block":       # the scales checked at load: expand() reads them without a check
            from nodes.generate.block_quant import expand
            parts = [t["q"], t["blocks"], t.get("tensor_scale")]
            if expert is not None:      # those experts' weights and scales (each expert's scales are its own)
                parts = [p if p is None else p[expert:expert + 1] if one else p[expert] for p in parts]
            w = expand(self.fmt, *parts, dtype)
            return w[0] if one else w
        if self.kind == "cast" and expert is not None:
            return t["q"][expert].to(dtype)
        if self.kind == "gguf":
            from nodes.generate.weights import gguf_expand
            w = gguf_expand(t["q"], self.cfg, dtype)
        elif self.kind == "convrot":
            from nodes.generate.weights import rotate_back       # the scale checked at load
            w = rotate_back(t["q"], t["scale"], self.cfg, dtype)
        elif self.kind == "scaled":        # the loader's own maths: float32 product, then the dtype
            w = (t["q"].to(torch.float32) * t["scale"]).to(dtype)
        else:
            w = t["q"].to(dtype)
        return w if expert is None else w[expert]


class PackedWeight(torch.Tensor):
    """A weight of the given shape whose values are `stored` expanded into the dtypes of `casts` in turn (the load's
    dtype, then each cast since: the values the expanded weight cast the same way had; the last is its dtype);
    `expert` one matrix of a bank, `transposed` the last two dimensions swapped."""

    @staticmethod
    def __new__(cls, stored, shape=None, casts: tuple = (), expert: Optional[int] = None, transposed: bool = False,
                requires_grad: bool = False):
        if isinstance(stored, PackedWeight):
            # accelerate moves a parameter (sequential CPU offload) as type(param)(moved, requires_grad=...)
            return stored._like()
        if not isinstance(stored, Stored):
            # ... and `moved` is a plain tensor where the weight was made plain (a LoRA fused into it, a type
            # expanded once at its first use): a plain PackedWeight of it
            return PackedWeight(Stored("plain", "", {"q": stored}), stored.shape, (stored.dtype,))
        device = next(iter(stored.tensors.values())).device
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=casts[-1], device=device, requires_grad=False)

    def __init__(self, stored, shape=None, casts: tuple = (), expert: Optional[int] = None, transposed: bool = False,
                 requires_grad: bool = False):
        if isinstance(stored, Stored):        # else made whole by __new__
            self.stored, self.casts, self.expert, self.transposed = stored, casts, expert, transposed

    # Every operation reaches __torch_dispatch__ (none is run on the wrapper, which holds no values itself)
    __torch_function__ = torch._C._disabled_torch_function_impl

    def __repr__(self):
        return (f"PackedWeight({self.stored.layer}, {self.stored.fmt or self.stored.kind}, shape={tuple(self.shape)}, "
                f"dtype={self.dtype}, device={self.device})")

    # Module.to() / .half() replace a parameter that is a wrapper like this one whole (torch.utils.swap_tensors),
    # keeping what this object holds; without these it set .data, which moved none of the stored tensors
    def __tensor_flatten__(self):
        if torch.compiler.is_compiling():
            # torch.compile traces the expansion with the stored tensors as the weight's inner tensors (fake ones
            # while it traces), rebuilt into a Stored of their own: the compiled graph expands as the eager one does
            s = self.stored
            return [_INNER + k for k in sorted(s.tensors)], ((s.kind, s.layer, s.fmt, s.cfg), self._casts(),
                                                            self.expert, self.transposed)
        return [], (self.stored, self._casts(), self.expert, self.transposed)

    def __getattr__(self, name):
        if name.startswith(_INNER):         # __tensor_flatten__'s names for the stored tensors
            return self.stored.tensors[name[len(_INNER):]]
        raise AttributeError(name)

    @staticmethod
    def __tensor_unflatten__(inner, ctx, outer_size, outer_stride):
        stored = ctx[0]
        if isinstance(stored, tuple):       # traced by torch.compile (__tensor_flatten__)
            stored = Stored(*stored[:2], {k[len(_INNER):]: v for k, v in inner.items()}, *stored[2:])
        return PackedWeight(stored, outer_size, *ctx[1:])

    def __setitem__(self, index, value):
        """weight[...] = value: the weight made plain first (as by any in-place change), so that the slice written
        is a view of it; written into a packed slice (a part of its own) or a temporary expansion, it was lost."""
        self._follow()
        self._plain()
        torch.Tensor.__setitem__(self, index, value)

    def dequantize(self) -> torch.Tensor:
        """The plain tensor this weight stands for."""
        self._follow()
        w = self._values(self.expert)
        return w.transpose(-1, -2) if self.transposed else w

    def experts(self, index: torch.Tensor) -> torch.Tensor:
        """The plain matrices of a bank's experts `index` (1-D), stacked: those experts alone expanded."""
        self._follow()
        w = self._values(index.to(self.stored.tensors["q"].device))
        return w.transpose(-1, -2) if self.transposed else w

    def _values(self, expert) -> torch.Tensor:
        """The stored orientation's values (of expert `expert` or experts, else all), through the casts in turn."""
        s = self.stored
        if s.kind == "gguf" and s.cfg.get("once"):
            # a type only gguf-py's numpy code dequantises (weights._numpy_only): expanded once, here, on the
            # weight's device and in its dtype (the compute dtype by now), and kept so
            s.tensors, s.kind, s.fmt = {"q": self._expanded(None)}, "plain", None
        if s.kind == "plain":     # made plain in place: already the values, of its dtype
            return s.expand(expert, self.dtype)
        return self._expanded(expert)

    def _expanded(self, expert) -> torch.Tensor:
        w = self.stored.expand(expert, self.casts[0])
        for dtype in self._casts()[1:]:
            w = w.to(dtype)
        return w

    def held(self) -> int:
        """The bytes this weight holds: its stored tensors', or its expanded matrix's where it is kept expanded
        after its first use (a gguf-py-only GGUF type, weights._numpy_only), so that a budget counts them before."""
        s = self.stored
        if s.kind == "gguf" and s.cfg.get("once"):      # the whole stored tensor's values (a bank's, for an expert)
            from diffusers.quantizers.gguf.utils import GGML_QUANT_SIZES
            block, size = GGML_QUANT_SIZES[s.cfg["type"]]
            return s.tensors["q"].numel() // size * block * self.element_size()
        return s.nbytes()

    def _follow(self):
        """`param.data = param.data.to(...)` (converters' _cast does it) gives this object the new device and dtype
        but keeps what it holds: the stored tensors follow it to that device, once; the dtype is _casts' last."""
        if next(iter(self.stored.tensors.values())).device != self.device:
            self.stored = self.stored.moved(self.device)

    def _casts(self) -> tuple:
        """casts, ending with this weight's dtype (which `.data =` may have changed alone)."""
        return self.casts if self.casts[-1] == self.dtype else self.casts + (self.dtype,)

    def _like(self, stored=None, shape=None, dtype=None, transposed=None) -> "PackedWeight":
        casts = self._casts() if dtype in (None, self.dtype) else self._casts() + (dtype,)
        return PackedWeight(stored or self.stored, self.shape if shape is None else shape, casts, self.expert,
                            self.transposed if transposed is None else transposed)

    def _plain(self):
        """Become the plain matrix (for an in-place change): the shared stored tensors are replaced by it."""
        s = self.stored
        if s.kind != "plain":
            # through the casts: a float16 copy of a bf16 load is the bf16 matrix cast, not the stored one cast
            s.tensors, s.kind, s.fmt = {"q": self._expanded(None)}, "plain", None
        w = s.tensors["q"] if self.expert is None else s.tensors["q"][self.expert]
        return w.transpose(-1, -2) if self.transposed else w

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten.cat.default and len(args[0]) == 1 and isinstance(args[0][0], PackedWeight):
            # diffusers' FLUX.1 converter writes each of a double block's q, k, v parts as torch.cat([part]): a copy
            # of the one part, kept packed (its own Stored: an in-place change of one leaves the other alone)
            one = args[0][0]
            one._follow()
            return one._like(stored=one.stored.apart())
        if func in _grouped_mms() and len(args) > 1 and _is_bank(args[1]):
            return _grouped(func, args, kwargs)
        me = args[0] if args and isinstance(args[0], PackedWeight) else None
        if me is not None:
            if func is aten.index.Tensor and _is_bank(me) and len(args[1]) == 1 and args[1][0] is not None \
                    and not args[1][0].dtype.is_floating_point and args[1][0].dtype != torch.bool:
                return _indexed(me, args[1][0])
            me._follow()
            kept = _kept(me, func, args, kwargs)
            if kept is None:
                kept = _rows_kept(me, func, args, kwargs)
            if kept is not None:
                return kept
            if func is aten.embedding.default and _by_rows(me):
                return _looked_up(me, args[1])
            if func._schema.is_mutable:
                written = [i for i, a in enumerate(func._schema.arguments)
                           if a.alias_info is not None and a.alias_info.is_write]
                if written == [0]:
                    out = func(me._plain(), *tree_map(_plain, args[1:]), **tree_map(_plain, kwargs))
                    return me if out is not None else None
        return func(*tree_map(_plain, args), **tree_map(_plain, kwargs))


def _plain(a):
    return a.dequantize() if isinstance(a, PackedWeight) else a


# A mixture of experts routes each token to a few experts of a bank (GPT-OSS-20B: 4 of 32); the two ways transformers
# computes a bank read only those experts' matrices, so only those are expanded (the whole bank was, each layer of each
# forward: 1 GB of GPT-OSS-20B's gate_up_proj in bf16 for a one-token step that reads 133 MB of it). An expert's
# matrix expands alone to the whole bank's (its scales are its own), so the values are the same.

def _is_bank(a) -> bool:
    return isinstance(a, PackedWeight) and a.ndim == 3 and a.expert is None


def _grouped_mms() -> tuple:
    """The grouped matmuls transformers' grouped_mm experts call with a bank as their second argument: torch's, and
    its own fallback (registered when transformers.integrations.moe is imported)."""
    ops = [getattr(aten, "_grouped_mm", None)]
    try:
        ops.append(torch.ops.transformers.grouped_mm_fallback)
    except (AttributeError, RuntimeError):
        pass
    return tuple(op.default for op in ops if op is not None)


def _grouped(func, args, kwargs):
    """A grouped matmul of a bank (offs: where each expert's rows of the input end) over the experts that have rows
    alone: their matrices and their offsets (an expert without rows adds none to the input, and its group is empty)."""
    offs = args[2] if len(args) > 2 else kwargs["offs"]
    ends = offs.to(torch.int64)
    counts = torch.diff(ends, prepend=ends.new_zeros(1))
    hit = counts.nonzero().flatten()
    if hit.numel() == 0:        # no rows at all: one empty group keeps the call well formed
        hit = counts.new_zeros(1)
    bank = args[1].experts(hit)
    rest = dict(kwargs)
    if len(args) > 2:
        return func(args[0], bank, offs[hit], *args[3:], **rest)
    rest["offs"] = offs[hit]
    return func(args[0], bank, *args[2:], **rest)


def _indexed(bank: PackedWeight, index: torch.Tensor) -> torch.Tensor:
    """bank[index] (transformers' batched_mm experts: a matrix per routed token), the distinct experts expanded once."""
    wanted, where = torch.unique(index, return_inverse=True)
    return bank.experts(wanted)[where]


def _by_rows(me: PackedWeight) -> bool:
    """Whether rows of `me` expand alone to the whole's rows: a matrix whose expansion goes element by element or
    block by block along a row (a ConvRot row's float32 rotation rounds by how many rows go in; a GGUF tensor
    reshaped from its stored rows has rows of its own)."""
    s = me.stored
    whole = s.kind in ("block", "scaled", "cast") or (s.kind == "gguf" and s.cfg["shape"] is None)
    return me.ndim == 2 and me.expert is None and not me.transposed and whole


def _rows_kept(me: PackedWeight, func, args, kwargs) -> Optional[list]:
    """A split or a slice of a matrix's rows (converters cutting a fused q, k, v) as packed parts over the stored
    tensors' rows (views: no bytes copied), else None. A part is a matrix of its own: an in-place change of one
    (a part made plain) does not reach the others."""
    if not _by_rows(me):
        return None
    rows = me.shape[0]
    if func in (aten.split.Tensor, aten.split_with_sizes.default):
        dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
        sizes = args[1] if func is aten.split_with_sizes.default else [args[1]] * (-(-rows // args[1]))
        edges = [min(rows, sum(sizes[:i])) for i in range(len(sizes) + 1)]
    elif func is aten.slice.Tensor:
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        cut = range(rows)[slice(*(list(args[2:4]) + [None] * 2)[:2])]
        if (args[4] if len(args) > 4 else kwargs.get("step", 1)) != 1:
            return None
        edges = [cut.start, max(cut.start, cut.stop)]
    else:
        return None
    if dim % 2 != 0:
        return None
    parts = [PackedWeight(me.stored.rows(slice(a, b)), (b - a, me.shape[1]), me._casts())
             for a, b in zip(edges, edges[1:])]
    return parts if func is not aten.slice.Tensor else parts[0]


def _looked_up(table: PackedWeight, tokens) -> torch.Tensor:
    """F.embedding's rows of a packed table, only those rows expanded (the whole table was, each call: T5-XXL's
    32128 x 4096 for 77 tokens)."""
    flat = tokens.reshape(-1).to(table.stored.tensors["q"].device)
    rows = PackedWeight(table.stored.rows(flat), (flat.numel(), table.shape[1]), table._casts()).dequantize()
    return rows.reshape(*tokens.shape, table.shape[1])


def _kept(me: PackedWeight, func, args, kwargs) -> Optional[PackedWeight]:
    """The result of the operations that keep the weight packed (see the module docstring), else None."""
    if func in (aten.detach.default, aten.alias.default):
        return me._like()
    if func is aten.clone.default:
        return me._like(stored=me.stored.copied())
    if func is aten._to_copy.default:
        dtype = kwargs.get("dtype") or me.dtype
        device = kwargs.get("device")
        if (not dtype.is_floating_point or kwargs.get("layout") not in (None, torch.strided)
                or me.stored.kind == "plain"):         # made plain in place: torch's copy of the matrix
            return None
        moved = device is not None and torch.device(device) != me.device
        return me._like(stored=me.stored.moved(device) if moved else me.stored.apart(), dtype=dtype)
    if me.ndim < 2:
        return None
    if func is aten.t.default or (func is aten.transpose.int and
                                  sorted(d % me.ndim for d in args[1:3]) == [me.ndim - 2, me.ndim - 1]):
        return me._like(shape=(*me.shape[:-2], me.shape[-1], me.shape[-2]), transposed=not me.transposed)
    if func is aten.select.int and me.ndim == 3 and me.expert is None and args[1] % 3 == 0:
        index = args[2] % me.shape[0]
        return PackedWeight(me.stored, me.shape[1:], me._casts(), index, me.transposed)
    return None


def held_bytes(tensors) -> int:
    """The bytes the given tensors (a module's parameters and buffers, a state dict's values) hold, each storage
    once: a PackedWeight's stored tensors, not the matrix it stands for."""
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, PackedWeight):
            key, size = ("stored", id(t.stored)), t.held()
        else:
            storage = t.untyped_storage()
            key, size = (t.device, storage.data_ptr()), storage.nbytes()
        if key not in seen:
            seen.add(key)
            total += size
    return total


def module_bytes(module) -> int:
    """held_bytes of a module's parameters and buffers."""
    return held_bytes(list(module.parameters()) + list(module.buffers()))
