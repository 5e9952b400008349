"""The appliance as a LAN inference server, and how a board finds one.

- `wire.py`: OpenAI's wire format: requests read into the conversation's ports, answers and
  errors written back as OpenAI writes them.
- `speech.py`: the voice's 16 kHz audio as the WAV or PCM stream a client asked for.
- `server.py`: `/v1/audio/transcriptions`, `/v1/chat/completions`, `/v1/audio/speech` and
  `/v1/models` from the box's local engines, behind an API key (`INFERENCE_SERVER=true`).
- `advertise.py`: the server said on the LAN as `_tel3sis-infer._tcp` (zeroconf).
- `discovery.py`: `LAN_INFERENCE=auto`: browse for such servers, probe each, fastest first.
"""
