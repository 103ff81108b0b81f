#!/usr/bin/env bash
# Starts the official postgres image's entrypoint with its POSTGRES_* settings
# taken from the project's WAREHOUSE_* variables (docker-compose.yml), so the
# warehouse credentials are written down once, under the names the ETL, the
# dashboard and a local run already use. They only matter on the first start,
# when the image creates the cluster in the empty volume.
set -euo pipefail

export POSTGRES_DB="${WAREHOUSE_DB:?WAREHOUSE_DB is not set: see docker-compose.yml}"
export POSTGRES_USER="${WAREHOUSE_USER:?WAREHOUSE_USER is not set: see docker-compose.yml}"
export POSTGRES_PASSWORD="${WAREHOUSE_PASSWORD:?WAREHOUSE_PASSWORD is not set: see docker-compose.yml}"
exec docker-entrypoint.sh "$@"
