-- The latest reading of each instance on a provider cloud that zhengyun cannot measure
-- itself (an OpenStack provider's Nova diagnostics), written by the provider's metrics
-- task and read by the metrics collector, which may run on another replica. `counters`
-- keeps the raw counters for the next reading's rates; `figures` the derived series
-- (JSON array in `zy_model::metrics::Series` order, null where not measured).
CREATE TABLE provider_readings (
    instance_id  TEXT PRIMARY KEY,
    provider_id  TEXT NOT NULL,
    read_at      BIGINT NOT NULL,
    running      BIGINT NOT NULL,
    counters     TEXT,
    figures      TEXT
);
CREATE INDEX provider_readings_provider_idx ON provider_readings (provider_id);
