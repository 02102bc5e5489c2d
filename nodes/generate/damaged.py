"""Whether a model file a workflow names (or a weights file of a diffusers folder it names) is damaged, for
`kinograph validate` and the check before a run: a cut-off download was said ok, and the run stopped at its loader
minutes later. Headers only (detect.check_file), each file checked once until it changes."""
import functools
from pathlib import Path
from typing import List, Optional

from graph_engine import NodeError
from nodes.generate.detect import WEIGHT_EXT, check_file, loaded_weights


def damaged(path) -> Optional[str]:
    """What is wrong with the weights at `path` (a file, or a folder whose weight files its loader reads are in it or
    one folder down, as a diffusers folder's are), else None. A named pipe under a weights name is named too
    (check_file), not opened."""
    path = Path(path)
    for f in _read_weights(path) if path.is_dir() else [path]:
        try:
            stat = f.stat()
        except OSError:
            continue        # gone since it was found: the loader says so
        said = _damaged(str(f), (stat.st_size, stat.st_mtime_ns))
        if said:
            return said
    return None


def _read_weights(folder: Path) -> List[Path]:
    """The weight files diffusers and transformers read of `folder` (in each place, detect.loaded_weights). A
    pipeline's (model_index.json) own root is read by neither: Hugging Face's SDXL folder holds the single-file
    checkpoint there, which a clone pulling only the parts leaves as a Git LFS pointer, and that refused a folder
    that loads."""
    places = [d for d in folder.glob("*") if d.is_dir()]
    if not (folder / "model_index.json").is_file():
        places.insert(0, folder)
    files = []
    for place in places:
        files += loaded_weights([f for f in place.glob("*") if f.suffix.lower() in WEIGHT_EXT and not f.is_dir()])
    return sorted(files)


@functools.lru_cache(maxsize=512)
def _damaged(path: str, stamp: tuple) -> Optional[str]:
    """`stamp` (size, modification time) reads a replaced file again."""
    if Path(path).suffix.lower() not in WEIGHT_EXT:
        return None         # a node's own format (an ONNX file, a TorchScript archive): its loader checks it
    try:
        check_file(path)
    except NodeError as exc:
        return str(exc)
    return None
