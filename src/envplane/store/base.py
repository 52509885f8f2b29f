"""The declarative base of every table. Times are UNIX seconds (float) so SQLite and PostgreSQL
store them the same way."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
