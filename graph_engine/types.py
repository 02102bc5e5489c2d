"""Socket types: the names of the values that flow on edges, their colours and port names.

Third-party packs may register more with `register_type`. The registry is plain data so the
engine, the CLI and the editor agree on what can connect to what."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True, eq=False)
class SocketType:
    name: str
    color: str = "#a0a0a0"
    port: str = ""                      # default port name for a single input/output of this type
    help: str = ""
    # Values of this type that may also feed this socket, with a converter (e.g. IMAGE -> VIDEO).
    accepts: Dict[str, Callable[[Any], Any]] = field(default_factory=dict, compare=False, hash=False)
    # What to do instead when a value of another type is refused here, by that type's name.
    hints: Dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __repr__(self):
        return self.name

    def can_take(self, other: "SocketType") -> bool:
        return other is self or self.name == "ANY" or other.name == "ANY" or other.name in self.accepts

    def converter(self, other: "SocketType") -> Optional[Callable[[Any], Any]]:
        return self.accepts.get(other.name)

    def refusal_hint(self, other: "SocketType") -> str:
        """": what to do instead" when `other` is refused here and a pack said what, else ""."""
        hint = self.hints.get(other.name)
        return f": {hint}" if hint else ""


_TYPES: Dict[str, SocketType] = {}


def register_type(name: str, color: str = "#a0a0a0", port: str = "", help: str = "") -> SocketType:
    if name in _TYPES:
        return _TYPES[name]
    t = SocketType(name, color, port or name.lower(), help)
    _TYPES[name] = t
    return t


def get_type(name: str) -> SocketType:
    return _TYPES[name]


def all_types() -> Dict[str, SocketType]:
    return dict(_TYPES)


def add_conversion(to: SocketType, frm: SocketType, fn: Callable[[Any], Any]) -> None:
    to.accepts[frm.name] = fn


def add_hint(to: SocketType, frm: SocketType, text: str) -> None:
    """Say what to do when a `frm` value is linked to a `to` socket (the node that converts it)."""
    to.hints[frm.name] = text


VIDEO = register_type("VIDEO", "#e0a030", help="a lazy clip of uint8 RGB frames (and their alpha, if any)")
IMAGE = register_type("IMAGE", "#50b0e0", help="one uint8 RGB frame (H x W x 3)")
MASK = register_type("MASK", "#b0b0b0", help="float32 H x W in [0, 1], or a clip of them (one mask per frame)")
LATENT = register_type("LATENT", "#e070c0", help="latent tensor [B,C,T,h,w] and the family that made it")
MODEL = register_type("MODEL", "#9070e0", help="a denoiser handle from the model manager")
VAE = register_type("VAE", "#e05050", help="a VAE handle")
TEXT_ENCODER = register_type("TEXT_ENCODER", "#f0d060", port="text_encoder", help="a text encoder handle")
IMAGE_ENCODER = register_type("IMAGE_ENCODER", "#60d0a0", port="image_encoder", help="an image encoder handle")
IPADAPTER = register_type("IPADAPTER", "#40c0c0", port="ipadapter", help="an IP-Adapter (and the CLIP vision "
                          "model found with it)")
EMBEDS = register_type("EMBEDS", "#40a0a0", port="embeds", help="CLIP vision features of reference pictures, as an "
                       "IP-Adapter reads them (ipadapter.encode)")
STYLE_MODEL = register_type("STYLE_MODEL", "#c0a0f0", port="style_model", help="a style model (FLUX.1 Redux)")
CONDITIONING = register_type("CONDITIONING", "#f0a060", help="prompt embeddings and masks")
CAMERA = register_type("CAMERA", "#70e070", help="per-frame intrinsics and camera-to-world matrices")
AUDIO = register_type("AUDIO", "#a0e0a0", help="a span of a sound file (io.load_audio)")
AUDIO_ENCODER = register_type("AUDIO_ENCODER", "#80c080", port="audio_encoder",
                              help="a speech encoder (wav2vec2) handle")
AUDIO_EMBEDS = register_type("AUDIO_EMBEDS", "#60a060", port="audio_embeds",
                             help="a speech encoder's features of a sound, every layer's (encode.audio)")
MODEL_PATCH = register_type("MODEL_PATCH", "#a080d0", port="model_patch",
                            help="weights laid over a model's (InfiniteTalk's audio layers; load.model_patch)")
FLOW = register_type("FLOW", "#60a0a0", help="dense optical flow per frame pair")
TRACKS = register_type("TRACKS", "#a0c060", help="point trajectories")
POSE_KEYPOINT = register_type("POSE_KEYPOINT", "#c0e060", port="keypoints",
                              help="people's whole-body keypoints per frame (pose.sdpose_keypoints)")
GEOMETRY = register_type("GEOMETRY", "#60c0e0", help="per-frame depth and the maps a geometry model gives with it "
                                                    "(sky, confidence; a mask, points and normals): depth.da3, depth.moge")
BOXES = register_type("BOXES", "#e0c080", port="boxes",
                      help="boxes on a canvas, in its pixels, with a kind, words and a description each "
                           "(nodes/common/boxes.py; ComfyUI's BOUNDING_BOX and box elements)")
MESH = register_type("MESH", "#c0a0e0", help="a triangle mesh: vertices, faces and what a vertex may carry (colour, "
                     "normal, texture coordinate) with its texture (nodes/common/mesh.py; ComfyUI's MESH)")
VOXEL = register_type("VOXEL", "#a080c0", help="a dense grid of occupancy or signed distance over a box "
                      "(nodes/common/mesh.py; ComfyUI's VOXEL)")
SPLAT = register_type("SPLAT", "#c0a0a0", help="3-D Gaussians: positions, scales, rotations, opacities and colour "
                      "harmonics (nodes/common/splat.py; ComfyUI's SPLAT)")
NOISE = register_type("NOISE", "#808080", help="seeded noise tensor")
SIGMAS = register_type("SIGMAS", "#c0c0c0", help="noise levels of a sampling schedule")
UPSCALE_MODEL = register_type("UPSCALE_MODEL", "#c08040", port="upscale_model", help="a super-resolution network")
INT = register_type("INT", "#4080c0")
FLOAT = register_type("FLOAT", "#40a0a0")
STRING = register_type("STRING", "#a0a040")
BOOL = register_type("BOOL", "#a06040")
ANY = register_type("ANY", "#ffffff", port="value", help="any value")


def _image_to_video(img):
    from .clip import Clip
    return Clip.from_array(img[None], fps=24.0)


def _image_to_mask(img):
    import numpy as np
    # Rec. 709 luma: a painted picture's white areas become 1.
    return (img[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)) / 255.0


def _is_image(v) -> bool:
    import numpy as np
    return isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 3 and v.shape[-1] == 3


# How to tell a value of these types where only the value says its type (what an ANY output, math.switch's, passes on)
_IS = {"IMAGE": _is_image}


def value_converter(to: SocketType, value: Any) -> Optional[Callable[[Any], Any]]:
    """The converter `to` applies to `value`, an ANY output's, as to a direct link of the type the value is (a
    switch's picked picture into a clip input: a one-frame clip); None when it is no value `to` converts."""
    for name, fn in to.accepts.items():
        if name in _IS and _IS[name](value):
            return fn
    return None


add_conversion(VIDEO, IMAGE, _image_to_video)
add_conversion(MASK, IMAGE, _image_to_mask)
add_conversion(FLOAT, INT, float)

PY_PARAM_TYPES: Dict[type, str] = {int: "int", float: "float", str: "str", bool: "bool"}
