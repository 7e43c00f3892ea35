-- Provider operators (云服务商运维) work for one contracted provider: their grants are held
-- at that provider's scope, and everything they see and work on is that provider's.
ALTER TABLE memberships ADD COLUMN provider_id TEXT REFERENCES providers (id);
CREATE INDEX memberships_provider_idx ON memberships (provider_id);
-- Operators granted before this version held the platform scope, which no longer fits
-- their role: the platform admin grants them again on their provider. Keeping them
-- platform-wide would let one provider's staff read every other provider's tickets.
DELETE FROM memberships WHERE role = 'provider_operator' AND scope_type = 'platform';
