"""Still images and image sequences: reading, and writing PNGs that carry their workflow."""
from __future__ import annotations

import glob
import os
import re
import struct
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from graph_engine import Clip, NodeError
from graph_engine.clip import split_reader
from nodes.common.color import to_uint8

# What write_png can write: Pillow picks the format by the name, and EXR goes through nodes/io/exr.py.
WRITABLE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".exr")
IMAGE_EXTS = WRITABLE_EXTS + (".dpx",)      # DPX is read (nodes/io/film.py), not written


def read_image(path: str) -> np.ndarray:
    """The picture at `path` as uint8 RGB; transparent parts are laid over black (see read_image_alpha)."""
    return read_image_alpha(path)[0]


def read_image_alpha(path: str) -> tuple:
    """(uint8 RGB, float32 HxW alpha in [0, 1] or None when the file has no transparency).

    The colour is laid over black (straight alpha times colour): what a transparent pixel stores is
    undefined (GIMP and Krita may keep old paint there), and dropping the alpha showed it, with jagged,
    full-strength edges; over black the edges stay antialiased."""
    from PIL import Image, ImageOps, UnidentifiedImageError
    if not os.path.isfile(path):
        from graph_engine.portable import missing_hint
        raise NodeError(f"image not found: {path}{missing_hint(path)} - check the path (relative paths are taken "
                        f"from the workflow file's folder)")
    if str(path).lower().endswith(".exr"):
        from .exr import read_exr
        return read_exr(path)
    if str(path).lower().endswith(".dpx"):
        from .film import read_film
        return read_film(path)
    try:
        with Image.open(path) as im:
            # A camera stores the sensor's rows and an EXIF orientation; viewers turn the picture by it.
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith(("I", "F")):
                return _wide_gray(im), None
            if "A" not in im.getbands() and "transparency" not in im.info:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), None
            rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
            alpha = rgba[..., 3].astype(np.float32) / 255.0
            return over_black(rgba[..., :3], alpha), alpha
    except Image.DecompressionBombError as e:
        raise NodeError(too_big(path, str(e))) from None
    # Pillow's other errors for a damaged header: ValueError ('Invalid dimensions', a TIFF's width of another
    # type), EOFError and struct.error for records cut short
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        if _is_video(path):
            raise NodeError(f"{path} is a video, not a still image: read it with io.load_video and take the "
                            f"frame you want with video.frame") from None
        raise NodeError(f"cannot read {path} as an image (corrupt or unsupported format): {e}")


def over_black(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 RGB laid over black by a float alpha in [0, 1] (HxW): how every reader of Kinograph shows a
    transparent picture, a still or a video, so a matte's edges look the same whichever way it came in."""
    return (rgb * alpha[..., None] + 0.5).astype(np.uint8)


def _is_video(path: str) -> bool:
    """Whether the file starts like an MP4/MOV, Matroska/WebM or AVI container."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp" or head[:4] == b"\x1aE\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


def too_big(path, pillow_says: str) -> str:
    """Pillow refuses pictures far over its pixel limit (a guard against decompression bombs, tiny
    files that unpack to gigabytes); its own text calls that a 'DOS attack'."""
    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", pillow_says)
    if not found:
        return f"{path} is too large to be read safely: scale it down in an image editor first"
    return _too_many(path, int(found[1]), int(found[2]))


EDIT_IMAGE = "scale it down or cut it into parts in an image editor first"


def _too_many(path, pixels: int, limit: int, size: str = "", fix: str = EDIT_IMAGE) -> str:
    return f"{path} has {pixels:,} pixels{size}, more than the {limit:,} an image may have to be read safely: {fix}"


def check_pixels(path, width: int, height: int, fix: str = EDIT_IMAGE) -> None:
    """Refuse a picture whose header claims more pixels than Pillow reads (twice its MAX_IMAGE_PIXELS, where it
    stops with DecompressionBombError), for readers without that guard: a 370-byte EXR whose display window
    says 60000x60000 became a 10 GB frame, a 560 KB video of 16000x16000 frames took 2.8 GB and 48 s."""
    from PIL import Image
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if limit and width * height > limit:
        raise NodeError(_too_many(path, width * height, limit, f" ({width}x{height})", fix))


def _wide_gray(im) -> np.ndarray:
    """16-bit, 32-bit and float grayscale to 8-bit RGB by scaling, not clipping (Pillow's
    convert("RGB") clips them to 255, which turns a 16-bit picture black and white)."""
    a = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16") or (im.mode == "I" and a.max() > 255):
        a = a / 257.0
    elif im.mode == "F" and a.max() <= 1.0:
        a = a * 255.0
    g = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def _natural(s: str):
    return [int(t) if t.isdecimal() else t.lower() for t in re.split(r"(\d+)", s)]


def list_frames(path: str) -> List[str]:
    from graph_engine.sequence import sequence_files
    sequence = sequence_files(path)
    if sequence is not None:
        files = [f for f in sequence if f.lower().endswith(IMAGE_EXTS)]
        if not files:
            raise NodeError(f"no frames match {os.path.basename(path)} in {os.path.dirname(path) or '.'}: each # "
                            f"(or %04d, $F4) stands for a digit of the frame number, as in Nuke - check the name "
                            f"and the folder")
    elif os.path.isdir(path):
        # Hidden files are no frames: macOS leaves ._frame_0001.png beside each frame (its metadata) on drives
        # and shares it writes to, and reading one stopped the load; a glob (shots/*.png) skips them too.
        files = [os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS)
                 and not f.startswith(".")]
    elif os.path.isfile(path) and not path.lower().endswith(IMAGE_EXTS):
        raise NodeError(f"{path} is one file, not a folder of images: io.load_video reads a video or an "
                        f"animated GIF/WebP, io.load_image a single picture")
    else:
        files = [f for f in glob.glob(path) if f.lower().endswith(IMAGE_EXTS)]
    if not files:
        raise NodeError(f"no images found at {path} - give a folder of images or a glob such as frames/*.png")
    return sorted(files, key=_natural)


# A frame name: what comes before its frame number, the number, the file type (shot.1001.exr).
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z0-9]+)$")


def _one_sequence(files: List[str]):
    """(name parts, frame numbers) of files that are one numbered sequence (shot.1001.exr ...), else None."""
    parts = [_NUMBERED.match(os.path.basename(f)) for f in files]
    if not all(parts) or len({(os.path.dirname(f), m[1], m[3].lower()) for f, m in zip(files, parts)}) != 1:
        return None
    return parts, [int(m[2]) for m in parts]


def first_number(files: List[str]) -> Optional[int]:
    """The frame number of the first of files that are one numbered sequence, frames one apart (shot.1001.exr
    or depth_0001.exr on: Clip.number); None for any other files."""
    seq = _one_sequence(files)
    steps = np.diff(seq[1]) if seq else None
    if seq is None or (len(files) > 1 and ((steps <= 0).any() or np.median(steps) != 1)):
        return None
    return seq[1][0]


def hold_gaps(files: List[str]) -> tuple:
    """(files laid out on their frame numbers, the names missing): where one numbered sequence (frames one
    apart) lacks a number, the frame before it is held in its place, as Nuke's 'hold' does; read in name
    order, a missing frame had moved every later one a frame early and shortened the clip."""
    seq = _one_sequence(files)
    if seq is None:
        return files, []       # not one numbered sequence: frames in name order
    parts, nums = seq
    steps = np.diff(nums)
    if len(steps) == 0 or (steps <= 0).any() or np.median(steps) != 1:
        return files, []       # every n-th frame rendered, or repeated numbers: nothing is missing
    out, missing = [files[0]], []
    pad = min(len(m[2]) for m in parts)
    for k in range(1, len(files)):
        for n in range(nums[k - 1] + 1, nums[k]):
            out.append(out[-1])
            missing.append(f"{parts[0][1]}{n:0{pad}d}{parts[0][3]}")
        out.append(files[k])
    return out, missing


def layer_reader(files: List[str], layer: str):
    """A reader of `files` (path -> uint8 RGB): their picture, or with `layer` the control picture of that
    pass of EXR files (exr.PassPictures)."""
    if not layer.strip():
        return read_image
    other = next((f for f in files if not str(f).lower().endswith(".exr")), None)
    if other is not None:
        raise NodeError(f"{other} is not an EXR file: `layer` ({layer!r}) picks a render pass of a multilayer EXR; "
                        f"leave it empty to read the picture")
    from .exr import PassPictures
    return PassPictures(files, layer)


def load_frames(path: str, fps: float, log=None, layer: str = "") -> Clip:
    """fps: 0 for the rate EXR files state, else 24. log: called with a line naming frames missing from the
    sequence (see hold_gaps). layer: the EXR pass to read (layer_reader)."""
    listed = list_frames(path)
    files, missing = hold_gaps(listed)
    read_image = layer_reader(files, layer)
    if layer.strip() and log is not None:
        from .exr import world_normals_note
        if world_normals_note(layer):
            log(world_normals_note(layer))
    if missing and log is not None:
        names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        log(f"{names} missing from the sequence: the frame before each is held in its place, as Nuke's 'hold' "
            f"does, so later frames keep their timing. Render the missing frames to fill the gap")
    # A sequence whose first frame is transparent (an element rendered or keyed for a comp) brings its alpha
    # as the clip's matte (frames without one are opaque); a render pass (`layer`) is a picture of values.
    first, alpha0 = (read_image(files[0]), None) if layer.strip() else read_image_alpha(files[0])
    keyed = alpha0 is not None
    h, w = first.shape[:2]

    def reader(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, h, w, 4 if keyed else 3), np.uint8)
        for i in range(a, b):
            _fits(files[i], w, h)
            img, alpha = read_image_alpha(files[i]) if keyed else (read_image(files[i]), None)
            _sized(files[i], img, w, h)
            out[i - a, ..., :3] = img
            if keyed:
                out[i - a, ..., 3] = 255 if alpha is None else to_uint8(alpha)
        return out

    linear = timecode = rate = None
    if str(files[0]).lower().endswith(".exr"):
        from .exr import stated_timing
        rate, timecode = stated_timing(files[0], fps if fps > 0 else 24.0)
    if fps <= 0:
        fps = rate or 24.0
    if not layer.strip() and all(str(f).lower().endswith(".exr") for f in files):
        from .exr import read_exr_linear

        def linear(a: int, b: int) -> np.ndarray:
            from nodes.common.color import stack_rgba
            return stack_rgba([_sized(f, _fits(f, w, h) or read_exr_linear(f), w, h) for f in files[a:b]])
    elif not layer.strip() and deep(files[0]):
        # A 16-bit TIFF/PNG or 10-bit DPX plate keeps its depth for the nodes and writers that can (as an EXR's
        # float pixels do): read as 8 bits only, its shadows came out of a grade in 8-bit steps.
        def linear(a: int, b: int) -> np.ndarray:
            from nodes.common.color import stack_rgba
            return stack_rgba([_sized(f, _fits(f, w, h) or read_deep_linear(f), w, h) for f in files[a:b]])
    colour, matte = split_reader(reader) if keyed else (reader, None)
    return Clip(len(files), fps, w, h, colour, number=first_number(listed), linear=linear,
                timecode=timecode).with_matte(matte)


def _sized(path, picture: np.ndarray, w: int, h: int) -> np.ndarray:
    """picture, if it is the sequence's size (w x h); else a NodeError naming the file. The float readers
    (Clip.linear) said only "all input arrays must have the same shape" for a frame of another size."""
    if picture.shape[:2] != (h, w):
        raise NodeError(_other_size(path, picture.shape[1], picture.shape[0], w, h))
    return picture


def _other_size(path, pw: int, ph: int, w: int, h: int) -> str:
    return f"{path} is {pw}x{ph} but the sequence is {w}x{h}; all frames must have one size"


def _fits(path, w: int, h: int) -> None:
    """Refuse a frame whose header declares more pixels than the sequence's frames hold, before it is decoded:
    a 420 KB PNG of 12000x12000 in a sequence of 16x16 frames was decoded whole (2.5 GB, 16 s) to be refused
    by _sized. A frame turned by its EXIF orientation keeps its count; one whose size is not known from here
    is judged once read."""
    size = declared_size(path)
    if size is not None and size[0] * size[1] > w * h:
        raise NodeError(_other_size(path, *size, w, h))


def declared_size(path) -> Optional[Tuple[int, int]]:
    """(width, height) a picture's header declares, read without decoding it: an EXR's display window (what
    reading it gives), a DPX's image size, else what Pillow reads of the header; None where none of them can."""
    low = str(path).lower()
    if low.endswith(".dpx"):
        from .film import _header
        w, h = _header(path)[1:3]
        return (w, h) if w and h else None
    if low.endswith(".exr"):
        from .exr import display_size
        return display_size(path)
    import warnings
    from PIL import Image
    try:
        with warnings.catch_warnings():     # Pillow's 'could be a decompression bomb': judged here, by the caller
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except Image.DecompressionBombError as e:
        raise NodeError(too_big(path, str(e))) from None
    except Exception:       # not a picture Pillow knows, or damaged: reading it says what is wrong
        return None


def deep(path: str) -> bool:
    """Whether the picture holds more than 8 bits a channel: a 16-bit PNG or TIFF, a 10-, 12- or 16-bit DPX
    (from the header; Pillow calls a 16-bit RGB file RGB and reads it as 8 bits)."""
    low = str(path).lower()
    try:
        if low.endswith(".png"):
            with open(path, "rb") as f:
                return f.read(25)[24:25] == b"\x10"        # IHDR bit depth
        if low.endswith((".tif", ".tiff")):
            from PIL import Image
            with Image.open(path) as im:
                bits, kind = im.tag_v2.get(258, 8), im.tag_v2.get(339, 1)      # bits, sample format (1: uint)
                return (max(bits if isinstance(bits, tuple) else (bits,)) == 16
                        and set(kind if isinstance(kind, tuple) else (kind,)) == {1})
    except (OSError, ValueError, SyntaxError):
        return False
    if low.endswith(".dpx"):
        from .film import deep_film
        return deep_film(path)
    return False


def read_deep_linear(path: str) -> np.ndarray:
    """float32 linear light HxWx3 (x4 premultiplied, with alpha) of a deep picture (see `deep`), at its own
    depth: a PNG/TIFF through the sRGB curve (read_image shows its code values), a DPX by its transfer."""
    if str(path).lower().endswith(".dpx"):
        from .film import read_film_linear
        return read_film_linear(path)
    import cv2
    from nodes.common.color import code16_to_linear
    px = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if px is None or px.dtype != np.uint16:
        raise NodeError(f"cannot read {path} as a 16-bit picture: every frame of a 16-bit sequence must be 16-bit")
    if px.ndim == 2:
        px = np.repeat(px[..., None], 3, axis=2)
    rgb = code16_to_linear(px[..., 2::-1])
    if px.shape[-1] == 3:
        return rgb
    alpha = px[..., 3:].astype(np.float32) / 65535.0
    return np.concatenate([rgb * alpha, alpha], -1)


def write_png(img: np.ndarray, path: str, workflow_yaml: str = "", overwrite: bool = False,
              alpha: Optional[np.ndarray] = None) -> Optional[str]:
    """Write the picture (PNGs carry the workflow); returns where the render it replaced is kept
    (graph_engine.takes), when it kept one. alpha: float HxW in [0, 1] of a picture laid over black (in
    code values, as every reader lays it: nodes/common/alpha.py), written beside it: an EXR's A channel
    with the colour premultiplied in linear light, as Nuke and Blender keep it; PNG, TIFF and WebP with
    straight colour (JPEG and BMP have no alpha and refuse it)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from graph_engine.atomic import atomic_output
    final = Path(path)
    if alpha is not None:
        if final.suffix.lower() not in ALPHA_EXTS:
            raise NodeError(f"{final.name}: a {final.suffix or 'file without a type'} holds no alpha: name the image "
                            f".png, .tif, .webp or .exr, or leave the alpha unconnected")
        if alpha.shape != img.shape[:2]:
            raise NodeError(f"the alpha is {alpha.shape[1]}x{alpha.shape[0]} but the image {img.shape[1]}x"
                            f"{img.shape[0]}: give the mask that belongs with this image (resize both alike)")
        alpha = np.clip(np.nan_to_num(alpha.astype(np.float32)), 0.0, 1.0)
        if final.suffix.lower() != ".exr":
            from nodes.common.alpha import straight_rgba
            img = straight_rgba(img, to_uint8(alpha))
    kept: list = []
    tmp = final
    try:
        with atomic_output(final, overwrite=overwrite, takes=kept) as tmp:
            if final.suffix.lower() == ".exr":
                from .exr import write_exr
                write_exr(img, tmp, workflow_yaml, alpha=alpha)
            elif final.suffix.lower() == ".png":
                info = PngInfo()
                if workflow_yaml:
                    info.add_text("kinograph_workflow", workflow_yaml)
                Image.fromarray(img).save(tmp, format="PNG", pnginfo=info, compress_level=4)
            elif final.suffix.lower() in (".tif", ".tiff"):        # straight colour, tagged unassociated
                Image.fromarray(img).save(tmp, format="TIFF", compression="tiff_adobe_deflate")
            else:
                Image.fromarray(img).save(tmp, quality=95)
    except (OSError, ValueError, KeyError, RuntimeError) as e:     # RuntimeError: OpenEXR's, for any failure
        why = _disk_says(final.parent, final.name, img.nbytes)
        if why == "":
            from graph_engine.takes import on_full_disk
            why = (f"the disk holding {final.parent} is full: {final.name} was not written. Free some space there "
                   f"or write it elsewhere (another `path` on the node){on_full_disk(final.parent)}")
        # Its temporary's name (.img.x1y2z3.partial.exr) is no file the user knows.
        raise NodeError(why or f"cannot write image {final}: {str(e).replace(str(tmp), str(final))}") from None
    return str(kept[0]) if kept else None


# Still types io.save_image writes an alpha into.
ALPHA_EXTS = (".png", ".tif", ".tiff", ".webp", ".exr")


# io.save_frames' formats: PNG, linear half-float EXR for a compositor (Nuke, Blender, Resolve Fusion), TIFF
# (16-bit from a plate's float pixels, Clip.linear; 16 bits are not made from 8, so 8-bit otherwise, deflate-
# compressed), or 10-bit log DPX (nodes/io/film.py). A clip's alpha (Clip.matte) goes into PNG, TIFF and EXR:
# PNG and TIFF with straight colour (PNG's rule; TIFF says so, ExtraSamples unassociated), EXR premultiplied in
# linear light (nodes/common/alpha.py).
FRAME_FORMATS = ("png", "exr", "tif", "dpx")
# Formats written from a plate's float pixels where the clip carries them.
DEEP_FORMATS = ("exr", "tif", "dpx")
# A frame io.save_frames writes, in any format: a render in one replaces an earlier one in another.
_FRAME_FILE = re.compile(r"frame_\d{6}\.(png|exr|tif|dpx)")


def frame_name(i: int, fmt: str = "png") -> str:
    return f"frame_{i:06d}.{fmt}"


def _disk_says(folder: Path, name: str, nbytes: int) -> Optional[str]:
    """Why a picture of about `nbytes` could not be written as `name` into `folder`, found by looking at the disk
    (cv2.imwrite only answers False, Pillow 'encoder error -2', OpenEXR a bare RuntimeError naming its temporary):
    '' for a full disk (the callers word that one themselves), the file size limit, a folder this user cannot
    write; None when none of those."""
    from graph_engine.free_space import short_of
    if short_of(folder, nbytes + (1 << 20)):
        return ""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit = -1 if limit == resource.RLIM_INFINITY else limit
    except (ImportError, OSError, ValueError):      # no such limits (Windows)
        limit = -1
    if 0 <= limit < nbytes:
        # As io.save_video says it: the frames folder said 'check that the folder is writable'.
        return (f"{name} would grow past the largest file this process may write (`ulimit -f`, "
                f"{max(1, limit >> 10)} KB): raise the limit, or write it elsewhere")
    if not os.access(folder, os.W_OK):
        return (f"the folder {folder} cannot be written by this user (a read-only drive or network share, or another "
                f"user's folder): write it elsewhere")
    return None


def _frame_failure(folder: Path, i: int, nbytes: int, fmt: str = "png", first: int = 0) -> str:
    """Why frame `i` (numbered first + i) could not be written (_disk_says)."""
    done = f"{i} frame{'s were' if i != 1 else ' was'} written before it"
    why = _disk_says(folder, frame_name(first + i, fmt), nbytes)
    if why == "":
        return (f"the disk holding {folder} is full: {frame_name(first + i, fmt)} was not written ({done}). Free "
                f"some space there or write the frames elsewhere")
    if why:
        return f"{why} ({done})"
    return f"cannot write {frame_name(first + i, fmt)} into {folder} ({done}): check that the folder is writable"


def write_frames(clip: Clip, folder: str, workflow_yaml: str = "", progress=None, overwrite: bool = False,
                 fmt: str = "png", first: int = 0) -> dict:
    """Numbered PNGs or EXRs (FRAME_FORMATS; plus the workflow) into `folder`, each written whole under a
    temporary name; the clip's frame 0 is numbered `first`.

    Nothing else in the folder is touched. Frames already there are replaced only if Kinograph
    filled this folder before (its workflow.yaml says so) or with `overwrite`."""
    from graph_engine.atomic import filling, output_folder
    final = Path(folder)
    if clip.length == 0:        # as io.save_video says: an empty folder and 'ok' would hide the mistake upstream
        raise NodeError("the clip has no frames to write")
    output_folder(final)
    # Everything from here on judges the folder as it is: held, so no other render changes it meanwhile.
    with filling(final):
        return _write_frames_held(final, clip, workflow_yaml, progress, overwrite, fmt, first)


def _write_frames_held(final: Path, clip: Clip, workflow_yaml: str, progress, overwrite: bool, fmt: str,
                       first: int) -> dict:
    from graph_engine.atomic import FRAMES_WORKFLOW, written_by_kinograph
    from graph_engine.takes import drop_if_same, keep_folder, on_full_disk, restore_folder, undo_killed
    ours = overwrite or written_by_kinograph(final)
    if not ours:
        names = [frame_name(first + i, fmt) for i in range(clip.length)] + [FRAMES_WORKFLOW]
        taken = [n for n in names if os.path.lexists(final / n)]
        if taken:
            raise NodeError(f"{final} already holds {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''} and "
                            f"Kinograph did not fill this folder: choose another folder or set `overwrite: true`")
    undo_killed(final)
    done = _interrupted(final, clip, workflow_yaml, fmt, first) if ours else 0
    # A render of this same workflow stopped part way (Ctrl+C, kill -9, a crash, a full disk): its frames are
    # this render's, and it goes on after them. They were kept as an earlier take and all computed again.
    mine = [] if done else [n for n in os.listdir(final) if _FRAME_FILE.fullmatch(n) or n == FRAMES_WORKFLOW]
    # The earlier render goes to takes/ first (hard links): the folder then holds this render alone,
    # and one that fails or is cancelled puts the earlier one back.
    take = keep_folder(final, mine) if mine and ours else None
    new = [frame_name(first + i, fmt) for i in range(clip.length)] + [FRAMES_WORKFLOW]
    try:
        _fill(final, clip, workflow_yaml, progress, fmt, first, start=done)
    except BaseException as e:
        if take is not None:
            restore_folder(final, take, new)
        if isinstance(e, NodeError) and str(e).startswith("the disk holding"):
            # Said once the earlier take is back in place: what became of the frames written ("18 frames were
            # written before it" read as 18 frames there to keep), and what the takes left there use.
            if take is not None:
                fate = f". {final.name} holds the earlier render again, as it was"
            elif workflow_yaml and any(_FRAME_FILE.fullmatch(n) for n in os.listdir(final)):
                fate = ". The frames written stay: run the workflow again once there is room and it goes on from there"
            else:
                fate = ""
            raise NodeError(f"{e}{fate}{on_full_disk(final.parent)}") from None
        raise
    if done:
        return {"path": str(final), "frames": clip.length, "resumed_at": frame_name(first + done, fmt)}
    out = {"path": str(final), "frames": clip.length}
    if take is not None:
        for n in set(mine) - set(new):      # frames of a longer earlier render: kept in its take
            os.unlink(final / n)
        if not drop_if_same(final, take, new):
            out["earlier_take"] = str(take)
        return out
    kept = sum(1 for n in mine if _FRAME_FILE.fullmatch(n) and n not in new)
    if kept:
        out["older_frames_kept"] = kept
    return out


def _write_exr_frame(frame: np.ndarray, tmp: Path, folder: Path, i: int, first: int, timecode,
                     linear=None, alpha=None) -> None:
    from .exr import write_exr
    try:
        write_exr(frame, tmp, timecode=timecode, linear=linear,
                  alpha=None if alpha is None else alpha[..., 0].astype(np.float32) / 255.0)
    except NodeError:
        raise
    except Exception:          # the bindings raise a bare RuntimeError for any write failure
        raise NodeError(_frame_failure(folder, i, frame.nbytes * 2, "exr", first)) from None


def _marker(clip: Clip, workflow_yaml: str) -> str:
    from graph_engine.atomic import FRAMES_MARK
    return (f"{FRAMES_MARK} {clip.length} frames, {clip.width}x{clip.height} at {clip.fps:g} fps\n"
            + (workflow_yaml or "kinograph: 1\nnodes: {}\n"))


def _without_layout(text: str):
    """A workflow's text as what it computes: a node moved in the editor between the runs changes nothing."""
    import yaml
    from graph_engine.workflow import load_yaml_with_lines
    try:
        # Screened as a workflow file is (no aliases, nesting or size past the limits): the folder's workflow.yaml
        # may be anyone's, and one nested 200,000 deep stopped the render with a RecursionError.
        data = load_yaml_with_lines(text)[0]
    except yaml.YAMLError:
        return None
    if isinstance(data, dict):
        data.pop("ui", None)
    return data


def _interrupted(final: Path, clip: Clip, workflow_yaml: str, fmt: str, first: int) -> int:
    """How many frames, from the first, a render of this same workflow that stopped part way left in `final`
    (each frame file is whole: atomic_output); 0 when there is none to go on from: the folder holds another
    workflow's render, a whole one, or the workflow is not known."""
    from graph_engine.atomic import FRAMES_WORKFLOW, read_plain
    from graph_engine.workflow import MAX_YAML_BYTES
    if not workflow_yaml:
        return 0
    mark, _, ours = _marker(clip, workflow_yaml).partition("\n")
    try:
        # As far as a workflow file may go past the mark line, and not through a link (written_by_kinograph).
        raw = read_plain(final / FRAMES_WORKFLOW, len(mark.encode()) + 1 + MAX_YAML_BYTES, follow=False)
        head, _, held = raw.decode("utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return 0
    if head.rstrip("\r") != mark:
        return 0
    before = _without_layout(held)
    if before is None or before != _without_layout(ours):      # None: unreadable, or refused as a workflow
        return 0
    done = next((i for i in range(clip.length) if not os.path.isfile(final / frame_name(first + i, fmt))),
                clip.length)
    return done if done < clip.length else 0


def _blocks(clip: Clip, fmt: str, start: int = 0):
    """(first frame, frames, their float pixels or None, their alpha or None) chunk by chunk: an EXR, 16-bit
    TIFF or DPX render of a plate whose float pixels came through (Clip.linear, alpha included) is written
    from them, not through 8-bit sRGB, and its 8-bit frames are not read at all. A TIFF with alpha is 8-bit."""
    if fmt not in DEEP_FORMATS or clip.linear is None or (fmt == "tif" and clip.matte is not None):
        for a, block in clip.chunks(start=start):
            yield a, block, None, None if clip.matte is None else clip.matte.frames(a, a + len(block))
        return
    for a in range(start, clip.length, clip.chunk):
        floats = clip.linear(a, min(clip.length, a + clip.chunk))
        yield a, floats, floats, None


def _fill(final: Path, clip: Clip, workflow_yaml: str, progress, fmt: str = "png", first: int = 0,
          start: int = 0) -> None:
    import cv2
    from graph_engine.atomic import FRAMES_WORKFLOW, atomic_output, synced_folder
    # The marker goes first: a folder interrupted half way is still recognised as ours next time.
    with atomic_output(final / FRAMES_WORKFLOW, overwrite=True, record=False) as tmp:
        tmp.write_text(_marker(clip, workflow_yaml), encoding="utf-8")

    def write(a: int, block, floats, alpha) -> None:
        try:
            for j, frame in enumerate(block):
                write_frame(a + j, frame, None if floats is None else floats[j], None if alpha is None else alpha[j])
        finally:        # each frame's data was synced before its rename; the renames once a block, not a frame
            synced_folder(final)

    def write_frame(i: int, frame, floats, alpha) -> None:
        with atomic_output(final / frame_name(first + i, fmt), overwrite=True, record=False,
                           folder_synced=False) as tmp:
            if fmt == "exr":
                _write_exr_frame(frame, tmp, final, i, first, clip.timecode and clip.timecode.shifted(i, clip.fps),
                                 floats, alpha)
            elif fmt == "dpx":
                _write_dpx_frame(frame, floats is not None, tmp, final, i, first, clip)
            elif fmt == "tif" and floats is not None:
                _write_tiff16(frame, tmp, final, i, first)
            else:
                if alpha is not None:
                    from nodes.common.alpha import straight_rgba
                    frame = straight_rgba(frame, alpha)
                if fmt == "tif":
                    _write_tiff(frame, tmp, final, i, first)
                elif not cv2.imwrite(str(tmp), cv2.cvtColor(frame, cv2.COLOR_RGBA2BGRA if alpha is not None
                                                             else cv2.COLOR_RGB2BGR)):
                    raise NodeError(_frame_failure(final, i, frame.nbytes, first=first))

    # One block is written (PNG/EXR compression, 60 ms a 1080p frame) by a second thread while this one
    # computes the next: written in turn, the files took a third of a render's time with a core idle. Frames
    # still land in order (a resumed render counts the first missing one), and no write is left running when
    # this returns or fails (the caller may put an earlier take back into the folder).
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1, thread_name_prefix="frames") as pool:
        pending = None
        try:
            for a, block, floats, alpha in _blocks(clip, fmt, start):
                if pending is not None:
                    _wait(pending, progress, clip.length)
                pending = (pool.submit(write, a, block, floats, alpha), a + len(block))
            if pending is not None:
                _wait(pending, progress, clip.length)
                pending = None
        finally:
            if pending is not None:
                pending[0].exception()      # a failure upstream: let the write in flight finish first


def _write_tiff(frame: np.ndarray, tmp: Path, folder: Path, i: int, first: int) -> None:
    """One frame as a deflate TIFF; RGBA as straight colour, tagged so (ExtraSamples 2: unassociated alpha), so
    Nuke and After Effects take it without guessing."""
    from PIL import Image
    try:
        Image.fromarray(frame, "RGBA" if frame.shape[-1] == 4 else "RGB").save(
            tmp, format="TIFF", compression="tiff_adobe_deflate")
    except OSError:
        raise NodeError(_frame_failure(folder, i, frame.nbytes, "tif", first)) from None


def _write_tiff16(floats: np.ndarray, tmp: Path, folder: Path, i: int, first: int) -> None:
    """Float linear pixels as a 16-bit sRGB TIFF (deflate), the colour over black (premultiplied) where they
    carry an alpha no matte goes with; light above 1.0 is clipped, as any integer file does."""
    import cv2
    from nodes.common.color import linear_to_srgb16
    code = linear_to_srgb16(floats[..., :3])
    if not cv2.imwrite(str(tmp), code[..., ::-1], [cv2.IMWRITE_TIFF_COMPRESSION, 8]):      # 8: Adobe deflate
        raise NodeError(_frame_failure(folder, i, code.nbytes, "tif", first))


def _write_dpx_frame(frame: np.ndarray, deep: bool, tmp: Path, folder: Path, i: int, first: int, clip: Clip) -> None:
    """One frame as a 10-bit log DPX (film.write_film): from the plate's float pixels where `deep`, else the
    8-bit picture's light; the frame's number and timecode go into its header."""
    from nodes.common.color import srgb_to_linear
    from .film import write_film
    lin = frame[..., :3] if deep else srgb_to_linear(frame.astype(np.float32) / 255.0)
    try:
        write_film(lin, tmp, number=first + i, fps=clip.fps,
                   timecode=clip.timecode and clip.timecode.shifted(i, clip.fps))
    except OSError:
        raise NodeError(_frame_failure(folder, i, lin.shape[0] * lin.shape[1] * 4, "dpx", first)) from None


def _wait(pending, progress, total: int) -> None:
    """The block's write done (its error raised here), then its progress."""
    future, done = pending
    future.result()
    if progress:
        progress(done, total)
