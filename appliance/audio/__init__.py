"""Pure PCM code: frames, G.711, resampling, rings, WAV bytes, energy VAD; no asyncio, no I/O."""
