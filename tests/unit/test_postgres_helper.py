"""The throwaway PostgreSQL server that database tests run against."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.postgres import find_pg_bindir, fresh_database, running_postgres


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url


def test_server_answers_queries(server_url: str) -> None:
    with psycopg.connect(server_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_fresh_databases_are_distinct_and_empty(server_url: str) -> None:
    first, second = fresh_database(server_url), fresh_database(server_url)
    assert first != second

    for url in (first, second):
        with psycopg.connect(url) as conn:
            name = conn.execute("select current_database()").fetchone()
            assert name == (urlsplit(url).path.lstrip("/"),)
            assert _public_tables(conn) == []

    # A table made in one database is invisible from the other.
    with psycopg.connect(first) as conn:
        conn.execute("create table marker (id int)")
    with psycopg.connect(second) as conn:
        assert _public_tables(conn) == []


def test_missing_binaries_is_an_error_not_a_skip() -> None:
    with pytest.raises(RuntimeError, match="install the 'postgresql' package"):
        find_pg_bindir(debian_glob="/nonexistent/*/bin/initdb", path="")


def _public_tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    rows = conn.execute(
        "select table_name from information_schema.tables where table_schema = 'public'"
    ).fetchall()
    return [str(row[0]) for row in rows]
