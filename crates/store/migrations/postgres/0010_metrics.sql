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
