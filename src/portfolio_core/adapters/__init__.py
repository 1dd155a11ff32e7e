"""Adapters, one folder per technology: memory, file, sql, redis, local (inference)."""
