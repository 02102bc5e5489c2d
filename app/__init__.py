"""Kinograph's applications: the command line and the desktop editor."""
