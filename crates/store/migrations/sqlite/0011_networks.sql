-- Virtual networks (虚拟私有网络/子网), NICs with the platform's own address allocation,
-- security groups (安全组), external networks and elastic IPs (弹性IP) (sqlite).

-- A VPC belongs to a project, or to a whole department when project_id is NULL. Its
-- VXLAN network identifier is unique platform-wide.
CREATE TABLE vpcs (
    id            TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES departments (id),
    project_id    TEXT,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    vni           INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT vpcs_vni_key UNIQUE (vni),
    CONSTRAINT vpcs_department_name_key UNIQUE (department_id, name)
);
CREATE INDEX vpcs_project_idx ON vpcs (project_id);

-- Subnets of one VPC never overlap (checked under the VPC's lock); across VPCs they may.
-- net_first/net_last: the range as numbers, for the overlap check and address lookups.
CREATE TABLE subnets (
    id          TEXT PRIMARY KEY,
    vpc_id      TEXT NOT NULL REFERENCES vpcs (id),
    name        TEXT NOT NULL,
    cidr        TEXT NOT NULL,
    net_first   INTEGER NOT NULL,
    net_last    INTEGER NOT NULL,
    gateway     TEXT NOT NULL,
    dns_servers TEXT NOT NULL DEFAULT '',
    dhcp        INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    CONSTRAINT subnets_vpc_name_key UNIQUE (vpc_id, name)
);
CREATE INDEX subnets_vpc_idx ON subnets (vpc_id);

-- A NIC holds one address of its subnet: (subnet_id, ip_num) is unique, so two NICs can
-- never have one address whoever allocates concurrently. ip_num is the address as a number.
CREATE TABLE nics (
    id            TEXT PRIMARY KEY,
    instance_id   TEXT NOT NULL,
    subnet_id     TEXT NOT NULL REFERENCES subnets (id),
    vpc_id        TEXT NOT NULL,
    department_id TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    mac           TEXT NOT NULL,
    ip            TEXT NOT NULL,
    ip_num        INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    CONSTRAINT nics_subnet_ip_key UNIQUE (subnet_id, ip_num),
    CONSTRAINT nics_instance_idx_key UNIQUE (instance_id, idx),
    CONSTRAINT nics_mac_key UNIQUE (mac)
);
CREATE INDEX nics_instance_idx ON nics (instance_id);
CREATE INDEX nics_ip_idx ON nics (ip_num);

CREATE TABLE security_groups (
    id            TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES departments (id),
    project_id    TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT security_groups_project_name_key UNIQUE (project_id, name)
);

-- The rules of a group, replaced as a whole (conditional on the group's generation).
CREATE TABLE security_rules (
    group_id        TEXT NOT NULL REFERENCES security_groups (id),
    position        INTEGER NOT NULL,
    direction       TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    port_min        INTEGER,
    port_max        INTEGER,
    remote_cidr     TEXT,
    remote_group_id TEXT,
    description     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (group_id, position)
);
CREATE INDEX security_rules_remote_idx ON security_rules (remote_group_id);

CREATE TABLE nic_security_groups (
    nic_id   TEXT NOT NULL REFERENCES nics (id),
    group_id TEXT NOT NULL REFERENCES security_groups (id),
    PRIMARY KEY (nic_id, group_id)
);
CREATE INDEX nic_security_groups_group_idx ON nic_security_groups (group_id);

-- An external network of a zone (e.g. 政务外网), defined by the platform admin.
CREATE TABLE external_networks (
    id             TEXT PRIMARY KEY,
    zone_id        TEXT NOT NULL REFERENCES zones (id),
    name           TEXT NOT NULL,
    cidr           TEXT NOT NULL,
    net_first      INTEGER NOT NULL,
    net_last       INTEGER NOT NULL,
    gateway        TEXT NOT NULL,
    host_interface TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    CONSTRAINT external_networks_name_key UNIQUE (name)
);

-- An elastic IP: one address of an external network, bound to at most one NIC and a NIC
-- to at most one elastic IP.
CREATE TABLE elastic_ips (
    id                  TEXT PRIMARY KEY,
    external_network_id TEXT NOT NULL REFERENCES external_networks (id),
    department_id       TEXT NOT NULL,
    project_id          TEXT NOT NULL,
    address             TEXT NOT NULL,
    ip_num              INTEGER NOT NULL,
    nic_id              TEXT,
    created_at          INTEGER NOT NULL,
    generation          INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT elastic_ips_address_key UNIQUE (external_network_id, ip_num),
    CONSTRAINT elastic_ips_nic_key UNIQUE (nic_id)
);
CREATE INDEX elastic_ips_ip_idx ON elastic_ips (ip_num);
