"""A local PostgreSQL cluster from the system binaries, for running without Docker."""
