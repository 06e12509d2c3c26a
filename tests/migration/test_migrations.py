"""Migration files are well formed, apply once, roll back and re-apply."""

from __future__ import annotations

import re

import psycopg
import pytest

from loyverse_sync import db

NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+(\.rollback)?\.(sql|py)$")


def migration_files():
    return sorted(
        p for p in db.migrations_dir().iterdir() if p.is_file() and not p.name.startswith(".")
    )


def test_migration_files_are_named_nnnn_description():
    bad = [p.name for p in migration_files() if not NAME_RE.match(p.name)]
    assert not bad, f"badly named migration files: {bad}"


def test_migration_numbers_are_unique():
    numbers = [
        NAME_RE.match(p.name).group(1) for p in migration_files() if ".rollback." not in p.name
    ]
    assert len(numbers) == len(set(numbers)), f"duplicate migration numbers: {sorted(numbers)}"


def test_every_sql_migration_says_what_it_does_and_what_it_depends_on():
    for p in migration_files():
        if p.suffix != ".sql" or ".rollback." in p.name:
            continue
        text = p.read_text()
        assert text.startswith("-- "), f"{p.name} must open with a comment saying what and why"
        assert "-- depends:" in text.split("\n\n", 1)[0] or "-- depends:" in text[:2000], (
            f"{p.name} has no -- depends:"
        )


def test_every_rollback_has_its_migration():
    names = {p.name for p in migration_files()}
    for p in migration_files():
        if ".rollback." in p.name:
            assert p.name.replace(".rollback", "") in names


def test_migrate_on_an_empty_database_gives_everything_and_twice_is_a_noop(empty_database):
    applied = db.migrate(empty_database)
    assert applied[:2] == ["0001_procrastinate_schema", "0002_baseline"]
    assert db.migrate(empty_database) == []
    assert all(m.applied for m in db.status(empty_database))
    with psycopg.connect(empty_database) as c:
        tables = {
            r[0]
            for r in c.execute(
                "select table_schema || '.' || table_name from information_schema.tables "
                "where table_schema in ('public', 'loyverse')"
            )
        }
        roles = {
            r[0] for r in c.execute("select rolname from pg_roles where rolname like 'loyverse%'")
        }
        recorded = c.execute("select count(*) from loyverse.procrastinate_migrations").fetchone()[0]
    assert {
        "public.products",
        "public.procrastinate_jobs",
        "loyverse.loyverse_price_sync_queue",
        "loyverse.loyverse_item_mappings",
        "loyverse.loyverse_sync_logs",
    } <= tables
    assert roles == {"loyverse_app", "loyverse_worker", "loyverse_readonly"}
    assert recorded == len(db.procrastinate_migration_files())


@pytest.mark.slow  # a few seconds: left out of the fast lane, run by CI
def test_rollback_then_migrate_again(empty_database):
    db.migrate(empty_database)
    undone = db.rollback(empty_database, "2")
    assert "0002_baseline" not in undone
    undone = db.rollback(empty_database, "1")
    assert "0002_baseline" in undone
    with psycopg.connect(empty_database) as c:
        assert c.execute("select to_regclass('public.products')").fetchone()[0] is None
    assert "0002_baseline" in db.migrate(empty_database)


def test_rollback_to_an_unknown_migration_names_the_known_ones(empty_database):
    with pytest.raises(ValueError, match="0001_procrastinate_schema"):
        db.rollback(empty_database, "9999")


def test_a_newer_procrastinate_migration_file_is_applied_exactly_once(
    empty_database, tmp_path, monkeypatch
):
    db.migrate(empty_database)
    extra = tmp_path / "99.00.00_01_pre_test_upgrade.sql"
    extra.write_text("create table public.procrastinate_upgrade_probe (id int);")
    original = db.procrastinate_migration_files
    monkeypatch.setattr(db, "procrastinate_migration_files", lambda: [*original(), extra])
    assert db.migrate(empty_database) == ["procrastinate:99.00.00_01_pre_test_upgrade.sql"]
    assert db.migrate(empty_database) == []
    with psycopg.connect(empty_database) as c:
        how = c.execute(
            "select applied_how from loyverse.procrastinate_migrations where name = %s",
            (extra.name,),
        ).fetchone()
    assert how == ("migration",)
