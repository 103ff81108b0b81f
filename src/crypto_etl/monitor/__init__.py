"""Knowing when it breaks: alerts, dead-man's pings, freshness and the doctor."""
