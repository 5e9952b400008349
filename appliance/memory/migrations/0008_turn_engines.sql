-- Which engine answered each stage of an agent's turn (JSON: {"stt": ..., "llm": ..., "tts": ...}):
-- the local one, or the fallback after it (an OpenAI-compatible API) when it failed or was late.
ALTER TABLE turns ADD COLUMN engines TEXT NOT NULL DEFAULT '{}';
