#!/usr/bin/env bash
# `make up`: build and start the Docker stack, wait until every service says it
# is healthy, then set Metabase up through its API. Needs only Docker (Compose
# v2.17 or later) on the host: provisioning runs in the etl image.
#
# Waiting is left to Compose (`--wait`) rather than a loop polling
# Metabase's /api/health here: the metabase service's healthcheck is exactly
# that request, and --wait also covers the warehouse (pg_isready), the etl
# container (migrations applied) and the dashboard (answers HTTP).
# STACK_UP_TIMEOUT_SECONDS (default 600) bounds it; Metabase's first start,
# which creates its application database, takes a few minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
timeout=${STACK_UP_TIMEOUT_SECONDS:-600}

if ! docker compose up --detach --build --wait --wait-timeout "$timeout"; then
    echo "stack-up: the stack did not come up healthy within ${timeout}s" \
        "(see any build error above). Service states and recent logs:" >&2
    docker compose ps --all >&2
    docker compose logs --tail 30 >&2
    exit 1
fi

# --no-deps: the services it depends on are already up and healthy.
docker compose run --rm --no-deps etl crypto-etl provision-metabase

echo "The stack is up:"
echo "  dashboard  http://$(docker compose port dashboard 8050)"
echo "  metabase   http://$(docker compose port metabase 3000)"
echo "  warehouse  $(docker compose port warehouse 5432)"
echo "Logs: docker compose logs -f etl    Stop: make down (keeps the data)"
