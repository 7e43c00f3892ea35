-- Tenancy, identity, sessions, tokens, settings and the audit log (PostgreSQL).
-- Times are microseconds since the Unix epoch; booleans are 0/1 integers; ids are UUID text.

CREATE TABLE departments (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    code        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    generation  BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT departments_name_key UNIQUE (name),
    CONSTRAINT departments_code_key UNIQUE (code)
);
CREATE INDEX departments_created_idx ON departments (created_at, id);

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    department_id TEXT NOT NULL REFERENCES departments (id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    generation    BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT projects_department_name_key UNIQUE (department_id, name)
);
CREATE INDEX projects_name_idx ON projects (name, id);
CREATE INDEX projects_created_idx ON projects (created_at, id);

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL,
    display_name         TEXT NOT NULL,
    email                TEXT,
    phone                TEXT,
    department_id        TEXT REFERENCES departments (id),
    password_hash        TEXT NOT NULL,
    password_changed_at  BIGINT NOT NULL,
    must_change_password BIGINT NOT NULL DEFAULT 0,
    failed_logins        BIGINT NOT NULL DEFAULT 0,
    locked_until         BIGINT,
    totp_secret          TEXT,
    totp_enabled         BIGINT NOT NULL DEFAULT 0,
    totp_last_step       BIGINT NOT NULL DEFAULT 0,
    admin_role           TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    generation           BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT users_username_key UNIQUE (username)
);
CREATE INDEX users_department_idx ON users (department_id, username);
CREATE INDEX users_created_idx ON users (created_at, id);

CREATE TABLE memberships (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id),
    role          TEXT NOT NULL,
    scope_type    TEXT NOT NULL,
    department_id TEXT REFERENCES departments (id),
    project_id    TEXT REFERENCES projects (id),
    scope_key     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT,
    CONSTRAINT memberships_user_role_scope_key UNIQUE (user_id, role, scope_key)
);
CREATE INDEX memberships_department_idx ON memberships (department_id);
CREATE INDEX memberships_project_idx ON memberships (project_id);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    secret_hash  TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    source_ip    TEXT NOT NULL,
    revoked_at   BIGINT,
    CONSTRAINT sessions_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    CONSTRAINT api_tokens_secret_hash_key UNIQUE (secret_hash),
    CONSTRAINT api_tokens_user_name_key UNIQUE (user_id, name)
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    actor_roles TEXT NOT NULL,
    source_ip   TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- The chain head (last seq and hash) and where the kept log starts after a purge.
CREATE TABLE audit_head (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    seq             BIGINT NOT NULL,
    hash            TEXT NOT NULL,
    first_seq       BIGINT NOT NULL,
    first_prev_hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, first_seq, first_prev_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        1, '0000000000000000000000000000000000000000000000000000000000000000');

-- Defence in depth: the log is append-only, and records younger than 180 days cannot be
-- deleted. The hash chain detects what gets past these (e.g. someone dropping them).
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit_log is append-only';
    END IF;
    IF OLD.at > (EXTRACT(EPOCH FROM now())::BIGINT - 180 * 86400) * 1000000 THEN
        RAISE EXCEPTION 'audit records younger than 180 days cannot be deleted';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
