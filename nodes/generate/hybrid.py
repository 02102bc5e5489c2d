"""Deforum's hybrid video for generate.feedback: a video's frame blended into each moved picture before it is diffused
(hybrid_composite), and the video's own motion between frames applied to the moved pictures (hybrid_motion).

Both are pure functions of uint8 RGB pictures, tested against Deforum's hybrid_video.py: composited() is its
hybrid_composite (PIL's blend, grey, difference and contrast, in its order); the motions move a picture by the
video's optical flow from frame k-1 to k (backward warped by the negated flow, as its image_transform_optical_flow
does) or by the rigid / perspective matrix RANSAC fits to SIFT features of those frames."""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np

from graph_engine import NodeError

COMPOSITES = ("none", "normal", "after_generation")
MASKS = ("none", "blend", "difference")
MOTIONS = ("none", "optical_flow", "perspective", "affine")
FLOWS = ("dis_medium", "dis_fine", "farneback")


def composited(picture: np.ndarray, video_frame: np.ndarray, alpha: float, mask: str = "none",
               mask_blend: float = 0.5, mask_contrast: float = 1.0, mask_inverse: bool = False,
               equalize: str = "none", cutoffs: Optional[tuple] = None) -> np.ndarray:
    """Deforum's hybrid_composite: the picture blended (1 - alpha) : alpha with the video's frame; with a mask, with
    the video's frame laid over the picture through that mask first (blend: the two pictures' greys mixed
    (1 - mask_blend) : mask_blend; difference: their greys' difference), inverted when asked, equalized before
    and/or after, its contrast scaled by mask_contrast about its mean, and with cutoffs (low, high percentiles)
    stretched so they span black to white."""
    from PIL import Image, ImageChops, ImageEnhance, ImageOps
    prev, video = Image.fromarray(picture), Image.fromarray(video_frame)
    if mask == "none":
        comp = video
    else:
        if mask == "blend":
            m = Image.blend(ImageOps.grayscale(prev), ImageOps.grayscale(video), mask_blend)
        elif mask == "difference":
            m = ImageChops.difference(ImageOps.grayscale(prev), ImageOps.grayscale(video))
        else:
            raise NodeError(f"generate.feedback: hybrid_mask {mask!r}: use one of {', '.join(MASKS)}")
        if mask_inverse:
            m = ImageOps.invert(m)
        if equalize in ("before", "both"):
            m = ImageOps.equalize(m)
        m = ImageEnhance.Contrast(m).enhance(mask_contrast)
        if cutoffs is not None:
            a = np.asarray(m).astype(np.float64)
            lo, hi = np.percentile(a, cutoffs[0]), np.percentile(a, cutoffs[1])
            m = ImageOps.grayscale(Image.fromarray(np.clip(255 * (a - lo) / max(hi - lo, 1e-12), 0, 255)))
        if equalize in ("after", "both"):
            m = ImageOps.equalize(m)
        comp = Image.composite(prev, video, m)
    return np.asarray(Image.blend(prev, comp, alpha))


def video_flow(a: np.ndarray, b: np.ndarray, method: str) -> np.ndarray:
    """Optical flow from picture a to b (float32 HxWx2) by Deforum's hybrid_flow_method: OpenCV's DIS at its medium
    preset, DIS fine (Deforum's own settings: full resolution, 8 px patches every 4 px,
    192 descent iterations) or Farneback with Deforum's 'normal' settings. (Deforum's DIS Medium is OpenCV's medium
    preset, estimate_flow's "best".)"""
    from nodes.common.flow import estimate_flow, to_gray
    if method == "dis_medium":
        return estimate_flow(a, b, "best")
    ga, gb = to_gray(a), to_gray(b)
    if method == "dis_fine":
        dis = cv2.DISOpticalFlow_create()
        dis.setGradientDescentIterations(192)
        dis.setFinestScale(0)
        dis.setPatchSize(8)
        dis.setPatchStride(4)
        return dis.calc(ga, gb, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 5, 21, 5, 7, 1.2, 0)
    raise NodeError(f"generate.feedback: hybrid_flow {method!r}: use one of {', '.join(FLOWS)}")


def flow_moved(picture: np.ndarray, flow: np.ndarray, factor: float) -> np.ndarray:
    """The picture carried along the flow (times factor): each pixel taken from where the flow says it came from,
    the edges reflected, as Deforum's image_transform_optical_flow moves it."""
    from nodes.common.flow import backward_warp
    return backward_warp(picture, -factor * flow, cv2.BORDER_REFLECT_101)


def video_matrix(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """The move from picture a to b that RANSAC fits to their SIFT features (matches passing Lowe's ratio test at
    0.75): a 3x3 perspective matrix, or for 'affine' a rotation, uniform scale and shift (2x3); the identity where
    8 or fewer features match, as Deforum's get_transformation_matrix_from_images does."""
    from nodes.common.flow import to_gray
    identity = np.eye(3) if kind == "perspective" else np.eye(3)[:2]
    sift = cv2.SIFT_create()
    ka, da = sift.detectAndCompute(to_gray(a), None)
    kb, db = sift.detectAndCompute(to_gray(b), None)
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return identity
    good = [m for m, n in (p for p in cv2.BFMatcher().knnMatch(da, db, k=2) if len(p) == 2)
            if m.distance < 0.75 * n.distance]
    if len(good) <= 8:
        return identity
    src = np.float32([ka[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([kb[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    m = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)[0] if kind == "perspective" else \
        cv2.estimateAffinePartial2D(src, dst)[0]
    return identity if m is None else m


def matrix_moved(picture: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = picture.shape[:2]
    warp = cv2.warpPerspective if m.shape == (3, 3) else cv2.warpAffine
    return warp(picture, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def video_motion(frame: Callable[[int], np.ndarray], kind: str, method: str,
                 factor: Optional[np.ndarray]) -> Callable[[np.ndarray, int], np.ndarray]:
    """motion(picture, k): the picture moved as the video moves from frame k-1 to k (frame(k): the video's frame k
    at the loop's size; factor: the flow's scale per frame)."""
    if kind not in MOTIONS:
        raise NodeError(f"generate.feedback: hybrid_motion {kind!r}: use one of {', '.join(MOTIONS)}")
    if kind == "optical_flow":
        return lambda picture, k: flow_moved(picture, video_flow(frame(k - 1), frame(k), method), float(factor[k]))
    return lambda picture, k: matrix_moved(picture, video_matrix(frame(k - 1), frame(k), kind))
