-- Supervision (监管): idle and zombie resources, indicator snapshots and monthly
-- operations reports (postgres).

-- One finding per resource and kind: the idle task inserts it when the condition holds,
-- closes it ('cleared') when it no longer does, and marks it 'reclaimed' once the resource
-- is gone or resized after the department's one-step reclaim. The freed capacity and
-- monthly cost are those measured when it was found.
CREATE TABLE idle_findings (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    resource_type   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    resource_name   TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    provider_id     TEXT,
    recommendation  TEXT NOT NULL,
    target_flavor   TEXT,
    evidence        TEXT NOT NULL,
    vcpus           BIGINT NOT NULL DEFAULT 0,
    memory_mib      BIGINT NOT NULL DEFAULT 0,
    disk_gib        BIGINT NOT NULL DEFAULT 0,
    monthly_fen     BIGINT,
    state           TEXT NOT NULL,
    request_id      TEXT,
    reason          TEXT,
    decided_by      TEXT,
    detected_at     BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    reclaimed_at    BIGINT,
    generation      BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT idle_findings_resource_kind_key UNIQUE (resource_id, kind)
);
CREATE INDEX idle_findings_dept_idx ON idle_findings (department_id, state);
CREATE INDEX idle_findings_state_idx ON idle_findings (state, reclaimed_at);

-- Indicator sets materialised by the supervision task: one row per (scope, entity,
-- month), replaced on every pass during the month; the last one of a month is its figure.
CREATE TABLE indicator_snapshots (
    scope       TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    month       TEXT NOT NULL,
    body        TEXT NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (scope, entity_id, month)
);
CREATE INDEX indicator_snapshots_month_idx ON indicator_snapshots (month, scope);

-- Monthly operations reports (运维报告): the platform's ('' provider) and each provider's.
CREATE TABLE ops_reports (
    id          TEXT PRIMARY KEY,
    month       TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    title       TEXT NOT NULL,
    pdf         BYTEA NOT NULL,
    xlsx        BYTEA NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT ops_reports_month_provider_key UNIQUE (month, provider_id)
);

-- One department's or provider's holdings without reading every instance.
CREATE INDEX instances_department_state_idx ON instances (department_id, state);
CREATE INDEX instances_provider_state_idx ON instances (provider_id, state);
