-- Load balancers (负载均衡) (sqlite). The virtual IP is a row of `nics` (instance_id = the
-- load balancer's id), so the platform's IPAM hands it out like any address and the unique
-- (subnet, address) keeps it from ever being given twice. The listeners, pools, members
-- and health checks are one JSON document replaced whole, conditional on the generation;
-- a saga applies each generation on the chosen host and records applied_generation and
-- the members' operating status (JSON) the host reported.
CREATE TABLE load_balancers (
    id                 TEXT PRIMARY KEY,
    department_id      TEXT NOT NULL REFERENCES departments (id),
    project_id         TEXT NOT NULL,
    vpc_id             TEXT NOT NULL REFERENCES vpcs (id),
    subnet_id          TEXT NOT NULL REFERENCES subnets (id),
    vip_nic_id         TEXT NOT NULL,
    vip                TEXT NOT NULL,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    listeners          TEXT NOT NULL,
    state              TEXT NOT NULL,
    host_id            TEXT,
    simulated          INTEGER NOT NULL DEFAULT 0,
    applied_generation INTEGER NOT NULL DEFAULT 0,
    member_status      TEXT NOT NULL DEFAULT '[]',
    last_error         TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    generation         INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT load_balancers_project_name_key UNIQUE (project_id, name)
);
CREATE INDEX load_balancers_vpc_idx ON load_balancers (vpc_id);
CREATE INDEX load_balancers_host_idx ON load_balancers (host_id);
