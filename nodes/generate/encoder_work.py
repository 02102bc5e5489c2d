"""The work of a T5-style text encoder's pass over a prompt, from its weights' shapes: Wan's UMT5-XXL reads each
prompt padded to 512 tokens (5.7B weights: 5.8 TFLOP a prompt, minutes on a CPU), which the estimate left out."""
from __future__ import annotations

import math
import re
from typing import Dict, Tuple

_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.")


def t5_encoder_flops(shapes: Dict[str, Tuple[int, ...]], tokens: int) -> float:
    """FLOPs of one prompt of `tokens` tokens through a T5 / UMT5 encoder of these shapes (HF names): 2 per weight
    per token for its projections, and each block's attention over the tokens; the token and relative-position
    embeddings are looked up, not multiplied."""
    weights = sum(math.prod(s) for k, s in shapes.items()
                  if _BLOCK.match(k) and len(s) == 2 and "relative_attention_bias" not in k)
    inner = [s[0] for k, s in shapes.items() if _BLOCK.match(k) and k.endswith("SelfAttention.q.weight")]
    return 2.0 * weights * tokens + 4.0 * tokens * tokens * sum(inner)
