"""Durable single-machine adapters on local files."""
