"""Write migrations/0002_baseline.sql (and its rollback) from sql/, the readable schema.

Before 0.1.0 is released the schema has one baseline migration, built from sql/ by this
script: edit sql/, run `python scripts/build_baseline.py`, commit both. From 0.1.0 on the
baseline is frozen like every released migration (River's rule): a change to the schema is
a new migration that says why, plus the same change in sql/, and tests/migration/test_drift.py
proves the two still build the same schema.

Usage: python scripts/build_baseline.py [--check]   (--check: exit 1 if the files are stale)
"""

from __future__ import annotations

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SQL = ROOT / "sql"
MIGRATIONS = ROOT / "migrations"
BASELINE = MIGRATIONS / "0002_baseline.sql"
ROLLBACK = MIGRATIONS / "0002_baseline.rollback.sql"

HEADER = """\
-- depends: 0001_procrastinate_schema
-- The baseline: the whole schema of loyverse-sync as sql/ describes it (one file per object,
-- in dependency order), after procrastinate's own schema (0001). Built by
-- scripts/build_baseline.py from sql/; do not edit by hand. From 0.1.0 on it is frozen and
-- every change is a new migration that says why.
"""

ROLLBACK_TEXT = """\
-- Undo the baseline: drop every object of the integration and the catalogue tables it
-- created. Roles stay (cluster-wide; other databases on the server may use them), and so do
-- procrastinate's schema and loyverse.procrastinate_migrations (0001's).
do $$
declare r record;
begin
  for r in select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'loyverse' and c.relkind in ('v', 'm') loop
    execute format('drop view if exists loyverse.%I cascade', r.relname);
  end loop;
  for r in select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = 'loyverse' and c.relkind in ('r', 'p')
             and c.relname <> 'procrastinate_migrations' loop
    execute format('drop table if exists loyverse.%I cascade', r.relname);
  end loop;
  for r in select p.oid, p.prokind from pg_proc p
           join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'loyverse' loop
    -- (a function dropped by an earlier cascade, e.g. an aggregate with its state function, is gone)
    continue when not exists (select 1 from pg_proc x where x.oid = r.oid);
    if r.prokind = 'a' then
      execute format('drop aggregate if exists %s cascade', r.oid::regprocedure);
    else
      execute format('drop routine if exists %s cascade', r.oid::regprocedure);
    end if;
  end loop;
  for r in select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace
           where n.nspname = 'loyverse' and t.typtype in ('c', 'd', 'e')
             and not exists (select 1 from pg_class c where c.reltype = t.oid) loop
    execute format('drop type if exists loyverse.%I cascade', r.typname);
  end loop;
end $$;
{public_tables}
"""

PUBLIC_TABLE_RE = re.compile(r"^create table public\.(\w+)", re.MULTILINE)


def build() -> tuple[str, str]:
    files = sorted(SQL.glob("*.sql"))
    parts = [HEADER]
    public: list[str] = []
    for f in files:
        text = f.read_text(encoding="utf-8").rstrip() + "\n"
        parts.append(f"\n-- ---- sql/{f.name} ----\n{text}")
        public += PUBLIC_TABLE_RE.findall(text)
    drops = "\n".join(f"drop table if exists public.{t} cascade;" for t in reversed(public))
    return "".join(parts), ROLLBACK_TEXT.format(public_tables=drops)


def main(argv: list[str]) -> int:
    baseline, rollback = build()
    if "--check" in argv:
        stale = [p.name for p, text in ((BASELINE, baseline), (ROLLBACK, rollback))
                 if not p.exists() or p.read_text(encoding="utf-8") != text]
        if stale:
            print(f"stale: {', '.join(stale)} (run python scripts/build_baseline.py)", file=sys.stderr)
            return 1
        return 0
    BASELINE.write_text(baseline, encoding="utf-8")
    ROLLBACK.write_text(rollback, encoding="utf-8")
    print(f"wrote {BASELINE.relative_to(ROOT)} ({baseline.count(chr(10))} lines) and its rollback")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
