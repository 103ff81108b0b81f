#!/usr/bin/env bash
# Entry point of the crypto-etl image (containers/etl/Dockerfile).
#
#   etl-entrypoint [scheduler]  wait for the warehouse, apply the migrations,
#                               write the crontab that fits the monthly credit
#                               budget (`crypto-etl schedule`, from
#                               COINCAP_MONTHLY_CREDITS and the measured cost
#                               of recent runs) to $CRYPTO_ETL_CRONTAB, then
#                               hand PID 1 to supercronic running it.
#   etl-entrypoint CMD ARGS...  run CMD as given (the dashboard, a one-off
#                               `crypto-etl provision-metabase`, a shell).
#
# The wait retries the idempotent `crypto-etl migrate` itself rather than
# probing the port: success then means the server accepts this role's
# password on this database, which a port probe cannot tell. It retries only
# on exit code 6 (a transient warehouse error: not reachable yet, still
# starting up, a serialization failure), gives up after WAREHOUSE_WAIT_SECONDS
# (default 120), and stops at once on any other code, with crypto-etl's
# message: a refused login, unknown database (11), a failing or edited
# migration (12) or a configuration error (3) is not fixed by waiting.
set -euo pipefail

# Written once the migrations are applied: the image's HEALTHCHECK looks for it.
readonly READY_FILE=${ETL_READY_FILE:-/tmp/crypto-etl.ready}
readonly CRONTAB=${CRYPTO_ETL_CRONTAB:-/app/.data/crontab}
readonly TRANSIENT_WAREHOUSE_EXIT=6
readonly POLL_SECONDS=2

migrate_when_warehouse_is_up() {
    local wait_seconds=${WAREHOUSE_WAIT_SECONDS:-120}
    local deadline=$((SECONDS + wait_seconds))
    local output status
    while true; do
        status=0
        output=$(crypto-etl migrate 2>&1) || status=$?
        if ((status == 0)); then
            echo "$output"
            return 0
        fi
        if ((status != TRANSIENT_WAREHOUSE_EXIT)); then
            echo "etl-entrypoint: crypto-etl migrate failed (exit $status);" \
                "not retrying:" >&2
            echo "$output" >&2
            return "$status"
        fi
        if ((SECONDS >= deadline)); then
            echo "etl-entrypoint: warehouse not ready after ${wait_seconds}s;" \
                "last error from crypto-etl migrate:" >&2
            echo "$output" >&2
            return "$status"
        fi
        sleep "$POLL_SECONDS"
    done
}

if [[ $# -eq 0 || $1 == scheduler ]]; then
    # A restarted container keeps its /tmp: start unhealthy until migrated.
    rm -f "$READY_FILE"
    migrate_when_warehouse_is_up
    # Written in full before it is used: a failed schedule stops the start.
    crypto-etl schedule >"$CRONTAB.new"
    mv "$CRONTAB.new" "$CRONTAB"
    touch "$READY_FILE"
    exec supercronic "$CRONTAB"
fi
exec "$@"
