-- Alert state: one row per problem the monitor has announced (a failing
-- pipeline, a stale table, a failed data test, the credit budget), so that a
-- problem is announced once, not on every 5-minute run, and its clearing
-- once. Written by crypto_etl.monitor.alerts under the "alerts" advisory lock.
--
-- A condition stays open (resolved_at NULL) while it holds. An event (an
-- abandoned run) is resolved from the start: it is announced, never cleared.
-- *_sent say whether the message went out; an undelivered one is retried on
-- the next check.
CREATE TABLE coincap.alert_state (
    alert_key     text        PRIMARY KEY,
    kind          text        NOT NULL,
    subject       text        NOT NULL,
    summary       text        NOT NULL,
    to_check      text        NOT NULL,
    severity      text        NOT NULL CHECK (severity IN ('failure', 'warning')),
    is_event      boolean     NOT NULL DEFAULT false,
    opened_at     timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    resolved_at   timestamptz,
    opened_sent   boolean     NOT NULL DEFAULT false,
    resolved_sent boolean     NOT NULL DEFAULT false,
    CHECK (NOT is_event OR resolved_at IS NOT NULL)
);
CREATE INDEX alert_state_open ON coincap.alert_state (kind) WHERE resolved_at IS NULL;
GRANT SELECT ON coincap.alert_state TO coincap_read;
