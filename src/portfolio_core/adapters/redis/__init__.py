"""Shared-state adapters on Redis, for many processes and machines."""
