"""OpenPose-style pose pictures, drawn as ControlNet's openpose preprocessors draw them (the pictures openpose
ControlNets and Wan 2.2 Animate were trained on): body limbs as filled ellipses in 17 colours at 60 %, joints as
discs in 18 colours; hands as 20 lines round the hue circle with blue joints; the face as white dots.
Keypoints are frame pixels in OpenPose's 18-joint order; NaN marks a keypoint not found."""
from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

# OpenPose's limbs (pairs of its 18 joints) in drawing order, and the colours (RGB) of limbs and joints.
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
HAND_EDGES = tuple((0 if j % 4 == 0 else j, j + 1) for j in range(20))
HAND_COLOURS = tuple(tuple(255.0 * c for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0))
                     for i in range(len(HAND_EDGES)))
EPS = 0.01      # hand and face points at the frame's edge (0) are not drawn, as in controlnet_aux


def stick_scale(height: int, width: int, xinsr: bool) -> int:
    """Limb thickness factor: 1, or for xinsir's SDXL openpose ControlNet (trained on thicker limbs) 2 and up
    with the picture's size (controlnet_aux's scale_stick_for_xinsr_cn)."""
    side = max(height, width)
    return 1 if not xinsr or side < 500 else min(2 + side // 1000, 7)


def draw_body(canvas: np.ndarray, joints: np.ndarray, stick: int = 1) -> None:
    for (a, b), colour in zip(LIMBS, COLOURS):
        (x0, y0), (x1, y1) = joints[a], joints[b]
        if np.isnan(x0) or np.isnan(x1):
            continue
        length = math.hypot(x0 - x1, y0 - y1)
        angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
        poly = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), 4 * stick), int(angle),
                                0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in colour])
    for (x, y), colour in zip(joints, COLOURS):
        if not np.isnan(x):
            cv2.circle(canvas, (int(x), int(y)), 4, colour, thickness=-1)


def draw_hand(canvas: np.ndarray, points: np.ndarray) -> None:
    ints = np.where(np.isnan(points), -1, points).astype(np.int64)   # -1: never past EPS, so never drawn
    for (a, b), colour in zip(HAND_EDGES, HAND_COLOURS):
        (x0, y0), (x1, y1) = ints[a], ints[b]
        if min(x0, y0, x1, y1) > EPS:
            cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), colour, thickness=2)
    for x, y in ints:
        if x > EPS and y > EPS:
            cv2.circle(canvas, (int(x), int(y)), 4, (0, 0, 255), thickness=-1)


def draw_face(canvas: np.ndarray, points: np.ndarray) -> None:
    for x, y in np.where(np.isnan(points), -1, points).astype(np.int64):
        if x > EPS and y > EPS:
            cv2.circle(canvas, (int(x), int(y)), 3, (255, 255, 255), thickness=-1)


def draw_people(height: int, width: int, people, body: bool = True, hands: bool = True, face: bool = True,
                xinsr: bool = False) -> np.ndarray:
    """uint8 HxWx3 picture of `people`, each a dict of "body" [18,2], "left_hand"/"right_hand" [21,2] and
    "face" [70,2] (a part absent or None is not drawn), in order: body, left hand, right hand, face."""
    canvas = np.zeros((height, width, 3), np.uint8)
    stick = stick_scale(height, width, xinsr)
    for person in people:
        if body and person.get("body") is not None:
            draw_body(canvas, person["body"], stick)
        if hands:
            for side in ("left_hand", "right_hand"):
                if person.get(side) is not None:
                    draw_hand(canvas, person[side])
        if face and person.get("face") is not None:
            draw_face(canvas, person["face"])
    return canvas


def _point(canvas, x: float, y: float, radius: int, colour, edge: bool = False) -> None:
    h, w = canvas.shape[:2]
    x, y = int(x), int(y)
    if (not edge or (x > EPS and y > EPS)) and 0 <= x < w and 0 <= y < h:
        cv2.circle(canvas, (x, y), radius, colour, thickness=-1)


def draw_wholebody(canvas: np.ndarray, kp: np.ndarray, threshold: float = 0.3, body: bool = True, feet: bool = False,
                   face: bool = True, hands: bool = True, stick_width: int = 4, face_point_size: int = 3) -> None:
    """One person's [134, 3] keypoints (x, y, score; OpenPose body 0-17, feet 18-23, face 24-91, right hand
    92-112, left hand 113-133) drawn as ComfyUI's SDPoseDrawKeypoints draws them: full-colour limbs `stick_width`
    wide, keypoints scoring under `threshold` and points off the canvas left out, hand lines in whole-number
    colours."""
    ok = kp[:, 2] >= threshold
    h, w = canvas.shape[:2]
    if body:
        for (a, b), colour in zip(LIMBS, COLOURS):
            (x0, y0), (x1, y1) = kp[a, :2], kp[b, :2]
            length = math.hypot(x0 - x1, y0 - y1)
            if not (ok[a] and ok[b]) or length < 1:
                continue
            angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
            poly = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), stick_width),
                                    int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, colour)
        for i in np.flatnonzero(ok[:18]):
            _point(canvas, *kp[i, :2], 4, COLOURS[i])
    if feet:
        for i in 18 + np.flatnonzero(ok[18:24]):
            _point(canvas, *kp[i, :2], 4, COLOURS[i % len(COLOURS)])
    if hands:
        for base in (92, 113):
            for (a, b), colour in zip(HAND_EDGES, HAND_COLOURS):
                if not (ok[base + a] and ok[base + b]):
                    continue
                x0, y0, x1, y1 = (int(v) for v in (*kp[base + a, :2], *kp[base + b, :2]))
                if min(x0, y0, x1, y1) > EPS and max(x0, x1) < w and max(y0, y1) < h:
                    cv2.line(canvas, (x0, y0), (x1, y1), tuple(int(c) for c in colour), thickness=2)
            for i in base + np.flatnonzero(ok[base:base + 21]):
                _point(canvas, *kp[i, :2], 4, (0, 0, 255), edge=True)
    if face:
        for i in 24 + np.flatnonzero(ok[24:92]):
            _point(canvas, *kp[i, :2], face_point_size, (255, 255, 255), edge=True)
