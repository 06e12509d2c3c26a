"""migrations/ and sql/ describe the same schema."""

from __future__ import annotations

import difflib
import re

from loyverse_sync import db
from tests import pgtools


def normalised_schema(dsn: str) -> list[str]:
    dump = pgtools.pg_dump(
        dsn,
        "--schema-only",
        "--no-owner",
        "--exclude-table=public._yoyo*",
        "--exclude-table=public.yoyo_lock",
    )
    lines = []
    for line in dump.splitlines():
        if (
            not line.strip()
            or line.startswith("--")
            or line.startswith("SET ")
            or line.startswith("SELECT pg_catalog.set_config")
        ):
            continue
        if line.startswith("\\restrict") or line.startswith("\\unrestrict"):
            continue  # pg_dump 17.6+/16.10+ random per-dump keys
        lines.append(re.sub(r"\s+$", "", line))
    return lines


def test_migrations_and_sql_dir_build_the_same_schema(dsn, empty_database):
    db.schema_from_sql_dir(empty_database)
    from_migrations = normalised_schema(dsn)
    from_sql = normalised_schema(empty_database)
    diff = list(
        difflib.unified_diff(from_migrations, from_sql, "migrations/", "sql/", lineterm="", n=2)
    )
    assert not diff, "sql/ has drifted from migrations/:\n" + "\n".join(diff[:200])
