"""Phone lines: where calls arrive and leave (SIP, Twilio, a USB speakerphone, WAV files)."""
