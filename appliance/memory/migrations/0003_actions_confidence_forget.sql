-- What a post-call summary may say happened, from the call's own events rather than the model.

-- How sure the speech-to-text was of each of the caller's turns (0-1; NULL for the agent's rows
-- and for turns written before this migration). Caller facts come only from sure turns.
ALTER TABLE turns ADD COLUMN confidence REAL;

-- What the agent did on a call, in order: tools run (with their result), transfers asked of
-- the line, the agent hanging up. Written as it happens, like the turns.
CREATE TABLE actions (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,                  -- order within the call
    turn INTEGER NOT NULL,                 -- the conversation's turn; 0 outside a turn
    kind TEXT NOT NULL CHECK (kind IN ('tool', 'transfer', 'hangup')),
    name TEXT NOT NULL,                    -- the tool; the transfer's target; why the agent hung up
    arguments TEXT NOT NULL DEFAULT '',    -- a tool's JSON arguments
    ok INTEGER,                            -- a tool's: 1 ran, 0 failed, NULL never finished
    result TEXT NOT NULL DEFAULT '',       -- a tool's result text
    PRIMARY KEY (call_id, idx)
);

-- Callers who asked to be forgotten, and when: nothing from a call that began before then is
-- kept as their memory (a call's summary stays on its record for the operator).
CREATE TABLE forgotten (
    number TEXT PRIMARY KEY,
    at REAL NOT NULL
);
