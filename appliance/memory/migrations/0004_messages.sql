-- Messages a caller left for a person who could not take the call, as the caller said them.
-- A post-call job ("message") texts each to the person (when reached by number) and emails it
-- to NOTIFY_EMAIL; the row stays with the call either way.
CREATE TABLE messages (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,                  -- order within the call
    for_who TEXT NOT NULL,                 -- the person or department, as the caller heard it
    target TEXT NOT NULL,                  -- their number or SIP URI (the transfer's target)
    text TEXT NOT NULL,                    -- the message, as transcribed
    PRIMARY KEY (call_id, idx)
);
