"""Where the files Kinograph ships beside its code are: resources/ (model configs, theme, bundled models,
sample pictures) and examples/.

In a checkout (and `make`'s editable install) they are the repository's own top-level folders. A wheel can
only install files inside packages, so setup.py copies both folders into graph_engine/_shipped/ when it
builds one; a `pip install kinograph` finds them there. Both keep their layout side by side, so an example's
`../resources/samples/coffee.png` reads the same file either way."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def shipped(name: str) -> Path:
    """The folder `name` ("resources" or "examples") of this Kinograph: the installed copy, else the checkout's."""
    # A real path, not a Traversable: diffusers, safetensors and Qt's stylesheet open these by file name, and a
    # wheel installs unpacked.
    packaged = Path(str(resources.files(__package__) / "_shipped" / name))
    return packaged if packaged.is_dir() else CHECKOUT / name


def resource(*parts: str) -> Path:
    """A file or folder under resources/, e.g. resource("model_configs", "sd", "lotus_prompt.json")."""
    return shipped("resources").joinpath(*parts)
