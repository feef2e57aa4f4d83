"""Alembic migrations; :meth:`app.storage.database.Database.upgrade` runs them to head."""
