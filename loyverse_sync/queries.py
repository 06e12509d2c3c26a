"""The SQL that Python sends, kept in .sql files of named blocks (procrastinate's habit).

Each file in loyverse_sync/queries/ holds blocks introduced by ``-- name: block_name``;
placeholders are named (``%(param)s``). Files are read once, on first use.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from typing import Any, LiteralString, cast

import psycopg
from psycopg import rows

_NAME_RE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@functools.cache
def _load(file: str) -> dict[str, str]:
    text = (importlib.resources.files("loyverse_sync") / "queries" / f"{file}.sql").read_text(
        encoding="utf-8"
    )
    parts = _NAME_RE.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def get(file: str, name: str) -> LiteralString:
    """The query `name` of queries/`file`.sql."""
    try:
        return cast(LiteralString, _load(file)[name])
    except KeyError:
        raise KeyError(f"no query {name!r} in queries/{file}.sql") from None


def execute(
    conn: psycopg.Connection[Any], file: str, name: str, params: dict[str, Any] | None = None
) -> psycopg.Cursor[dict[str, Any]]:
    """Run a named query on `conn` with dict rows, whatever the connection's row factory."""
    cur = conn.cursor(row_factory=rows.dict_row)
    cur.execute(get(file, name), params)
    return cur
