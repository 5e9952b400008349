-- Every safety decision on a call: the caller's words, each sentence of the agent's, each tool
-- call the policy stopped. Written as it is made (`SafetyChecked`); listed by
-- `appliance safety audit` and on the call's status page. Goes with the call when it is
-- forgotten: the audit holds the caller's words.
CREATE TABLE safety_audit (
    call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,                  -- order within the call
    at REAL NOT NULL,                      -- unix seconds
    turn INTEGER NOT NULL,
    layer TEXT NOT NULL,                   -- caller, agent or tool
    action TEXT NOT NULL,                  -- allowed, refused, replaced, ended, blocked
    text TEXT NOT NULL,                    -- what was checked (a tool call: name and arguments)
    score REAL NOT NULL,                   -- the classifier's 0..1 (1 for a rule's match)
    threshold REAL NOT NULL,
    category TEXT NOT NULL,                -- the rule's category, "model", or the policy's reason
    engine TEXT NOT NULL,                  -- which screen or policy decided
    PRIMARY KEY (call_id, idx)
);
CREATE INDEX safety_audit_by_time ON safety_audit (at);
