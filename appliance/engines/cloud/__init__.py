"""Speech engines behind Deepgram's and ElevenLabs' own HTTP APIs, spoken to directly.

They join the speech-to-text and voice chains after the local engine and after any
OpenAI-compatible API engine (`appliance.engines.api`). vocode's transcribers and synthesizers
for the same services cannot be installed beside the box (its pins clash with ours; README,
"Deepgram and ElevenLabs"), so these speak the services' wire formats over httpx instead.
"""
