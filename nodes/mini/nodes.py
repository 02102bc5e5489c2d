"""Nodes that belong to kinograph-mini, the bundled shapes-world model."""
from __future__ import annotations

from graph_engine import NodeError, Param, node
from graph_engine.types import MODEL


@node("guide.subject_consensus", title="Subject Consensus (kinograph-mini)", category="kinograph-mini",
      passes={"model": "model"})
def subject_consensus(ctx, model: MODEL,
                      strength: float = Param(0.5, zero="off", min=0.0, max=1.0,
                                              help="how far each frame's estimate moves towards the shared "
                                                   "template at every step (0 = off)")) -> MODEL:
    """Keep kinograph-mini's one subject the same size and shape in every frame: at each sampler
    step the frames' estimates are lined up on the subject (its measured path, and its size trend
    over the clip), averaged, and each frame near the subject is pulled towards that average.

    A prior of the shapes world: the subject is what differs from a plain border colour, in pixels
    of a 48x48 pixel-space model, so other model families (latent space) are refused. It keeps
    steady growth, zooms and any path (bouncing too), and leaves the background away from the
    subject as the model drew it. With two or more subjects it merges them or loses one: leave it
    out for such scenes. Sampling takes ~15% longer."""
    if model.family != "mini":
        raise NodeError(f"guide.subject_consensus works on kinograph-mini's pixels only (load.mini); this model "
                        f"is {model.family!r}, which samples in a latent space where its notion of a subject "
                        f"does not hold. Remove the node from this graph")
    from nodes.mini.subject_consensus import ConsensusWrapper
    return model.with_wrapper(ConsensusWrapper(strength))
