"""Text encoder of kinograph-mini: a word tokenizer for the shapes-world caption grammar and a small
transformer that turns the words into per-token embeddings the video model attends to.

`MiniTextEncoder.encode(prompts) -> (emb [B,L,D] float, mask [B,L] bool)`. Every prompt starts with a
begin token, so the empty prompt "" (the unconditional branch of classifier-free guidance) still has
one valid token. Words outside the vocabulary raise `graph_engine.NodeError` listing the known words.

With `motion_features` the begin token's first MOTION_FEATURES numbers are not learned but the
caption's parsed screen motion (`shapes_world.screen_motion`: dx, dy of the first and the second
object, in image widths over the clip); the video model turns them into co-moving coordinates
(see `KinographMini._with_coordinates`). They ride in the embedding so that prompt schedules and
everything else that carries conditioning carry them unchanged (a blend of two prompts blends their
motions).
"""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from graph_engine import NodeError
from nodes.mini.prompt_words import BOS, MAX_TOKENS, PAD, prompt_problem
from nodes.mini.shapes_world import (BACKGROUND_KINDS, CAMERAS, COLOURS, MOTIONS, SHAPES,
                                     MOTION_FEATURES, normalise_words, screen_motion)

GRAMMAR_WORDS = sorted({"a", "and", "on", "background", "with", "the", "camera", *COLOURS, *SHAPES,
                        *" ".join(MOTIONS).split(), *" ".join(CAMERAS).split(), *BACKGROUND_KINDS}
                       - {"static", "plain"})
VOCABULARY = [PAD, BOS, *GRAMMAR_WORDS]


def tokenize(prompts: list[str], vocabulary: list[str] = VOCABULARY,
             max_tokens: int = MAX_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B,L] (long) and validity mask [B,L] (bool), L = max_tokens."""
    index = {w: i for i, w in enumerate(vocabulary)}
    ids = torch.zeros(len(prompts), max_tokens, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        problem = prompt_problem(prompt, vocabulary, max_tokens)
        if problem:
            raise NodeError(problem)
        words = normalise_words(prompt)
        ids[row, 0] = index[BOS]
        ids[row, 1:len(words) + 1] = torch.tensor([index[w] for w in words], dtype=torch.long)
    return ids, ids != index[PAD]


class MiniTextEncoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, vocabulary: tuple[str, ...] = tuple(VOCABULARY), max_tokens: int = MAX_TOKENS,
                 dim: int = 128, layers: int = 2, heads: int = 4, motion_features: bool = False):
        super().__init__()
        self.embed = nn.Embedding(len(vocabulary), dim)
        self.position = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids) + self.position[: ids.shape[1]]
        h = self.encoder(h, src_key_padding_mask=~mask)
        return self.norm(h) * mask[..., None]

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = tokenize(list(prompts), list(self.config.vocabulary), self.config.max_tokens)
        ids, mask = ids.to(self.device), mask.to(self.device)
        emb = self.forward(ids, mask)
        if self.config.motion_features:
            motion = torch.tensor([[v for obj in screen_motion(p) for v in obj] for p in prompts],
                                  dtype=emb.dtype, device=emb.device)
            begin = torch.cat([motion, emb[:, 0, MOTION_FEATURES:]], dim=-1)
            emb = torch.cat([begin[:, None], emb[:, 1:]], dim=1)
        return emb, mask
