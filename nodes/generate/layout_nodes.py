"""Layouts drawn as boxes (ComfyUI's CreateBoundingBoxes) and FLUX.3 klein's layout prompt (Flux3LayoutPrompt), and
several pictures to edit at once (ReferenceMultiLatent). The boxes' maths is in nodes/common/boxes.py, the
references' in nodes/generate/reference.py."""
from __future__ import annotations

from graph_engine import Input, NodeError, Param, node
from graph_engine.types import BOXES, CONDITIONING, LATENT, STRING, TEXT_ENCODER, VAE, VIDEO

_PICTURE = Input(optional=True, help="one more picture to edit or take from, after the ones before it")


@node("boxes.create", title="Create Boxes", category="Conditioning")
def boxes_create(ctx, width: int = Param(1024, min=1, max=16384, help="the canvas' width in pixels (the picture "
                                                                     "the boxes lay out)"),
                 height: int = Param(1024, min=1, max=16384, help="the canvas' height in pixels"),
                 boxes: str = Param("[]", help='the boxes as a JSON list, background first: {"x", "y", "width", '
                                               '"height"} in the canvas\' pixels and a "metadata" of "type" (obj or '
                                               'text), "text", "desc" and "palette" (ComfyUI\'s box editor '
                                               'writes this)')) -> BOXES:
    """Boxes laid out on a canvas, each with what goes in it (ComfyUI's CreateBoundingBoxes): feed them to
    text.flux3_layout to place things where a FLUX.3 klein picture draws them."""
    import json

    from nodes.common.boxes import from_editor
    try:
        rows = json.loads(boxes)
    except ValueError as e:
        raise NodeError(f"boxes is not a JSON list of boxes ({e}): write [] for none") from None
    if not isinstance(rows, list):
        raise NodeError("boxes must be a JSON list of boxes: write [] for none")
    return from_editor(width, height, rows)


@node("text.flux3_layout", title="FLUX.3 Layout Prompt", category="Conditioning")
def flux3_layout(ctx, prompt: str = Param("", kind="text", help="the caption; cite box N as <obj_N> to tie its words to it "
                                                               "(and a picture to edit as <ref_image_0>, ...)"),
                 boxes: BOXES = Input(optional=True, help="boxes.create's boxes")) -> STRING:
    """The prompt with FLUX.3 klein's layout table after it (ComfyUI's Flux3LayoutPrompt): a JSON list of the boxes
    in order as obj_1, obj_2, ..., each with its [y0, x0, y1, x1] on a 0-1000 grid over the canvas and its
    description. Palettes and words to letter are not read: say colours and text in the description. Without
    boxes the prompt is given back as written. Encode it with encode.text on FLUX.3 klein's text encoder
    (qwen3vl_4b, type flux3)."""
    from nodes.common.boxes import flux3_layout_prompt
    text = flux3_layout_prompt(prompt, boxes)
    ctx.log(f"layout prompt: {text}")       # the only place a headless run shows it (no node saves text)
    return text


@node("condition.references", title="Reference Latents (several pictures)", category="Conditioning", device="gpu",
      outputs={"positive": CONDITIONING, "negative": CONDITIONING, "latent": LATENT})
def condition_references(ctx, vae: VAE, positive: CONDITIONING, image: VIDEO = Input(help="the first picture to "
                                                                                         "edit (<ref_image_0>)"),
                         negative: CONDITIONING = Input(optional=True),
                         image2: VIDEO = _PICTURE, image3: VIDEO = _PICTURE, image4: VIDEO = _PICTURE,
                         resolution: str = Param("keep", choices=("keep", "resize", "match"),
                                                 help="keep: encode each picture at its size (MiniMax H3: at most "
                                                      "a 2048-pixel short side); resize: to about megapixels first, "
                                                      "keeping its shape; match (MiniMax H3): down to the video's "
                                                      "size in pixels, keeping its shape"),
                         megapixels: float = Param(1.0, min=0.01, max=16.0, help="each picture's size with resize, "
                                                                                 "in millions of pixels"),
                         latent: LATENT = Input(optional=True, help="MiniMax H3: the video latent (latent.empty) "
                                                                    "the pictures are references of"),
                         text_encoder: TEXT_ENCODER = Input(optional=True, help="MiniMax H3: its Qwen3-VL, to read "
                                                                                "positive's prompt after the "
                                                                                "pictures")):
    """Give an edit model (FLUX.2, FLUX.3 klein) several pictures at once (ComfyUI's ReferenceMultiLatent): each is
    encoded on its own and added, in order, to the prompt and the negative as a reference (condition.reference
    chained). The negative is the prompt where none is given. Sample the latent it gives (empty, the first picture's
    size) at denoise 1.

    MiniMax H3 (reference-to-video, ComfyUI's MiniMaxH3ReferenceToVideo): connect the video's latent and the text
    encoder; the prompt names the pictures <Picture 1>, <Picture 2>, ... in order, and the latent comes out as
    given."""
    from nodes.generate.reference import add_references
    pictures = [p for p in (image, image2, image3, image4) if p is not None]
    area = None if latent is None else {"match": latent.width * latent.height,
                                        "resize": megapixels * 1e6}.get(resolution)
    if resolution == "match" and latent is None:
        raise NodeError("resolution match sizes the pictures to the video's latent (MiniMax H3): connect latent, "
                        "or choose keep or resize")
    pos, neg, latent = add_references(vae, positive, negative, pictures,
                                      megapixels if resolution == "resize" else None, ctx.check, ctx.progress,
                                      latent, text_encoder, area)
    return {"positive": pos, "negative": neg, "latent": latent}
