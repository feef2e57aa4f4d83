"""One module per schema version, oldest first (Alembic reads them by revision, not by import)."""
