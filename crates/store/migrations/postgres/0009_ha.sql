-- High availability, shared storage, maintenance evacuation and consolidation (postgres).

-- Storage pools: `local` (the hosts' own disks, volumes only) or `shared` (a directory
-- mounted at `path` on every host of the zone; instances placed in that zone get their
-- root disk there, so another host can restart them after a failure).
ALTER TABLE storage_pools ADD COLUMN kind TEXT NOT NULL DEFAULT 'local';
ALTER TABLE storage_pools ADD COLUMN path TEXT;
CREATE UNIQUE INDEX storage_pools_one_shared ON storage_pools (zone_id) WHERE kind = 'shared';

-- The shared pool holding an instance's root disk (NULL: on its host's own disk).
ALTER TABLE instances ADD COLUMN root_pool_id TEXT REFERENCES storage_pools (id);
-- What HA does when the instance's host fails: inherit (the host group's policy, else
-- restart), restart, leave_stopped. Higher priority restarts first.
ALTER TABLE instances ADD COLUMN ha_policy TEXT NOT NULL DEFAULT 'inherit';
ALTER TABLE instances ADD COLUMN ha_priority BIGINT NOT NULL DEFAULT 0;

-- Host groups carry an HA policy for their hosts' instances.
CREATE TABLE host_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    ha_policy   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    generation  BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT host_groups_name_key UNIQUE (name)
);
ALTER TABLE hosts ADD COLUMN group_id TEXT REFERENCES host_groups (id);

-- A host's HA state: ok, fencing (declared failed, waiting out its lease), failed
-- (fenced; its instances recovered), with when that state began and when it was last
-- heard of before the failure.
ALTER TABLE hosts ADD COLUMN ha_state TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE hosts ADD COLUMN ha_since BIGINT;
ALTER TABLE hosts ADD COLUMN ha_last_seen BIGINT;
ALTER TABLE hosts ADD COLUMN ha_detected_at BIGINT;

-- One row per instance per host failure: the timings the issue asks for.
CREATE TABLE ha_recoveries (
    id              TEXT PRIMARY KEY,
    host_id         TEXT NOT NULL REFERENCES hosts (id),
    instance_id     TEXT NOT NULL REFERENCES instances (id),
    last_seen_at    BIGINT,
    detected_at     BIGINT NOT NULL,
    fenced_at       BIGINT NOT NULL,
    restarted_at    BIGINT,
    target_host_id  TEXT REFERENCES hosts (id),
    policy          TEXT NOT NULL,
    priority        BIGINT NOT NULL,
    -- pending, restarted, left_stopped, lost, failed
    outcome         TEXT NOT NULL,
    reason          TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ha_recoveries_host_idx ON ha_recoveries (host_id, created_at);
CREATE INDEX ha_recoveries_instance_idx ON ha_recoveries (instance_id, created_at);

-- Maintenance evacuations: started when a host is put into maintenance with evacuate;
-- the `host_evacuator` task live-migrates its running instances one saga each.
CREATE TABLE host_evacuations (
    id           TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL REFERENCES hosts (id),
    -- running, empty, incomplete, cancelled
    state        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    started_by   TEXT,
    -- JSON: {instance id: reason} of instances that could not be moved
    failures     TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX host_evacuations_one_running ON host_evacuations (host_id) WHERE state = 'running';

-- Consolidation plans: proposed by the planner, approved by the platform admin, then
-- executed one migration at a time by the `consolidation_executor` task; stoppable.
CREATE TABLE consolidation_plans (
    id           TEXT PRIMARY KEY,
    -- proposed, executing, done, stopped, failed, superseded
    state        TEXT NOT NULL,
    plan         TEXT NOT NULL,
    moves        BIGINT NOT NULL,
    next_move    BIGINT NOT NULL DEFAULT 0,
    current_migration_id TEXT,
    created_at   BIGINT NOT NULL,
    created_by   TEXT,
    approved_at  BIGINT,
    approved_by  TEXT,
    finished_at  BIGINT,
    error        TEXT,
    -- JSON list of {instance, reason} of moves skipped during execution
    skipped      TEXT NOT NULL DEFAULT '[]',
    generation   BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX consolidation_plans_one_executing ON consolidation_plans (state) WHERE state = 'executing';
