"""A write transaction whose statements go out together, where round trips cost.

On PostgreSQL every statement waits for its answer, and RunTask's placing transaction
runs while its cluster's placements wait: BEGIN, the locking reads, the inserts and
updates and COMMIT one after another are seven round trips. In psycopg's pipeline
mode they are two: BEGIN with the reads, then the writes with COMMIT. The
transaction is the pipeline's own (the connection is in autocommit for psycopg, which
would otherwise wait for its own BEGIN), so every statement goes through this object,
on the driver's cursor, with the statement compiled by SQLAlchemy; rows are read
after ``sync`` or the end of the block. Rows written in bulk go in one statement of
arrays (``execute_many``): what costs is the driver's work per row, not PostgreSQL's.

Elsewhere (SQLite, in-process: nothing to save) each statement runs at once in an
ordinary write transaction and ``sync`` and ``commit`` do nothing, so one piece of
code serves both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import psycopg
from psycopg.rows import namedtuple_row, tuple_row
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from dockyard.store import db


class Rows(Protocol):
    def all(self) -> Sequence[Any]: ...


class _Ready:
    """A query's rows, read at once (SQLite)."""

    def __init__(self, rows: Sequence[Any]) -> None:
        self._rows = rows

    def all(self) -> Sequence[Any]:
        return self._rows


class _Pending:
    """A query's rows, once its answer came (after ``sync`` or the block's end)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def all(self) -> Sequence[Any]:
        return self._cursor.fetchall()


class Pipeline:
    def __init__(self, conn: Connection, driver: Any = None, pipeline: Any = None) -> None:
        self.conn = conn
        self._driver = driver  # psycopg's connection, in pipeline mode; None: elsewhere
        self._pipeline = pipeline
        self.committed = False

    def query(
        self,
        statement: Executable,
        parameters: Mapping[str, Any],
        *,
        postgresql: Executable | None = None,
    ) -> Rows:
        """Run ``statement`` (one built once: its compiled form is kept); its rows can
        be read after the next ``sync`` or the end of the block. ``postgresql``: its
        form for PostgreSQL with lists as arrays (``= ANY``), whose text does not change
        with their length as an expanding IN's does: the IN list is not rendered again
        at every call."""
        if self._driver is None:
            return _Ready(self.conn.execute(statement, dict(parameters)).all())
        return _Pending(self._send(statement if postgresql is None else postgresql, parameters))

    def execute_many(
        self, statement: Executable, rows: Sequence[Mapping[str, Any]], *, as_arrays: Executable
    ) -> None:
        """Run ``statement`` for each of ``rows``; on PostgreSQL, ``as_arrays`` once
        instead, given each parameter's values in one array (see ``inserting``)."""
        if not rows:
            return
        if self._driver is None:
            self.conn.execute(statement, list(rows))
            return
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        self._send(as_arrays, columns, binary=True)

    def sync(self) -> None:
        """Send what is queued and wait for the answers."""
        if self._pipeline is not None:
            self._pipeline.sync()

    def commit(self) -> None:
        """COMMIT after what is queued: it goes with them when the transaction's block
        ends, and the rows of queries since the last ``sync`` can be read then
        (elsewhere: at the end of the block, as usual)."""
        if self._driver is not None:
            self._run("COMMIT")
        self.committed = True

    def _run(self, command: str) -> None:
        self._driver.cursor().execute(command)

    def _send(
        self,
        statement: Executable,
        parameters: Mapping[str, Any],
        *,
        binary: bool = False,
        rows: Any = namedtuple_row,
    ) -> Any:
        expanded = _compiled(statement, self.conn).construct_expanded_state(dict(parameters))
        cursor = self._driver.cursor(row_factory=rows)
        if binary:  # in text form every quote of every JSON document would be escaped
            cursor.adapters.register_dumper(list, ListBinaryDumper)
        cursor.execute(expanded.statement, expanded.parameters)
        return cursor


def one_statement(
    engine: Engine, statement: Executable, parameters: Mapping[str, Any], *, binary: bool = False
) -> list[tuple[Any, ...]]:
    """Run ``statement`` (one built once) as a transaction of its own; its rows, as
    tuples. On PostgreSQL straight on the driver's cursor, in autocommit: one round
    trip, and SQLAlchemy's execution (which costs about what the round trip does) left
    out; ``binary``: lists go as binary arrays."""
    if engine.dialect.name != "postgresql":
        with db.statement(engine) as conn:
            return [tuple(row) for row in conn.execute(statement, dict(parameters))]
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        driver = cast(psycopg.Connection[Any], conn.connection.driver_connection)
        cursor = Pipeline(conn, driver)._send(statement, parameters, binary=binary, rows=tuple_row)
        return cast(list[tuple[Any, ...]], cursor.fetchall())


def inserting(table: Table) -> Executable:
    """An INSERT of ``table``'s rows given column by column, as arrays (PostgreSQL's
    ``unnest``): for ``execute_many``."""
    arrays = [func.unnest(bindparam(c.name, type_=ARRAY(c.type))) for c in table.c]
    return insert(table).from_select([c.name for c in table.c], select(*arrays))


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Pipeline]:
    """A write transaction (``db.transaction(write=True)``), pipelined on PostgreSQL:
    committed at the end of the block (whether or not ``commit`` was called), rolled
    back on an error. Leaving the block is the last round trip."""
    if engine.dialect.name != "postgresql":
        with db.transaction(engine, write=True) as conn:
            yield Pipeline(conn)
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        driver = cast(psycopg.Connection[Any], conn.connection.driver_connection)
        with driver.pipeline() as pipeline:
            batch = Pipeline(conn, driver, pipeline)
            batch._run("BEGIN")
            try:
                yield batch
            except BaseException:
                batch._run("ROLLBACK")
                raise
            if not batch.committed:
                batch.commit()


# (statement, dialect) -> compiled: ``query`` is for statements built once, so this
# stays as small as the set of them.
_COMPILED: dict[tuple[Executable, str], SQLCompiler] = {}


def _compiled(statement: Executable, conn: Connection) -> SQLCompiler:
    key = (statement, conn.dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        compiled = cast(ClauseElement, statement).compile(dialect=conn.dialect)
        found = _COMPILED[key] = cast(SQLCompiler, compiled)
    return found
