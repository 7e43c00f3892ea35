-- Metering, rating and billing (PostgreSQL): the usage ledger, the test clock, price-list
-- versions, closed months with their bills, lines and adjustments, budgets and their
-- alerts, reconciliations.

-- The usage ledger: one row each time what a resource costs changes, written in the same
-- transaction as the change. `status` is what it is from `at` on (running, stopped,
-- allocated for volumes, none when it stops being billed).
CREATE TABLE usage_events (
    seq           BIGSERIAL PRIMARY KEY,
    resource_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    at            BIGINT NOT NULL,
    status        TEXT NOT NULL,
    name          TEXT NOT NULL,
    department_id TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    provider_id   TEXT,
    flavor        TEXT NOT NULL DEFAULT '',
    vcpus         BIGINT NOT NULL DEFAULT 0,
    memory_mib    BIGINT NOT NULL DEFAULT 0,
    disk_gib      BIGINT NOT NULL DEFAULT 0,
    gpus          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX usage_events_resource_idx ON usage_events (resource_id, seq);
CREATE INDEX usage_events_at_idx ON usage_events (at);

-- The metering clock's offset from real time (µs). Only a server started with the test
-- clock enabled moves it, and only forwards.
CREATE TABLE billing_clock (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    offset_us BIGINT NOT NULL
);
INSERT INTO billing_clock (id, offset_us) VALUES (1, 0);

-- Price-list versions (价格目录), per provider. Never updated: a version is superseded by
-- a later one; one that has not taken effect may be withdrawn.
CREATE TABLE price_versions (
    id             TEXT PRIMARY KEY,
    provider_id    TEXT NOT NULL REFERENCES providers (id),
    effective_from BIGINT NOT NULL,
    rates          TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    CONSTRAINT price_versions_provider_from_key UNIQUE (provider_id, effective_from)
);
CREATE FUNCTION price_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'price versions are never edited';
END;
$$;
CREATE TRIGGER price_versions_immutable BEFORE UPDATE ON price_versions
FOR EACH ROW EXECUTE FUNCTION price_versions_guard();

-- A closed month (月结). Its bills and lines were written in the same transaction.
CREATE TABLE billing_months (
    month      TEXT PRIMARY KEY,
    closed_at  BIGINT NOT NULL,
    closed_by  TEXT NOT NULL,
    total_fen  BIGINT NOT NULL
);

-- A department's bill of a closed month: closed → confirmed (by the department) → paid.
CREATE TABLE bills (
    month           TEXT NOT NULL REFERENCES billing_months (month),
    department_id   TEXT NOT NULL,
    department_name TEXT NOT NULL,
    state           TEXT NOT NULL,
    usage_fen       BIGINT NOT NULL,
    adjustments_fen BIGINT NOT NULL DEFAULT 0,
    confirmed_at    BIGINT,
    confirmed_by    TEXT,
    paid_at         BIGINT,
    paid_by         TEXT,
    generation      BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (month, department_id)
);

CREATE TABLE bill_lines (
    month           TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    line_no         BIGINT NOT NULL,
    project_id      TEXT NOT NULL,
    project_name    TEXT NOT NULL,
    provider_id     TEXT,
    provider_name   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    running_secs    BIGINT NOT NULL,
    stopped_secs    BIGINT NOT NULL,
    vcpu_secs       BIGINT NOT NULL,
    memory_mib_secs BIGINT NOT NULL,
    disk_gib_secs   BIGINT NOT NULL,
    gpu_secs        BIGINT NOT NULL,
    amount_fen      BIGINT NOT NULL,
    PRIMARY KEY (month, department_id, line_no)
);
CREATE INDEX bill_lines_provider_idx ON bill_lines (month, provider_id);
-- Lines of a closed month are history: corrections are adjustments.
CREATE FUNCTION bill_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lines of a closed month are never changed or deleted';
END;
$$;
CREATE TRIGGER bill_lines_immutable BEFORE UPDATE OR DELETE ON bill_lines
FOR EACH ROW EXECUTE FUNCTION bill_lines_guard();

CREATE TABLE bill_adjustments (
    id            TEXT PRIMARY KEY,
    month         TEXT NOT NULL,
    department_id TEXT NOT NULL,
    amount_fen    BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX bill_adjustments_bill_idx ON bill_adjustments (month, department_id, created_at);

-- A department's monthly budget, and the alerts raised once per month and level.
CREATE TABLE budgets (
    department_id TEXT PRIMARY KEY,
    monthly_fen   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    generation    BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE budget_alerts (
    department_id TEXT NOT NULL,
    month         TEXT NOT NULL,
    level         BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    spent_fen     BIGINT NOT NULL,
    budget_fen    BIGINT NOT NULL,
    PRIMARY KEY (department_id, month, level)
);

-- A provider's claimed usage imported and matched against the meter (对账).
CREATE TABLE reconciliations (
    id          TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    month       TEXT NOT NULL,
    source      TEXT NOT NULL,
    report      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX reconciliations_provider_idx ON reconciliations (provider_id, created_at);
