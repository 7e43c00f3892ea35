-- Issue 16's data plane: the network state each KVM host was last sent. `generation`
-- grows with every change of the state (conditional update), and an agent refuses a push
-- older than the one it applied; `digest` tells whether the state changed; `applied` is
-- the generation the agent confirmed (a push that failed is sent again).
CREATE TABLE host_networks (
    host_id     TEXT PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    generation  INTEGER NOT NULL,
    digest      TEXT NOT NULL,
    applied     INTEGER NOT NULL DEFAULT 0,
    pushed_at   INTEGER NOT NULL
);
