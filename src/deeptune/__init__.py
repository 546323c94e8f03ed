"""deeptune: every practical knob of neural-network training one config choice away."""

__version__ = "0.1.0"
