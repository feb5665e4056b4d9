"""Alembic migrations of the control plane's database, shipped inside the package."""
