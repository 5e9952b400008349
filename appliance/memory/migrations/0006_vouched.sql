-- Whether the call's line vouched for the caller's number (Twilio; a SIP trunk restricted by
-- SIP_ALLOWED_SOURCES or digest). Memory of earlier calls is used, and kept, only when it did:
-- a caller ID alone is not an identity. Calls recorded before this knew no better: 1.
ALTER TABLE calls ADD COLUMN vouched INTEGER NOT NULL DEFAULT 1;
