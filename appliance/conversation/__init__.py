"""The conversation engine: one CallSession per call, talking to ports only."""
