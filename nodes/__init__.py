"""Kinograph's built-in node library: one sub-package per category."""
