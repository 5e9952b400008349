"""End of turn from the caller's voice, beside the silence policy's reading of the words."""
