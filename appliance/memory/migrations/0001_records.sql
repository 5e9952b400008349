-- Call records and caller memory. Times are Unix seconds unless a comment says otherwise.
-- Later features add their own tables in later migrations (0002_tool_runs.sql, 0003_audit.sql, ...);
-- this file is never edited once released.

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    line TEXT NOT NULL,                    -- wav, sip, twilio, local
    line_call_id TEXT NOT NULL,            -- the line's own id (SIP Call-ID, Twilio CallSid)
    caller TEXT NOT NULL,                  -- the caller's number or address, as the line knows it
    callee TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    ended REAL,                            -- NULL while the call is in progress
    outcome TEXT,                          -- why it ended: "caller hung up", "interrupted", ...
    owner TEXT NOT NULL,                   -- the appliance process that holds the call
    recording TEXT,                        -- the WAV, relative to RECORDINGS_DIR
    recording_state TEXT NOT NULL DEFAULT 'off'
        CHECK (recording_state IN ('off', 'recording', 'complete', 'stopped', 'removed')),
    recording_note TEXT NOT NULL DEFAULT '',  -- why a recording stopped early
    memory TEXT NOT NULL DEFAULT ''        -- what the agent was told about the caller at the start
);
CREATE INDEX calls_by_start ON calls (started);
CREATE INDEX calls_by_caller ON calls (caller, started);
CREATE INDEX calls_in_progress ON calls (owner) WHERE ended IS NULL;

-- What was said, one row per side of each turn, written as the turn completes.
CREATE TABLE turns (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,                  -- order within the call
    turn INTEGER NOT NULL,                 -- the conversation's turn; 0 for the agent's fixed phrases
    speaker TEXT NOT NULL CHECK (speaker IN ('caller', 'agent')),
    text TEXT NOT NULL,                    -- for the agent: what the caller heard
    started REAL,                          -- seconds since the call began (the recording's time)
    ended REAL,
    interrupted INTEGER NOT NULL DEFAULT 0,   -- the caller cut the agent off
    unsaid TEXT NOT NULL DEFAULT '',          -- what the agent did not get to say
    timings TEXT NOT NULL DEFAULT '{}',       -- JSON: milliseconds per stage of the turn
    PRIMARY KEY (call_id, idx)
);
-- A turn the caller went on with is written again under the same number: one row per side.
CREATE UNIQUE INDEX turns_one_per_side ON turns (call_id, turn, speaker) WHERE turn > 0;

CREATE TABLE callers (
    number TEXT PRIMARY KEY,
    name TEXT,
    first_call REAL NOT NULL,
    last_call REAL NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE facts (
    id INTEGER PRIMARY KEY,
    caller TEXT NOT NULL REFERENCES callers (number) ON DELETE CASCADE,
    text TEXT NOT NULL,
    call_id TEXT REFERENCES calls (id) ON DELETE SET NULL,
    created REAL NOT NULL,
    UNIQUE (caller, text)
);

CREATE TABLE summaries (
    call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    created REAL NOT NULL
);

-- What recall searches: each summary and fact as a 384-d e5 vector, partitioned by caller.
CREATE VIRTUAL TABLE memory_vectors USING vec0 (
    caller TEXT PARTITION KEY,
    embedding FLOAT[384] distance_metric=cosine,
    +kind TEXT,                            -- summary or fact
    +call_id TEXT,
    +text TEXT
);

-- Post-call work. A job is claimed by one process (its lease ends when that process does) and
-- finished in the same transaction as what it wrote.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                    -- summary, memory, email, sms, retention
    call_id TEXT REFERENCES calls (id) ON DELETE CASCADE,
    after TEXT,                            -- a kind of job on the same call to finish first
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after REAL NOT NULL,
    claimed_by TEXT,
    created REAL NOT NULL,
    finished REAL,
    result TEXT NOT NULL DEFAULT '',       -- what it did, or why it failed or was skipped
    UNIQUE (kind, call_id)
);
CREATE INDEX jobs_ready ON jobs (state, run_after);
