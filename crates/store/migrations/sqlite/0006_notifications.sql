-- Notifications (SQLite): the in-app inbox, per-user preferences, webhook subscriptions
-- and the outbox of e-mail and webhook deliveries.

-- One row per notice per recipient. Rendered at read time from kind + params in the
-- reader's language, so a template fix reaches old notices too.
CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    params     TEXT NOT NULL DEFAULT '{}',
    link       TEXT,
    subject_id TEXT,
    created_at INTEGER NOT NULL,
    -- 0 unread, 1 read: the inbox lists unread first.
    read       INTEGER NOT NULL DEFAULT 0,
    read_at    INTEGER
);
CREATE INDEX notifications_inbox_idx ON notifications (user_id, read, id);

-- Per-user choices: the language of e-mails and which kinds are not e-mailed (the inbox
-- always gets everything). No row = zh-CN and every kind e-mailed.
CREATE TABLE notification_prefs (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    language   TEXT NOT NULL DEFAULT 'zh-CN',
    email_off  TEXT NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1
);

-- Webhook subscriptions: a department's (its dept_admin's) or platform-wide (NULL).
-- The signing secret is sealed with the server's key: it must be read back to sign.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    -- JSON array of kinds; empty = every kind.
    kinds         TEXT NOT NULL DEFAULT '[]',
    department_id TEXT REFERENCES departments (id) ON DELETE CASCADE,
    scope_key     TEXT NOT NULL,
    secret        TEXT NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    created_by    TEXT,
    updated_at    INTEGER NOT NULL,
    generation    INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT webhooks_scope_name_key UNIQUE (scope_key, name)
);
CREATE INDEX webhooks_department_idx ON webhooks (department_id);

-- The outbox: every e-mail and webhook call to make, written in the transaction of the
-- notice, sent by the `notification_delivery` task outside any transaction, with retries.
-- state: pending → sent, or pending → failed (attempts exhausted).
CREATE TABLE notification_deliveries (
    id            TEXT PRIMARY KEY,
    channel       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    -- e-mail: the recipient; webhook: the subscription.
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    webhook_id    TEXT REFERENCES webhooks (id) ON DELETE CASCADE,
    -- e-mail: {"to","subject","body"}; webhook: the JSON body to sign and post.
    payload       TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER NOT NULL DEFAULT 0,
    last_status   INTEGER,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX notification_deliveries_webhook_idx ON notification_deliveries (webhook_id, id);
CREATE INDEX notification_deliveries_list_idx ON notification_deliveries (channel, id);
