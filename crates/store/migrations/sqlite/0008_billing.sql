-- Metering, rating and billing (SQLite): the usage ledger, the test clock, price-list
-- versions, closed months with their bills, lines and adjustments, budgets and their
-- alerts, reconciliations.

-- The usage ledger: one row each time what a resource costs changes, written in the same
-- transaction as the change. `status` is what it is from `at` on (running, stopped,
-- allocated for volumes, none when it stops being billed).
CREATE TABLE usage_events (
    seq           INTEGER PRIMARY KEY,
    resource_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    at            INTEGER NOT NULL,
    status        TEXT NOT NULL,
    name          TEXT NOT NULL,
    department_id TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    provider_id   TEXT,
    flavor        TEXT NOT NULL DEFAULT '',
    vcpus         INTEGER NOT NULL DEFAULT 0,
    memory_mib    INTEGER NOT NULL DEFAULT 0,
    disk_gib      INTEGER NOT NULL DEFAULT 0,
    gpus          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX usage_events_resource_idx ON usage_events (resource_id, seq);
CREATE INDEX usage_events_at_idx ON usage_events (at);

-- The metering clock's offset from real time (µs). Only a server started with the test
-- clock enabled moves it, and only forwards.
CREATE TABLE billing_clock (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    offset_us INTEGER NOT NULL
);
INSERT INTO billing_clock (id, offset_us) VALUES (1, 0);

-- Price-list versions (价格目录), per provider. Never updated: a version is superseded by
-- a later one; one that has not taken effect may be withdrawn.
CREATE TABLE price_versions (
    id             TEXT PRIMARY KEY,
    provider_id    TEXT NOT NULL REFERENCES providers (id),
    effective_from INTEGER NOT NULL,
    rates          TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    CONSTRAINT price_versions_provider_from_key UNIQUE (provider_id, effective_from)
);
CREATE TRIGGER price_versions_immutable BEFORE UPDATE ON price_versions
BEGIN SELECT RAISE(ABORT, 'price versions are never edited'); END;

-- A closed month (月结). Its bills and lines were written in the same transaction.
CREATE TABLE billing_months (
    month      TEXT PRIMARY KEY,
    closed_at  INTEGER NOT NULL,
    closed_by  TEXT NOT NULL,
    total_fen  INTEGER NOT NULL
);

-- A department's bill of a closed month: closed → confirmed (by the department) → paid.
CREATE TABLE bills (
    month           TEXT NOT NULL REFERENCES billing_months (month),
    department_id   TEXT NOT NULL,
    department_name TEXT NOT NULL,
    state           TEXT NOT NULL,
    usage_fen       INTEGER NOT NULL,
    adjustments_fen INTEGER NOT NULL DEFAULT 0,
    confirmed_at    INTEGER,
    confirmed_by    TEXT,
    paid_at         INTEGER,
    paid_by         TEXT,
    generation      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (month, department_id)
);

CREATE TABLE bill_lines (
    month           TEXT NOT NULL,
    department_id   TEXT NOT NULL,
    line_no         INTEGER NOT NULL,
    project_id      TEXT NOT NULL,
    project_name    TEXT NOT NULL,
    provider_id     TEXT,
    provider_name   TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    running_secs    INTEGER NOT NULL,
    stopped_secs    INTEGER NOT NULL,
    vcpu_secs       INTEGER NOT NULL,
    memory_mib_secs INTEGER NOT NULL,
    disk_gib_secs   INTEGER NOT NULL,
    gpu_secs        INTEGER NOT NULL,
    amount_fen      INTEGER NOT NULL,
    PRIMARY KEY (month, department_id, line_no)
);
CREATE INDEX bill_lines_provider_idx ON bill_lines (month, provider_id);
-- Lines of a closed month are history: corrections are adjustments.
CREATE TRIGGER bill_lines_immutable BEFORE UPDATE ON bill_lines
BEGIN SELECT RAISE(ABORT, 'lines of a closed month are never changed'); END;
CREATE TRIGGER bill_lines_kept BEFORE DELETE ON bill_lines
BEGIN SELECT RAISE(ABORT, 'lines of a closed month are never deleted'); END;

CREATE TABLE bill_adjustments (
    id            TEXT PRIMARY KEY,
    month         TEXT NOT NULL,
    department_id TEXT NOT NULL,
    amount_fen    INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX bill_adjustments_bill_idx ON bill_adjustments (month, department_id, created_at);

-- A department's monthly budget, and the alerts raised once per month and level.
CREATE TABLE budgets (
    department_id TEXT PRIMARY KEY,
    monthly_fen   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE budget_alerts (
    department_id TEXT NOT NULL,
    month         TEXT NOT NULL,
    level         INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    spent_fen     INTEGER NOT NULL,
    budget_fen    INTEGER NOT NULL,
    PRIMARY KEY (department_id, month, level)
);

-- A provider's claimed usage imported and matched against the meter (对账).
CREATE TABLE reconciliations (
    id          TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    month       TEXT NOT NULL,
    source      TEXT NOT NULL,
    report      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX reconciliations_provider_idx ON reconciliations (provider_id, created_at);
