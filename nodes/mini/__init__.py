"""kinograph-mini: the bundled tiny text-to-video model, its shapes-world data, training and evaluation."""
