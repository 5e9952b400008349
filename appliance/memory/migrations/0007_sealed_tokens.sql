-- OAuth tokens (Google Calendar's, for now), each sealed with AES-GCM under TOKEN_ENCRYPTION_KEY:
-- nothing here is readable without the key. `key_id` names the key that sealed a row (a digest,
-- not the key), so a rotation knows which rows still need it.
CREATE TABLE sealed_tokens (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    updated REAL NOT NULL
);
