"""Object detection nodes."""
