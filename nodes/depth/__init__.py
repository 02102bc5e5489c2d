"""Depth: maps of how far each pixel is, estimated by a learned model from a local folder."""
