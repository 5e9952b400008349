"""TEL3SIS: a voice agent in a small box that answers real phone calls."""

__version__ = "0.1.0"
