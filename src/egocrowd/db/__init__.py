"""Database: engine and sessions (:mod:`.engine`), tables (:mod:`.models`), Alembic migrations."""

from egocrowd.db.engine import Database, make_engine, upgrade

__all__ = ["Database", "make_engine", "upgrade"]
