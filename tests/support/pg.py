"""A PostgreSQL schema of a test's own in the test database: created, handed out as a URL whose
connections use it, dropped with everything in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def private_schema(base_url: str, prefix: str) -> Iterator[str]:
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    try:
        with admin.begin() as c:
            c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
