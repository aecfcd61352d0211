"""Database: engine and sessions (:mod:`.engine`), tables (:mod:`.models`), Alembic migrations."""

from egocrowd.db.engine import Database, make_engine, open_database, upgrade

__all__ = ["Database", "make_engine", "open_database", "upgrade"]
