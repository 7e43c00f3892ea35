-- A VPC's outbound access (出网) through its zone's external network: masquerade for its
-- NICs without an elastic IP. Existing VPCs keep the access they had.
ALTER TABLE vpcs ADD COLUMN outbound INTEGER NOT NULL DEFAULT 1;
