"""Alembic migrations of the roi_service schema (run with `roi-service migrate`)."""
