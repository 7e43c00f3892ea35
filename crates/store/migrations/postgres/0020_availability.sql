-- Availability from monitoring (服务质量考核): the minutes in which an instance that should
-- run was unreachable for most of the collector's readings. Written by the metrics
-- collector as each minute closes (only down minutes, so a healthy month writes nothing);
-- the SLA score counts them as down together with the HA recoveries' outages.
CREATE TABLE instance_down_minutes (
    instance_id  TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    minute       BIGINT NOT NULL,
    readings     BIGINT NOT NULL,
    missed       BIGINT NOT NULL,
    PRIMARY KEY (instance_id, minute)
);
CREATE INDEX instance_down_minutes_provider_idx ON instance_down_minutes (provider_id, minute);
