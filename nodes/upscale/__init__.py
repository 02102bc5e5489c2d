"""Upscaling: resampling, multi-frame super-resolution, learned single-image models."""
