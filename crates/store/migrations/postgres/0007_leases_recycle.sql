-- Leases (使用期限) and the recycle bin (回收站) of instances (postgres).

-- When the instance's lease ends (NULL: no lease).
ALTER TABLE instances ADD COLUMN lease_end BIGINT;
-- The smallest reminder offset (seconds before the end) already sent for this lease_end;
-- reminders are recorded by a conditional update on it, so none is sent twice.
ALTER TABLE instances ADD COLUMN lease_reminded BIGINT;
-- 1 once the lease manager has stopped the instance because its lease ended.
ALTER TABLE instances ADD COLUMN lease_ended BIGINT NOT NULL DEFAULT 0;
-- When the lease manager must look at the instance next (0: now; NULL: nothing pending).
ALTER TABLE instances ADD COLUMN lease_next_at BIGINT;
-- In the recycle bin since (NULL: not released), purged for good at purge_at.
ALTER TABLE instances ADD COLUMN recycled_at BIGINT;
ALTER TABLE instances ADD COLUMN purge_at BIGINT;
ALTER TABLE instances ADD COLUMN recycle_reason TEXT;

CREATE INDEX instances_lease_next_idx ON instances (lease_next_at) WHERE lease_next_at IS NOT NULL;
CREATE INDEX instances_purge_idx ON instances (purge_at) WHERE purge_at IS NOT NULL;

-- Volumes released to the recycle bin (available ones only): kept with their space and
-- quota until purge_at, then deleted like a DELETE would.
ALTER TABLE volumes ADD COLUMN recycled_at BIGINT;
ALTER TABLE volumes ADD COLUMN purge_at BIGINT;
ALTER TABLE volumes ADD COLUMN recycle_reason TEXT;
CREATE INDEX volumes_purge_idx ON volumes (purge_at) WHERE purge_at IS NOT NULL;
