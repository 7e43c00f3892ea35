-- Real hosts: one-time join tokens, the agents that joined (one per host), live migrations,
-- and the user data an instance is handed at boot (SQLite).

CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY,
    zone_id     TEXT NOT NULL REFERENCES zones (id),
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    host_id     TEXT,
    CONSTRAINT join_tokens_hash_key UNIQUE (token_hash)
);

CREATE TABLE agents (
    host_id     TEXT PRIMARY KEY REFERENCES hosts (id),
    -- host:port the agent serves its mutual-TLS API on.
    address     TEXT NOT NULL,
    cert_pem    TEXT NOT NULL,
    accel       TEXT NOT NULL,
    joined_at   INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    -- The last heartbeat as JSON: capacity, QEMU version, the VMs it runs.
    report      TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE migrations (
    id             TEXT PRIMARY KEY,
    instance_id    TEXT NOT NULL REFERENCES instances (id),
    source_host_id TEXT NOT NULL,
    target_host_id TEXT NOT NULL,
    state          TEXT NOT NULL,
    downtime_ms    INTEGER,
    total_ms       INTEGER,
    error          TEXT,
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX migrations_instance_idx ON migrations (instance_id, created_at);
-- At most one migration of an instance at a time, whichever replica started it.
CREATE UNIQUE INDEX migrations_one_running ON migrations (instance_id) WHERE state = 'running';

ALTER TABLE instances ADD COLUMN user_data TEXT NOT NULL DEFAULT '';
