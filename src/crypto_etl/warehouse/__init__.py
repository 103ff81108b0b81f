"""PostgreSQL: the connection, migrations, roles, the loader, the run log and status."""
