"""Whether a quantised file's layers stay packed in memory (nodes/generate/packed_weight.py) or are expanded once at
load, when the caller does not say.

Packed, a layer is expanded again for every operation that reads it. On a GPU that is a small part of a step and
the card's memory is what a run is short of, so packed it is (ComfyUI keeps them so too). On the CPU the same
expansion is slow next to the matmul it feeds: bench/packed_weights.py measured a step 2.5 to 10 times the expanded
model's (4 layers of 2048 x 2048, 64 tokens: NVFP4 818 ms against 162 ms, int8_convrot 1917 against 181); there the
expanded model is kept unless it would take more than SHARE of the RAM available now, where packed is what lets the
run fit at all. Swap is not counted: weights read at every step and swapped out would be read back from disk each
step. Each file decides as it loads, so a text encoder expanded first leaves less free for the transformer after it.

The device is the one the loading run computes on (graph_engine.devices.run_device: the run's --device, or 'auto's
choice), not whether the machine has a GPU: a run put on the CPU of a machine with a GPU gets the CPU's choice."""
from __future__ import annotations

from typing import Optional

# Of the memory free at load, what an expanded model may take: the rest is for the run's other models (a text
# encoder beside the transformer, a VAE) and its activations.
SHARE = 0.5


def keep_packed(expanded_bytes: int, gpu: bool, free: Optional[int]) -> bool:
    """Packed for a run on a GPU, or where memory free is unknown, or where the expanded weights
    (`expanded_bytes`) would take more than SHARE of the `free` bytes; expanded otherwise."""
    return gpu or free is None or expanded_bytes > SHARE * free


def keep_packed_here(expanded_bytes: int) -> bool:
    """keep_packed for the device the loading run computes on and the RAM available now."""
    from graph_engine.devices import run_device
    from nodes.common.stream import available_ram
    return keep_packed(expanded_bytes, run_device() != "cpu", available_ram())
