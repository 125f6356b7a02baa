"""Storage: table definitions, engine construction and Alembic migrations."""
