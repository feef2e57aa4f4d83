"""The project's database: API keys and login sessions (SQLAlchemy async, Alembic migrations).

Nothing here reads settings: callers pass a database URL. Import the modules you need
(``app.storage.database``, ``app.storage.api_keys``, ...); this package imports nothing so
that ``polly`` commands which never touch the database don't pay for SQLAlchemy.
"""
