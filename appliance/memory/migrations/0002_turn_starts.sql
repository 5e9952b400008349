-- When each stage of an agent's turn began (JSON: milliseconds after the caller stopped
-- speaking, beside `timings`' durations): the status page draws each turn's latency waterfall.
ALTER TABLE turns ADD COLUMN starts TEXT NOT NULL DEFAULT '{}';
