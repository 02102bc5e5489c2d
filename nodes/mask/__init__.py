"""Mask nodes: grow, feather, invert, from a picture's channel, to a picture, composite (nodes/common/masks.py)."""
