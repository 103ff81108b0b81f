#!/usr/bin/env bash
# Run once by the postgres image, on the first start with an empty volume.
# Creates Metabase's own application database and the role that owns it, and
# nothing else: the warehouse schema comes from
# `crypto-etl migrate`, run by the etl container from the same migration files
# as a local run. The role's password is MB_DB_PASS (docker-compose.yml
# hands it to this service and to metabase, which logs in with it).
set -euo pipefail

: "${MB_DB_PASS:?MB_DB_PASS is not set: see docker-compose.yml}"

# psql reads the password from the environment (\getenv, psql 15+) and quotes
# it as a literal (:'mb_pass'): no quoting bugs, and it stays off the command
# line that `ps` shows.
psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv mb_pass MB_DB_PASS
CREATE ROLE metabase LOGIN PASSWORD :'mb_pass';
CREATE DATABASE metabase OWNER metabase;
SQL
