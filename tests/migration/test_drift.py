"""migrations/ and sql/ describe the same schema."""

from __future__ import annotations

import difflib
import re

from loyverse_sync import db
from tests import pgtools


def normalised_schema(dsn: str) -> list[str]:
    """pg_dump's statements, sorted: pg_dump's order of same-rank objects can follow OIDs,
    which differ between the two build paths, so we compare the set of statements."""
    dump = pgtools.pg_dump(
        dsn,
        "--schema-only",
        "--no-owner",
        "--exclude-table=public._yoyo*",
        "--exclude-table=public.yoyo_lock",
    )
    statements, current = [], []
    for line in dump.splitlines():
        if line.startswith("--") or line.startswith("SET ") or line.startswith("SELECT pg_catalog.set_config"):
            continue
        if line.startswith("\\restrict") or line.startswith("\\unrestrict"):
            continue  # pg_dump 17.6+/16.10+ print a random key per dump
        if not line.strip():
            if current:
                statements.append("\n".join(current))
                current = []
            continue
        current.append(re.sub(r"\s+$", "", line))
    if current:
        statements.append("\n".join(current))
    return sorted(statements)


def test_migrations_and_sql_dir_build_the_same_schema(dsn, empty_database):
    db.schema_from_sql_dir(empty_database)
    from_migrations = normalised_schema(dsn)
    from_sql = normalised_schema(empty_database)
    diff = list(
        difflib.unified_diff(from_migrations, from_sql, "migrations/", "sql/", lineterm="", n=2)
    )
    assert not diff, "sql/ has drifted from migrations/:\n" + "\n".join(diff[:200])


def test_every_sql_file_opens_with_what_and_why():
    bare = [f.name for f in sorted(db.sql_dir().glob("*.sql")) if not f.read_text().startswith("-- ")]
    assert not bare, f"sql/ files without their opening what/why comment: {bare}"
    assert len(list(db.sql_dir().glob("*.sql"))) > 50
