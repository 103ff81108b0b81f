"""Dashboards: one shared definition, the built-in web dashboard, Metabase."""
