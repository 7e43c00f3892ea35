-- Security events (安全事件) and vulnerability tracking (漏洞管理) (sqlite).

-- The address plan (地址规划): CIDR blocks assigned to departments (and optionally the
-- provider whose network holds them). Blocks may nest (the most specific wins); the same
-- block twice is refused.
CREATE TABLE address_blocks (
    id            TEXT PRIMARY KEY,
    cidr          TEXT NOT NULL,
    department_id TEXT NOT NULL REFERENCES departments (id),
    provider_id   TEXT REFERENCES providers (id),
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    CONSTRAINT address_blocks_cidr_key UNIQUE (cidr)
);

-- Normalised events, written in batches by the syslog receiver (and by the networks'
-- security-group drop counting). seq orders them and is the list's cursor.
CREATE TABLE security_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    source        TEXT NOT NULL,
    appliance     TEXT NOT NULL,
    format        TEXT NOT NULL,
    category      TEXT NOT NULL,
    severity      TEXT NOT NULL,
    action        TEXT NOT NULL,
    src_ip        TEXT,
    src_port      INTEGER,
    dst_ip        TEXT,
    dst_port      INTEGER,
    protocol      TEXT,
    rule          TEXT,
    count         INTEGER NOT NULL DEFAULT 1,
    department_id TEXT,
    provider_id   TEXT,
    instance_id   TEXT,
    message       TEXT NOT NULL
);
CREATE INDEX security_events_at_idx ON security_events (at);
CREATE INDEX security_events_dept_idx ON security_events (department_id, seq);

-- Pre-aggregated counts, updated in the same transaction as each batch of events, so the
-- dashboards read a few rows instead of scanning events. '' = no known department or
-- provider. day is the Asia/Shanghai date of the event.
CREATE TABLE security_event_counts (
    day           TEXT NOT NULL,
    department_id TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    category      TEXT NOT NULL,
    severity      TEXT NOT NULL,
    action        TEXT NOT NULL,
    events        INTEGER NOT NULL,
    PRIMARY KEY (day, department_id, provider_id, category, severity, action)
);

-- Alert rules on events: at least `threshold` events of `min_severity` or worse (of one
-- department, or any) within `window_secs`; `last_fired_at` keeps one alert per window.
CREATE TABLE security_event_rules (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    department_id TEXT REFERENCES departments (id),
    category      TEXT,
    min_severity  TEXT NOT NULL,
    threshold     INTEGER NOT NULL,
    window_secs   INTEGER NOT NULL,
    last_fired_at INTEGER,
    created_at    INTEGER NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT security_event_rules_name_key UNIQUE (name)
);

-- Vulnerability findings: one per (address, port, vulnerability id).
CREATE TABLE vulnerabilities (
    id            TEXT PRIMARY KEY,
    address       TEXT NOT NULL,
    port          INTEGER NOT NULL,
    protocol      TEXT NOT NULL,
    vuln_id       TEXT NOT NULL,
    title         TEXT NOT NULL,
    severity      TEXT NOT NULL,
    cve           TEXT NOT NULL,
    solution      TEXT NOT NULL,
    state         TEXT NOT NULL,
    department_id TEXT,
    provider_id   TEXT,
    instance_id   TEXT,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    deadline      INTEGER NOT NULL,
    fixed_at      INTEGER,
    verified_at   INTEGER,
    note          TEXT NOT NULL DEFAULT '',
    -- The deadline an overdue reminder was last sent for (NULL: none yet).
    reminded_deadline INTEGER,
    generation    INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT vulnerabilities_finding_key UNIQUE (address, port, vuln_id)
);
CREATE INDEX vulnerabilities_dept_idx ON vulnerabilities (department_id, state);
CREATE INDEX vulnerabilities_deadline_idx ON vulnerabilities (deadline) WHERE state IN ('open', 'fixing');

-- Each imported scanner file, with what it changed.
CREATE TABLE vulnerability_imports (
    id            TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    format        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    hosts         INTEGER NOT NULL,
    findings      INTEGER NOT NULL,
    created       INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    reopened      INTEGER NOT NULL,
    verified      INTEGER NOT NULL,
    duplicates    INTEGER NOT NULL
);
