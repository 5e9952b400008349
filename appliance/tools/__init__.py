"""Tools the language model may call, one capability per module."""
