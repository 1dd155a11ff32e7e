"""SQLAlchemy Core adapters for SQLite (the embedded default) and PostgreSQL."""
