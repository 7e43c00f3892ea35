-- Compute: providers, zones, hosts, storage pools, flavors, images, quotas, server
-- groups, instances with their events, and volumes (PostgreSQL).

CREATE TABLE providers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    simulated   BIGINT NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '',
    -- Driver settings as JSON (for the simulated provider: latency, failure probability).
    config      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    generation  BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT providers_name_key UNIQUE (name)
);

CREATE TABLE zones (
    id          TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL REFERENCES providers (id),
    region      TEXT NOT NULL,
    name        TEXT NOT NULL,
    strategy    TEXT NOT NULL DEFAULT 'pack',
    created_at  BIGINT NOT NULL,
    CONSTRAINT zones_provider_name_key UNIQUE (provider_id, name)
);

CREATE TABLE hosts (
    id                 TEXT PRIMARY KEY,
    zone_id            TEXT NOT NULL REFERENCES zones (id),
    provider_id        TEXT NOT NULL REFERENCES providers (id),
    name               TEXT NOT NULL,
    -- A dense number for the in-memory scheduler's host table.
    slot               BIGINT NOT NULL,
    vcpus              BIGINT NOT NULL,
    memory_mib         BIGINT NOT NULL,
    disk_gib           BIGINT NOT NULL,
    gpus               BIGINT NOT NULL DEFAULT 0,
    cpu_ratio_permille BIGINT NOT NULL,
    mem_ratio_permille BIGINT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'enabled',
    used_vcpus         BIGINT NOT NULL DEFAULT 0,
    used_memory_mib    BIGINT NOT NULL DEFAULT 0,
    used_disk_gib      BIGINT NOT NULL DEFAULT 0,
    used_gpus          BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    generation         BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT hosts_zone_name_key UNIQUE (zone_id, name),
    CONSTRAINT hosts_slot_key UNIQUE (slot),
    CONSTRAINT hosts_usage_check CHECK (used_vcpus >= 0 AND used_memory_mib >= 0 AND used_disk_gib >= 0 AND used_gpus >= 0)
);
CREATE INDEX hosts_provider_idx ON hosts (provider_id, name);

CREATE TABLE storage_pools (
    id           TEXT PRIMARY KEY,
    zone_id      TEXT NOT NULL REFERENCES zones (id),
    name         TEXT NOT NULL,
    capacity_gib BIGINT NOT NULL,
    used_gib     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    generation   BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT storage_pools_zone_name_key UNIQUE (zone_id, name),
    CONSTRAINT storage_pools_usage_check CHECK (used_gib >= 0 AND used_gib <= capacity_gib)
);

CREATE TABLE flavors (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    vcpus      BIGINT NOT NULL,
    memory_mib BIGINT NOT NULL,
    gpus       BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    CONSTRAINT flavors_name_key UNIQUE (name)
);

CREATE TABLE images (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    os           TEXT NOT NULL,
    min_disk_gib BIGINT NOT NULL,
    -- Comma-separated provider ids that carry the image; empty means every provider.
    providers    TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    CONSTRAINT images_name_key UNIQUE (name)
);

-- Limits and usage per department or project. Usage changes only by conditional
-- updates that keep it within the limits, so concurrent creates cannot overrun them.
CREATE TABLE quotas (
    scope_type      TEXT NOT NULL,
    scope_id        TEXT NOT NULL,
    max_instances   BIGINT NOT NULL,
    max_vcpus       BIGINT NOT NULL,
    max_memory_mib  BIGINT NOT NULL,
    max_disk_gib    BIGINT NOT NULL,
    max_volumes     BIGINT NOT NULL,
    used_instances  BIGINT NOT NULL DEFAULT 0,
    used_vcpus      BIGINT NOT NULL DEFAULT 0,
    used_memory_mib BIGINT NOT NULL DEFAULT 0,
    used_disk_gib   BIGINT NOT NULL DEFAULT 0,
    used_volumes    BIGINT NOT NULL DEFAULT 0,
    generation      BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (scope_type, scope_id),
    CONSTRAINT quotas_usage_check CHECK (used_instances >= 0 AND used_vcpus >= 0 AND used_memory_mib >= 0 AND used_disk_gib >= 0 AND used_volumes >= 0)
);

CREATE TABLE server_groups (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    name       TEXT NOT NULL,
    policy     TEXT NOT NULL,
    -- For affinity: the host every member must share, set by the first placement.
    host_id    TEXT,
    created_at BIGINT NOT NULL,
    CONSTRAINT server_groups_project_name_key UNIQUE (project_id, name)
);

-- One row per anti-affinity member placed: the key makes two members on one host impossible,
-- whichever replica placed them.
CREATE TABLE anti_affinity_slots (
    group_id    TEXT NOT NULL,
    host_id     TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    PRIMARY KEY (group_id, host_id)
);

CREATE TABLE instances (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects (id),
    department_id    TEXT NOT NULL,
    name             TEXT NOT NULL,
    flavor_id        TEXT NOT NULL,
    flavor_name      TEXT NOT NULL,
    image_id         TEXT NOT NULL,
    image_name       TEXT NOT NULL,
    vcpus            BIGINT NOT NULL,
    memory_mib       BIGINT NOT NULL,
    disk_gib         BIGINT NOT NULL,
    gpus             BIGINT NOT NULL,
    want_zone_id     TEXT,
    want_provider_id TEXT,
    group_id         TEXT,
    zone_id          TEXT,
    provider_id      TEXT,
    host_id          TEXT,
    state            TEXT NOT NULL,
    desired          TEXT NOT NULL,
    -- What the instance holds, so undo and delete release exactly that.
    quota_held       BIGINT NOT NULL DEFAULT 1,
    capacity_held    BIGINT NOT NULL DEFAULT 0,
    disk_created     BIGINT NOT NULL DEFAULT 0,
    resize_pending   BIGINT NOT NULL DEFAULT 0,
    reboot_pending   BIGINT NOT NULL DEFAULT 0,
    -- 1 while the reconciler has something to do for this instance.
    work             BIGINT NOT NULL DEFAULT 1,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    generation       BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX instances_project_idx ON instances (project_id, name, id);
CREATE INDEX instances_work_idx ON instances (work, next_attempt_at);
CREATE INDEX instances_host_idx ON instances (host_id);

CREATE TABLE instance_events (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX instance_events_instance_idx ON instance_events (instance_id, at);

CREATE TABLE volumes (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects (id),
    department_id TEXT NOT NULL,
    name          TEXT NOT NULL,
    size_gib      BIGINT NOT NULL,
    pool_id       TEXT NOT NULL REFERENCES storage_pools (id),
    instance_id   TEXT,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    generation    BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT volumes_project_name_key UNIQUE (project_id, name)
);
