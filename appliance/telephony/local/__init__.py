"""The speakerphone line: a person at the box, through a sound card (PortAudio via sounddevice).

`echo.EchoCanceller` removes the agent's own voice from the microphone (Debian's libspeexdsp);
`device.SoundCard` owns the PortAudio stream; `line.LocalLine` is the CallLine of one
conversation at the box; `phone.LocalPhone` answers it when someone speaks, as `serve` does.
Importing this package loads neither PortAudio nor libspeexdsp; the modules that use them do.
"""
