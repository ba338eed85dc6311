"""Opening the database: engine set-up for SQLite or PostgreSQL, and migrations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

from dockyard.store.schema import metadata

MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL for ``--database-url`` (None means SQLite in the data dir)."""
    if url is None:
        return f"sqlite:///{data_dir / 'dockyard.db'}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    engine = create_engine(url, pool_size=10, max_overflow=10)
    _ping_when_idle(engine)
    return engine


IDLE_PING = 10.0  # seconds a pooled connection may rest before it is checked on checkout


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for connections that rested: a busy server checks
    out connections thousands of times a second, each ping a round trip, while a
    database restart is found out by the first request after it (SQLAlchemy then
    drops the whole pool, so only that one fails)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["rested_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.get("rested_since")
        if rested is None or time.monotonic() - rested < IDLE_PING:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as error:  # the pool retries with a new connection
            raise DisconnectionError(str(error)) from error


def _sqlite_engine(url: str) -> Engine:
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        # One shared connection keeps an in-memory database alive between calls.
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves, so writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE for writers: a deferred transaction that later writes can
        # fail with SQLITE_BUSY instead of waiting for the lock.
        options = conn.get_execution_options()
        if options.get("dockyard_statement", False):
            return  # one statement: atomic on its own, no BEGIN (and COMMIT) needed
        immediate = options.get("dockyard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (runs at every start; cheap when current)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@contextmanager
def transaction(engine: Engine, write: bool = False) -> Iterator[Connection]:
    with engine.connect() as conn:
        if write:
            conn = conn.execution_options(dockyard_write=True)
        with conn.begin():
            yield conn


@contextmanager
def statement(engine: Engine) -> Iterator[Connection]:
    """A connection for ONE read statement (consistent on its own), without BEGIN and
    COMMIT: round trips on PostgreSQL (autocommit), statements on SQLite."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            conn = conn.execution_options(dockyard_statement=True)
        yield conn


def wipe(engine: Engine) -> None:
    """Delete every row of every Dockyard table (the schema stays)."""
    with transaction(engine, write=True) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
