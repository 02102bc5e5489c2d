"""Image preparation for image-to-video models."""
from __future__ import annotations

import numpy as np


def video_compress(image: np.ndarray, crf: int) -> np.ndarray:
    """The image after one H.264 encode and decode at this CRF (0 = returned as is).

    LTX-Video was trained on video frames, whose compression softens fine noise; a pristine still
    makes it start from a frozen picture. libx264 needs even sizes: the image is padded by edge
    replication and cropped back."""
    import av
    from graph_engine import NodeError
    if crf == 0:
        return image
    if not 0 < crf <= 100:
        raise NodeError(f"compression is an H.264 CRF from 0 to 100, got {crf}")
    img = np.ascontiguousarray(image[..., :3])
    h, w = img.shape[:2]
    padded = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = padded.shape[1], padded.shape[0]
    codec.pix_fmt = "yuv420p"
    codec.options = {"crf": str(min(crf, 51)), "preset": "medium"}
    packets = list(codec.encode(av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(format="yuv420p")))
    packets += list(codec.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for pkt in packets:
        frames += decoder.decode(pkt)
    frames += decoder.decode(None)
    if not frames:
        raise NodeError("the H.264 round trip produced no frame (is this PyAV built with libx264?)")
    return frames[0].to_ndarray(format="rgb24")[:h, :w]
