"""Generative core: model manager, family adapters, encoders, samplers and their nodes."""
