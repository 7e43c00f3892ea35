-- Adoption (纳管) of resources found in OpenStack provider clouds, and the drift history
-- (sqlite).

-- Where an instance or volume came from: `created` through zhengyun, or `adopted` from a
-- provider cloud (with the moment it was adopted, from which it is metered).
ALTER TABLE instances ADD COLUMN origin TEXT NOT NULL DEFAULT 'created';
ALTER TABLE instances ADD COLUMN adopted_at INTEGER;
ALTER TABLE volumes ADD COLUMN origin TEXT NOT NULL DEFAULT 'created';
ALTER TABLE volumes ADD COLUMN adopted_at INTEGER;

-- What the openstack_sync task found different between a provider cloud and zhengyun,
-- one row per (provider, kind, external id, change), kept as history. `state`: open (to
-- decide), adopted, dismissed (stays dismissed), resolved (the difference went away).
CREATE TABLE openstack_drift (
    id                TEXT PRIMARY KEY,
    provider_id       TEXT NOT NULL REFERENCES providers (id),
    kind              TEXT NOT NULL,
    external_id       TEXT NOT NULL,
    change            TEXT NOT NULL,
    name              TEXT NOT NULL,
    openstack_project TEXT,
    instance_id       TEXT,
    department_id     TEXT,
    project_id        TEXT,
    detail            TEXT NOT NULL,
    state             TEXT NOT NULL,
    reason            TEXT NOT NULL DEFAULT '',
    notified          INTEGER NOT NULL DEFAULT 0,
    first_seen        INTEGER NOT NULL,
    last_seen         INTEGER NOT NULL,
    decided_by        TEXT,
    decided_at        INTEGER,
    CONSTRAINT openstack_drift_key UNIQUE (provider_id, kind, external_id, change)
);
CREATE INDEX openstack_drift_state_idx ON openstack_drift (provider_id, state, last_seen);
