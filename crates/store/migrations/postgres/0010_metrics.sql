-- Metrics history (issue 14 items 1–2): one row per entity, resolution and time block,
-- holding every series of that entity for the block, encoded by zy_model::metrics::Block.
-- res: 0 raw (10 s points, 10-minute blocks, kept 1 day), 60 (1-minute rollups, 1-hour
-- blocks, kept 30 days), 3600 (1-hour rollups, 1-day blocks, kept 400 days).
CREATE TABLE metric_blocks (
    scope       TEXT NOT NULL,
    entity      TEXT NOT NULL,
    res         INTEGER NOT NULL,
    block_start BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (scope, entity, res, block_start)
);
-- Retention deletes by age per resolution.
CREATE INDEX metric_blocks_age_idx ON metric_blocks (res, block_start);

-- Alerts (告警): rules, what is pending or firing now (one row per rule and target; the
-- transitions are conditional updates, so a second evaluator never fires twice), the
-- history of firing and resolved alerts, and silences.
CREATE TABLE alert_rules (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    entity        TEXT NOT NULL,
    department_id TEXT,
    target        TEXT NOT NULL,
    series        TEXT,
    op            TEXT,
    threshold     DOUBLE PRECISION,
    for_secs      BIGINT NOT NULL DEFAULT 0,
    crash_count   BIGINT,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX alert_rules_department_idx ON alert_rules (department_id);

CREATE TABLE alert_states (
    rule_id     TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    target_id   TEXT NOT NULL,
    target_name TEXT NOT NULL,
    state       TEXT NOT NULL,
    since       BIGINT NOT NULL,
    value       DOUBLE PRECISION,
    PRIMARY KEY (rule_id, target_id)
);

CREATE TABLE alert_events (
    id            TEXT PRIMARY KEY,
    rule_id       TEXT NOT NULL,
    rule_name     TEXT NOT NULL,
    department_id TEXT,
    target        TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    target_name   TEXT NOT NULL,
    state         TEXT NOT NULL,
    value         DOUBLE PRECISION,
    at            BIGINT NOT NULL,
    silenced      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX alert_events_at_idx ON alert_events (at);

CREATE TABLE alert_silences (
    id            TEXT PRIMARY KEY,
    scope         TEXT NOT NULL,
    entity        TEXT NOT NULL,
    department_id TEXT,
    starts_at     BIGINT NOT NULL,
    ends_at       BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
