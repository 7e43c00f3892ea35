-- Resource requests (资源申请) and their approval chains (SQLite).

-- A department that takes resources only through requests: nothing is created directly,
-- so nothing bypasses approval and quota.
ALTER TABLE departments ADD COLUMN requests_only INTEGER NOT NULL DEFAULT 0;

CREATE TABLE resource_requests (
    id                    TEXT PRIMARY KEY,
    department_id         TEXT NOT NULL REFERENCES departments (id),
    project_id            TEXT NOT NULL REFERENCES projects (id),
    -- new | change | release
    kind                  TEXT NOT NULL,
    title                 TEXT NOT NULL,
    purpose               TEXT NOT NULL,
    mlps_level            INTEGER,
    lease_end             INTEGER,
    -- The items as JSON (tagged by "type").
    items                 TEXT NOT NULL,
    state                 TEXT NOT NULL,
    -- The approval chain fixed at submit, as JSON.
    steps                 TEXT NOT NULL DEFAULT '[]',
    current_step          INTEGER NOT NULL DEFAULT 0,
    -- The role that decides the current step (dept_admin at the department; supervisor or
    -- finance platform-wide), for the reviewers' to-do lists.
    step_role             TEXT,
    step_due              INTEGER,
    -- Set once the current step's reviewers were reminded (reset by each step).
    step_reminded         INTEGER NOT NULL DEFAULT 0,
    provider_id           TEXT,
    zone_id               TEXT,
    estimated_monthly_fen INTEGER,
    totals                TEXT NOT NULL DEFAULT '{}',
    requester_id          TEXT NOT NULL,
    -- What the delivery produced (or rolled back), as JSON.
    delivered             TEXT NOT NULL DEFAULT '[]',
    note                  TEXT,
    delivery_due          INTEGER,
    delivery_reminded     INTEGER NOT NULL DEFAULT 0,
    submitted_at          INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    generation            INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX resource_requests_department_idx ON resource_requests (department_id, created_at, id);
CREATE INDEX resource_requests_requester_idx ON resource_requests (requester_id, created_at, id);
CREATE INDEX resource_requests_state_idx ON resource_requests (state, step_role, department_id);

-- The timeline: every decision and every delivery event, in order.
CREATE TABLE request_events (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES resource_requests (id),
    at          INTEGER NOT NULL,
    action      TEXT NOT NULL,
    actor_id    TEXT,
    step        TEXT,
    reason      TEXT
);
CREATE INDEX request_events_request_idx ON request_events (request_id, at, id);

-- Approval chains per department (or 'platform' for the default) and request kind.
CREATE TABLE approval_chains (
    id                  TEXT PRIMARY KEY,
    scope_key           TEXT NOT NULL,
    kind                TEXT NOT NULL,
    steps               TEXT NOT NULL,
    auto_max_vcpus      INTEGER,
    auto_max_volume_gib INTEGER,
    updated_at          INTEGER NOT NULL,
    generation          INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT approval_chains_scope_kind_key UNIQUE (scope_key, kind)
);
