"""The dbt side: running the models and tests, reading data-quality results."""
