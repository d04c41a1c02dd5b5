"""hero: the realtime heart of a Python platform kit."""

__version__ = "0.1.0"
